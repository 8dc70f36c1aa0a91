package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/mybuild/mybuild/internal/tartest"
)

// staleParentTars are archives where the directory of one run of entries
// stops being what its name resolves to, by an entry that replaces it, one
// of its parents, or the way to it: a kept parent handle must not be used
// after that.
func staleParentTars(f *testing.F) [][]byte {
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg} }
	dir := func(name string, mode int64) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}
	}
	sym := func(name, to string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to}
	}
	link := func(name, to string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: to}
	}
	return [][]byte{
		// The directory itself becomes a symlink out, to the root, to a
		// sibling.
		tartest.Build(f, dir("a/", 0o755), reg("a/x"), sym("a", "../marker"), reg("a/y")),
		tartest.Build(f, dir("a/", 0o755), reg("a/x"), sym("a", "../.."), reg("a/y")),
		tartest.Build(f, dir("a/", 0o755), reg("a/x"), sym("a", "/"), reg("a/y")),
		tartest.Build(f, dir("a/", 0o755), dir("b/", 0o755), reg("a/x"), sym("a", "b"), reg("a/y")),
		// A parent of it becomes a symlink, a file, a hard link.
		tartest.Build(f, dir("a/b/", 0o755), reg("a/b/x"), sym("a", "../marker"), reg("a/b/y")),
		tartest.Build(f, dir("a/b/", 0o755), reg("a/b/x"), reg("a"), reg("a/b/y")),
		tartest.Build(f, reg("f"), dir("a/", 0o755), reg("a/x"), link("a", "f"), reg("a/y")),
		// Whiteouts of it and of a parent, and an opaque marker in it.
		tartest.Build(f, dir("a/", 0o755), reg("a/x"), reg(".wh.a"), reg("a/y")),
		tartest.Build(f, dir("a/b/", 0o755), reg("a/b/x"), reg("a/.wh.b"), reg("a/b/y")),
		tartest.Build(f, dir("a/", 0o755), reg("a/x"), reg("a/.wh..wh..opq"), reg("a/y"), reg("a/.wh.x")),
		// Reached through a symlink, which is then pointed elsewhere.
		tartest.Build(f, dir("real/", 0o755), dir("other/", 0o755), sym("s", "real"), reg("s/x"), sym("s", "other"), reg("s/y")),
		tartest.Build(f, dir("real/", 0o755), sym("s", "real"), reg("s/x"), reg("real"), reg("s/y")),
		tartest.Build(f, dir("d/", 0o755), sym("d/up", ".."), reg("d/up/x"), sym("d/up", "../marker"), reg("d/up/y")),
		// ... and where an entry in it changes the way to it.
		tartest.Build(f, dir("d/", 0o755), sym("d/up", ".."), reg("d/up/x"), sym("d/up/d", "e"), reg("d/up/y")),
		tartest.Build(f, dir("e/", 0o755), dir("d/", 0o755), sym("d/up", ".."), reg("d/up/x"), reg("d/up/.wh.d"), reg("d/up/y")),
		// Entries in the directory that replace names in it, itself
		// (again) and the root.
		tartest.Build(f, dir("a/", 0o755), reg("a/x"), dir("a/x/", 0o700), reg("a/x/y"), reg("a/x"), reg("a/z")),
		tartest.Build(f, dir("a/", 0o755), reg("a/x"), dir("a/", 0o500), reg("a/y"), dir("./", 0o700), reg("a/z")),
		tartest.Build(f, reg("x"), sym("y", "."), reg("y/z"), reg("z")),
		// A dangling symlink on the way, made into a directory.
		tartest.Build(f, sym("a", "b/c"), reg("a/x"), reg("a/y"), reg("b/c/z")),
	}
}

// FuzzUnpackParentCache unpacks each archive twice, resolving every
// entry's parent from the root and with the parent kept across entries,
// and fails unless both give the same tree (types, modes, owners,
// contents, links, times, xattrs), the same error, and nothing outside the
// target changed.
func FuzzUnpackParentCache(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root")
	}
	for _, tb := range append(staleParentTars(f), hostileTars(f)...) {
		f.Add(tb, false)
		f.Add(tb, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, overlay bool) {
		if tartest.TooBig(data) {
			t.Skip("entry over 1MiB")
		}
		var trees [2]map[string]string
		var errs [2]string
		start := time.Now().Add(-time.Second)
		for i, reference := range []bool{true, false} {
			c := tartest.NewContainment(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := Unpack(ctx, bytes.NewReader(data), c.Root, UnpackOptions{OverlayWhiteouts: overlay, resolveEveryParent: reference})
			cancel()
			if err != nil {
				errs[i] = err.Error()
			}
			c.Check(t)
			trees[i] = fullTree(t, c.Root, start)
		}
		if errs[0] != errs[1] {
			t.Errorf("error %q, want %q as when every parent is resolved", errs[1], errs[0])
		}
		if diff := cmp.Diff(trees[0], trees[1]); diff != "" {
			t.Errorf("tree differs from when every parent is resolved (-resolved +kept):\n%s", diff)
		}
	})
}

// fullTree lists dir like tree, with modification times (those after now,
// of directories made without an entry, left out) and xattrs. It walks by
// descriptors, since hostile archives make paths longer than PATH_MAX.
func fullTree(t *testing.T, dir string, now time.Time) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(dirfd int, rel string)
	walk = func(dirfd int, rel string) {
		d, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		must(t, err)
		f := os.NewFile(uintptr(d), rel)
		names, err := f.Readdirnames(-1)
		f.Close()
		must(t, err)
		for _, name := range names {
			var st unix.Stat_t
			must(t, unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW))
			n := node{Type: st.Mode & unix.S_IFMT, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Rdev: st.Rdev}
			switch n.Type {
			case unix.S_IFREG:
				fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				must(t, err)
				h := sha256.New()
				rf := os.NewFile(uintptr(fd), name)
				n.Size, err = io.Copy(h, rf)
				rf.Close()
				must(t, err)
				n.Digest = hex.EncodeToString(h.Sum(nil)[:8])
			case unix.S_IFLNK:
				buf := make([]byte, 4096)
				k, err := unix.Readlinkat(dirfd, name, buf)
				must(t, err)
				n.Link = string(buf[:k])
			}
			entry := procFD(dirfd) + "/" + name
			xnames, err := listXattrs(entry)
			must(t, err)
			sort.Strings(xnames)
			x := ""
			for _, xn := range xnames {
				v, err := getXattr(entry, xn)
				must(t, err)
				x += fmt.Sprintf(" %s=%q", xn, v)
			}
			mtime := fmt.Sprintf(" mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
			if st.Mtim.Sec >= now.Unix() {
				mtime = ""
			}
			p := path.Join(rel, name)
			out[p] = fmt.Sprintf("%+v%s%s", n, mtime, x)
			if n.Type == unix.S_IFDIR {
				sub, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				must(t, err)
				walk(sub, p)
				unix.Close(sub)
			}
		}
	}
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(root)
	walk(root, "")
	return out
}

// TestUnpackKeptParent checks what the kept parent directory (an O_PATH
// descriptor) is used for: opaque markers, whiteouts, xattrs of special
// files and hard links into it.
func TestUnpackKeptParent(t *testing.T) {
	requirePrivileges(t)
	dir := t.TempDir()
	must(t, unpack(t, dir, UnpackOptions{OverlayWhiteouts: true},
		ent{Name: "o/"},
		ent{Name: "o/a", Body: "a"},
		ent{Name: "o/.wh..wh..opq"},
		ent{Name: "o/.wh.gone"},
		ent{Name: "o/fifo", Type: tar.TypeFifo, Mode: 0o640, Xattrs: map[string]string{"trusted.k": "v"}},
		ent{Name: "o/hard", Type: tar.TypeLink, Link: "o/a"},
		ent{Name: "o/a", Body: "replaced"},
	))
	if v, err := getXattr(filepath.Join(dir, "o"), opaqueXattr); err != nil || string(v) != "y" {
		t.Errorf("o: %s = %q, %v; want y", opaqueXattr, v, err)
	}
	if st := lstat(t, filepath.Join(dir, "o/gone")); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("o/gone is not a whiteout: mode %o rdev %d", st.Mode, st.Rdev)
	}
	if v, err := getXattr(filepath.Join(dir, "o/fifo"), "trusted.k"); err != nil || string(v) != "v" {
		t.Errorf("o/fifo: trusted.k = %q, %v; want v", v, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "o/hard")); err != nil || string(b) != "a" {
		t.Errorf("o/hard = %q, %v; want the first o/a", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "o/a")); err != nil || string(b) != "replaced" {
		t.Errorf("o/a = %q, %v; want replaced", b, err)
	}
}

// TestUnpackModes covers the chown and chmod that Unpack leaves out when
// they would change nothing: the umask, a set-group-ID parent directory and
// a default ACL must not show in the result.
func TestUnpackModes(t *testing.T) {
	requirePrivileges(t)
	dir := t.TempDir()
	must(t, unpack(t, dir, UnpackOptions{},
		ent{Name: "sg/", Mode: 0o2775, GID: 7},
		ent{Name: "sg/f", Mode: 0o664},
		ent{Name: "sg/g", Mode: 0o2755, GID: 9},
		ent{Name: "sg/d/", Mode: 0o755},
		ent{Name: "sg/d/f", Mode: 0o4711, UID: 5},
		ent{Name: "acl/", Mode: 0o755, Xattrs: map[string]string{"system.posix_acl_default": defaultACL(0o7, 0o5, 0)}},
		ent{Name: "acl/f", Mode: 0o666},
		ent{Name: "acl/g", Mode: 0o640},
		ent{Name: "acl/d/", Mode: 0o777},
		ent{Name: "f400", Mode: 0o400, Body: "read-only"},
		ent{Name: "f7777", Mode: 0o7777, UID: 1, GID: 1},
		ent{Name: "d7777/", Mode: 0o7777, UID: 1, GID: 1},
	))
	if _, err := getXattr(filepath.Join(dir, "acl"), "system.posix_acl_default"); err != nil {
		t.Logf("no default ACL here (%v): that case is not covered", err)
	}
	for p, want := range map[string][3]uint32{
		"sg":     {0o2775, 0, 7},
		"sg/f":   {0o664, 0, 0}, // not the parent's group
		"sg/g":   {0o2755, 0, 9},
		"sg/d":   {0o755, 0, 0},
		"sg/d/f": {0o4711, 5, 0},
		"acl":    {0o755, 0, 0},
		"acl/f":  {0o666, 0, 0},
		"acl/g":  {0o640, 0, 0},
		"acl/d":  {0o777, 0, 0},
		"f400":   {0o400, 0, 0},
		"f7777":  {0o7777, 1, 1},
		"d7777":  {0o7777, 1, 1},
	} {
		st := lstat(t, filepath.Join(dir, p))
		if got := [3]uint32{st.Mode & 0o7777, st.Uid, st.Gid}; got != want {
			t.Errorf("%s: mode, uid, gid = %o %d %d; want %o %d %d", p, got[0], got[1], got[2], want[0], want[1], want[2])
		}
	}
}

// defaultACL is a system.posix_acl_default value of the three base
// entries, with the permissions of owner, group and others.
func defaultACL(user, group, other uint16) string {
	b := binary.LittleEndian.AppendUint32(nil, 2) // POSIX_ACL_XATTR_VERSION
	for _, e := range []struct{ tag, perm uint16 }{{0x01, user}, {0x04, group}, {0x20, other}} {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, 0xffffffff)
	}
	return string(b)
}
