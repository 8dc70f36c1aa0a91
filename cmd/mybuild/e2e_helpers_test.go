package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// The end-to-end tests run the real mybuild binary, built once by TestMain,
// against a store that starts with a busybox base image made by
// hack/busybox-rootfs.sh.

var (
	binPath   string // the mybuild binary under test
	baseStore string // a store holding busybox:latest, shared read-mostly
	skipE2E   string // why the end-to-end tests cannot run here, if they cannot
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "mybuild-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	skipE2E = e2eSetup(tmp)
	return m.Run()
}

// e2eSetup builds the binary and the base image; it returns a reason to
// skip when the machine cannot run builds (not root, no overlayfs, no busybox).
func e2eSetup(tmp string) string {
	if os.Geteuid() != 0 {
		return "end-to-end builds need root (overlayfs mounts)"
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return "busybox-static is not installed (make test installs it)"
	}
	binPath = filepath.Join(tmp, "mybuild")
	if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
		return fmt.Sprintf("build mybuild: %v\n%s", err, out)
	}
	bb := filepath.Join(tmp, "busybox")
	if out, err := exec.Command("../../hack/busybox-rootfs.sh", bb).CombinedOutput(); err != nil {
		return fmt.Sprintf("make busybox rootfs: %v\n%s", err, out)
	}
	baseStore = filepath.Join(tmp, "base-store")
	cmd := exec.Command(binPath, "--root", baseStore, "build", "--progress=plain", "-t", "busybox:latest", bb)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Sprintf("build busybox base image: %v\n%s", err, out)
	}
	return ""
}

// env is one test's world: a store (a copy-free fresh store that loads the
// base image) and helpers to run mybuild in it.
type env struct {
	t    *testing.T
	root string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if skipE2E != "" {
		t.Skip(skipE2E)
	}
	root := t.TempDir()
	e := &env{t: t, root: root}
	// Start from the base image: save it from the shared store, load it here.
	tarPath := filepath.Join(t.TempDir(), "busybox.tar")
	e.mustRunIn(baseStore, "save", "busybox:latest", "-o", tarPath, "--format", "oci-archive")
	e.mustRun("load", "-i", tarPath)
	t.Cleanup(func() {
		checkNoMounts(t, root)
		detachMounts(root) // a failed test must not leave mounts on the machine
	})
	return e
}

type result struct {
	stdout, stderr string
	err            error
}

func (e *env) runIn(root string, stdin io.Reader, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(binPath, append([]string{"--root", root}, withSnapshotter(args)...)...)
	cmd.Env = append(os.Environ(), "CI=1")
	cmd.Stdin = stdin
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	return result{so.String(), se.String(), err}
}

func (e *env) run(args ...string) result { e.t.Helper(); return e.runIn(e.root, nil, args...) }

func (e *env) mustRunIn(root string, args ...string) result {
	e.t.Helper()
	r := e.runIn(root, nil, args...)
	if r.err != nil {
		e.t.Fatalf("mybuild %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
	}
	return r
}

func (e *env) mustRun(args ...string) result { e.t.Helper(); return e.mustRunIn(e.root, args...) }

// mustFail runs mybuild, expects a non-zero exit, and returns stderr.
func (e *env) mustFail(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.err == nil {
		e.t.Fatalf("mybuild %s succeeded, want an error\nstderr:\n%s", strings.Join(args, " "), r.stderr)
	}
	return r.stderr
}

// writeContext makes a build context from a map of relative path → content.
// A content starting with "->" makes a symlink to the rest.
func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// image reads a named image from the store's OCI layout, independently of
// the store package.
func (e *env) image(name string) v1.Image {
	e.t.Helper()
	return layoutImage(e.t, filepath.Join(e.root, "oci"), name)
}

func layoutImage(t *testing.T, dir, name string) v1.Image {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range im.Manifests {
		ref := d.Annotations["org.opencontainers.image.ref.name"]
		names = append(names, ref)
		if ref == name {
			img, err := p.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no image %q in %s (have %q)", name, dir, names)
	return nil
}

// entry is one tar entry of a layer, as the tests compare them.
type entry struct {
	Path   string
	Type   string // file, dir, symlink, hardlink, char, block, fifo
	Mode   string // octal permission bits incl. setuid/setgid/sticky
	UID    int
	GID    int
	Size   int64
	Digest string // sha256 of the content, first 12 hex digits (files only)
	Link   string
}

func (en entry) String() string {
	return fmt.Sprintf("%s %s %s %d:%d %d %s %s", en.Type, en.Mode, en.Path, en.UID, en.GID, en.Size, en.Digest, en.Link)
}

// layerEntries lists the entries of a layer, in tar order.
func layerEntries(t *testing.T, l v1.Layer) []entry {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []entry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		en := entry{Path: h.Name, Mode: fmt.Sprintf("%04o", h.Mode&0o7777), UID: h.Uid, GID: h.Gid, Size: h.Size, Link: h.Linkname}
		switch h.Typeflag {
		case tar.TypeReg:
			en.Type = "file"
			sum := sha256.New()
			if _, err := io.Copy(sum, tr); err != nil {
				t.Fatal(err)
			}
			en.Digest = hex.EncodeToString(sum.Sum(nil))[:12]
		case tar.TypeDir:
			en.Type = "dir"
		case tar.TypeSymlink:
			en.Type = "symlink"
		case tar.TypeLink:
			en.Type = "hardlink"
		case tar.TypeChar:
			en.Type = "char"
		case tar.TypeBlock:
			en.Type = "block"
		case tar.TypeFifo:
			en.Type = "fifo"
		default:
			en.Type = string(h.Typeflag)
		}
		out = append(out, en)
	}
	return out
}

// lastLayers returns the image's layers after the first skip ones (the base).
func lastLayers(t *testing.T, img v1.Image, skip int) []v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) < skip {
		t.Fatalf("image has %d layers, want more than %d", len(ls), skip)
	}
	return ls[skip:]
}

func configFile(t *testing.T, img v1.Image) *v1.ConfigFile {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

// detachMounts lazily unmounts everything still mounted under root.
func detachMounts(root string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- { // deepest (latest) first
		f := strings.Fields(lines[i])
		if len(f) > 4 && strings.HasPrefix(f[4], root+"/") {
			syscall.Unmount(f[4], syscall.MNT_DETACH)
		}
	}
}

// checkNoMounts fails when a mount is left behind under the store root.
func checkNoMounts(t *testing.T, root string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var left []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, root+"/") {
			left = append(left, line)
		}
	}
	sort.Strings(left)
	if len(left) > 0 {
		t.Errorf("mounts left behind:\n%s", strings.Join(left, "\n"))
	}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// runWithEnv runs mybuild with extra environment variables.
func runWithEnv(t *testing.T, extraEnv []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(append(os.Environ(), "CI=1"), extraEnv...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	return result{so.String(), se.String(), err}
}

// makeTarGz writes a gzip-compressed tar with the given files (mode 0644,
// parent directories implied).
func makeTarGz(t *testing.T, path string, files map[string]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}
