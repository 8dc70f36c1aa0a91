package copier

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSourceStat checks that what the copier reads through descriptors is
// what os.Lstat and os.ReadDir say of the same entries: the file modes
// enter cache keys, and the order of entries that of the copy.
func TestSourceStat(t *testing.T) {
	root := t.TempDir()
	build(t, root, file("b.txt", "bb").withMode(0o4755), dir("a").withMode(0o1777), file("a/x", "x"),
		symlink("link", "b.txt"), special("fifo", "fifo"), special("null", "char"), special("sock", "socket"),
		file("Z", "upper case sorts first").withMode(0o2600))
	src, err := openSource(root)
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	top, err := src.openDir("")
	if err != nil {
		t.Fatal(err)
	}
	defer top.close()
	entries, err := src.entries(top)
	if err != nil {
		t.Fatal(err)
	}
	osEntries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(osEntries) {
		t.Fatalf("%d entries, os.ReadDir lists %d", len(entries), len(osEntries))
	}
	var names, osNames []string
	for i, e := range entries {
		names = append(names, e.name)
		osNames = append(osNames, osEntries[i].Name())
		if e.isDir(top) != osEntries[i].IsDir() {
			t.Errorf("%s: isDir %v, os.ReadDir says %v", e.name, e.isDir(top), osEntries[i].IsDir())
		}
		want, err := os.Lstat(filepath.Join(root, e.name))
		if err != nil {
			t.Fatal(err)
		}
		for _, stat := range []func() (os.FileInfo, error){
			func() (os.FileInfo, error) { return top.lstat(e.name) },
			func() (os.FileInfo, error) { return src.lstat(e.name) },
		} {
			got, err := stat()
			if err != nil {
				t.Fatal(err)
			}
			type view struct {
				Name    string
				Mode    os.FileMode
				Size    int64
				ModTime int64
				IsDir   bool
				Sys     any
			}
			see := func(fi os.FileInfo) view {
				return view{fi.Name(), fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), fi.IsDir(), fi.Sys()}
			}
			if diff := cmp.Diff(see(want), see(got)); diff != "" {
				t.Errorf("%s: stat differs from os.Lstat (-os +copier):\n%s", e.name, diff)
			}
		}
	}
	if diff := cmp.Diff(osNames, names); diff != "" {
		t.Errorf("entries differ from os.ReadDir (-os +copier):\n%s", diff)
	}
}
