package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

// The hostile-input tests feed archives and contexts built to escape (after
// containerd's TestBreakouts) through the three doors by which outside files
// enter a build: ADD of a local archive, a loaded (or pulled) base layer
// extracted for a RUN, and the build context. Each must be refused with a
// clear error or stay inside the build's root; a marker directory on the
// host must be left exactly as it was, and no file named pwnedName may
// appear outside the test's temporary directories.

const pwnedName = "mybuild-pwned"

// hent is one entry of a hostile tar.
type hent struct {
	Name     string
	Type     byte // tar.TypeReg when zero
	Body     string
	Link     string
	Mode     int64
	Major    int64
	Minor    int64
	Raw      []byte // written as is instead of a header (hand-made headers)
	PAXNames bool   // write with PAX (long or odd names)
}

// hostileTar writes the entries as an uncompressed tar.
func hostileTar(t *testing.T, ents []hent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		if e.Raw != nil {
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}
			buf.Write(e.Raw)
			continue
		}
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		h := &tar.Header{Name: e.Name, Typeflag: typ, Linkname: e.Link, Mode: mode, Devmajor: e.Major, Devminor: e.Minor, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar header %q: %v", e.Name, err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// End the archive with the two zero blocks ourselves: Close would
	// refuse nothing, but Raw entries bypass the writer's bookkeeping.
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	buf.Write(make([]byte, 1024))
	return buf.Bytes()
}

// rawHeader makes a 512-byte tar header block by hand, for what
// archive/tar's writer refuses to write (sparse headers).
func rawHeader(name string, typ byte, size int64, gnu bool, extra func(b []byte)) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], "00000000000\x00")
	b[156] = typ
	if gnu {
		copy(b[257:265], "ustar  \x00")
	} else {
		copy(b[257:265], "ustar\x0000")
	}
	if extra != nil {
		extra(b)
	}
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad512(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

// paxSparse is a GNU sparse 1.0 file in PAX format whose real size is
// size bytes and which holds no data at all: one hole.
func paxSparse(name string, size int64) []byte {
	rec := func(k, v string) string {
		s := " " + k + "=" + v + "\n"
		n := len(s)
		for len(strconv.Itoa(n))+len(s) != n {
			n = len(strconv.Itoa(n)) + len(s)
		}
		return strconv.Itoa(n) + s
	}
	recs := rec("GNU.sparse.major", "1") + rec("GNU.sparse.minor", "0") +
		rec("GNU.sparse.name", name) + rec("GNU.sparse.realsize", strconv.FormatInt(size, 10))
	var out []byte
	out = append(out, rawHeader("PaxHeaders/x", tar.TypeXHeader, int64(len(recs)), false, nil)...)
	out = append(out, pad512([]byte(recs))...)
	out = append(out, rawHeader("GNUSparseFile.0/x", tar.TypeReg, 512, false, nil)...)
	out = append(out, pad512([]byte("0\n"))...) // the sparse map: no data blocks
	return out
}

// gnuSparse is an old-GNU sparse file ('S') of real size size with one
// byte of data at its very end.
func gnuSparse(name string, size int64) []byte {
	out := rawHeader(name, tar.TypeGNUSparse, 1, true, func(b []byte) {
		copy(b[386:398], fmt.Sprintf("%011o\x00", size-1)) // offset
		copy(b[398:410], fmt.Sprintf("%011o\x00", 1))      // length
		copy(b[483:495], fmt.Sprintf("%011o\x00", size))   // real size
	})
	return append(out, pad512([]byte("x"))...)
}

// hostileCase is one archive of the table.
type hostileCase struct {
	name string
	ents func(marker string) []hent
	// addErr and layerErr: a substring the error of that door must hold;
	// empty means the build must succeed (the entries contained).
	addErr, layerErr string
}

// longPath is a relative path of about n bytes made of short components.
func longPath(n int) string {
	var sb strings.Builder
	for sb.Len() < n-20 {
		sb.WriteString("deep-directory-name/")
	}
	sb.WriteString(pwnedName)
	return sb.String()
}

func hostileCases() []hostileCase {
	climb := strings.Repeat("../", 30)
	return []hostileCase{
		{name: "dotdot name", ents: func(m string) []hent {
			return []hent{{Name: climb + strings.TrimPrefix(m, "/") + "/" + pwnedName, Body: "x"}}
		}, addErr: "path outside the destination", layerErr: "escapes the root"},
		{name: "dotdot after a directory", ents: func(m string) []hent {
			return []hent{{Name: "a/", Type: tar.TypeDir}, {Name: "a/../../../" + pwnedName, Body: "x"}}
		}, addErr: "path outside the destination", layerErr: "escapes the root"},
		{name: "dotdot to /tmp", ents: func(string) []hent {
			return []hent{{Name: climb + "tmp/" + pwnedName, Body: "x"}}
		}, addErr: "path outside the destination", layerErr: "escapes the root"},
		{name: "absolute name into the marker", ents: func(m string) []hent {
			return []hent{{Name: m + "/" + pwnedName, Body: "x"}}
		}},
		{name: "absolute name over the marker's file", ents: func(m string) []hent {
			return []hent{{Name: m + "/secret", Body: "overwritten"}}
		}},
		{name: "symlink to the marker then a file through it", ents: func(m string) []hent {
			return []hent{{Name: "s", Type: tar.TypeSymlink, Link: m}, {Name: "s/" + pwnedName, Body: "x"}}
		}},
		{name: "symlink to / then a file through it", ents: func(m string) []hent {
			return []hent{{Name: "root", Type: tar.TypeSymlink, Link: "/"}, {Name: "root" + m + "/" + pwnedName, Body: "x"}, {Name: "root/tmp/" + pwnedName, Body: "x"}}
		}},
		{name: "relative symlink climbing out then a file through it", ents: func(m string) []hent {
			return []hent{{Name: "h/up", Type: tar.TypeSymlink, Link: climb + strings.TrimPrefix(m, "/")}, {Name: "h/up/" + pwnedName, Body: "x"}}
		}, addErr: "path outside the destination"},
		{name: "symlink then the marker's file overwritten through it", ents: func(m string) []hent {
			return []hent{{Name: "f", Type: tar.TypeSymlink, Link: m + "/secret"}, {Name: "f", Body: "overwritten"}}
		}},
		{name: "hardlink to an absolute host file", ents: func(m string) []hent {
			return []hent{{Name: "h", Type: tar.TypeLink, Link: m + "/secret"}}
		}, addErr: "no such file in the archive", layerErr: "resolve link target"},
		{name: "hardlink climbing out", ents: func(m string) []hent {
			return []hent{{Name: "h", Type: tar.TypeLink, Link: climb + strings.TrimPrefix(m, "/") + "/secret"}}
		}, addErr: "path outside the destination", layerErr: "escapes the root"},
		{name: "hardlink through a symlink to the marker", ents: func(m string) []hent {
			return []hent{{Name: "s", Type: tar.TypeSymlink, Link: m}, {Name: "h", Type: tar.TypeLink, Link: "s/secret"}}
		}, addErr: "no such file in the archive", layerErr: "resolve link target"},
		{name: "hardlink to /etc/passwd", ents: func(string) []hent {
			return []hent{{Name: "h", Type: tar.TypeLink, Link: "/etc/passwd"}, {Name: "h", Body: "root::0:0::/:/bin/sh\n"}}
		}, addErr: "no such file in the archive", layerErr: "resolve link target"},
		{name: "symlink chain out of the root", ents: func(m string) []hent {
			return []hent{
				{Name: "c1", Type: tar.TypeSymlink, Link: "c2"},
				{Name: "c2", Type: tar.TypeSymlink, Link: "c3/sub"},
				{Name: "c3", Type: tar.TypeSymlink, Link: m},
				{Name: "c1/" + pwnedName, Body: "x"},
			}
		}},
		{name: "symlink loop", ents: func(string) []hent {
			return []hent{{Name: "l1", Type: tar.TypeSymlink, Link: "l2"}, {Name: "l2", Type: tar.TypeSymlink, Link: "l1"}, {Name: "l1/" + pwnedName, Body: "x"}}
		}, addErr: "too many levels of symbolic links", layerErr: "too many levels of symbolic links"},
		{name: "self loop", ents: func(string) []hent {
			return []hent{{Name: "me", Type: tar.TypeSymlink, Link: "me/me"}, {Name: "me/x", Body: "x"}}
		}, addErr: "too many levels of symbolic links", layerErr: "too many levels of symbolic links"},
		{name: "directory replaced by a symlink mid-archive", ents: func(m string) []hent {
			return []hent{
				{Name: "d/", Type: tar.TypeDir},
				{Name: "d/a", Body: "a"},
				{Name: "d", Type: tar.TypeSymlink, Link: m},
				{Name: "d/" + pwnedName, Body: "x"},
				{Name: "d/", Type: tar.TypeDir, Mode: 0o777},
			}
		}},
		{name: "whiteouts through a symlink", ents: func(m string) []hent {
			return []hent{{Name: "w", Type: tar.TypeSymlink, Link: m}, {Name: "w/.wh.secret"}, {Name: "w/.wh..wh..opq"}}
		}, addErr: "reserved for whiteouts"},
		{name: "device nodes", ents: func(string) []hent {
			return []hent{
				{Name: "dev/", Type: tar.TypeDir},
				{Name: "dev/sda-copy", Type: tar.TypeBlock, Major: 8, Minor: 0, Mode: 0o666},
				{Name: "dev/mem-copy", Type: tar.TypeChar, Major: 1, Minor: 1, Mode: 0o666},
				{Name: "dev/fifo", Type: tar.TypeFifo, Mode: 0o666},
			}
		}},
		{name: "setuid and setgid files", ents: func(string) []hent {
			return []hent{{Name: "bin/suid-sh", Body: "#!/bin/sh\n", Mode: 0o4755}, {Name: "bin/sgid", Body: "x", Mode: 0o2755}, {Name: "tmp2/", Type: tar.TypeDir, Mode: 0o1777}}
		}},
		{name: "huge sparse file, PAX", ents: func(string) []hent {
			return []hent{{Raw: paxSparse("big", 1<<40)}}
		}, addErr: "sparse", layerErr: "sparse"},
		{name: "huge sparse file, old GNU", ents: func(string) []hent {
			return []hent{{Raw: gnuSparse("big", 1<<33-1)}}
		}, addErr: "sparse", layerErr: "sparse"},
		{name: "name not valid UTF-8", ents: func(string) []hent {
			return []hent{{Name: "bad-\xff\xfe-name", Body: "x"}, {Name: "dir-\xc3\x28/f", Body: "y"}}
		}},
		{name: "4096-byte path", ents: func(string) []hent {
			return []hent{{Name: longPath(4096), Body: "x"}}
		}, addErr: "file name too long", layerErr: ""},
		{name: "symlink with a 4096-byte target", ents: func(string) []hent {
			return []hent{{Name: "longlink", Type: tar.TypeSymlink, Link: strings.Repeat("../", 1365)}}
		}, addErr: "path outside the destination"},
		{name: "entry replacing the root", ents: func(m string) []hent {
			return []hent{{Name: "./", Type: tar.TypeSymlink, Link: m}, {Name: "./" + pwnedName, Body: "x"}}
		}, addErr: "cannot replace the destination directory", layerErr: "entry for the root is not a directory"},
	}
}

// hostWorld is the host side a hostile input aims at: a marker directory
// and the places where a stray file would show.
type hostWorld struct {
	marker string
	before map[string]string
	dirs   []string // where a file named pwnedName must never appear
}

func newHostWorld(t *testing.T) *hostWorld {
	t.Helper()
	parent := t.TempDir()
	marker := filepath.Join(parent, "marker")
	if err := os.MkdirAll(filepath.Join(marker, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(marker, "secret"), []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &hostWorld{marker: marker, dirs: []string{"/", "/tmp", "/etc", "/root", os.TempDir(), parent, marker, filepath.Join(marker, "sub")}}
	h.before = markerTree(t, marker)
	return h
}

// markerTree describes every file under dir: type, mode, size, mtime,
// content digest, link target.
func markerTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if st, ok := fi.Sys().(*unix.Stat_t); ok {
			desc += fmt.Sprintf(" nlink=%d %d:%d", st.Nlink, st.Uid, st.Gid)
		}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(s[:8])
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// check fails the test when the marker changed or a pwned file appeared.
func (h *hostWorld) check(t *testing.T) {
	t.Helper()
	if diff := cmp.Diff(h.before, markerTree(t, h.marker)); diff != "" {
		t.Errorf("marker directory changed (-before +after):\n%s", diff)
	}
	for _, d := range h.dirs {
		if _, err := os.Lstat(filepath.Join(d, pwnedName)); err == nil {
			t.Errorf("%s appeared in %s", pwnedName, d)
			os.Remove(filepath.Join(d, pwnedName))
		}
	}
}

// checkOutcome checks a door's result against the case: refused with the
// wanted message (which must not show host-side store paths), or built.
func checkOutcome(t *testing.T, e *env, r result, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && r.err != nil:
		t.Errorf("build failed, want the entries contained: %v\n%s", r.err, r.stderr)
	case wantErr != "" && r.err == nil:
		t.Errorf("build succeeded, want an error containing %q", wantErr)
	case wantErr != "" && !strings.Contains(r.stderr, wantErr):
		t.Errorf("error does not contain %q:\n%s", wantErr, r.stderr)
	case wantErr != "" && strings.Contains(r.stderr, e.root):
		t.Errorf("error shows a host-side store path:\n%s", r.stderr)
	}
	if r.err != nil {
		t.Logf("refused: %s", lastLine(r.stderr))
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	s = s[strings.LastIndex(s, "\n")+1:]
	if len(s) > 300 {
		s = s[:150] + "…" + s[len(s)-150:]
	}
	return s
}

// TestHostileADD adds each hostile archive with ADD.
func TestHostileADD(t *testing.T) {
	e := newEnv(t)
	for i, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{t: t, root: e.root}
			h := newHostWorld(t)
			ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nADD h.tar /x/\nRUN ls -R /x >/dev/null\n"})
			if err := os.WriteFile(filepath.Join(ctx, "h.tar"), hostileTar(t, tc.ents(h.marker)), 0o644); err != nil {
				t.Fatal(err)
			}
			r := e.run("build", "--progress=plain", "-t", fmt.Sprintf("hostile-add-%d", i), ctx)
			checkOutcome(t, e, r, tc.addErr)
			h.check(t)
			checkNoMounts(t, e.root)
		})
	}
}

// TestHostileLayer loads an image whose top layer is each hostile
// archive, then builds FROM it with a RUN, which extracts the layer.
func TestHostileLayer(t *testing.T) {
	e := newEnv(t)
	base := e.image("busybox:latest")
	for i, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{t: t, root: e.root}
			h := newHostWorld(t)
			data := hostileTar(t, tc.ents(h.marker))
			layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
			if err != nil {
				t.Fatal(err)
			}
			img, err := mutate.AppendLayers(base, layer)
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("hostile-layer-%d:latest", i)
			dir := t.TempDir()
			p, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": name})); err != nil {
				t.Fatal(err)
			}
			archive := filepath.Join(dir, "hostile.tar")
			if out, err := exec.Command("tar", "-C", filepath.Join(dir, "layout"), "-cf", archive, "oci-layout", "index.json", "blobs").CombinedOutput(); err != nil {
				t.Fatalf("tar: %v\n%s", err, out)
			}
			e.mustRun("load", "-i", archive)
			ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + name + "\nRUN echo ran > /ran\n"})
			r := e.run("build", "--progress=plain", "-t", fmt.Sprintf("hostile-from-%d", i), ctx)
			checkOutcome(t, e, r, tc.layerErr)
			h.check(t)
			checkNoMounts(t, e.root)
		})
	}
}

// contextCase is one hostile build context.
type contextCase struct {
	name string
	// setup fills the context directory ctx (the Dockerfile is written
	// after it); marker is the host's marker directory.
	setup      func(t *testing.T, ctx, marker string)
	dockerfile string
	wantErr    string // "" means the build must succeed
}

func symlinkT(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func mknodT(t *testing.T, p string, mode uint32, dev int) {
	t.Helper()
	if err := unix.Mknod(p, mode, dev); err != nil {
		t.Skipf("mknod %s: %v", p, err)
	}
}

// deepTree makes, under dir, a chain of directories whose path is longer
// than n bytes with a file at its end, using directory handles so that no
// single system call sees the whole path.
func deepTree(t *testing.T, dir string, n int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for total := 0; total < n; total += len("deep-directory-name/") {
		if err := unix.Mkdirat(fd, "deep-directory-name", 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, "deep-directory-name", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	defer unix.Close(fd)
	f, err := unix.Openat(fd, "leaf", unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	unix.Write(f, []byte("deep"))
	unix.Close(f)
}

func contextCases() []contextCase {
	climb := strings.Repeat("../", 30)
	return []contextCase{
		{name: "symlink to an absolute host file", setup: func(t *testing.T, ctx, m string) {
			symlinkT(t, m+"/secret", filepath.Join(ctx, "s"))
		}, dockerfile: "COPY s /x\n", wantErr: "not found"},
		{name: "symlink climbing out of the context", setup: func(t *testing.T, ctx, m string) {
			symlinkT(t, climb+strings.TrimPrefix(m, "/")+"/secret", filepath.Join(ctx, "s"))
		}, dockerfile: "COPY s /x\n", wantErr: "not found"},
		{name: "directory symlink to the host, copied through", setup: func(t *testing.T, ctx, m string) {
			symlinkT(t, m, filepath.Join(ctx, "d"))
		}, dockerfile: "COPY d/secret /x\n", wantErr: "not found"},
		{name: "symlinks inside a copied directory stay links", setup: func(t *testing.T, ctx, m string) {
			os.Mkdir(filepath.Join(ctx, "d"), 0o755)
			symlinkT(t, m+"/secret", filepath.Join(ctx, "d/abs"))
			symlinkT(t, climb+strings.TrimPrefix(m, "/"), filepath.Join(ctx, "d/rel"))
		}, dockerfile: "COPY . /x/\n"},
		{name: "symlink chain leading out", setup: func(t *testing.T, ctx, m string) {
			symlinkT(t, "c2", filepath.Join(ctx, "c1"))
			symlinkT(t, "c3", filepath.Join(ctx, "c2"))
			symlinkT(t, m+"/secret", filepath.Join(ctx, "c3"))
		}, dockerfile: "COPY c1 /x\n", wantErr: "not found"},
		{name: "symlink loop", setup: func(t *testing.T, ctx, m string) {
			symlinkT(t, "l2", filepath.Join(ctx, "l1"))
			symlinkT(t, "l1", filepath.Join(ctx, "l2"))
		}, dockerfile: "COPY l1 /x\n", wantErr: "l1"},
		{name: "source climbing out with ..", setup: func(t *testing.T, ctx, m string) {},
			dockerfile: "COPY ../marker/secret /x\n", wantErr: "not found"},
		{name: "hard link to a host file outside the context", setup: func(t *testing.T, ctx, m string) {
			if err := os.Link(m+"/linked", filepath.Join(ctx, "h")); err != nil {
				t.Fatal(err)
			}
		}, dockerfile: "COPY h /h\nRUN echo appended >> /h && chmod 777 /h\n"},
		{name: "device nodes and a fifo", setup: func(t *testing.T, ctx, m string) {
			os.Mkdir(filepath.Join(ctx, "dev"), 0o755)
			mknodT(t, filepath.Join(ctx, "dev/zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5)))
			mknodT(t, filepath.Join(ctx, "dev/sda"), unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0)))
			mknodT(t, filepath.Join(ctx, "dev/fifo"), unix.S_IFIFO|0o644, 0)
		}, dockerfile: "COPY . /x/\n"},
		{name: "a device as the source", setup: func(t *testing.T, ctx, m string) {
			mknodT(t, filepath.Join(ctx, "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5)))
		}, dockerfile: "COPY zero /zero\n"},
		{name: "setuid files", setup: func(t *testing.T, ctx, m string) {
			os.WriteFile(filepath.Join(ctx, "suid"), []byte("x"), 0o644)
			os.Chmod(filepath.Join(ctx, "suid"), 0o4755|fs.ModeSetuid)
		}, dockerfile: "COPY suid /suid\n"},
		{name: "names not valid UTF-8", setup: func(t *testing.T, ctx, m string) {
			os.WriteFile(filepath.Join(ctx, "bad-\xff\xfe"), []byte("x"), 0o644)
			os.Mkdir(filepath.Join(ctx, "dir-\xc3\x28"), 0o755)
		}, dockerfile: "COPY . /x/\n"},
		{name: "path longer than 4096 bytes", setup: func(t *testing.T, ctx, m string) {
			deepTree(t, ctx, 4200)
		}, dockerfile: "COPY . /x/\n", wantErr: "file name too long"},
		{name: "unix socket", setup: func(t *testing.T, ctx, m string) {
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
			if err != nil {
				t.Skip(err)
			}
			defer unix.Close(fd)
			if err := unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(ctx, "sock")}); err != nil {
				t.Skip(err)
			}
		}, dockerfile: "COPY . /x/\n"},
	}
}

// TestHostileContext builds each hostile context. The marker holds a file
// "secret" whose bytes must never reach the image.
func TestHostileContext(t *testing.T) {
	e := newEnv(t)
	for i, tc := range contextCases() {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{t: t, root: e.root}
			h := newHostWorld(t)
			if err := os.WriteFile(filepath.Join(h.marker, "linked"), []byte("linked"), 0o644); err != nil {
				t.Fatal(err)
			}
			// The context sits next to the marker, where "../marker" reaches.
			ctx := filepath.Join(filepath.Dir(h.marker), "ctx")
			if err := os.Mkdir(ctx, 0o755); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, ctx, h.marker)
			if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM busybox\n"+tc.dockerfile), 0o644); err != nil {
				t.Fatal(err)
			}
			h.before = markerTree(t, h.marker)
			name := fmt.Sprintf("hostile-ctx-%d", i)
			r := e.run("build", "--progress=plain", "-t", name, ctx)
			checkOutcome(t, e, r, tc.wantErr)
			h.check(t)
			checkNoMounts(t, e.root)
			if r.err != nil {
				return
			}
			ls, err := e.image(name + ":latest").Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range ls[1:] {
				rc, err := l.Uncompressed()
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(b, []byte("host secret")) {
					t.Errorf("the host's secret reached the image")
				}
			}
		})
	}
}
