package main

import (
	"bytes"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// checkNoLeak fails when a layer of img has an entry at or below one of
// paths, or when a secret shows in a layer's files, the history, the
// config, or any file under the store root (layers, cache records, keys).
func checkNoLeak(t *testing.T, e *env, img v1.Image, paths []string, secrets []string) {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range ls {
		for _, en := range layerEntries(t, l) {
			p := strings.TrimSuffix(en.Path, "/")
			for _, bad := range paths {
				if p == bad || strings.HasPrefix(p, bad+"/") {
					t.Errorf("layer %d has %s", i, en)
				}
			}
		}
	}
	cf := configFile(t, img)
	for _, h := range cf.History {
		for _, s := range secrets {
			if strings.Contains(h.CreatedBy, s) {
				t.Errorf("history %q shows a secret", h.CreatedBy)
			}
		}
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("config shows secret %q", s)
		}
	}
	// Every byte the store keeps, layers (compressed or not) included.
	err = filepath.WalkDir(e.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("store file %s holds secret %q", strings.TrimPrefix(p, e.root), s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		for _, s := range secrets {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(rc)
			rc.Close()
			if bytes.Contains(buf.Bytes(), []byte(s)) {
				t.Errorf("a layer holds secret %q", s)
			}
		}
	}
}

func wantFiles(t *testing.T, img v1.Image, want map[string]string) {
	t.Helper()
	for p, w := range want {
		got, ok := fileIn(t, img, p)
		if !ok || got != w {
			t.Errorf("%s = %q (found %v), want %q", p, got, ok, w)
		}
	}
}

func TestRunMountCache(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": `FROM busybox AS seed
RUN mkdir /seed && echo seeded > /seed/s.txt
FROM busybox
RUN --mount=type=cache,target=/var/cache/app,uid=1000,gid=1000,mode=0750 sh -c 'stat -c "%u:%g %a" /var/cache/app > /meta.txt; echo run >> /var/cache/app/count; wc -l < /var/cache/app/count > /count.txt'
RUN --mount=type=cache,id=c1,target=/a --mount=type=cache,id=c1,target=/b,sharing=private sh -c 'echo x > /a/shared; ls /b | wc -l > /private.txt'
RUN --mount=type=cache,id=c1,target=/deep/dir/c,sharing=locked cat /deep/dir/c/shared > /locked.txt
RUN --mount=type=cache,target=/seeded,from=seed,source=/seed cat /seeded/s.txt > /seeded.txt
`})
	e.mustRun("build", "-t", "c1", ctx)
	img := e.image("c1:latest")
	wantFiles(t, img, map[string]string{"meta.txt": "1000:1000 750\n", "count.txt": "1\n", "private.txt": "0\n",
		"locked.txt": "x\n", "seeded.txt": "seeded\n"})
	checkNoLeak(t, e, img, []string{"var/cache", "a", "b", "deep", "seeded"}, nil)

	// The cache mount survives between builds (the step itself reruns).
	e.mustRun("build", "--no-cache", "-t", "c2", ctx)
	wantFiles(t, e.image("c2:latest"), map[string]string{"count.txt": "2\n"})

	// prune --mounts clears it.
	e.mustRun("prune", "--mounts")
	e.mustRun("build", "--no-cache", "-t", "c3", ctx)
	wantFiles(t, e.image("c3:latest"), map[string]string{"count.txt": "1\n"})
	e.mustRun("prune", "--all")
	if ents, _ := filepath.Glob(filepath.Join(e.root, "mounts", "cache", "*", "0")); len(ents) != 0 {
		t.Errorf("cache mounts left after prune --all: %v", ents)
	}
}

func TestRunMountBindTmpfs(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{
		".dockerignore":   "src/ignored.txt\n",
		"src/hello.txt":   "hello\n",
		"src/ignored.txt": "ignored\n",
		"Dockerfile": `FROM busybox AS tools
RUN echo tool > /tool.txt
FROM busybox
WORKDIR /w
RUN --mount=type=bind,source=src,target=/mnt/src sh -c 'cat /mnt/src/hello.txt > /out.txt; ls /mnt/src > /ls.txt; (touch /mnt/src/x 2>/dev/null && echo rw || echo ro) > /ro.txt'
RUN --mount=type=bind,source=src,target=rel,rw sh -c 'echo changed > /w/rel/hello.txt && cat rel/hello.txt > /rw.txt'
RUN --mount=type=bind,from=tools,source=/tool.txt,target=/opt/t.txt cat /opt/t.txt > /fromstage.txt
RUN --mount=type=bind,from=tools,target=/tools,rw sh -c 'echo x > /tools/new && cat /tools/tool.txt > /fromstage-rw.txt'
RUN --mount=type=tmpfs,target=/scratch,size=1m sh -c 'echo tmp > /scratch/f; df -k /scratch | tail -1 | awk "{print \$2}" > /tmpfs.txt'
`})
	e.mustRun("build", "-t", "b1", ctx)
	img := e.image("b1:latest")
	wantFiles(t, img, map[string]string{"out.txt": "hello\n", "ls.txt": "hello.txt\n", "ro.txt": "ro\n", "rw.txt": "changed\n",
		"fromstage.txt": "tool\n", "fromstage-rw.txt": "tool\n", "tmpfs.txt": "1024\n"})
	checkNoLeak(t, e, img, []string{"mnt", "w/rel", "opt", "tools", "scratch", "tool.txt"}, nil)
	if b, _ := os.ReadFile(filepath.Join(ctx, "src/hello.txt")); string(b) != "hello\n" {
		t.Errorf("rw bind changed the context: %q", b)
	}
	// A change of the bound context content reruns the step.
	if err := os.WriteFile(filepath.Join(ctx, "src/hello.txt"), []byte("bye\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustRun("build", "-t", "b2", ctx)
	wantFiles(t, e.image("b2:latest"), map[string]string{"out.txt": "bye\n"})
}

func TestRunMountSecret(t *testing.T) {
	e := newEnv(t)
	const fileSecret, envSecret = "s3cr3t-from-file-4711", "s3cr3t-from-env-0815"
	secretFile := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(secretFile, []byte(fileSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := writeContext(t, map[string]string{"Dockerfile": `FROM busybox
RUN --mount=type=secret,id=tok sh -c 'wc -c < /run/secrets/tok > /len.txt; ls -l /run/secrets/tok | cut -c1-10 > /mode.txt; cat /run/secrets/tok'
RUN --mount=type=secret,id=tok,target=/etc/app/tok.txt,uid=1000,mode=0440 sh -c 'stat -c "%u %a" /etc/app/tok.txt > /own.txt'
RUN --mount=type=secret,id=key,env=API_KEY sh -c 'echo ${#API_KEY} > /envlen.txt; echo "key is $API_KEY"; test ! -e /run/secrets/key'
RUN --mount=type=secret,id=missing echo optional secret skipped > /missing.txt
RUN env > /env.txt
`})
	args := []string{"build", "--progress=plain", "-t", "s1", "--secret", "id=tok,src=" + secretFile, "--secret", "id=key,env=MY_KEY", ctx}
	r := runWithEnv(t, []string{"MY_KEY=" + envSecret}, append([]string{"--root", e.root}, args...)...)
	if r.err != nil {
		t.Fatalf("build: %v\n%s", r.err, r.stderr)
	}
	for _, s := range []string{fileSecret, envSecret} {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("build output shows secret %q:\n%s", s, r.stderr)
		}
	}
	if !strings.Contains(r.stdout+r.stderr, "key is ****") {
		t.Errorf("build output lacks the redacted line:\n%s", r.stderr)
	}
	img := e.image("s1:latest")
	wantFiles(t, img, map[string]string{"len.txt": "21\n", "mode.txt": "-r--------\n", "own.txt": "1000 440\n",
		"envlen.txt": "20\n", "missing.txt": "optional secret skipped\n"})
	if env, _ := fileIn(t, img, "env.txt"); strings.Contains(env, "API_KEY") {
		t.Errorf("secret env leaked into a later step: %s", env)
	}
	checkNoLeak(t, e, img, []string{"run/secrets", "etc/app"}, []string{fileSecret, envSecret})

	// The key holds the secret's id, not its content: a new value is a hit.
	if err := os.WriteFile(secretFile, []byte("another-value-1234"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runWithEnv(t, []string{"MY_KEY=other-env-value"}, append([]string{"--root", e.root}, args...)...)
	if r.err != nil || strings.Count(r.stderr+r.stdout, "CACHED") < 5 {
		t.Errorf("rebuild with other secret values not cached: %v\n%s", r.err, r.stderr)
	}

	// A required secret that is not given fails the step.
	req := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN --mount=type=secret,id=nope,required=true true\n"})
	if msg := e.mustFail("build", req); !strings.Contains(msg, "secret nope") {
		t.Errorf("error = %q, want it to name the secret", msg)
	}
}

func TestRunMountSSH(t *testing.T) {
	e := newEnv(t)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ctx := writeContext(t, map[string]string{"Dockerfile": `FROM busybox
RUN --mount=type=ssh sh -c 'echo $SSH_AUTH_SOCK > /sock.txt; test -S $SSH_AUTH_SOCK && ls -l $SSH_AUTH_SOCK | cut -c1-10 > /mode.txt'
RUN --mount=type=ssh,id=other,target=/agent.sock,mode=0666 sh -c 'test -S /agent.sock && echo ok > /other.txt'
`})
	r := runWithEnv(t, []string{"SSH_AUTH_SOCK=" + sock}, "--root", e.root, "build", "-t", "ssh1", "--ssh", "default", "--ssh", "other="+sock, ctx)
	if r.err != nil {
		t.Fatalf("build: %v\n%s", r.err, r.stderr)
	}
	img := e.image("ssh1:latest")
	wantFiles(t, img, map[string]string{"sock.txt": "/run/buildkit/ssh_agent.0\n", "mode.txt": "srw-------\n", "other.txt": "ok\n"})
	checkNoLeak(t, e, img, []string{"run/buildkit", "agent.sock"}, nil)
}

// TestSSHKeyFile: --ssh ID=KEYFILE serves the key through an agent of the
// build, forwarded into the RUN like an agent socket, and gone with the
// build (nothing in the image, nothing left in the store's temp dir).
func TestSSHKeyFile(t *testing.T) {
	e := newEnv(t)
	key, _ := writeKey(t, t.TempDir(), "id_ed25519", "")
	ctx := writeContext(t, map[string]string{"Dockerfile": `FROM busybox
RUN --mount=type=ssh,id=deploy sh -c 'test -S $SSH_AUTH_SOCK && echo ok > /ok.txt'
`})
	e.mustRun("build", "-t", "sshkey", "--ssh", "deploy="+key, ctx)
	img := e.image("sshkey:latest")
	wantFiles(t, img, map[string]string{"ok.txt": "ok\n"})
	checkNoLeak(t, e, img, []string{"run/buildkit"}, nil)
	if left, err := os.ReadDir(filepath.Join(e.root, "tmp")); err != nil || len(left) > 0 {
		t.Errorf("store temp dir after the build: %d entries, err %v", len(left), err)
	}
	msg := e.mustFail("build", "--ssh", "deploy="+ctx, ctx)
	mustContain(t, "--ssh with a directory", msg, "--ssh deploy", "neither an agent socket nor a key file")
}
