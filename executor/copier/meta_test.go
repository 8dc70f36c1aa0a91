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
	build(t, srcRoot, file("bin", "x").withMode(0o755))
	p := filepath.Join(srcRoot, "bin")
	if err := unix.Lsetxattr(p, "security.capability", capNetBind, 0); err != nil {
		t.Skipf("set security.capability: %v", err)
	}
	if err := unix.Lsetxattr(p, "user.note", []byte("hi"), 0); err != nil {
		t.Skipf("set user xattr: %v", err)
	}
	// --chown makes Copy chown the file, which clears capabilities if done
	// after setting them.
	o := Options{SrcRoot: srcRoot, DestRoot: destRoot, Sources: []string{"bin"}, Dest: "/bin", Owner: &Owner{UID: 1, GID: 1}}
	if err := Copy(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"security.capability": capNetBind, "user.note": []byte("hi")} {
		got, err := getXattr(filepath.Join(destRoot, "bin"), name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s = %v, %v; want %v", name, got, err, want)
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
