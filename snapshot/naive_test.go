package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestDriverChoice(t *testing.T) {
	requireOverlay(t)
	for _, tt := range []struct{ driver, want string }{
		{"", DriverOverlay},
		{DriverAuto, DriverOverlay}, // overlayfs works on this machine
		{DriverOverlay, DriverOverlay},
		{DriverNaive, DriverNaive},
	} {
		s, err := New(filepath.Join(t.TempDir(), "store"), Options{Driver: tt.driver})
		must(t, err)
		if s.Driver() != tt.want || s.Notice() != "" {
			t.Errorf("Driver %q: got %q, notice %q; want %q and no notice", tt.driver, s.Driver(), s.Notice(), tt.want)
		}
		if left, _ := os.ReadDir(s.path("tmp")); len(left) != 0 {
			t.Errorf("Driver %q: probe left %v", tt.driver, left)
		}
	}
	if _, err := New(t.TempDir(), Options{Driver: "zfs"}); err == nil || !strings.Contains(err.Error(), `unknown snapshotter "zfs"`) {
		t.Errorf("unknown driver: got %v", err)
	}
}

// TestDriverFallback makes the overlay probe fail: the store falls back
// to the naive snapshotter and says why.
func TestDriverFallback(t *testing.T) {
	requirePrivileges(t)
	root := filepath.Join(t.TempDir(), "store")
	_, err := New(root, Options{Driver: DriverNaive})
	must(t, err)
	// Overlay refuses a lower directory that is not a directory.
	must(t, os.Remove(filepath.Join(root, emptyDirs[0])))
	writeFile(t, filepath.Join(root, emptyDirs[0]), "", 0o644)
	s, err := New(root, Options{})
	if err != nil {
		t.Skipf("cannot break the store for the probe: %v", err)
	}
	t.Log(s.Notice())
	if s.Driver() != DriverNaive || !strings.HasPrefix(s.Notice(), "overlayfs unavailable (") ||
		!strings.HasSuffix(s.Notice(), "): using the naive snapshotter") {
		t.Errorf("got driver %q, notice %q", s.Driver(), s.Notice())
	}
}

// TestNaiveMergedView stacks layers with whiteouts, opaque directories,
// hard links, special files and xattrs and checks that the naive copy is
// what overlayfs shows.
func TestNaiveMergedView(t *testing.T) {
	requireOverlay(t)
	layers := [][]byte{
		buildTar(t,
			ent{Name: "./", Mode: 0o750, UID: 7, GID: 8},
			ent{Name: "a/"}, ent{Name: "a/1", Body: "1"}, ent{Name: "a/2", Body: "2"},
			ent{Name: "b/", Mode: 0o700}, ent{Name: "b/1", Body: "1"}, ent{Name: "b/deep/"}, ent{Name: "b/deep/x", Body: "x"},
			ent{Name: "c", Body: "c"}, ent{Name: "keep", Body: "keep", Mode: 0o4755},
			ent{Name: "hl", Body: "linked"}, ent{Name: "hl2", Type: tar.TypeLink, Link: "hl"},
			ent{Name: "dev", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666},
			ent{Name: "fifo", Type: tar.TypeFifo},
			ent{Name: "cap", Body: "cap", Xattrs: map[string]string{"security.capability": capNetRaw(), "user.k": "v"}},
			ent{Name: "d/"}, ent{Name: "d/f", Body: "f"},
		),
		buildTar(t,
			ent{Name: "a/", Mode: 0o711}, ent{Name: "a/.wh.1"}, ent{Name: "a/3", Body: "3"},
			ent{Name: "b/"}, ent{Name: "b/.wh..wh..opq"}, ent{Name: "b/new", Body: "new"},
			ent{Name: ".wh.c"}, ent{Name: "c/"}, ent{Name: "c/in", Body: "in"},
			ent{Name: "d", Type: tar.TypeSymlink, Link: "a"},
		),
	}
	want := map[string]map[string]node{}
	for _, driver := range drivers {
		s := newDriverStore(t, driver)
		var lowers []string
		for _, l := range layers {
			lowers = append([]string{extract(t, s, l)}, lowers...)
		}
		for _, ro := range []bool{false, true} {
			m := mount(t, s, ro, lowers...)
			key := strconv.FormatBool(ro)
			got := tree(t, m.Dir)
			if want[key] == nil {
				want[key] = got
			} else if diff := cmp.Diff(want[key], got); diff != "" {
				t.Errorf("read-only=%v: naive view differs from overlay's (-overlay +naive):\n%s", ro, diff)
			}
			if a, b := lstat(t, m.Dir+"/hl"), lstat(t, m.Dir+"/hl2"); a.Ino != b.Ino {
				t.Errorf("%s: hl and hl2 are not linked", driver)
			}
			if v, err := getXattr(m.Dir+"/cap", "security.capability"); err != nil || string(v) != capNetRaw() {
				t.Errorf("%s: security.capability = %q, %v", driver, v, err)
			}
			if ro || driver != DriverNaive {
				continue
			}
			empty, err := IsEmpty(changes(t, m))
			must(t, err)
			if !empty {
				t.Errorf("unchanged naive mount has changes: %v", names(tree(t, m.Upper)))
			}
		}
	}
}

// TestNaiveLifecycle checks that naive mounts leave nothing behind, and
// the order Changes, then Commit.
func TestNaiveLifecycle(t *testing.T) {
	s := newDriverStore(t, DriverNaive)
	l := extract(t, s, buildTar(t, ent{Name: "f", Body: "x"}))

	ro := mount(t, s, true, l)
	if _, err := ro.Changes(context.Background()); err == nil {
		t.Error("Changes of a read-only mount succeeded")
	}
	m := mount(t, s, false, l)
	writeFile(t, filepath.Join(m.Dir, "g"), "y", 0o644)
	if _, err := s.Commit(m, diffIDOf([]byte("x"))); err == nil || !strings.Contains(err.Error(), "changes not computed") {
		t.Errorf("Commit before Changes: got %v", err)
	}
	upper := changes(t, m)
	if diff := cmp.Diff([]string{".", "g"}, names(tree(t, upper))); diff != "" {
		t.Errorf("upper (-want +got):\n%s", diff)
	}
	if _, err := s.Commit(m, diffIDOf([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	must(t, ro.Release())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Mount(ctx, []string{l}); !errors.Is(err, context.Canceled) {
		t.Errorf("Mount with a cancelled context: got %v", err)
	}
	m2 := mount(t, s, false, l)
	if _, err := m2.Changes(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Changes with a cancelled context: got %v", err)
	}
	must(t, m2.Release())

	// A dead process's naive mount is swept.
	orphan, err := s.Mount(context.Background(), []string{l})
	must(t, err)
	cmd := exec.Command("true")
	must(t, cmd.Run())
	writeFile(t, filepath.Join(filepath.Dir(orphan.Dir), "owner"), strconv.Itoa(cmd.Process.Pid)+".1\n", 0o600)
	must(t, s.Sweep())

	for _, d := range []string{"mounts", "tmp"} {
		left, err := os.ReadDir(s.path(d))
		must(t, err)
		if len(left) != 0 {
			t.Errorf("%s/ left: %v", d, left)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(l, "f"), &st); err != nil {
		t.Errorf("layer damaged: %v", err)
	}
}
