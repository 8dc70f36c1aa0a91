package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestGC(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	keep, drop := ociImage(t, 2), ociImage(t, 2)
	if _, err := s.Put(ctx, keep, []string{"keep"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, drop, []string{"drop"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, "drop"); err != nil {
		t.Fatal(err)
	}
	// This Store wrote the blobs: it keeps them.
	if got, err := s.GC(ctx); err != nil || len(got) != 0 {
		t.Fatalf("GC by the writer = %v, %v", got, err)
	}
	s.Close()

	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	other, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.GC(ctx); !errors.Is(err, ErrBusy) {
		t.Errorf("GC with another Store open = %v, want ErrBusy", err)
	}
	other.Close()
	got, err := s2.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 { // manifest, config, 2 layers
		t.Errorf("GC removed %d blobs, want 4: %v", len(got), got)
	}
	img, _, err := s2.Image("keep")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("kept image: %v", err)
	}
	// The shared lock is back: another Open makes GC busy again.
	other, err = Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := s2.GC(ctx); !errors.Is(err, ErrBusy) {
		t.Errorf("GC after relock = %v, want ErrBusy", err)
	}
}

func TestConcurrentPut(t *testing.T) {
	root := t.TempDir()
	shared, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	var cmds []*exec.Cmd
	for p := range 2 {
		prefix := fmt.Sprintf("proc%d", p)
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d", helperEnv, root, prefix, 6))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		for i := range 6 {
			want = append(want, fmt.Sprintf("%s-%d:latest", prefix, i))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		prefix := fmt.Sprintf("g%d", g)
		for i := range 3 {
			want = append(want, fmt.Sprintf("%s-%d:latest", prefix, i))
		}
		wg.Go(func() {
			if g%2 == 0 { // half share one Store, half open their own
				errs <- putMany(root, prefix, 3)
				return
			}
			for i := range 3 {
				img, err := random.Image(256, 2)
				if err == nil {
					_, err = shared.Put(context.Background(), img, []string{fmt.Sprintf("%s-%d", prefix, i)})
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("helper process: %v", err)
		}
	}
	var got []string
	for _, e := range entries(t, shared) {
		got = append(got, e.Name)
	}
	sort.Strings(got)
	sort.Strings(want)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("names (-want +got):\n%s", d)
	}
	tmp, _ := os.ReadDir(filepath.Join(root, "tmp"))
	if len(tmp) != 0 {
		t.Errorf("%d temp files left", len(tmp))
	}
}

func TestSweep(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tmp := filepath.Join(root, "tmp")
	old := time.Now().Add(-time.Hour)
	// Left by a dead process: unlocked and old.
	dead := filepath.Join(tmp, "dead")
	if err := os.WriteFile(dead, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(dead, old, old)
	deadDir := filepath.Join(tmp, "deaddir")
	os.MkdirAll(filepath.Join(deadDir, "sub"), 0o755)
	os.Chtimes(deadDir, old, old)
	// In use: locked, even if old.
	live, err := createTemp(tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer discard(live)
	os.Chtimes(live.Name(), old, old)
	// Fresh and unlocked: while another Store is open, it may be about
	// to be locked.
	fresh := filepath.Join(tmp, "fresh")
	os.WriteFile(fresh, nil, 0o600)
	other, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}

	if err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{dead: false, deadDir: false, live.Name(): true, fresh: true} {
		_, err := os.Stat(p)
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(p), got, want)
		}
	}
	// With no other Store open, nobody can be about to lock it: it goes.
	other.Close()
	if err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{live.Name(): true, fresh: false} {
		_, err := os.Stat(p)
		if got := err == nil; got != want {
			t.Errorf("idle store: %s exists = %v, want %v", filepath.Base(p), got, want)
		}
	}
}

// hang writes part of a layer, then waits to be killed.
func hang(root string) error {
	s, err := Open(root)
	if err != nil {
		return err
	}
	_, err = s.WriteLayer(context.Background(), func(w io.Writer) error {
		w.Write(make([]byte, 4<<20))
		select {}
	})
	return err
}

// TestKilledWriter kills a process in the middle of WriteLayer: the store
// stays valid, and its temp file is swept once it is old.
func TestKilledWriter(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Put(context.Background(), ociImage(t, 1), []string{"before"}); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+root+",hang")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(root, "tmp")
	var left []os.DirEntry
	for deadline := time.Now().Add(10 * time.Second); len(left) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		left, _ = os.ReadDir(tmp)
	}
	if len(left) == 0 {
		cmd.Process.Kill()
		t.Fatal("the helper wrote no temp file")
	}
	// While the writer lives, its temp file is kept however old it is.
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(tmp, left[0].Name()), old, old)
	if err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 1 {
		t.Errorf("sweep removed a live temp file")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("sweep left the dead writer's temp file")
	}
	img, _, err := s.Image("before")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Error(err)
	}
}

// TestTempDir: a caller's temp directory survives sweeps while held, even
// when old and no other Store is open, and release removes it with what it
// holds.
func TestTempDir(t *testing.T) {
	s := newStore(t)
	dir, release, err := s.TempDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(dir, old, old)
	if err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "b")); err != nil {
		t.Fatalf("a held temp dir was swept: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("temp dir mode %v, want 0700", fi.Mode())
	}
	release()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("release left the temp dir: %v", err)
	}
}
