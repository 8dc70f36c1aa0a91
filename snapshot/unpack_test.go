package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func unpack(t *testing.T, dir string, opts UnpackOptions, ents ...ent) error {
	t.Helper()
	return Unpack(context.Background(), bytes.NewReader(buildTar(t, ents...)), dir, opts)
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestUnpackMetadata(t *testing.T) {
	requireOverlay(t)
	dir := t.TempDir()
	dirTime := time.Date(2001, 2, 3, 4, 5, 6, 700, time.UTC)
	fileTime := time.Date(2002, 2, 3, 4, 5, 6, 0, time.UTC)
	atime := time.Date(2003, 2, 3, 4, 5, 6, 0, time.UTC)
	linkTime := time.Date(2004, 2, 3, 4, 5, 6, 0, time.UTC)
	err := unpack(t, dir, UnpackOptions{},
		ent{Name: "./", Mode: 0o750, UID: 7, GID: 8, MTime: dirTime},
		ent{Name: "d/", Mode: 0o750, UID: 1, GID: 2, MTime: dirTime, Xattrs: map[string]string{"user.d": "dv", "trusted.overlay.opaque": "y"}},
		ent{Name: "d/setuid", Mode: 0o4755, UID: 1000, GID: 1000, Body: "hello", MTime: fileTime, ATime: atime,
			Xattrs: map[string]string{"user.k": "v", "security.capability": capNetRaw(), "security.selinux": "x", "user.overlay.redirect": "/x"}},
		ent{Name: "d/hard", Type: tar.TypeLink, Link: "d/setuid"},
		ent{Name: "tmp/", Mode: 0o1777, MTime: dirTime},
		ent{Name: "d/sym", Type: tar.TypeSymlink, Link: "/etc/nowhere", UID: 5, GID: 6, MTime: linkTime},
		ent{Name: "d/fifo", Type: tar.TypeFifo, Mode: 0o600, UID: 3, GID: 4},
		ent{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Major: 1, Minor: 3},
		ent{Name: "dev/loop0", Type: tar.TypeBlock, Mode: 0o660, Major: 7, Minor: 0, GID: 6},
		ent{Name: "d/late", Body: "written after d's header"},
	)
	if err != nil {
		t.Fatal(err)
	}
	type meta struct {
		Type, Mode, UID, GID uint32
		Rdev                 uint64
		Mtime                int64
	}
	metaOf := func(p string) meta {
		st := lstat(t, filepath.Join(dir, p))
		return meta{st.Mode & unix.S_IFMT, st.Mode & 0o7777, st.Uid, st.Gid, st.Rdev, st.Mtim.Sec}
	}
	want := map[string]meta{
		".":         {unix.S_IFDIR, 0o750, 7, 8, 0, dirTime.Unix()},
		"d":         {unix.S_IFDIR, 0o750, 1, 2, 0, dirTime.Unix()},
		"d/setuid":  {unix.S_IFREG, 0o4755, 1000, 1000, 0, fileTime.Unix()},
		"d/hard":    {unix.S_IFREG, 0o4755, 1000, 1000, 0, fileTime.Unix()},
		"tmp":       {unix.S_IFDIR, 0o1777, 0, 0, 0, dirTime.Unix()},
		"d/sym":     {unix.S_IFLNK, 0o777, 5, 6, 0, linkTime.Unix()},
		"d/fifo":    {unix.S_IFIFO, 0o600, 3, 4, 0, testTime.Unix()},
		"dev/null":  {unix.S_IFCHR, 0o666, 0, 0, unix.Mkdev(1, 3), testTime.Unix()},
		"dev/loop0": {unix.S_IFBLK, 0o660, 0, 6, unix.Mkdev(7, 0), testTime.Unix()},
	}
	for p, w := range want {
		if diff := cmp.Diff(w, metaOf(p)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", p, diff)
		}
	}
	if st := lstat(t, dir); st.Mtim.Nsec != 700 {
		t.Errorf("root mtime nanoseconds = %d, want 700", st.Mtim.Nsec)
	}
	if st := lstat(t, filepath.Join(dir, "d/setuid")); st.Atim.Sec != atime.Unix() || st.Nlink != 2 {
		t.Errorf("d/setuid atime %d nlink %d, want %d and 2", st.Atim.Sec, st.Nlink, atime.Unix())
	}
	if st := lstat(t, filepath.Join(dir, "dev")); st.Mode&0o7777 != 0o755 {
		t.Errorf("implicit parent dev has mode %o, want 755", st.Mode&0o7777)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "d/sym")); l != "/etc/nowhere" {
		t.Errorf("d/sym -> %q", l)
	}
	xattrs := func(p string) map[string]string {
		out := map[string]string{}
		full := filepath.Join(dir, p)
		ns, err := listXattrs(full)
		must(t, err)
		for _, n := range ns {
			v, err := getXattr(full, n)
			must(t, err)
			out[n] = string(v)
		}
		return out
	}
	if diff := cmp.Diff(map[string]string{"user.d": "dv"}, xattrs("d")); diff != "" {
		t.Errorf("xattrs of d (-want +got):\n%s", diff)
	}
	wantX := map[string]string{"user.k": "v", "security.capability": capNetRaw()}
	if diff := cmp.Diff(wantX, xattrs("d/setuid")); diff != "" {
		t.Errorf("xattrs of d/setuid (-want +got):\n%s", diff)
	}
}

func TestUnpackReplace(t *testing.T) {
	requireOverlay(t)
	dir := t.TempDir()
	err := unpack(t, dir, UnpackOptions{},
		ent{Name: "a", Body: "file"},
		ent{Name: "a/", Mode: 0o711}, // file replaced by directory
		ent{Name: "a/x", Body: "x"},
		ent{Name: "b/"},
		ent{Name: "b/y", Body: "y"},
		ent{Name: "b", Body: "dir replaced by file"},
		ent{Name: "c", Type: tar.TypeSymlink, Link: "/"},
		ent{Name: "c/", Mode: 0o700}, // symlink replaced by directory
		ent{Name: "a/", Mode: 0o750}, // directory kept, mode updated
	)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]node{
		".":   {Type: unix.S_IFDIR, Mode: 0o700},
		"a":   {Type: unix.S_IFDIR, Mode: 0o750},
		"a/x": {Type: unix.S_IFREG, Mode: 0o644, Size: 1},
		"b":   {Type: unix.S_IFREG, Mode: 0o644, Size: 20},
		"c":   {Type: unix.S_IFDIR, Mode: 0o700},
	}
	gotTree := tree(t, dir)
	delete(gotTree, ".")
	delete(want, ".")
	if diff := cmp.Diff(want, gotTree, cmp.Transformer("nodigest", func(n node) node { n.Digest = ""; return n })); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
}

func TestUnpackWhiteouts(t *testing.T) {
	requireOverlay(t)
	ents := []ent{
		{Name: "d/"},
		{Name: "d/gone", Body: "x"},
		{Name: "d/.wh.gone"},
		{Name: "d/.wh.never"},
		{Name: "o/.wh..wh..opq"},
		{Name: ".wh..wh.plnk"},
	}
	t.Run("plain", func(t *testing.T) {
		dir := t.TempDir()
		must(t, unpack(t, dir, UnpackOptions{}, ents...))
		want := []string{".", ".wh..wh.plnk", "d", "d/.wh.gone", "d/.wh.never", "d/gone", "o", "o/.wh..wh..opq"}
		if diff := cmp.Diff(want, names(tree(t, dir))); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("overlay", func(t *testing.T) {
		dir := t.TempDir()
		must(t, unpack(t, dir, UnpackOptions{OverlayWhiteouts: true}, ents...))
		tr := tree(t, dir)
		if diff := cmp.Diff([]string{".", "d", "d/gone", "d/never", "o"}, names(tr)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		for _, p := range []string{"d/gone", "d/never"} {
			if n := tr[p]; n.Type != unix.S_IFCHR || n.Rdev != 0 {
				t.Errorf("%s is not an overlay whiteout: %+v", p, n)
			}
		}
		v, err := getXattr(filepath.Join(dir, "o"), opaqueXattr)
		if err != nil || string(v) != "y" {
			t.Errorf("o: %s = %q, %v; want y", opaqueXattr, v, err)
		}
	})
}

func TestUnpackOwner(t *testing.T) {
	requireOverlay(t)
	dir := t.TempDir()
	must(t, unpack(t, dir, UnpackOptions{Owner: &Owner{UID: 33, GID: 44}},
		ent{Name: "d/", UID: 1}, ent{Name: "d/f", UID: 2, Mode: 0o2755}, ent{Name: "l", Type: tar.TypeSymlink, Link: "d"}))
	for _, p := range []string{"d", "d/f", "l"} {
		if st := lstat(t, filepath.Join(dir, p)); st.Uid != 33 || st.Gid != 44 {
			t.Errorf("%s owned by %d:%d, want 33:44", p, st.Uid, st.Gid)
		}
	}
	if st := lstat(t, filepath.Join(dir, "d/f")); st.Mode&0o7777 != 0o2755 {
		t.Errorf("d/f mode %o, want 2755", st.Mode&0o7777)
	}
}

func TestUnpackCancel(t *testing.T) {
	requireOverlay(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Unpack(ctx, bytes.NewReader(buildTar(t, ent{Name: "f", Body: "x"})), t.TempDir(), UnpackOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestUnpackBreakouts feeds hostile archives (after containerd's
// TestBreakouts) to Unpack and checks that nothing outside the target
// changed: entries are either contained in the root or refused.
func TestUnpackBreakouts(t *testing.T) {
	requireOverlay(t)
	passwd, err := os.ReadFile("/etc/passwd")
	must(t, err)
	passwdSt := lstat(t, "/etc/passwd")
	tests := []struct {
		name    string
		ents    func(outside string) []ent
		wantErr string            // substring; "" means success
		check   func(root string) // extra checks inside the root
	}{
		{
			name:    "dotdot",
			ents:    func(string) []ent { return []ent{{Name: "../marker/pwned", Body: "x"}} },
			wantErr: "escapes the root",
		},
		{
			name:    "dotdot in the middle",
			ents:    func(string) []ent { return []ent{{Name: "a/../../marker/pwned", Body: "x"}} },
			wantErr: "escapes the root",
		},
		{
			name: "absolute name",
			ents: func(outside string) []ent { return []ent{{Name: outside + "/marker/pwned", Body: "x"}} },
			check: func(root string) {
				if _, err := os.Lstat(filepath.Join(root, filepath.Dir(root), "marker/pwned")); err != nil {
					t.Errorf("absolute name not taken relative to the root: %v", err)
				}
			},
		},
		{
			name: "symlink to / then file through it",
			ents: func(outside string) []ent {
				return []ent{{Name: "s", Type: tar.TypeSymlink, Link: "/"}, {Name: "s" + outside + "/marker/pwned", Body: "x"}}
			},
		},
		{
			name: "relative symlink out then file through it",
			ents: func(string) []ent {
				return []ent{{Name: "s", Type: tar.TypeSymlink, Link: "../../../../../../.."}, {Name: "s/marker/pwned", Body: "x"}}
			},
			check: func(root string) {
				if _, err := os.Lstat(filepath.Join(root, "marker/pwned")); err != nil {
					t.Errorf("file through symlink not contained in root: %v", err)
				}
			},
		},
		{
			name: "symlink to outside dir then file through it",
			ents: func(outside string) []ent {
				return []ent{{Name: "s", Type: tar.TypeSymlink, Link: outside + "/marker"}, {Name: "s/pwned", Body: "x"}}
			},
		},
		{
			name: "symlink then regular file of the same name",
			ents: func(string) []ent {
				return []ent{{Name: "f", Type: tar.TypeSymlink, Link: "/etc/passwd"}, {Name: "f", Body: "overwritten"}}
			},
			check: func(root string) {
				if st := lstat(t, filepath.Join(root, "f")); st.Mode&unix.S_IFMT != unix.S_IFREG {
					t.Error("symlink not replaced by a file")
				}
			},
		},
		{
			name: "directory replaced by symlink out then file in it",
			ents: func(outside string) []ent {
				return []ent{{Name: "a/"}, {Name: "a/x", Body: "x"}, {Name: "a", Type: tar.TypeSymlink, Link: outside + "/marker"}, {Name: "a/y", Body: "y"}}
			},
			check: func(root string) {
				if _, err := os.Lstat(filepath.Join(root, filepath.Dir(root), "marker/y")); err != nil {
					t.Errorf("file through the new symlink not contained in root: %v", err)
				}
			},
		},
		{
			name: "directory replaced by relative symlink out then file in it",
			ents: func(string) []ent {
				return []ent{{Name: "a/"}, {Name: "a/x", Body: "x"}, {Name: "a", Type: tar.TypeSymlink, Link: "../../../.."}, {Name: "a/y", Body: "y"}}
			},
			check: func(root string) {
				if _, err := os.Lstat(filepath.Join(root, "y")); err != nil {
					t.Errorf("file through the new symlink not contained in root: %v", err)
				}
			},
		},
		{
			name: "parent replaced by symlink out then file in its subdirectory",
			ents: func(outside string) []ent {
				return []ent{{Name: "a/b/"}, {Name: "a/b/x", Body: "x"}, {Name: "a", Type: tar.TypeSymlink, Link: outside}, {Name: "a/b/y", Body: "y"}}
			},
			check: func(root string) {
				if _, err := os.Lstat(filepath.Join(root, filepath.Dir(root), "b/y")); err != nil {
					t.Errorf("file through the new symlink not contained in root: %v", err)
				}
			},
		},
		{
			name: "symlink then directory entry through it",
			ents: func(outside string) []ent {
				return []ent{{Name: "d", Type: tar.TypeSymlink, Link: outside + "/marker"}, {Name: "d/", Mode: 0o777}}
			},
		},
		{
			name:    "hardlink to /etc/passwd",
			ents:    func(string) []ent { return []ent{{Name: "h", Type: tar.TypeLink, Link: "/etc/passwd"}} },
			wantErr: "resolve link target",
		},
		{
			name:    "hardlink with dotdot",
			ents:    func(string) []ent { return []ent{{Name: "h", Type: tar.TypeLink, Link: "../marker/file"}} },
			wantErr: "escapes the root",
		},
		{
			name: "hardlink through symlink to outside",
			ents: func(outside string) []ent {
				return []ent{{Name: "s", Type: tar.TypeSymlink, Link: outside + "/marker"}, {Name: "h", Type: tar.TypeLink, Link: "s/file"}}
			},
			wantErr: "resolve link target",
		},
		{
			name: "hardlink to symlink to outside file",
			ents: func(string) []ent {
				return []ent{{Name: "s", Type: tar.TypeSymlink, Link: "/etc/passwd"}, {Name: "h", Type: tar.TypeLink, Link: "s"}, {Name: "h", Type: tar.TypeLink, Link: "s"}}
			},
			check: func(root string) {
				if st := lstat(t, filepath.Join(root, "h")); st.Mode&unix.S_IFMT != unix.S_IFLNK {
					t.Error("hard link to a symlink did not link the symlink itself")
				}
			},
		},
		{
			name: "symlink loop",
			ents: func(string) []ent {
				return []ent{{Name: "a", Type: tar.TypeSymlink, Link: "b"}, {Name: "b", Type: tar.TypeSymlink, Link: "a"}, {Name: "a/x", Body: "x"}}
			},
			wantErr: "too many levels of symbolic links",
		},
		{
			name: "whiteout through symlink",
			ents: func(outside string) []ent {
				return []ent{{Name: "s", Type: tar.TypeSymlink, Link: outside + "/marker"}, {Name: "s/.wh.file"}, {Name: "s/.wh..wh..opq"}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outside := t.TempDir()
			root := filepath.Join(outside, "root")
			must(t, os.Mkdir(root, 0o755))
			must(t, os.Mkdir(filepath.Join(outside, "marker"), 0o755))
			writeFile(t, filepath.Join(outside, "marker/file"), "precious", 0o644)
			before := tree(t, outside)
			delete(before, "root")
			for _, opts := range []UnpackOptions{{}, {OverlayWhiteouts: true}} {
				err := unpack(t, root, opts, tt.ents(outside)...)
				switch {
				case tt.wantErr == "" && err != nil:
					t.Errorf("unexpected error: %v", err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
				}
				after := tree(t, outside)
				for p := range after {
					if p == "root" || strings.HasPrefix(p, "root/") {
						delete(after, p)
					}
				}
				if diff := cmp.Diff(before, after); diff != "" {
					t.Errorf("outside of the root changed (-before +after):\n%s", diff)
				}
				if tt.check != nil && err == nil {
					tt.check(root)
				}
				must(t, os.RemoveAll(root))
				must(t, os.Mkdir(root, 0o755))
			}
			if b, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(b, passwd) {
				t.Fatal("/etc/passwd changed")
			}
			if st := lstat(t, "/etc/passwd"); st.Nlink != passwdSt.Nlink || st.Mode != passwdSt.Mode {
				t.Fatal("/etc/passwd links or mode changed")
			}
		})
	}
}
