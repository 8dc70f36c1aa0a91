package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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
			if diff := cmp.Diff(want, tree(t, ro.Dir)); diff != "" {
				t.Errorf("extracted diff over base differs from the changed tree (-want +got):\n%s", diff)
			}
		})
	}
}
