package sandbox_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// overlayRoot mounts an overlay with lower as its only lower directory and
// returns the merged and upper directories, or skips when overlayfs is refused.
func overlayRoot(t *testing.T, lower string) (merged, upper string) {
	t.Helper()
	dir := t.TempDir()
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("overlayfs refused: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(merged, 0); err != nil {
			t.Errorf("unmount overlay: %v", err)
		}
	})
	return merged, upper
}

func upperEntries(t *testing.T, upper string) []string {
	t.Helper()
	var names []string
	err := filepath.Walk(upper, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != upper {
			rel, _ := filepath.Rel(upper, p)
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

func TestOverlayUpperClean(t *testing.T) {
	tests := []struct {
		name  string
		setup []string // mount points present in the lower directory
		want  []string // what the upper directory holds afterwards
	}{
		{name: "image has mount points", setup: []string{"proc/", "sys/", "dev/", "etc/hosts", "etc/resolv.conf", "etc/hostname"}},
		{name: "no dirs", setup: []string{"etc/hosts", "etc/resolv.conf", "etc/hostname"}},
		// Creating the stubs copies /etc up; it stays, with its times restored.
		{name: "no etc files", setup: []string{"proc/", "sys/", "dev/"}, want: []string{"etc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lower := newRoot(t)
			for _, p := range tt.setup {
				var err error
				if p[len(p)-1] == '/' {
					err = os.Mkdir(filepath.Join(lower, p), 0o755)
				} else {
					err = os.WriteFile(filepath.Join(lower, p), nil, 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			merged, upper := overlayRoot(t, lower)
			before := tree(t, merged)
			if _, stderr, err := run(t, t.Context(), sh(merged, "cat /etc/hosts >/dev/null")); err != nil {
				t.Fatalf("Run: %v (stderr %q)", err, stderr)
			}
			if diff := cmp.Diff(tt.want, upperEntries(t, upper)); diff != "" {
				t.Errorf("upper (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tree(t, merged)); diff != "" {
				t.Errorf("merged root changed (-before +after):\n%s", diff)
			}
		})
	}
}
