package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// baseLayer is the lower layer the diff tests change.
func baseLayer(t *testing.T) []byte {
	return buildTar(t,
		ent{Name: "etc/"},
		ent{Name: "etc/hosts", Body: "127.0.0.1 localhost\n"},
		ent{Name: "etc/passwd", Body: "root:x:0:0::/root:/bin/sh\n"},
		ent{Name: "bin/"},
		ent{Name: "bin/sh", Body: "sh", Mode: 0o755},
		ent{Name: "lib/"},
		ent{Name: "lib/a.so", Body: "aaaa", Mode: 0o755},
		ent{Name: "link", Type: tar.TypeSymlink, Link: "etc/hosts"},
		ent{Name: "dirlink", Type: tar.TypeSymlink, Link: "lib"},
		ent{Name: "data/"},
		ent{Name: "data/x", Body: "x"},
		ent{Name: "data/y", Body: "y"},
		ent{Name: "data/sub/"},
		ent{Name: "data/sub/z", Body: "z"},
	)
}

func dirEnt(name string) got { return got{Name: name, Type: tar.TypeDir, Mode: 0o755} }
func whiteoutEnt(name string) got {
	return got{Name: name, Type: tar.TypeReg}
}

// TestWriteDiff changes a lower layer through an overlay mount, writes the
// upper's diff and compares its entries one by one (containerd's TestDiffTar
// pattern). Each diff is then checked both ways round: extracted as a layer
// and committed as one, stacked on the base it must reproduce the changed
// tree.
func TestWriteDiff(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) { testWriteDiff(t, driver) })
	}
}

func testWriteDiff(t *testing.T, driver string) {
	s := newDriverStore(t, driver)
	s2 := newDriverStore(t, driver) // extracts the diffs, so that Commit in s is not a no-op
	base := baseLayer(t)
	lower := extract(t, s, base)
	lower2 := extract(t, s2, base)

	tests := []struct {
		name   string
		change func(t *testing.T, root string)
		want   []got
		// wantNaive, if set, is what the naive snapshotter writes instead.
		wantNaive []got
	}{
		{
			name:   "no change",
			change: func(*testing.T, string) {},
		},
		{
			name:   "add file",
			change: func(t *testing.T, root string) { writeFile(t, root+"/bin/new", "new", 0o755) },
			want:   []got{dirEnt("bin/"), {Name: "bin/new", Type: tar.TypeReg, Mode: 0o755, Size: 3}},
		},
		{
			name: "modify file",
			change: func(t *testing.T, root string) {
				f, err := os.OpenFile(root+"/etc/hosts", os.O_APPEND|os.O_WRONLY, 0)
				must(t, err)
				_, err = f.WriteString("::1 localhost\n")
				must(t, err)
				must(t, f.Close())
			},
			want: []got{dirEnt("etc/"), {Name: "etc/hosts", Type: tar.TypeReg, Mode: 0o644, Size: 34}},
		},
		{
			name:   "chmod only",
			change: func(t *testing.T, root string) { must(t, os.Chmod(root+"/etc/passwd", 0o600)) },
			want:   []got{dirEnt("etc/"), {Name: "etc/passwd", Type: tar.TypeReg, Mode: 0o600, Size: 26}},
		},
		{
			name:   "chown only",
			change: func(t *testing.T, root string) { must(t, os.Lchown(root+"/etc/passwd", 1000, 1001)) },
			want:   []got{dirEnt("etc/"), {Name: "etc/passwd", Type: tar.TypeReg, Mode: 0o644, UID: 1000, GID: 1001, Size: 26}},
		},
		{
			name:   "delete file",
			change: func(t *testing.T, root string) { must(t, os.Remove(root+"/bin/sh")) },
			want:   []got{dirEnt("bin/"), whiteoutEnt("bin/.wh.sh")},
		},
		{
			name:   "delete dir",
			change: func(t *testing.T, root string) { must(t, os.RemoveAll(root+"/data")) },
			want:   []got{whiteoutEnt(".wh.data")},
		},
		{
			name: "rename file",
			change: func(t *testing.T, root string) {
				must(t, os.Rename(root+"/etc/hosts", root+"/etc/hosts2"))
			},
			want: []got{dirEnt("etc/"), whiteoutEnt("etc/.wh.hosts"), {Name: "etc/hosts2", Type: tar.TypeReg, Mode: 0o644, Size: 20}},
		},
		{
			name: "replace file by dir",
			change: func(t *testing.T, root string) {
				must(t, os.Remove(root+"/etc/hosts"))
				must(t, os.Mkdir(root+"/etc/hosts", 0o755))
			},
			want: []got{dirEnt("etc/"), dirEnt("etc/hosts/"), whiteoutEnt("etc/hosts/.wh..wh..opq")},
		},
		{
			name: "replace symlink by dir",
			change: func(t *testing.T, root string) {
				must(t, os.Remove(root+"/dirlink"))
				must(t, os.Mkdir(root+"/dirlink", 0o755))
			},
			want: []got{dirEnt("dirlink/"), whiteoutEnt("dirlink/.wh..wh..opq")},
		},
		{
			name: "replace dir by file",
			change: func(t *testing.T, root string) {
				must(t, os.RemoveAll(root+"/data"))
				writeFile(t, root+"/data", "file", 0o644)
			},
			want: []got{{Name: "data", Type: tar.TypeReg, Mode: 0o644, Size: 4}},
		},
		{
			name: "rm -rf dir then recreate it",
			change: func(t *testing.T, root string) {
				must(t, os.RemoveAll(root+"/data"))
				must(t, os.Mkdir(root+"/data", 0o750))
				writeFile(t, root+"/data/new", "n", 0o644)
			},
			want: []got{
				{Name: "data/", Type: tar.TypeDir, Mode: 0o750},
				whiteoutEnt("data/.wh..wh..opq"),
				{Name: "data/new", Type: tar.TypeReg, Mode: 0o644, Size: 1},
			},
			// Walking cannot tell a new directory from a changed one.
			wantNaive: []got{
				{Name: "data/", Type: tar.TypeDir, Mode: 0o750},
				whiteoutEnt("data/.wh.sub"),
				whiteoutEnt("data/.wh.x"),
				whiteoutEnt("data/.wh.y"),
				{Name: "data/new", Type: tar.TypeReg, Mode: 0o644, Size: 1},
			},
		},
		{
			name: "rewrite file in place, same size and time",
			change: func(t *testing.T, root string) {
				p := root + "/etc/hosts"
				var st unix.Stat_t
				must(t, unix.Lstat(p, &st))
				writeFile(t, p, "127.0.0.2 localhost\n", 0o644)
				ts := []unix.Timespec{st.Atim, st.Mtim}
				must(t, unix.UtimesNano(p, ts))
			},
			want: []got{dirEnt("etc/"), {Name: "etc/hosts", Type: tar.TypeReg, Mode: 0o644, Size: 20}},
		},
		{
			name: "same content written again",
			change: func(t *testing.T, root string) {
				time.Sleep(2 * ctimeSlack) // past the doubt of a fresh copy
				p := root + "/etc/passwd"
				var st unix.Stat_t
				must(t, unix.Lstat(p, &st))
				writeFile(t, p, "root:x:0:0::/root:/bin/sh\n", 0o644)
				must(t, unix.UtimesNano(p, []unix.Timespec{st.Atim, st.Mtim}))
			},
			want: []got{dirEnt("etc/"), {Name: "etc/passwd", Type: tar.TypeReg, Mode: 0o644, Size: 26}},
			// Same contents, owner, mode and times: nothing to tell.
			wantNaive: []got{},
		},
		{
			name: "hardlinks",
			change: func(t *testing.T, root string) {
				writeFile(t, root+"/bin/tool", "tool", 0o755)
				must(t, os.Link(root+"/bin/tool", root+"/bin/tool2"))
				must(t, os.Link(root+"/lib/a.so", root+"/lib/b.so"))
			},
			want: []got{
				dirEnt("bin/"),
				{Name: "bin/tool", Type: tar.TypeReg, Mode: 0o755, Size: 4},
				{Name: "bin/tool2", Type: tar.TypeLink, Mode: 0o755, Link: "bin/tool"},
				dirEnt("lib/"),
				{Name: "lib/a.so", Type: tar.TypeReg, Mode: 0o755, Size: 4},
				{Name: "lib/b.so", Type: tar.TypeLink, Mode: 0o755, Link: "lib/a.so"},
			},
			// The layers' a.so is unchanged, so only the new name is
			// copied, as a file of its own (what overlay gives once
			// WriteDiff knows the lowers).
			wantNaive: []got{
				dirEnt("bin/"),
				{Name: "bin/tool", Type: tar.TypeReg, Mode: 0o755, Size: 4},
				{Name: "bin/tool2", Type: tar.TypeLink, Mode: 0o755, Link: "bin/tool"},
				dirEnt("lib/"),
				{Name: "lib/b.so", Type: tar.TypeReg, Mode: 0o755, Size: 4},
			},
		},
		{
			name: "special files",
			change: func(t *testing.T, root string) {
				must(t, os.Symlink("sh", root+"/bin/ash"))
				must(t, unix.Mkfifo(root+"/bin/fifo", 0o600))
				must(t, unix.Mknod(root+"/bin/null", unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
				must(t, unix.Chmod(root+"/bin/null", 0o666))
				must(t, os.Lchown(root+"/link", 5, 5))
			},
			want: []got{
				dirEnt("bin/"),
				{Name: "bin/ash", Type: tar.TypeSymlink, Mode: 0o777, Link: "sh"},
				{Name: "bin/fifo", Type: tar.TypeFifo, Mode: 0o600},
				{Name: "bin/null", Type: tar.TypeChar, Mode: 0o666},
				{Name: "link", Type: tar.TypeSymlink, Mode: 0o777, UID: 5, GID: 5, Link: "etc/hosts"},
			},
		},
		{
			name: "setuid and capability",
			change: func(t *testing.T, root string) {
				p := root + "/bin/ping"
				writeFile(t, p, "ping", 0o4755)
				must(t, unix.Setxattr(p, "security.capability", []byte(capNetRaw()), 0))
				must(t, unix.Setxattr(p, "user.note", []byte("dropped"), 0))
			},
			want: []got{
				dirEnt("bin/"),
				{Name: "bin/ping", Type: tar.TypeReg, Mode: 0o4755, Size: 4, Xattrs: map[string]string{"security.capability": capNetRaw()}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mount(t, s, false, lower)
			tt.change(t, m.Dir)
			want := tree(t, m.Dir)
			upper := changes(t, m)

			var buf bytes.Buffer
			n, err := WriteDiff(context.Background(), &buf, upper, DiffOptions{})
			if err != nil {
				t.Fatal(err)
			}
			gotEnts := readTar(t, buf.Bytes())
			wantEnts := tt.want
			if driver == DriverNaive && tt.wantNaive != nil {
				wantEnts = tt.wantNaive
			}
			if diff := cmp.Diff(wantEnts, gotEnts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("diff entries (-want +got):\n%s", diff)
			}
			if n != len(gotEnts) {
				t.Errorf("WriteDiff returned %d, tar has %d entries", n, len(gotEnts))
			}
			empty, err := IsEmpty(upper)
			must(t, err)
			if empty != (n == 0) {
				t.Errorf("IsEmpty = %v with %d entries", empty, n)
			}

			// Round trip: the extracted diff on top of the base is the changed tree.
			layer := extract(t, s2, buf.Bytes())
			ro := mount(t, s2, true, layer, lower2)
			if diff := cmp.Diff(want, tree(t, ro.Dir)); diff != "" {
				t.Errorf("extracted diff over base differs from the changed tree (-want +got):\n%s", diff)
			}
			// And the committed upper is the same layer.
			committed, err := s.Commit(m, diffIDOf(buf.Bytes()))
			must(t, err)
			ro2 := mount(t, s, true, committed, lower)
			if diff := cmp.Diff(want, tree(t, ro2.Dir)); diff != "" {
				t.Errorf("committed layer over base differs from the changed tree (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWriteDiffFormat checks the determinism and the header fields that the
// entry comparison leaves out.
func TestWriteDiffFormat(t *testing.T) {
	s := newStore(t)
	lower := extract(t, s, baseLayer(t))
	m := mount(t, s, false, lower)
	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	epoch := time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)
	writeFile(t, m.Dir+"/bin/new", "new", 0o755)
	writeFile(t, m.Dir+"/bin/old", "old", 0o644)
	must(t, os.Chtimes(m.Dir+"/bin/old", old, old))
	must(t, os.Remove(m.Dir+"/etc/hosts"))
	must(t, os.RemoveAll(m.Dir+"/data"))
	must(t, os.Mkdir(m.Dir+"/data", 0o755))
	long := strings.Repeat("x", 150)
	writeFile(t, m.Dir+"/data/"+long, "long name", 0o644)

	write := func() []byte {
		var buf bytes.Buffer
		if _, err := WriteDiff(context.Background(), &buf, m.Upper, DiffOptions{SourceDateEpoch: &epoch}); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	b := write()
	if !bytes.Equal(b, write()) {
		t.Fatal("two diffs of the same upper differ")
	}
	var order []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		order = append(order, h.Name)
		if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: uname %q gname %q atime %v ctime %v", h.Name, h.Uname, h.Gname, h.AccessTime, h.ChangeTime)
		}
		wantTime := epoch
		switch {
		case strings.Contains(h.Name, ".wh."):
			wantTime = time.Unix(0, 0)
		case h.Name == "bin/old":
			wantTime = old
		}
		if !h.ModTime.Equal(wantTime) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, wantTime)
		}
	}
	want := []string{"bin/", "bin/new", "bin/old", "data/", "data/.wh..wh..opq", "data/" + long, "etc/", "etc/.wh.hosts"}
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("entry order (-want +got):\n%s", diff)
	}
}

func TestWriteDiffRejectsWhiteoutNames(t *testing.T) {
	s := newStore(t)
	m := mount(t, s, false)
	must(t, os.Mkdir(filepath.Join(m.Dir, "etc"), 0o755))
	writeFile(t, filepath.Join(m.Dir, "etc/.wh.evil"), "", 0o644)
	_, err := WriteDiff(context.Background(), io.Discard, m.Upper, DiffOptions{})
	if err == nil || !strings.Contains(err.Error(), `"etc/.wh.evil"`) {
		t.Fatalf("got %v, want an error naming etc/.wh.evil", err)
	}
}

func TestWriteDiffCancel(t *testing.T) {
	s := newStore(t)
	m := mount(t, s, false)
	writeFile(t, filepath.Join(m.Dir, "f"), "x", 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := WriteDiff(ctx, io.Discard, m.Upper, DiffOptions{}); err != context.Canceled {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
