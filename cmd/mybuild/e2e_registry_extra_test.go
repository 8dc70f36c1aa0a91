package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// layerDirs lists the extracted layers of the snapshot store in root, with
// each one's inode, so a test can tell a reused directory from a new one.
func layerDirs(t *testing.T, root string) map[string]uint64 {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, "snapshots", "layers"))
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]uint64{}
	for _, en := range ents {
		fi, err := en.Info()
		if err != nil {
			t.Fatal(err)
		}
		dirs[en.Name()] = inode(fi)
	}
	return dirs
}

func TestE2ERegistryPullProgressAndReuse(t *testing.T) {
	e := newEnv(t)
	reg := startRegistry(t, "", "")
	h := reg.host
	e.mustRunWith(e.root, t.TempDir(), "", "push", "--progress=plain", "busybox:latest", h+"/busybox:latest")

	// Layer downloads show bytes and rate, one step per layer.
	fresh := t.TempDir()
	p := e.mustRunWith(fresh, t.TempDir(), "", "pull", "--progress=plain", h+"/busybox:latest")
	mustContain(t, "pull progress", p.stderr, "#1 pull sha256:", "B/s\n", "#1 DONE")

	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM " + h + "/busybox\nCOPY hello /hello\n", "hello": "hello\n"})
	e.mustRunWith(fresh, t.TempDir(), "", "build", "--progress=plain", "-t", "app", ctxDir)
	first := layerDirs(t, fresh)
	var layers []string
	for _, l := range lastLayers(t, e.image("busybox:latest"), 0) {
		d, _ := l.Digest()
		layers = append(layers, d.String())
	}
	gets := 0
	for _, d := range layers {
		gets += reg.requests(`"GET /v2/busybox/blobs/` + d)
	}
	if gets != len(layers) {
		t.Errorf("%d layer blob downloads for %d layers, want each once", gets, len(layers))
	}

	// Pulling again (--pull=always) downloads no layer, and the second build
	// extracts nothing: the same layer directories, not new ones.
	b := e.mustRunWith(fresh, t.TempDir(), "", "build", "--progress=plain", "--pull=always", "-t", "app", ctxDir)
	mustContain(t, "second build", b.stderr, "pulling "+h+"/busybox:latest")
	again := 0
	for _, d := range layers {
		again += reg.requests(`"GET /v2/busybox/blobs/` + d)
	}
	if again != gets {
		t.Errorf("the second pull downloaded %d layer blobs again", again-gets)
	}
	second := layerDirs(t, fresh)
	if len(second) != len(first) {
		t.Errorf("snapshots/layers has %d directories after the second build, %d after the first", len(second), len(first))
	}
	for name, ino := range first {
		if second[name] != ino {
			t.Errorf("layer %s was extracted again", name)
		}
	}
}

func TestE2ERegistryDigestMismatch(t *testing.T) {
	e := newEnv(t)
	reg := startRegistry(t, "", "")
	h := reg.host
	e.mustRunWith(e.root, t.TempDir(), "", "push", "busybox:latest", h+"/bb:1")
	layer := lastLayers(t, e.image("busybox:latest"), 0)[0]
	d, _ := layer.Digest()
	size, _ := layer.Size()
	// Corrupt the blob in the registry's storage: same size, one byte off.
	blob := filepath.Join(reg.data, "docker", "registry", "v2", "blobs", "sha256", d.Hex[:2], d.Hex, "data")
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}

	check := func(what, root, msg string) {
		t.Helper()
		mustContain(t, what, msg, `"`+h+`/bb:1"`, d.String(), "checksum")
		if _, err := os.Stat(filepath.Join(root, "oci", "blobs", "sha256", d.Hex)); err == nil {
			t.Errorf("%s: the corrupt blob is in the store", what)
		}
		filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if strings.Contains(de.Name(), ".mybuild-tmp-") {
				t.Errorf("%s: temp file left: %s", what, p)
			}
			if fi, err := de.Info(); err == nil && fi.Mode().IsRegular() && fi.Size() == size {
				t.Errorf("%s: %s has the corrupt blob's size", what, p)
			}
			return nil
		})
	}
	fresh := t.TempDir()
	check("pull", fresh, e.mustFailWith(fresh, t.TempDir(), "", "pull", h+"/bb:1"))
	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM " + h + "/bb:1\n"})
	fresh = t.TempDir()
	msg := e.mustFailWith(fresh, t.TempDir(), "", "build", "--progress=plain", ctxDir)
	check("build", fresh, msg)
	mustContain(t, "build error", msg, "Dockerfile:1")
}

func TestE2ERegistryOutputAndPushFlags(t *testing.T) {
	e := newEnv(t)
	reg := startRegistry(t, "", "")
	h := reg.host
	e.mustRunWith(e.root, t.TempDir(), "", "push", "busybox:latest", h+"/busybox:latest")

	// Without a name to push to, nothing is built (not even pulled).
	nope := writeContext(t, map[string]string{"Dockerfile": "FROM " + h + "/nope:1\n"})
	for _, args := range [][]string{{"--push"}, {"--output", "type=registry"}} {
		msg := e.mustFailWith(t.TempDir(), t.TempDir(), "", append(append([]string{"build"}, args...), nope)...)
		mustContain(t, strings.Join(args, " ")+" without -t", msg, args[0], "-t NAME")
		if strings.Contains(msg, "pulling") || strings.Contains(msg, "nope") {
			t.Errorf("%s without -t started the build:\n%s", args[0], msg)
		}
	}

	// --output type=registry pushes and stores nothing.
	root := t.TempDir()
	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM " + h + "/busybox\nCOPY hi /hi\n", "hi": "hi\n"})
	meta := filepath.Join(t.TempDir(), "meta.json")
	b := e.mustRunWith(root, t.TempDir(), "", "build", "--progress=plain", "--output", "type=registry,name="+h+"/out:1", "--metadata-file", meta, "-t", "local", ctxDir)
	mustContain(t, "build output", b.stderr, "pushed "+h+"/out:1", "push sha256:")
	var md map[string]string
	data, _ := os.ReadFile(meta)
	if err := json.Unmarshal(data, &md); err != nil {
		t.Fatal(err)
	}
	if got := skopeoDigest(t, h+"/out:1"); got != md["containerimage.digest"] || md["image.name"] != h+"/out:1" {
		t.Errorf("registry has %s; metadata %v", got, md)
	}
	if r := e.runWith(root, t.TempDir(), "", "inspect", "local"); r.err == nil {
		t.Errorf("--output type=registry stored the image under its -t name")
	}
}

// fakeCredentialHelper is a docker-credential-fake keeping credentials in
// files next to itself.
const fakeCredentialHelper = `#!/bin/sh
d="$(dirname "$0")/store"
mkdir -p "$d"
case "$1" in
store) cat > "$d/last-store"; url=$(sed 's/.*"ServerURL":"\([^"]*\)".*/\1/' "$d/last-store"); cp "$d/last-store" "$d/$(echo "$url" | tr '/:' '__')";;
get) read url; f="$d/$(echo "$url" | tr '/:' '__')"; if [ -f "$f" ]; then sed 's/"ServerURL":"[^"]*",//' "$f"; else echo "credentials not found in native keychain"; exit 1; fi;;
erase) read url; f="$d/$(echo "$url" | tr '/:' '__')"; if [ -f "$f" ]; then rm "$f"; else echo "credentials not found in native keychain"; exit 1; fi;;
*) exit 1;;
esac
`

func TestE2ELoginCredentialHelper(t *testing.T) {
	const user, pass = "builder", "helper-Pa55"
	e := newEnv(t)
	reg := startRegistry(t, user, pass)
	h := reg.host
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-fake"), []byte(fakeCredentialHelper), 0o755); err != nil {
		t.Fatal(err)
	}
	dc := t.TempDir()
	if err := os.WriteFile(filepath.Join(dc, "config.json"), []byte(`{"credsStore": "fake"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"DOCKER_CONFIG=" + dc, "PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")}

	r := e.runEnv(e.root, env, pass+"\n", "login", h, "-u", user, "--password-stdin")
	if r.err != nil {
		t.Fatalf("login: %v\n%s", r.err, r.stderr)
	}
	cfg, _ := os.ReadFile(filepath.Join(dc, "config.json"))
	if strings.Contains(string(cfg), `"auth"`) || !strings.Contains(string(cfg), h) {
		t.Errorf("config.json after login through the helper:\n%s", cfg)
	}
	if stored, err := os.ReadFile(filepath.Join(bin, "store", "last-store")); err != nil || !strings.Contains(string(stored), pass) {
		t.Errorf("the helper did not get the credentials: %v", err)
	}
	// Push gets the credentials back from the helper.
	if r := e.runEnv(e.root, env, "", "push", "busybox:latest", h+"/bb:1"); r.err != nil {
		t.Fatalf("push after login: %v\n%s", r.err, r.stderr)
	}
	r = e.runEnv(e.root, env, "", "logout", h)
	mustContain(t, "logout", r.stdout, "Removing login credentials for "+h)
	r = e.runEnv(e.root, env, "", "push", "busybox:latest", h+"/bb:1")
	if r.err == nil {
		t.Fatal("push after logout succeeded")
	}
	mustContain(t, "push after logout", r.stderr, "401", "mybuild login "+h)
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
