// Package tartest holds what the tests of the tar extractors share: a
// builder of small archives and a check that an extraction stayed inside
// its target directory. Only tests import it.
package tartest

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// Build returns a tar of hdrs; a regular file's content is its name (its
// Size is set to match) and a zero Mode becomes 0644.
func Build(tb testing.TB, hdrs ...*tar.Header) []byte {
	tb.Helper()
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
			tb.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(h.Name)); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// TooBig tells whether the (uncompressed) archive declares an entry over
// 1MiB: a sparse file of terabytes is legitimate and would fill the disk,
// so fuzz targets skip such inputs.
func TooBig(data []byte) bool {
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

// Containment is a directory Parent holding marker/file, the empty target
// Root, and the caller's other directories: an extraction into Root must
// change nothing else.
type Containment struct {
	Parent, Root, Marker string
	names                []string // Parent's entries, sorted
	before               os.FileInfo
}

// NewContainment makes PARENT/marker/file, PARENT/root and the directories
// extra under a new temporary PARENT.
func NewContainment(t testing.TB, extra ...string) *Containment {
	t.Helper()
	c := &Containment{Parent: t.TempDir()}
	c.Root = filepath.Join(c.Parent, "root")
	c.Marker = filepath.Join(c.Parent, "marker", "file")
	c.names = append([]string{"marker", "root"}, extra...)
	slices.Sort(c.names)
	for _, d := range c.names {
		if err := os.Mkdir(filepath.Join(c.Parent, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(c.Marker, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(c.Marker)
	if err != nil {
		t.Fatal(err)
	}
	c.before = fi
	return c
}

// Check fails unless Parent holds just its directories and the marker
// file is as NewContainment left it (same content, mode, owner, time and
// no extra hard link).
func (c *Containment) Check(t testing.TB) {
	t.Helper()
	entries, err := os.ReadDir(c.Parent)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, c.names) {
		t.Fatalf("entries outside the target: %q", names)
	}
	if fi, err := os.Lstat(filepath.Dir(c.Marker)); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Fatalf("marker directory changed: %v %v", fi, err)
	}
	if entries, err := os.ReadDir(filepath.Dir(c.Marker)); err != nil || len(entries) != 1 {
		t.Fatalf("marker directory changed: %d entries, %v", len(entries), err)
	}
	fi, err := os.Lstat(c.Marker)
	if err != nil {
		t.Fatalf("marker file: %v", err)
	}
	if data, err := os.ReadFile(c.Marker); err != nil || string(data) != "keep" {
		t.Fatalf("marker file content %q, %v", data, err)
	}
	a, ok1 := c.before.Sys().(*syscall.Stat_t)
	b, ok2 := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != c.before.Mode() || !fi.ModTime().Equal(c.before.ModTime()) ||
		!ok1 || !ok2 || a.Uid != b.Uid || a.Gid != b.Gid || b.Nlink != 1 {
		t.Fatalf("marker file metadata changed: %v %v -> %v %v", c.before.Mode(), c.before.ModTime(), fi.Mode(), fi.ModTime())
	}
}
