package copier

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// capNetBind is a security.capability value (revision 2, effective) with
// CAP_NET_BIND_SERVICE permitted.
var capNetBind = []byte{1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

func TestCopyXattrs(t *testing.T) {
	srcRoot, destRoot := t.TempDir(), t.TempDir()
	build(t, srcRoot, dir("d"), file("d/bin", "x").withMode(0o755), special("d/fifo", "fifo"), dir("d/sub"))
	set := func(rel, name string, val []byte) {
		t.Helper()
		if err := unix.Lsetxattr(filepath.Join(srcRoot, rel), name, val, 0); err != nil {
			t.Skipf("set %s on %s: %v", name, rel, err)
		}
	}
	set("d/bin", "security.capability", capNetBind)
	set("d/bin", "user.note", []byte("hi"))
	set("d/sub", "user.dir", []byte("dir"))
	// A named pipe is read through an O_PATH descriptor, never opened.
	set("d/fifo", "trusted.pipe", []byte("pipe"))
	// --chown makes Copy chown the files, which clears capabilities if done
	// after setting them.
	o := Options{SrcRoot: srcRoot, DestRoot: destRoot, Sources: []string{"d"}, Dest: "/out/", Owner: &Owner{UID: 1, GID: 1}}
	if err := Copy(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		path, name string
		want       []byte
	}{
		{"out/bin", "security.capability", capNetBind},
		{"out/bin", "user.note", []byte("hi")},
		{"out/fifo", "trusted.pipe", []byte("pipe")},
		{"out/sub", "user.dir", []byte("dir")},
	} {
		buf := make([]byte, 64)
		n, err := unix.Lgetxattr(filepath.Join(destRoot, x.path), x.name, buf)
		if err != nil || !bytes.Equal(buf[:max(n, 0)], x.want) {
			t.Errorf("%s of %s = %q, %v; want %q", x.name, x.path, buf[:max(n, 0)], err, x.want)
		}
	}
}

func TestCopySymlinkedRoots(t *testing.T) {
	base := t.TempDir()
	build(t, base, dir("realsrc"), file("realsrc/a", "a"), dir("realdest"), symlink("src", "realsrc"), symlink("dest", "realdest"))
	o := Options{SrcRoot: filepath.Join(base, "src"), DestRoot: filepath.Join(base, "dest"), Sources: []string{"a"}, Dest: "/b", DirTime: time.Unix(tDir, 0)}
	if err := Copy(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]node{fileNode("/b", "a", "0644", tSrc)}, tree(t, filepath.Join(base, "realdest"))); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

// TestCopyOverlayUpper copies into an overlay mount, as the executor does,
// and checks that the upper directory (the layer) holds only the new file
// and the directories on its way, with their times unchanged.
func TestCopyOverlayUpper(t *testing.T) {
	base := t.TempDir()
	lower, upper, work, merged := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build(t, lower,
		dir("usr").at(tOld), dir("usr/bin").at(tOld), file("usr/bin/sh", "sh").at(tOld),
		dir("usr/local").at(tOld), symlink("usr/local/bin", "../bin").at(tOld),
		dir("etc").at(tOld), file("etc/passwd", "root").at(tOld),
	)
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work); err != nil {
		t.Skipf("mount overlay: %v", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	srcRoot := t.TempDir()
	build(t, srcRoot, file("tool", "#!/bin/sh").withMode(0o755))
	o := Options{SrcRoot: srcRoot, DestRoot: merged, Sources: []string{"tool"}, Dest: "/usr/local/bin/", DirTime: time.Unix(tDir, 0)}
	if err := Copy(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(merged, 0); err != nil {
		t.Fatal(err)
	}
	want := []node{
		dirNode("/usr", "0755", tOld),
		dirNode("/usr/bin", "0755", tOld),
		fileNode("/usr/bin/tool", "#!/bin/sh", "0755", tSrc),
	}
	if diff := cmp.Diff(want, tree(t, upper)); diff != "" {
		t.Errorf("upper directory mismatch (-want +got):\n%s", diff)
	}
}
