package copier

import (
	"context"
	"io"
	"os"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/patternmatcher"
)

// TestSelectMatchesCopy checks that Select reports exactly the files and
// links Copy copies, whatever the filters.
func TestSelectMatchesCopy(t *testing.T) {
	src := []entry{
		file("a.txt", "a"), file("b.go", "b"), file("ignored.log", "i"),
		dir("src"), file("src/main.go", "m"), file("src/main_test.go", "t"), file("src/x.log", "x"),
		dir("src/deep"), file("src/deep/keep.log", "k"), file("src/deep/d.go", "d"),
		symlink("link", "a.txt"), dir("empty"),
	}
	ignore, err := patternmatcher.New([]string{"*.log", "**/*.log", "!src/deep/keep.log"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		o    Options
	}{
		{"everything", Options{Sources: []string{"."}}},
		{"ignore", Options{Sources: []string{"."}, Ignore: ignore}},
		{"wildcard", Options{Sources: []string{"*.go", "src/*.go"}}},
		{"exclude", Options{Sources: []string{"src"}, Excludes: []string{"*_test.go", "deep"}}},
		{"exclude with ignore", Options{Sources: []string{"src/"}, Excludes: []string{"*.go"}, Ignore: ignore}},
		{"parents", Options{Sources: []string{"src/./**/*.go"}, Parents: true}},
		{"link", Options{Sources: []string{"link"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srcRoot, destRoot := t.TempDir(), t.TempDir()
			build(t, srcRoot, src...)
			o := tc.o
			o.SrcRoot, o.DestRoot, o.Dest = srcRoot, destRoot, "/out/"
			if err := Copy(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			var copied []string
			for _, n := range tree(t, destRoot) {
				if n.Type != "dir" {
					copied = append(copied, n.Type+":"+n.Data+n.Link)
				}
			}
			var selected []string
			err := Select(context.Background(), o, func(e Entry) error {
				switch {
				case e.Info.Mode().IsRegular():
					f, err := e.Open()
					if err != nil {
						return err
					}
					b, err := io.ReadAll(f)
					f.Close()
					if err != nil {
						return err
					}
					selected = append(selected, "file:"+string(b))
				case e.Info.Mode()&os.ModeSymlink != 0:
					l, err := e.Readlink()
					if err != nil {
						return err
					}
					selected = append(selected, "symlink:"+l)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(copied)
			sort.Strings(selected)
			if diff := cmp.Diff(copied, selected); diff != "" {
				t.Errorf("selected vs copied (-copied +selected):\n%s", diff)
			}
		})
	}
}
