package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The remote context tests build from a Git repository served by `git
// daemon` and from files served by an HTTP server, both on loopback.

// gitTestEnv is an environment for making test repositories, free of the
// user's git configuration.
func gitTestEnv(t *testing.T) []string {
	return append(os.Environ(), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
}

func gitIn(t *testing.T, env []string, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// needGit skips the test when git or its daemon is missing.
func needGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed (hack/install-deps.sh installs it)")
	}
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Skipf("git --exec-path: %v", err)
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(out)), "git-daemon")); err != nil {
		t.Skip("git-daemon is not installed (Debian's git package has it)")
	}
}

// startGitDaemon serves the repositories under base with `git daemon` on
// a free loopback port and returns "127.0.0.1:PORT".
func startGitDaemon(t *testing.T, base string) string {
	t.Helper()
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		var logs bytes.Buffer
		cmd := exec.Command("git", "daemon", "--reuseaddr", "--base-path="+base, "--export-all",
			"--listen=127.0.0.1", "--port="+port, base)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its per-connection children too
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		})
		addr := "127.0.0.1:" + port
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			select {
			case <-exited:
				deadline = time.Time{} // the port was taken meanwhile: another one
				continue
			default:
			}
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				return addr
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("git daemon on port %s did not start:\n%s", port, logs.String())
	}
	t.Fatal("could not start git daemon")
	return ""
}

// gitFixture is a repository served by git daemon.
type gitFixture struct {
	url            string // git://127.0.0.1:PORT/repo.git
	first, second  string // commits of main: the tag v1 is on first
	dev            string // the branch dev: first plus one commit
	gitEnv, daemon []string
}

// newGitFixture makes repo.git: main has two commits (the first tagged
// v1), dev branches off the first; every commit has a Dockerfile copying
// the context to /ctx, an executable file, a symbolic link and a
// subdirectory sub/ with its own Dockerfile.
func newGitFixture(t *testing.T) *gitFixture {
	t.Helper()
	needGit(t)
	env := gitTestEnv(t)
	base := t.TempDir()
	work := filepath.Join(base, "work")
	gitIn(t, env, base, "init", "-q", "-b", "main", work)
	put := func(name, data string, mode os.FileMode) {
		p := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(msg string) string {
		gitIn(t, env, work, "add", "-A")
		gitIn(t, env, work, "commit", "-q", "-m", msg)
		return gitIn(t, env, work, "rev-parse", "HEAD")
	}
	put("Dockerfile", "FROM busybox\nCOPY . /ctx\n", 0o644)
	put("a.txt", "one\n", 0o644)
	put("run.sh", "#!/bin/sh\necho hi\n", 0o755)
	put("sub/Dockerfile", "FROM busybox\nCOPY . /sub\n", 0o644)
	put("sub/s.txt", "sub one\n", 0o644)
	// Files older than the stat cache's racy window when COPY hashes them.
	put("slow/Dockerfile", "FROM busybox\nRUN sleep 3\nCOPY a.txt /slow.txt\n", 0o644)
	if err := os.Symlink("a.txt", filepath.Join(work, "link")); err != nil {
		t.Fatal(err)
	}
	f := &gitFixture{gitEnv: env}
	f.first = commit("one")
	gitIn(t, env, work, "tag", "-a", "-m", "v1", "v1")
	put("a.txt", "two\n", 0o644)
	put("sub/s.txt", "sub two\n", 0o644)
	f.second = commit("two")
	gitIn(t, env, work, "checkout", "-q", "-b", "dev", f.first)
	put("a.txt", "dev\n", 0o644)
	f.dev = commit("dev")
	gitIn(t, env, work, "checkout", "-q", "main")

	srv := filepath.Join(base, "srv")
	gitIn(t, env, base, "clone", "-q", "--bare", work, filepath.Join(srv, "repo.git"))
	f.url = "git://" + startGitDaemon(t, srv) + "/repo.git"
	return f
}

// imageEntries lists the entries of every layer of img above the base.
func imageEntries(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	for _, l := range lastLayers(t, img, 1) {
		for _, en := range layerEntries(t, l) {
			out[strings.TrimSuffix(en.Path, "/")] = en
		}
	}
	return out
}

// tmpEmpty fails when the store's temp directory holds anything.
func (e *env) tmpEmpty(when string) {
	e.t.Helper()
	ents, err := os.ReadDir(filepath.Join(e.root, "tmp"))
	if err != nil {
		e.t.Fatal(err)
	}
	if len(ents) > 0 {
		var names []string
		for _, d := range ents {
			names = append(names, d.Name())
		}
		e.t.Errorf("%s: the store's tmp holds %q, want nothing", when, names)
	}
}

func (e *env) hasName(name string) bool {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.root, "oci", "index.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	return bytes.Contains(b, []byte(`"`+name+`"`))
}

func TestBuildGitContext(t *testing.T) {
	e := newEnv(t)
	f := newGitFixture(t)

	for _, tc := range []struct {
		name, fragment string
		extraEnv       []string // for mybuild, and so for git
		want           map[string]string
	}{
		{name: "default branch", want: map[string]string{"ctx/a.txt": "two\n", "ctx/sub/s.txt": "sub two\n"}},
		{name: "branch", fragment: "#dev", want: map[string]string{"ctx/a.txt": "dev\n", "ctx/sub/s.txt": "sub one\n"}},
		{name: "tag and subdir", fragment: "#v1:sub", want: map[string]string{"sub/s.txt": "sub one\n", "sub/Dockerfile": "FROM busybox\nCOPY . /sub\n"}},
		{name: "commit", fragment: "#" + f.first, want: map[string]string{"ctx/a.txt": "one\n"}},
		// Protocol v0 servers do not serve an unadvertised commit: the
		// full fetch fallback. The user's git configuration (here from the
		// environment) is honoured.
		{name: "commit, protocol v0", fragment: "#" + f.first, want: map[string]string{"ctx/a.txt": "one\n"},
			extraEnv: []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=protocol.version", "GIT_CONFIG_VALUE_0=0"}},
		{name: "query form", fragment: "?branch=dev&subdir=sub", want: map[string]string{"sub/s.txt": "sub one\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tag := "git-" + strings.ReplaceAll(tc.name, " ", "-")
			tag = strings.ReplaceAll(tag, ",", "")
			r := e.runEnv(e.root, tc.extraEnv, "", withSnapshotter([]string{"build", "--progress=plain", "-t", tag, f.url + tc.fragment})...)
			if r.err != nil {
				t.Fatalf("build %s: %v\n%s", tc.fragment, r.err, r.stderr)
			}
			ents := imageEntries(t, e.image(tag+":latest"))
			for p, want := range tc.want {
				if got, ok := fileIn(t, e.image(tag+":latest"), p); !ok || got != want {
					t.Errorf("%s = %q (present %v), want %q", p, got, ok, want)
				}
			}
			for p := range ents {
				if p == "ctx/.git" || strings.HasPrefix(p, "ctx/.git/") || strings.HasPrefix(p, "sub/.git") {
					t.Errorf("the image has %s: .git must not be part of the context", p)
				}
			}
			if _, ok := tc.want["ctx/a.txt"]; ok {
				if en := ents["ctx/run.sh"]; en.Type != "file" || en.Mode != "0755" {
					t.Errorf("ctx/run.sh: %v, want a 0755 file", en)
				}
				if en := ents["ctx/link"]; en.Type != "symlink" || en.Link != "a.txt" {
					t.Errorf("ctx/link: %v, want a symbolic link to a.txt", en)
				}
			}
			mustContain(t, "build output", r.stderr, "fetched build context")
			e.tmpEmpty("after " + tc.name)
		})
	}

	t.Run("dockerfile inside the repository", func(t *testing.T) {
		// -f names a file of the remote context; the context stays the
		// repository's root.
		e.mustRun("build", "-f", "sub/Dockerfile", "-t", "git-file", f.url+"#dev")
		if got, ok := fileIn(t, e.image("git-file:latest"), "sub/a.txt"); !ok || got != "dev\n" {
			t.Errorf("sub/a.txt = %q (present %v), want \"dev\\n\"", got, ok)
		}
	})

	// A fetched context is never seen again: no stat cache is kept for it.
	e.mustRun("build", "-f", "slow/Dockerfile", "-t", "git-slow", f.url)
	if ents, _ := os.ReadDir(filepath.Join(e.root, "cache", "stat")); len(ents) != 0 {
		t.Errorf("%d stat cache files kept for fetched contexts, want none", len(ents))
	}

	t.Run("keep git dir", func(t *testing.T) {
		e.mustRun("build", "--build-arg", "BUILDKIT_CONTEXT_KEEP_GIT_DIR=1", "-t", "git-keep", f.url+"#dev")
		if got, ok := fileIn(t, e.image("git-keep:latest"), "ctx/.git/HEAD"); !ok || strings.TrimSpace(got) != f.dev {
			t.Errorf("ctx/.git/HEAD = %q (present %v), want %s", got, ok, f.dev)
		}
		e.tmpEmpty("after keep git dir")
	})

	t.Run("missing ref", func(t *testing.T) {
		msg := e.mustFail("build", "-t", "git-nope", f.url+"#nope")
		mustContain(t, "missing ref error", msg, `build context "`+f.url+`#nope": git fetch: `, "couldn't find remote ref nope")
		e.tmpEmpty("after a failed fetch")
		if e.hasName("git-nope:latest") {
			t.Error("a failed build stored an image")
		}
	})

	t.Run("missing subdir", func(t *testing.T) {
		msg := e.mustFail("build", "-t", "git-nosub", f.url+"#main:nope")
		mustContain(t, "missing subdir error", msg, `build context "`+f.url+`#main:nope": subdirectory "nope" not found`)
		e.tmpEmpty("after a missing subdirectory")
	})

	t.Run("credentials stay out of messages", func(t *testing.T) {
		u := strings.Replace(f.url, "git://", "http://user:s3cr3t-pw@", 1) + "#main" // nothing serves http there
		msg := e.mustFail("build", u)
		if strings.Contains(msg, "s3cr3t-pw") || strings.Contains(msg, "user:") {
			t.Errorf("the error shows the credentials:\n%s", msg)
		}
		mustContain(t, "error", msg, `build context "http://`+strings.TrimPrefix(f.url, "git://")+`#main": git fetch: `)
		e.tmpEmpty("after a refused connection")
	})
}

func TestBuildHTTPContext(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	makeTarGz(t, filepath.Join(dir, "ctx.tar.gz"), map[string]string{
		"Dockerfile":    "FROM busybox\nCOPY . /ctx\n",
		"hello.txt":     "hello from a tarball\n",
		"deep/file.txt": "deep\n",
	})
	archive, err := os.ReadFile(filepath.Join(dir, "ctx.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ctx.tar.gz", func(w http.ResponseWriter, r *http.Request) { w.Write(archive) })
	mux.HandleFunc("/Dockerfile", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "FROM busybox\nRUN echo plain > /plain.txt\n")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	e.mustRun("build", "-t", "http-tar", srv.URL+"/ctx.tar.gz")
	img := e.image("http-tar:latest")
	for p, want := range map[string]string{"ctx/hello.txt": "hello from a tarball\n", "ctx/deep/file.txt": "deep\n"} {
		if got, ok := fileIn(t, img, p); !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", p, got, ok, want)
		}
	}
	e.tmpEmpty("after the tarball context")

	e.mustRun("build", "-t", "http-plain", srv.URL+"/Dockerfile")
	if got, ok := fileIn(t, e.image("http-plain:latest"), "plain.txt"); !ok || got != "plain\n" {
		t.Errorf("plain.txt = %q (present %v), want \"plain\\n\"", got, ok)
	}
	e.tmpEmpty("after the Dockerfile context")

	bad := strings.Replace(srv.URL, "http://", "http://user:s3cr3t-pw@", 1) + "/missing.tar"
	msg := e.mustFail("build", "-t", "http-missing", bad)
	mustContain(t, "missing URL error", msg, `build context "`+srv.URL+`/missing.tar": download: invalid response status 404 Not Found`)
	if strings.Contains(msg, "s3cr3t-pw") {
		t.Errorf("the error shows the credentials:\n%s", msg)
	}
	e.tmpEmpty("after a failed download")
}

func TestBuildNamedRemoteContexts(t *testing.T) {
	e := newEnv(t)
	f := newGitFixture(t)
	payload := []byte("not unpacked: a named http context is the file itself\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(payload) }))
	t.Cleanup(srv.Close)

	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox\nCOPY --from=other a.txt /other.txt\nCOPY --from=sub s.txt /sub.txt\nCOPY --from=web context /web.txt\n",
	})
	e.mustRun("build", "-t", "named-remote",
		"--build-context", "other="+f.url+"#dev",
		"--build-context", "sub="+f.url+"#v1:sub",
		"--build-context", "web="+srv.URL+"/file.txt", ctx)
	img := e.image("named-remote:latest")
	for p, want := range map[string]string{"other.txt": "dev\n", "sub.txt": "sub one\n", "web.txt": string(payload)} {
		if got, ok := fileIn(t, img, p); !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", p, got, ok, want)
		}
	}
	e.tmpEmpty("after named remote contexts")

	msg := e.mustFail("build", "--build-context", "other="+f.url+"#nope", ctx)
	mustContain(t, "named context error", msg, `build context other "`+f.url+`#nope": git fetch: `, "couldn't find remote ref nope")
	e.tmpEmpty("after a failed named context")
}

// TestBuildStdinContext: `mybuild build -` reads the context from standard
// input as docker does: a Dockerfile alone (empty context), or a tar archive
// (gzip or not) holding the context, with -f naming a file inside it.
func TestBuildStdinContext(t *testing.T) {
	e := newEnv(t)
	dc := t.TempDir()
	tgz := filepath.Join(t.TempDir(), "ctx.tgz")
	makeTarGz(t, tgz, map[string]string{
		"Dockerfile":      "FROM busybox\nCOPY f.txt /from-tar.txt\n",
		"other/Build.txt": "FROM busybox\nCOPY f.txt /other.txt\n",
		"f.txt":           "from the archive\n",
	})
	tarData, err := os.ReadFile(tgz)
	if err != nil {
		t.Fatal(err)
	}

	e.mustRunWith(e.root, dc, "FROM busybox\nRUN echo plain > /plain.txt\n", "build", "-t", "stdin-df", "-")
	wantFiles(t, e.image("stdin-df:latest"), map[string]string{"plain.txt": "plain\n"})

	e.mustRunWith(e.root, dc, string(tarData), "build", "-t", "stdin-tar", "-")
	wantFiles(t, e.image("stdin-tar:latest"), map[string]string{"from-tar.txt": "from the archive\n"})
	e.mustRunWith(e.root, dc, string(tarData), "build", "-f", "other/Build.txt", "-t", "stdin-f", "-")
	wantFiles(t, e.image("stdin-f:latest"), map[string]string{"other.txt": "from the archive\n"})

	// A Dockerfile alone has no context to COPY from.
	msg := e.mustFailWith(e.root, dc, "FROM busybox\nCOPY f.txt /x\n", "build", "-")
	mustContain(t, "COPY from an empty context", msg, "Dockerfile:2", "f.txt")
	msg = e.mustFailWith(e.root, dc, "FROM busybox\n", "build", "-f", "-", "-")
	mustContain(t, "-f - with context -", msg, "standard input")
	if left, err := os.ReadDir(filepath.Join(e.root, "tmp")); err != nil || len(left) > 0 {
		t.Errorf("store temp dir after the builds: %d entries, err %v", len(left), err)
	}
}
