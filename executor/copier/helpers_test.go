package copier

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// Times used by the fixtures, so that every mtime can be compared exactly.
const (
	tSrc  = 1_600_000_000 // sources
	tDir  = 1_700_000_000 // Options.DirTime
	tOld  = 1_500_000_000 // what the image had before
	tTar  = 1_400_000_000 // archive entries
	tSrc2 = 1_610_000_000 // a second source time
)

// node is one entry of a tree, as compared by the tests.
type node struct {
	Path  string
	Type  string // dir, file, symlink, fifo, char, socket
	Mode  string // permission bits in octal, setuid/setgid/sticky included
	UID   int
	GID   int
	Size  int64
	Data  string // file content
	Link  string // symlink target
	MTime int64
}

// entry describes one entry to create in a fixture tree. Zero fields take
// defaults: mode 0644 for files and 0755 for directories, mtime tSrc.
type entry struct {
	path string
	kind string // "" (file), dir, symlink, fifo, char, socket, hardlink (link = the other path)
	data string
	link string
	mode uint32
	uid  int
	gid  int
	time int64
}

func file(p, data string) entry         { return entry{path: p, data: data} }
func dir(p string) entry                { return entry{path: p, kind: "dir"} }
func symlink(p, target string) entry    { return entry{path: p, kind: "symlink", link: target} }
func (e entry) withMode(m uint32) entry { e.mode = m; return e }
func (e entry) at(t int64) entry        { e.time = t; return e }
func (e entry) owned(u, g int) entry    { e.uid, e.gid = u, g; return e }
func hardlink(p, other string) entry    { return entry{path: p, kind: "hardlink", link: other} }
func special(p, kind string) entry      { return entry{path: p, kind: kind} }
func fileNode(p, data, mode string, mt int64) node {
	return node{Path: p, Type: "file", Mode: mode, Size: int64(len(data)), Data: data, MTime: mt}
}
func dirNode(p, mode string, mt int64) node { return node{Path: p, Type: "dir", Mode: mode, MTime: mt} }
func linkNode(p, target string, mt int64) node {
	return node{Path: p, Type: "symlink", Mode: "0777", Size: int64(len(target)), Link: target, MTime: mt}
}
func (n node) own(u, g int) node { n.UID, n.GID = u, g; return n }

// build creates the entries under root; directory times are set last.
func build(t *testing.T, root string, entries ...entry) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(root, e.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := e.mode
		var err error
		switch e.kind {
		case "":
			if mode == 0 {
				mode = 0o644
			}
			err = os.WriteFile(p, []byte(e.data), 0o600)
		case "dir":
			if mode == 0 {
				mode = 0o755
			}
			err = os.MkdirAll(p, 0o700)
		case "symlink":
			err = os.Symlink(e.link, p)
		case "hardlink":
			err = os.Link(filepath.Join(root, e.link), p)
		case "fifo":
			mode = 0o640
			err = unix.Mkfifo(p, 0o640)
		case "char":
			mode = 0o666
			err = unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
		case "socket":
			err = makeSocket(p)
		}
		if err != nil {
			t.Fatalf("build %s: %v", e.path, err)
		}
		if e.kind == "hardlink" || e.kind == "socket" {
			continue
		}
		if err := os.Lchown(p, e.uid, e.gid); err != nil {
			if errors.Is(err, os.ErrPermission) {
				t.Skipf("chown needs root: %v", err)
			}
			t.Fatal(err)
		}
		if e.kind != "symlink" {
			if err := unix.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Times last, deepest first, so that creating entries does not change
	// them; the root too.
	entries = append(entries, entry{path: ".", kind: "dir-time"})
	sorted := append([]entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].path > sorted[j].path })
	for _, e := range sorted {
		if e.kind == "hardlink" || e.kind == "socket" {
			continue
		}
		tm := e.time
		if tm == 0 {
			tm = tSrc
		}
		ts := []unix.Timespec{{Sec: tm}, {Sec: tm}}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(root, e.path), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
}

func makeSocket(p string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Bind(fd, &unix.SockaddrUnix{Name: p})
}

// tree lists the entries below root (root excluded), sorted by path.
func tree(t *testing.T, root string) []node {
	t.Helper()
	var out []node
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		st := fi.Sys().(*syscall.Stat_t)
		n := node{
			Path:  "/" + filepath.ToSlash(rel),
			Mode:  fmt.Sprintf("%04o", st.Mode&0o7777),
			UID:   int(st.Uid),
			GID:   int(st.Gid),
			MTime: st.Mtim.Sec,
		}
		switch {
		case fi.IsDir():
			n.Type = "dir"
		case fi.Mode().IsRegular():
			n.Type, n.Size = "file", fi.Size()
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.Data = string(data)
		case fi.Mode()&os.ModeSymlink != 0:
			n.Type, n.Size = "symlink", fi.Size()
			n.Link, _ = os.Readlink(p)
		case fi.Mode()&os.ModeNamedPipe != 0:
			n.Type = "fifo"
		case fi.Mode()&os.ModeCharDevice != 0:
			n.Type = fmt.Sprintf("char %d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
		case fi.Mode()&os.ModeSocket != 0:
			n.Type = "socket"
		}
		out = append(out, n)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// copyCase is one Copy run on fresh fixture trees, compared with want.
type copyCase struct {
	name    string
	src     []entry // the source root; nil: the default context
	dest    []entry // the destination root before the copy
	opts    Options // SrcRoot, DestRoot and DirTime are filled in
	want    []node  // the whole destination tree afterwards
	wantErr string  // a substring of the error; want is then not checked
	errIs   error
}

func runCases(t *testing.T, cases []copyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srcRoot, destRoot := t.TempDir(), t.TempDir()
			src := tc.src
			if src == nil {
				src = defaultContext
			}
			build(t, srcRoot, src...)
			build(t, destRoot, tc.dest...)
			o := tc.opts
			o.SrcRoot, o.DestRoot, o.DirTime = srcRoot, destRoot, time.Unix(tDir, 0)
			err := Copy(context.Background(), o)
			if tc.wantErr != "" || tc.errIs != nil {
				if err == nil {
					t.Fatalf("no error, want %q; tree:\n%v", tc.wantErr, tree(t, destRoot))
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not contain %q", err, tc.wantErr)
				}
				if tc.errIs != nil && !errors.Is(err, tc.errIs) {
					t.Errorf("error %q is not %v", err, tc.errIs)
				}
				for _, root := range []string{srcRoot, destRoot} {
					if strings.Contains(err.Error(), root) {
						t.Errorf("error %q shows a host path", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Copy: %v", err)
			}
			want := append([]node(nil), tc.want...)
			sort.Slice(want, func(i, j int) bool { return want[i].Path < want[j].Path })
			if diff := cmp.Diff(want, tree(t, destRoot)); diff != "" {
				t.Errorf("destination tree mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// defaultContext is the build context most cases copy from.
var defaultContext = []entry{
	file("a.txt", "A"),
	file("b.txt", "bb").withMode(0o600),
	file("run.sh", "#!/bin/sh\n").withMode(0o4755),
	dir("dir").withMode(0o750).at(tSrc2),
	file("dir/one.txt", "1"),
	dir("dir/sub").withMode(0o700),
	file("dir/sub/two.txt", "22"),
	symlink("dir/link", "one.txt"),
	dir("d1"),
	file("d1/x.txt", "x"),
	dir("d2"),
	file("d2/y.txt", "y"),
	file("d2/z.md", "z"),
	symlink("link.txt", "a.txt"),
	symlink("linkdir", "dir"),
}
