package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// TestWriteDiffWithLowers checks what WriteDiff writes when it knows the
// lowers: a replaced directory as one whiteout per hidden entry (BuildKit's
// way) instead of an opaque marker, and no entry for a directory that was
// only copied up. The diff, extracted over the base, must still give the
// changed tree.
func TestWriteDiffWithLowers(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) { testWriteDiffWithLowers(t, driver) })
	}
}

func testWriteDiffWithLowers(t *testing.T, driver string) {
	s := newDriverStore(t, driver)
	s2 := newDriverStore(t, driver)
	base := baseLayer(t)
	lower := extract(t, s, base)
	lower2 := extract(t, s2, base)
	tests := []struct {
		name   string
		change func(t *testing.T, root string)
		want   []got
		// dirTimes: the change leaves a directory with only a new
		// modification time, which BuildKit's differ (and WriteDiff) does
		// not write, so the round trip keeps the lower's time there.
		dirTimes bool
	}{
		{
			name: "directory deleted and recreated",
			change: func(t *testing.T, root string) {
				must(t, os.RemoveAll(root+"/data"))
				must(t, os.MkdirAll(root+"/data/sub", 0o755))
				writeFile(t, root+"/data/new", "n", 0o644)
			},
			want: []got{
				dirEnt("data/"),
				whiteoutEnt("data/.wh.x"),
				whiteoutEnt("data/.wh.y"),
				{Name: "data/new", Type: tar.TypeReg, Mode: 0o644, Size: 1},
				dirEnt("data/sub/"),
				whiteoutEnt("data/sub/.wh.z"),
			},
		},
		{
			name: "file replaced by a directory",
			change: func(t *testing.T, root string) {
				must(t, os.Remove(root+"/etc/hosts"))
				must(t, os.Mkdir(root+"/etc/hosts", 0o755))
			},
			want: []got{dirEnt("etc/"), dirEnt("etc/hosts/")},
		},
		{
			name: "files only copied up",
			change: func(t *testing.T, root string) {
				must(t, os.Lchown(root+"/etc/passwd", 0, 0))                // chown to the same owner
				must(t, unix.UtimesNano(root+"/etc/hosts", []unix.Timespec{ // touch -a
					unix.NsecToTimespec(time.Now().UnixNano()), {Nsec: unix.UTIME_OMIT}}))
				must(t, os.Lchown(root+"/link", 0, 0)) // a symlink, same target
				must(t, os.Chmod(root+"/lib/a.so", 0o755))
			},
		},
		{
			name: "file moved away and back",
			change: func(t *testing.T, root string) {
				fi, err := os.Stat(root + "/bin")
				must(t, err)
				must(t, os.Rename(root+"/bin/sh", root+"/bin/tmp"))
				must(t, os.Rename(root+"/bin/tmp", root+"/bin/sh"))
				// Restored so that the round trip below compares equal; the
				// next case shows the time alone makes no entry.
				must(t, os.Chtimes(root+"/bin", fi.ModTime(), fi.ModTime()))
			},
		},
		{
			name: "copied-up files changed",
			change: func(t *testing.T, root string) {
				must(t, os.Lchown(root+"/etc/passwd", 1, 2))
				must(t, os.Chmod(root+"/bin/sh", 0o700))
				must(t, os.Chtimes(root+"/lib/a.so", testTime, testTime.Add(time.Second)))
				must(t, os.Remove(root+"/link"))
				must(t, os.Symlink("etc/passwd", root+"/link"))
				must(t, unix.Setxattr(root+"/data/x", "security.capability", []byte(capNetRaw()), 0))
				must(t, os.Chtimes(root+"/data/sub/z", testTime, testTime.Add(5))) // nanoseconds only
				f, err := os.OpenFile(root+"/data/y", os.O_APPEND|os.O_WRONLY, 0)
				must(t, err)
				_, err = f.WriteString("y")
				must(t, err)
				must(t, f.Close())
			},
			want: []got{
				dirEnt("bin/"),
				{Name: "bin/sh", Type: tar.TypeReg, Mode: 0o700, Size: 2},
				dirEnt("data/"),
				dirEnt("data/sub/"),
				{Name: "data/sub/z", Type: tar.TypeReg, Mode: 0o644, Size: 1},
				{Name: "data/x", Type: tar.TypeReg, Mode: 0o644, Size: 1, Xattrs: map[string]string{"security.capability": capNetRaw()}},
				{Name: "data/y", Type: tar.TypeReg, Mode: 0o644, Size: 2},
				dirEnt("etc/"),
				{Name: "etc/passwd", Type: tar.TypeReg, Mode: 0o644, UID: 1, GID: 2, Size: 26},
				dirEnt("lib/"),
				{Name: "lib/a.so", Type: tar.TypeReg, Mode: 0o755, Size: 4},
				{Name: "link", Type: tar.TypeSymlink, Mode: 0o777, Link: "etc/passwd"},
			},
		},
		{
			name: "hard link to a lower file",
			change: func(t *testing.T, root string) {
				must(t, os.Link(root+"/lib/a.so", root+"/lib/b.so"))
				must(t, os.Link(root+"/etc/hosts", root+"/hosts"))
			},
			want: []got{
				{Name: "hosts", Type: tar.TypeReg, Mode: 0o644, Size: 20},
				dirEnt("lib/"),
				{Name: "lib/b.so", Type: tar.TypeReg, Mode: 0o755, Size: 4},
			},
		},
		{
			name: "whole-second time, same size, other contents",
			change: func(t *testing.T, root string) {
				rewriteKeepTimes(t, root+"/etc/hosts", "127.0.0.2 localhost\n")
			},
			want: []got{dirEnt("etc/"), {Name: "etc/hosts", Type: tar.TypeReg, Mode: 0o644, Size: 20}},
		},
		{
			name: "whole-second time, same contents",
			change: func(t *testing.T, root string) {
				rewriteKeepTimes(t, root+"/etc/passwd", "root:x:0:0::/root:/bin/sh\n")
			},
		},
		{
			name: "directory whose time alone changed",
			change: func(t *testing.T, root string) {
				writeFile(t, root+"/etc/tmp", "", 0o644)
				must(t, os.Remove(root+"/etc/tmp"))
				must(t, os.Mkdir(root+"/data/sub/new", 0o755))
				must(t, os.Remove(root+"/data/sub/new"))
			},
			dirTimes: true,
		},
		{
			name: "directory owner changed, nothing below",
			change: func(t *testing.T, root string) {
				must(t, os.Lchown(root+"/etc", 5, 6))
			},
			want: []got{{Name: "etc/", Type: tar.TypeDir, Mode: 0o755, UID: 5, GID: 6}},
		},
		{
			name: "directory only copied up",
			change: func(t *testing.T, root string) {
				fi, err := os.Stat(root + "/etc")
				must(t, err)
				writeFile(t, root+"/etc/tmp", "", 0o644)
				must(t, os.Remove(root+"/etc/tmp"))
				must(t, os.Chtimes(root+"/etc", fi.ModTime(), fi.ModTime()))
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
			n, err := WriteDiff(context.Background(), &buf, upper, DiffOptions{Lowers: []string{lower}})
			must(t, err)
			gotEnts := readTar(t, buf.Bytes())
			if diff := cmp.Diff(tt.want, gotEnts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("diff entries (-want +got):\n%s", diff)
			}
			if n != len(gotEnts) {
				t.Errorf("WriteDiff returned %d, tar has %d entries", n, len(gotEnts))
			}
			layer := extract(t, s2, buf.Bytes())
			ro := mount(t, s2, true, layer, lower2)
			if tt.dirTimes {
				return
			}
			if diff := cmp.Diff(want, tree(t, ro.Dir)); diff != "" {
				t.Errorf("extracted diff over base differs from the changed tree (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWriteDiffLowerLayers checks how WriteDiff finds an upper entry in a
// stack of lowers: a name whited out, or below an opaque directory, in a
// higher lower is absent however like the upper entry the one below is,
// and modification times with nanoseconds decide without the contents.
func TestWriteDiffLowerLayers(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) { testWriteDiffLowerLayers(t, driver) })
	}
}

func testWriteDiffLowerLayers(t *testing.T, driver string) {
	s := newDriverStore(t, driver)
	s2 := newDriverStore(t, driver)
	nano := testTime.Add(123)
	bottom := buildTar(t,
		ent{Name: "w/"},
		ent{Name: "w/f", Body: "f"},
		ent{Name: "o/"},
		ent{Name: "o/g", Body: "g"},
		ent{Name: "n/"},
		ent{Name: "n/h", Body: "h", MTime: nano},
		ent{Name: "n/i", Body: "i", MTime: nano},
	)
	top := buildTar(t,
		ent{Name: "w/"},
		ent{Name: "w/.wh.f"},
		ent{Name: "o/"},
		ent{Name: "o/.wh..wh..opq"},
		ent{Name: "o/k", Body: "k"},
	)
	lowers := []string{extract(t, s, top), extract(t, s, bottom)}
	lowers2 := []string{extract(t, s2, top), extract(t, s2, bottom)}
	tests := []struct {
		name   string
		change func(t *testing.T, root string)
		want   []got
		// lossy is set where WriteDiff, as BuildKit, drops a change.
		lossy bool
	}{
		{
			name: "hidden lower files made again",
			change: func(t *testing.T, root string) {
				for _, p := range []string{"w/f", "o/g"} {
					writeFile(t, root+"/"+p, p[2:], 0o644)
					must(t, os.Chtimes(root+"/"+p, testTime, testTime))
				}
			},
			want: []got{
				dirEnt("o/"),
				{Name: "o/g", Type: tar.TypeReg, Mode: 0o644, Size: 1},
				dirEnt("w/"),
				{Name: "w/f", Type: tar.TypeReg, Mode: 0o644, Size: 1},
			},
		},
		{
			name: "copy-up keeping nanoseconds",
			change: func(t *testing.T, root string) {
				must(t, os.Lchown(root+"/n/h", 0, 0))
			},
		},
		{
			name: "other contents, same size and nanoseconds",
			change: func(t *testing.T, root string) {
				rewriteKeepTimes(t, root+"/n/i", "j")
			},
			lossy: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mount(t, s, false, lowers...)
			tt.change(t, m.Dir)
			want := tree(t, m.Dir)
			upper := changes(t, m)
			var buf bytes.Buffer
			_, err := WriteDiff(context.Background(), &buf, upper, DiffOptions{Lowers: lowers})
			must(t, err)
			if diff := cmp.Diff(tt.want, readTar(t, buf.Bytes()), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("diff entries (-want +got):\n%s", diff)
			}
			if tt.lossy {
				return
			}
			layer := extract(t, s2, buf.Bytes())
			ro := mount(t, s2, true, append([]string{layer}, lowers2...)...)
			if diff := cmp.Diff(want, tree(t, ro.Dir)); diff != "" {
				t.Errorf("extracted diff over base differs from the changed tree (-want +got):\n%s", diff)
			}
		})
	}
}

// rewriteKeepTimes writes body over the file p and gives it back its
// access and modification times.
func rewriteKeepTimes(t *testing.T, p, body string) {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	writeFile(t, p, body, os.FileMode(st.Mode&0o777))
	must(t, unix.UtimesNano(p, []unix.Timespec{st.Atim, st.Mtim}))
}

// TestWriteDiffNeedlessWhiteout: an overlay whiteout for a name no lower
// has hides nothing, and BuildKit's differ leaves it out; so does
// WriteDiff given the lowers (without them it cannot tell, and keeps it).
func TestWriteDiffNeedlessWhiteout(t *testing.T) {
	dir := t.TempDir()
	lower, upper := filepath.Join(dir, "lower"), filepath.Join(dir, "upper")
	must(t, os.MkdirAll(lower+"/etc", 0o755))
	writeFile(t, lower+"/etc/a", "a", 0o644)
	must(t, os.MkdirAll(upper+"/etc", 0o755))
	must(t, os.MkdirAll(upper+"/new", 0o755))
	for _, p := range []string{"etc/a", "etc/ghost", "new/ghost", "ghost"} {
		if err := unix.Mknod(filepath.Join(upper, p), unix.S_IFCHR, 0); err != nil {
			t.Skipf("mknod of a whiteout: %v (needs CAP_MKNOD)", err)
		}
	}
	for _, tt := range []struct {
		name   string
		lowers []string
		want   []got
	}{
		{"with lowers", []string{lower}, []got{dirEnt("etc/"), whiteoutEnt("etc/.wh.a"), dirEnt("new/")}},
		{"without lowers", nil, []got{whiteoutEnt(".wh.ghost"), dirEnt("etc/"), whiteoutEnt("etc/.wh.a"),
			whiteoutEnt("etc/.wh.ghost"), dirEnt("new/"), whiteoutEnt("new/.wh.ghost")}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := WriteDiff(context.Background(), &buf, upper, DiffOptions{Lowers: tt.lowers}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, readTar(t, buf.Bytes()), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}
