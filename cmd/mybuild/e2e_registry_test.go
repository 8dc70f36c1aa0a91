package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testRegistry is a real registry server (Debian's docker-registry,
// distribution v2) on a loopback port, with its access log.
type testRegistry struct {
	host string
	data string // its storage directory
	mu   sync.Mutex
	log  bytes.Buffer
}

func (r *testRegistry) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.Write(p)
}

// requests counts the access log lines so far that contain every one of
// the substrings.
func (r *testRegistry) requests(subs ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
lines:
	for _, l := range strings.Split(r.log.String(), "\n") {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				continue lines
			}
		}
		n++
	}
	return n
}

// blobUploads counts the blob upload requests in the access log so far.
func (r *testRegistry) blobUploads() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range strings.Split(r.log.String(), "\n") {
		if (strings.Contains(l, `"POST /v2/`) || strings.Contains(l, `"PUT /v2/`) || strings.Contains(l, `"PATCH /v2/`)) && strings.Contains(l, "/blobs/uploads/") {
			n++
		}
	}
	return n
}

// startRegistry starts docker-registry on a free loopback port, with
// htpasswd auth for user/pass when user is not empty, and stops it when
// the test ends.
func startRegistry(t testing.TB, user, pass string) *testRegistry {
	t.Helper()
	return startRegistryAt(t, "127.0.0.1", user, pass)
}

// startRegistryAt is startRegistry on a free port of the address ip.
func startRegistryAt(t testing.TB, ip, user, pass string) *testRegistry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry is not installed (hack/install-deps.sh installs it)")
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	auth := ""
	if user != "" {
		out, err := exec.Command("htpasswd", "-Bbn", user, pass).Output()
		if err != nil {
			t.Skipf("htpasswd (apache2-utils) is not usable: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "htpasswd"), out, 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: mybuild-test\n    path: %s\n", filepath.Join(dir, "htpasswd"))
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, filepath.Join(dir, "data"), host, auth)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &testRegistry{host: host, data: filepath.Join(dir, "data")}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = r, r
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatalf("registry did not come up on %s:\n%s", host, r.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r
}

// runWith runs mybuild in root with DOCKER_CONFIG=dockerConfig and stdin.
func (e *env) runWith(root, dockerConfig, stdin string, args ...string) result {
	e.t.Helper()
	return e.runEnv(root, []string{"DOCKER_CONFIG=" + dockerConfig}, stdin, args...)
}

// runEnv runs mybuild in root with stdin and the environment variables
// extra (KEY=VALUE) added to the test's.
func (e *env) runEnv(root string, extra []string, stdin string, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(binPath, append([]string{"--root", root}, args...)...)
	cmd.Env = append(append(os.Environ(), "CI=1", "MYBUILD_CONFIG="+filepath.Join(e.root, "no-mybuild-config.json")), extra...)
	cmd.Stdin = strings.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	return result{so.String(), se.String(), err}
}

func (e *env) mustRunWith(root, dockerConfig, stdin string, args ...string) result {
	e.t.Helper()
	r := e.runWith(root, dockerConfig, stdin, args...)
	if r.err != nil {
		e.t.Fatalf("mybuild %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r
}

func (e *env) mustFailWith(root, dockerConfig, stdin string, args ...string) string {
	e.t.Helper()
	r := e.runWith(root, dockerConfig, stdin, args...)
	if r.err == nil {
		e.t.Fatalf("mybuild %s succeeded, want an error\nstderr:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r.stderr
}

func skopeoDigest(t *testing.T, ref string) string {
	t.Helper()
	if _, err := exec.LookPath("skopeo"); err != nil {
		t.Skip("skopeo is not installed")
	}
	out, err := exec.Command("skopeo", "inspect", "--tls-verify=false", "docker://"+ref).Output()
	if err != nil {
		t.Fatalf("skopeo inspect %s: %v", ref, err)
	}
	var v struct{ Digest string }
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v.Digest
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not mention %q:\n%s", what, sub, s)
		}
	}
}

func TestE2ERegistryPushPullBuild(t *testing.T) {
	e := newEnv(t)
	reg := startRegistry(t, "", "")
	dc := t.TempDir()
	h := reg.host

	// Push the base image; a second push uploads no blob again.
	out := e.mustRunWith(e.root, dc, "", "push", "busybox:latest", h+"/busybox:latest")
	mustContain(t, "push output", out.stdout, h+"/busybox@sha256:")
	first := reg.blobUploads()
	if first == 0 {
		t.Fatalf("first push: no blob uploads in the registry log:\n%s", reg.log.String())
	}
	e.mustRunWith(e.root, dc, "", "push", "busybox:latest", h+"/busybox:latest")
	if n := reg.blobUploads(); n != first {
		t.Errorf("second push made %d blob upload requests, want 0", n-first)
	}

	// Build FROM the registry in a fresh store: the base is pulled.
	fresh := t.TempDir()
	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM " + h + "/busybox\nCOPY hello /hello\n", "hello": "hello\n"})
	meta := filepath.Join(t.TempDir(), "meta.json")
	b := e.mustRunWith(fresh, dc, "", "build", "--progress=plain", "--push", "--metadata-file", meta, "-t", h+"/app:1", ctxDir)
	mustContain(t, "build output", b.stderr, "pulling "+h+"/busybox:latest", "pushed "+h+"/app:1")
	var md map[string]string
	data, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &md); err != nil {
		t.Fatal(err)
	}
	if got := skopeoDigest(t, h+"/app:1"); got != md["containerimage.digest"] {
		t.Errorf("skopeo sees %s, metadata says %s", got, md["containerimage.digest"])
	}
	if md["image.name"] != h+"/app:1" || !strings.HasPrefix(md["containerimage.config.digest"], "sha256:") {
		t.Errorf("metadata = %v", md)
	}
	if id := strings.TrimSpace(b.stdout[strings.LastIndex(strings.TrimSpace(b.stdout), "\n")+1:]); id != md["containerimage.config.digest"] {
		t.Errorf("build printed image ID %q, metadata says %q", id, md["containerimage.config.digest"])
	}
	// The pulled base is in the store under its name; a rebuild does not pull.
	e.mustRunWith(fresh, dc, "", "inspect", h+"/busybox:latest")
	b = e.mustRunWith(fresh, dc, "", "build", "--progress=plain", "-t", h+"/app:2", ctxDir)
	if strings.Contains(b.stderr, "pulling") {
		t.Errorf("--pull=missing pulled a base image the store has:\n%s", b.stderr)
	}
	b = e.mustRunWith(fresh, dc, "", "build", "--progress=plain", "--pull=always", "-t", h+"/app:2", ctxDir)
	mustContain(t, "--pull=always build", b.stderr, "pulling "+h+"/busybox:latest")

	// mybuild pull.
	other := t.TempDir()
	p := e.mustRunWith(other, dc, "", "pull", h+"/app:1")
	mustContain(t, "pull output", p.stdout, h+"/app:1")

	// Errors: --pull=never, a missing tag, an unreachable registry.
	msg := e.mustFailWith(t.TempDir(), dc, "", "build", "--pull=never", ctxDir)
	mustContain(t, "--pull=never error", msg, "not found in the local store", "--pull=never")
	bad := writeContext(t, map[string]string{"Dockerfile": "FROM " + h + "/nope:1\n"})
	msg = e.mustFailWith(t.TempDir(), dc, "", "build", bad)
	mustContain(t, "missing image error", msg, `"`+h+`/nope:1"`, "not found")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	start := time.Now()
	msg = e.mustFailWith(t.TempDir(), dc, "", "pull", dead+"/x:1")
	mustContain(t, "unreachable error", msg, dead, "unreachable")
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("unreachable registry error took %v", d)
	}
}

func TestE2ERegistryAuth(t *testing.T) {
	const user, pass = "builder", "s3cret-Pa55"
	e := newEnv(t)
	reg := startRegistry(t, user, pass)
	dc := t.TempDir()
	h := reg.host
	var outputs []string
	record := func(r result) result { outputs = append(outputs, r.stdout, r.stderr); return r }

	msg := e.mustFailWith(e.root, dc, "", "push", "busybox:latest", h+"/busybox:latest")
	mustContain(t, "push without login", msg, h, "401", "mybuild login "+h)

	msg = e.mustFailWith(e.root, dc, "wrong\n", "login", h, "-u", user, "--password-stdin")
	mustContain(t, "login with a wrong password", msg, h, "401")
	if _, err := os.Stat(filepath.Join(dc, "config.json")); err == nil {
		t.Errorf("a failed login wrote config.json")
	}
	record(e.mustRunWith(e.root, dc, pass+"\n", "login", h, "-u", user, "--password-stdin"))
	fi, err := os.Stat(filepath.Join(dc, "config.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config.json after login: %v, %v", fi, err)
	}
	record(e.mustRunWith(e.root, dc, "", "push", "busybox:latest", h+"/busybox:latest"))
	record(e.mustRunWith(e.root, dc, "", "logout", h))

	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM " + h + "/busybox\nCOPY hi /hi\n", "hi": "hi\n"})
	fresh := t.TempDir()
	msg = e.mustFailWith(fresh, dc, "", "build", "--progress=plain", ctxDir)
	mustContain(t, "build without login", msg, "Dockerfile:1", h, "401", "mybuild login "+h)

	record(e.mustRunWith(e.root, dc, pass+"\n", "login", h, "-u", user, "--password-stdin"))
	record(e.mustRunWith(fresh, dc, "", "build", "--progress=plain", "--push", "-t", h+"/app:1", ctxDir))

	// The password is in no output and nowhere in the store.
	for _, o := range append(outputs, msg) {
		if strings.Contains(o, pass) {
			t.Errorf("output shows the password:\n%s", o)
		}
	}
	filepath.WalkDir(fresh, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		data, _ := io.ReadAll(f)
		if bytes.Contains(data, []byte(pass)) {
			t.Errorf("store file %s contains the password", p)
		}
		return nil
	})
}
