package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fuzzTar builds a tar from headers; a regular file's content is its name.
func fuzzTar(f *testing.F, hdrs ...*tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			f.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(h.Name)); err != nil {
				f.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

// hostileTars are archives in the spirit of containerd's TestBreakouts.
func hostileTars(f *testing.F) [][]byte {
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg} }
	dir := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755} }
	sym := func(name, to string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to}
	}
	link := func(name, to string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: to}
	}
	return [][]byte{
		fuzzTar(f, dir("./"), dir("etc/"), reg("etc/passwd"), sym("bin", "usr/bin"), reg("usr/bin/sh"), link("etc/hard", "etc/passwd")),
		fuzzTar(f, reg("../marker/file")),
		fuzzTar(f, reg("../../escape")),
		fuzzTar(f, reg("/abs/file"), reg("/../marker/file")),
		fuzzTar(f, sym("esc", "../marker"), reg("esc/file")),
		fuzzTar(f, sym("esc", "../../"), reg("esc/marker/file")),
		fuzzTar(f, sym("abs", "/"), reg("abs/marker/file"), reg("abs/../marker/file")),
		fuzzTar(f, link("hard", "../marker/file")),
		fuzzTar(f, sym("s", "../marker/file"), link("hard", "s"), reg("hard")),
		fuzzTar(f, sym("a", "b"), sym("b", "a"), reg("a/x")),
		fuzzTar(f, sym("a", "b"), sym("b", "c"), sym("c", "../marker"), reg("a/file")),
		fuzzTar(f, dir("d/"), reg("d/f"), sym("d", "../marker"), reg("d/file")),
		fuzzTar(f, &tar.Header{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}, &tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}),
		fuzzTar(f, &tar.Header{Name: "suid", Typeflag: tar.TypeReg, Mode: 0o4755}),
		fuzzTar(f, reg("bad\xff\xfename"), reg(strings.Repeat("d/", 2000)+"f")),
		fuzzTar(f, dir("w/"), reg("w/.wh.gone"), reg("w/.wh..wh..opq"), reg(".wh...")),
		fuzzTar(f, &tar.Header{Name: "x", Typeflag: tar.TypeReg, PAXRecords: map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.a": "b"}}),
	}
}

// FuzzUnpack unpacks arbitrary tar streams into a directory next to a marker
// directory: whatever the archive holds, nothing outside the target
// directory may change. Needs root (owners, device nodes).
func FuzzUnpack(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root")
	}
	for _, tb := range hostileTars(f) {
		f.Add(tb, false)
		f.Add(tb, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, overlay bool) {
		if tooBig(data) {
			t.Skip("entry over 1MiB")
		}
		parent, markerFile, before := containmentSetup(t)
		root := filepath.Join(parent, "root")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = Unpack(ctx, bytes.NewReader(data), root, UnpackOptions{OverlayWhiteouts: overlay})
		checkContained(t, parent, markerFile, before)
	})
}

// tooBig tells whether the archive declares an entry over 1MiB: a sparse
// file of terabytes is a legitimate layer that would fill the disk.
func tooBig(data []byte) bool {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err != nil {
			return false
		}
		if hdr.Size > 1<<20 {
			return true
		}
	}
}

// containmentSetup makes PARENT/marker/file and the empty PARENT/root, and
// returns PARENT, the marker file's path and its state.
func containmentSetup(t *testing.T) (string, string, os.FileInfo) {
	t.Helper()
	parent := t.TempDir()
	markerFile := filepath.Join(parent, "marker", "file")
	for _, d := range []string{"marker", "root"} {
		if err := os.Mkdir(filepath.Join(parent, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(markerFile, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(markerFile)
	if err != nil {
		t.Fatal(err)
	}
	return parent, markerFile, fi
}

// checkContained fails unless PARENT holds only marker and root, and the
// marker file is as containmentSetup left it (same content, mode, owner,
// time and no extra hard link).
func checkContained(t *testing.T, parent, markerFile string, before os.FileInfo) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"marker", "root"}) {
		t.Fatalf("entries outside the target: %q", names)
	}
	if fi, err := os.Lstat(filepath.Dir(markerFile)); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Fatalf("marker directory changed: %v %v", fi, err)
	}
	if entries, err := os.ReadDir(filepath.Dir(markerFile)); err != nil || len(entries) != 1 {
		t.Fatalf("marker directory changed: %d entries, %v", len(entries), err)
	}
	fi, err := os.Lstat(markerFile)
	if err != nil {
		t.Fatalf("marker file: %v", err)
	}
	data, err := os.ReadFile(markerFile)
	if err != nil || string(data) != "keep" {
		t.Fatalf("marker file content %q, %v", data, err)
	}
	st1, st2 := before.Sys(), fi.Sys()
	if fi.Mode() != before.Mode() || !fi.ModTime().Equal(before.ModTime()) || !sameOwnerLinks(st1, st2) {
		t.Fatalf("marker file metadata changed: %v %v -> %v %v", before.Mode(), before.ModTime(), fi.Mode(), fi.ModTime())
	}
}

// sameOwnerLinks compares the owner and link count of two stat results.
func sameOwnerLinks(a, b any) bool {
	x, ok1 := a.(*syscall.Stat_t)
	y, ok2 := b.(*syscall.Stat_t)
	return ok1 && ok2 && x.Uid == y.Uid && x.Gid == y.Gid && x.Nlink == y.Nlink && x.Nlink == 1
}
