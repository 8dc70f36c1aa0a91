package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/mybuild/mybuild/internal/store"
)

const fsckDockerfile = "FROM busybox\nRUN echo hi > /hi\nCOPY f /f\n"

// fsckRun runs mybuild fsck with args and returns its JSON result and
// exit code.
func (e *env) fsckRun(args ...string) (fsckResult, int) {
	e.t.Helper()
	r := e.run(append([]string{"fsck", "--json"}, args...)...)
	code := 0
	var ee *exec.ExitError
	if errors.As(r.err, &ee) {
		code = ee.ExitCode()
	} else if r.err != nil {
		e.t.Fatalf("mybuild fsck: %v\n%s", r.err, r.stderr)
	}
	var res fsckResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		e.t.Fatalf("mybuild fsck --json: %v\nstdout:\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	return res, code
}

// problems lists the findings that are problems, as "kind object".
func problems(res fsckResult) []string {
	var out []string
	for _, f := range res.Findings {
		if !f.Reclaimable && !f.Leftover {
			out = append(out, f.Kind+" "+f.Object)
		}
	}
	return out
}

// leftovers lists the findings that dead builds left, as "kind object".
func leftovers(res fsckResult) []string {
	var out []string
	for _, f := range res.Findings {
		if f.Leftover {
			out = append(out, f.Kind+" "+f.Object)
		}
	}
	return out
}

func (e *env) mustBeClean() {
	e.t.Helper()
	res, code := e.fsckRun()
	if code != 0 || res.Problems != 0 || res.Leftovers != 0 {
		e.t.Fatalf("fsck: exit %d, problems %q, leftovers %q", code, problems(res), leftovers(res))
	}
	r := e.mustRun("fsck")
	if !strings.Contains(r.stdout, "fsck: no problems") {
		e.t.Errorf("fsck summary: %q", r.stdout)
	}
}

func blobPath(root string, h v1.Hash) string {
	return filepath.Join(root, "oci", "blobs", "sha256", h.Hex)
}

func topLayer(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := ls[len(ls)-1].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func deadOwner(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(cmd.Process.Pid) + ".1"
}

// TestFsckRepairsLeftovers damages a store the ways a crash, a full disk
// or a stray hand can, and checks that fsck finds each, --repair fixes
// them, and builds still work afterwards.
func TestFsckRepairsLeftovers(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": fsckDockerfile, "f": "one"})
	e.mustRun("build", "-t", "app", ctx)
	ctx2 := writeContext(t, map[string]string{"Dockerfile": fsckDockerfile, "f": "two"})
	e.mustRun("build", "-t", "app2", ctx2)
	e.mustBeClean()

	// A layer blob of app2 lost, and a garbage index entry.
	app2Layer := topLayer(t, e.image("app2:latest"))
	noErr(t, os.Remove(blobPath(e.root, app2Layer)))
	idxPath := filepath.Join(e.root, "oci", "index.json")
	var idx v1.IndexManifest
	b, err := os.ReadFile(idxPath)
	noErr(t, err)
	noErr(t, json.Unmarshal(b, &idx))
	ghost := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0f", 32)}
	idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 99, Digest: ghost,
		Annotations: map[string]string{"org.opencontainers.image.ref.name": "ghost:latest"}})
	b, err = json.Marshal(&idx)
	noErr(t, err)
	noErr(t, os.WriteFile(idxPath, b, 0o644))
	// A temp file nobody holds.
	noErr(t, os.WriteFile(filepath.Join(e.root, "tmp", ".mybuild-tmp-crashed"), []byte("half a layer"), 0o644))
	// A mount, still mounted, a half-made layer and a short link of a dead build.
	dead := deadOwner(t)
	mdir := filepath.Join(e.root, "snapshots", "mounts", "dead1")
	noErr(t, os.MkdirAll(filepath.Join(mdir, "merged"), 0o755))
	noErr(t, os.WriteFile(filepath.Join(mdir, "owner"), []byte(dead+"\n"), 0o600))
	if err := unix.Mount("tmpfs", filepath.Join(mdir, "merged"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(filepath.Join(mdir, "merged"), unix.MNT_DETACH) })
	noErr(t, os.MkdirAll(filepath.Join(e.root, "snapshots", "tmp", dead+"-42", "usr"), 0o755))
	// A RUN --mount copy of the context.
	noErr(t, os.MkdirAll(filepath.Join(e.root, "mounts", "tmp", "m-crashed", "src"), 0o755))
	noErr(t, os.Symlink(filepath.Join(e.root, "snapshots", "layers", "gone"), filepath.Join(e.root, "snapshots", "l", "abcdefghijkl")))

	res, code := e.fsckRun()
	if code != 1 {
		t.Errorf("fsck of a damaged store: exit %d, want 1", code)
	}
	// Still mounted on the host, the dead build's mount is a problem; the
	// directories dead builds left are leftovers, which are not.
	wantProblems := []string{
		"missing-blob ", // app2's manifest
		"missing-manifest " + ghost.String(),
		"leftover-mount snapshots/mounts/dead1",
		"dangling-link snapshots/l/abcdefghijkl",
	}
	wantLeftovers := []string{
		"temp-file tmp/.mybuild-tmp-crashed",
		"leftover-temp mounts/tmp/m-crashed",
		"leftover-temp snapshots/tmp/" + dead + "-42",
	}
	for _, w := range wantProblems {
		if !slices.ContainsFunc(problems(res), func(p string) bool { return strings.HasPrefix(p, w) }) {
			t.Errorf("fsck did not report the problem %q; got %q", w, problems(res))
		}
	}
	if got := leftovers(res); !slices.Equal(got, wantLeftovers) || res.Leftovers != len(wantLeftovers) {
		t.Errorf("fsck leftovers %q (%d), want %q", got, res.Leftovers, wantLeftovers)
	}
	for _, f := range res.Findings {
		if f.Kind == store.KindMissingBlob && (len(f.Images) != 1 || f.Images[0] != "app2:latest") {
			t.Errorf("missing blob names images %q, want [app2:latest]", f.Images)
		}
	}

	// The plain output: one line per finding and a summary.
	r := e.run("fsck")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != len(res.Findings)+1 || !strings.HasPrefix(lines[len(lines)-1], "fsck: "+strconv.Itoa(res.Problems)+" problems") {
		t.Errorf("fsck output:\n%s", r.stdout)
	}

	res, code = e.fsckRun("--repair")
	if code != 0 || res.Repaired != res.Problems {
		t.Errorf("fsck --repair: exit %d, %d of %d repaired: %+v", code, res.Repaired, res.Problems, res.Findings)
	}
	for _, f := range res.Findings {
		if f.Leftover && !f.Repaired {
			t.Errorf("fsck --repair left %s %s", f.Kind, f.Object)
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Join(mdir, "merged"), &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		t.Errorf("leftover mount still mounted after repair")
	}
	e.mustBeClean()

	if r := e.run("inspect", "app2"); r.err == nil {
		t.Errorf("damaged app2 still listed after repair")
	}
	e.mustRun("build", "-t", "app2", ctx2)
	e.mustRun("build", "-t", "app3", writeContext(t, map[string]string{"Dockerfile": fsckDockerfile, "f": "three"}))
	e.mustBeClean()
	if _, err := e.image("app:latest").ConfigFile(); err != nil {
		t.Errorf("app after repair: %v", err)
	}
}

// TestFsckCorruptBlob flips a byte of an image's layer: fsck names the
// damaged image and --repair keeps the blob until the image is removed;
// then it removes the blob and the cache record that pointed at it, and a
// rebuild makes the layer again.
func TestFsckCorruptBlob(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": fsckDockerfile, "f": "one"})
	e.mustRun("build", "-t", "app", ctx)
	layer := topLayer(t, e.image("app:latest"))
	p := blobPath(e.root, layer)
	b, err := os.ReadFile(p)
	noErr(t, err)
	b[len(b)/2] ^= 0xff
	noErr(t, os.WriteFile(p, b, 0o644))

	for _, args := range [][]string{nil, {"--repair"}} {
		res, code := e.fsckRun(args...)
		if code != 1 || len(res.Findings) != 1 || res.Findings[0].Kind != store.KindCorruptBlob ||
			res.Findings[0].Object != layer.String() || len(res.Findings[0].Images) != 1 || res.Findings[0].Images[0] != "app:latest" || res.Findings[0].Repaired {
			t.Fatalf("fsck %q: exit %d, findings %+v", args, code, res.Findings)
		}
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("repair removed a blob an image uses: %v", err)
	}
	e.mustRun("rmi", "app")
	res, code := e.fsckRun("--repair")
	kinds := map[string]bool{}
	for _, f := range res.Findings {
		kinds[f.Kind] = f.Repaired || f.Reclaimable
	}
	if code != 0 || !kinds[store.KindCorruptBlob] || !kinds["dangling-cache-record"] {
		t.Errorf("fsck --repair after rmi: exit %d, findings %+v", code, res.Findings)
	}
	e.mustBeClean()
	r := e.mustRun("build", "--progress=plain", "-t", "app", ctx)
	if d := topLayer(t, e.image("app:latest")); d != layer {
		t.Errorf("rebuilt layer %s, want %s (builds are reproducible)\n%s", d, layer, r.stderr)
	}
	e.mustBeClean()
}

// TestFsckBusyStore checks a store another mybuild has open: fsck
// reports nothing, and --repair refuses rather than race the build.
func TestFsckBusyStore(t *testing.T) {
	e := newEnv(t)
	st, err := store.Open(e.root)
	noErr(t, err)
	defer st.Close()
	e.mustBeClean()
	stderr := e.mustFail("fsck", "--repair")
	if !strings.Contains(stderr, "another mybuild is using it") {
		t.Errorf("fsck --repair on a busy store: %q", stderr)
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
