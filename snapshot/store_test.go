package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return string(b)
}

// TestExtractMerged extracts layers with OCI whiteouts and checks the view
// overlay gives of them.
func TestExtractMerged(t *testing.T) {
	s := newStore(t)
	l1 := extract(t, s, buildTar(t,
		ent{Name: "a/"}, ent{Name: "a/1", Body: "1"}, ent{Name: "a/2", Body: "2"},
		ent{Name: "b/"}, ent{Name: "b/1", Body: "1"},
		ent{Name: "c", Body: "c"}, ent{Name: "keep", Body: "keep"},
	))
	l2 := extract(t, s, buildTar(t,
		ent{Name: "a/"}, ent{Name: "a/.wh.1"}, ent{Name: "a/3", Body: "3"},
		ent{Name: "b/"}, ent{Name: "b/.wh..wh..opq"}, ent{Name: "b/new", Body: "new"},
		ent{Name: ".wh.c"},
	))
	m := mount(t, s, false, l2, l1)
	want := []string{".", "a", "a/2", "a/3", "b", "b/new", "keep"}
	if diff := cmp.Diff(want, names(tree(t, m.Dir))); diff != "" {
		t.Errorf("merged view (-want +got):\n%s", diff)
	}
	if got := readString(t, filepath.Join(m.Dir, "keep")); got != "keep" {
		t.Errorf("keep = %q", got)
	}
	// A second Extract finds the layer without opening the tar.
	dir, err := s.Extract(context.Background(), diffIDOf(buildTar(t,
		ent{Name: "a/"}, ent{Name: "a/.wh.1"}, ent{Name: "a/3", Body: "3"},
		ent{Name: "b/"}, ent{Name: "b/.wh..wh..opq"}, ent{Name: "b/new", Body: "new"},
		ent{Name: ".wh.c"},
	)), func() (io.ReadCloser, error) { return nil, errors.New("opened again") })
	if err != nil || dir != l2 {
		t.Errorf("second Extract = %q, %v; want %q", dir, err, l2)
	}
	if got, ok := s.Lookup(diffIDOf([]byte("nothing"))); ok {
		t.Errorf("Lookup of an unknown layer = %q", got)
	}
}

func TestExtractConcurrent(t *testing.T) {
	s := newStore(t)
	other, err := New(s.root, Options{Driver: DriverOverlay}) // a second process sharing the root
	must(t, err)
	var ents []ent
	for i := range 200 {
		ents = append(ents, ent{Name: fmt.Sprintf("f%03d", i), Body: strings.Repeat("x", i)})
	}
	b := buildTar(t, ents...)
	var wg sync.WaitGroup
	dirs := make([]string, 16)
	errs := make([]error, 16)
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := s
			if i%2 == 1 {
				st = other
			}
			dirs[i], errs[i] = st.Extract(context.Background(), diffIDOf(b), func() (io.ReadCloser, error) {
				return io.NopCloser(bytes.NewReader(b)), nil
			})
		}()
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Errorf("Extract %d = %q, %v", i, dirs[i], errs[i])
		}
	}
	if n := len(tree(t, dirs[0])); n != 201 {
		t.Errorf("layer has %d entries, want 201", n)
	}
	left, err := os.ReadDir(s.path("tmp"))
	must(t, err)
	if len(left) != 0 {
		t.Errorf("temporary directories left: %v", left)
	}
}

func TestExtractErrors(t *testing.T) {
	s := newStore(t)
	b := buildTar(t, ent{Name: "f", Body: "x"})
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	wrong := diffIDOf([]byte("other"))
	if _, err := s.Extract(context.Background(), wrong, open); err == nil || !strings.Contains(err.Error(), "verify layer") {
		t.Errorf("mismatched diffID: got %v", err)
	}
	if _, ok := s.Lookup(wrong); ok {
		t.Error("mismatched layer was stored")
	}
	if _, err := s.Extract(context.Background(), v1.Hash{Algorithm: "sha256", Hex: "../../x"}, open); err == nil {
		t.Error("invalid diffID accepted")
	}
	hostile := buildTar(t, ent{Name: "../x", Body: "x"})
	if _, err := s.Extract(context.Background(), diffIDOf(hostile), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(hostile)), nil
	}); err == nil {
		t.Error("hostile layer accepted")
	}
	left, err := os.ReadDir(s.path("tmp"))
	must(t, err)
	if len(left) != 0 {
		t.Errorf("temporary directories left: %v", left)
	}
}

// TestMountManyLayers mounts 150 lowers, through the new mount API and
// through the mount(2) fallback whose options must fit in a page.
func TestMountManyLayers(t *testing.T) {
	s := newStore(t)
	const n = 150
	lowers := make([]string, n)
	for i := range n {
		lowers[n-1-i] = extract(t, s, buildTar(t,
			ent{Name: fmt.Sprintf("f%03d", i), Body: strconv.Itoa(i)},
			ent{Name: "common", Body: strconv.Itoa(i)},
		))
	}
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			s.legacy.Store(legacy)
			for _, ro := range []bool{false, true} {
				m := mount(t, s, ro, lowers...)
				if !legacy && s.legacy.Load() {
					t.Log("the kernel lacks overlay lowerdir+: the mount(2) fallback was used")
				}
				if got := len(tree(t, m.Dir)); got != n+2 {
					t.Errorf("read-only=%v: merged view has %d entries, want %d", ro, got, n+2)
				}
				if got := readString(t, filepath.Join(m.Dir, "common")); got != strconv.Itoa(n-1) {
					t.Errorf("read-only=%v: common = %q, want the top layer's %d", ro, got, n-1)
				}
				must(t, m.Release())
			}
		})
	}
}

func TestMountReadOnly(t *testing.T) {
	s := newStore(t)
	l1 := extract(t, s, buildTar(t, ent{Name: "f", Body: "1"}, ent{Name: "g", Body: "g"}))
	l2 := extract(t, s, buildTar(t, ent{Name: ".wh.g"}, ent{Name: "h", Body: "2"}))
	tests := []struct {
		lowers []string
		want   []string
	}{
		{nil, []string{"."}},
		{[]string{l2}, []string{".", "h"}}, // the whiteout stays hidden
		{[]string{l2, l1}, []string{".", "f", "h"}},
	}
	for _, tt := range tests {
		m := mount(t, s, true, tt.lowers...)
		if diff := cmp.Diff(tt.want, names(tree(t, m.Dir))); diff != "" {
			t.Errorf("%d lowers (-want +got):\n%s", len(tt.lowers), diff)
		}
		if m.Upper != "" {
			t.Errorf("read-only mount has upper %q", m.Upper)
		}
		if err := os.WriteFile(filepath.Join(m.Dir, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("%d lowers: write gave %v, want EROFS", len(tt.lowers), err)
		}
		if _, err := s.Commit(m, diffIDOf(nil)); err == nil {
			t.Error("Commit of a read-only mount succeeded")
		}
	}
}

func TestMountScratch(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			s := newDriverStore(t, driver)
			m := mount(t, s, false)
			writeFile(t, filepath.Join(m.Dir, "f"), "x", 0o644)
			must(t, os.Mkdir(filepath.Join(m.Dir, "d"), 0o700))
			var buf bytes.Buffer
			n, err := WriteDiff(context.Background(), &buf, changes(t, m), DiffOptions{})
			must(t, err)
			want := []got{{Name: "d/", Type: tar.TypeDir, Mode: 0o700}, {Name: "f", Type: tar.TypeReg, Mode: 0o644, Size: 1}}
			if diff := cmp.Diff(want, readTar(t, buf.Bytes())); diff != "" || n != 2 {
				t.Errorf("scratch diff, %d entries (-want +got):\n%s", n, diff)
			}
		})
	}
}

func TestMountRootAttributes(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) {
			s := newDriverStore(t, driver)
			l := extract(t, s, buildTar(t, ent{Name: "./", Mode: 0o751, UID: 3, GID: 4}))
			m := mount(t, s, false, l)
			if st := lstat(t, m.Dir); st.Mode&0o7777 != 0o751 || st.Uid != 3 || st.Gid != 4 {
				t.Errorf("merged root %o %d:%d, want 751 3:4", st.Mode&0o7777, st.Uid, st.Gid)
			}
		})
	}
}

func TestCommitExisting(t *testing.T) {
	for _, driver := range drivers {
		t.Run(driver, func(t *testing.T) { testCommitExisting(t, driver) })
	}
}

func testCommitExisting(t *testing.T, driver string) {
	s := newDriverStore(t, driver)
	l := extract(t, s, buildTar(t, ent{Name: "f", Body: "x"}))
	m := mount(t, s, false)
	writeFile(t, filepath.Join(m.Dir, "other"), "y", 0o644)
	changes(t, m)
	got, err := s.Commit(m, diffIDOf(buildTar(t, ent{Name: "f", Body: "x"})))
	must(t, err)
	if got != l {
		t.Errorf("Commit = %q, want the existing %q", got, l)
	}
	if diff := cmp.Diff([]string{".", "f"}, names(tree(t, l))); diff != "" {
		t.Errorf("existing layer changed (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Dir(m.Dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount directory left: %v", err)
	}
	if _, err := s.Commit(m, diffIDOf(nil)); err == nil {
		t.Error("second Commit succeeded")
	}
	must(t, m.Release())
}

// TestSweep leaves a mounted overlay and an unfinished layer owned by a
// dead process and checks that Sweep clears them and keeps live ones.
func TestSweep(t *testing.T) {
	s := newStore(t)
	l := extract(t, s, buildTar(t, ent{Name: "f", Body: "x"}))
	cmd := exec.Command("true")
	must(t, cmd.Run())
	dead := strconv.Itoa(cmd.Process.Pid) + ".12345"

	orphan, err := s.Mount(context.Background(), []string{l})
	must(t, err)
	t.Cleanup(func() { orphan.Release() })
	writeFile(t, filepath.Join(filepath.Dir(orphan.Dir), "owner"), dead+"\n", 0o600)
	must(t, os.Mkdir(s.path("tmp", dead+"-123"), 0o700))
	writeFile(t, s.path("tmp", dead+"-123", "half"), "x", 0o644)
	live := mount(t, s, false, l)
	liveTmp := s.path("tmp", s.owner+"-456")
	must(t, os.Mkdir(liveTmp, 0o700))
	must(t, os.Symlink("/nonexistent/layer", s.path("l", "dangling")))

	must(t, s.Sweep())

	for _, p := range []string{filepath.Dir(orphan.Dir), s.path("tmp", dead+"-123"), s.path("l", "dangling")} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived Sweep: %v", p, err)
		}
	}
	if got := readString(t, filepath.Join(live.Dir, "f")); got != "x" {
		t.Errorf("live mount broken: f = %q", got)
	}
	if _, err := os.Stat(liveTmp); err != nil {
		t.Errorf("live temporary directory removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(l, "f")); err != nil {
		t.Errorf("layer damaged: %v", err)
	}
}
