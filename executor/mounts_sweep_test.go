package executor

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestMountsLeftovers: what a dead build left in the mounts directory is
// listed and removed only while no build holds it, and a build that starts
// alone sweeps it; cache mounts themselves are kept.
func TestMountsLeftovers(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	cache := filepath.Join(dir, CacheMountsDir, "abc")
	for _, d := range []string{"tmp/m-1/sub", "tmp/m-2", "cache/abc/0/data", "cache/abc/.new-9/x"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cache, "0.lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{"cache/abc/.new-9", "tmp/m-1", "tmp/m-2"}

	// A live build holds the directory: nothing is listed or removed.
	other, err := lockFile(ctx, filepath.Join(dir, mountsLock), unix.LOCK_SH, true)
	if err != nil {
		t.Fatal(err)
	}
	got, busy, err := MountsLeftovers(ctx, dir, true)
	if err != nil || !busy || len(got) != 0 {
		t.Fatalf("while a build runs: %q, busy %v, %v; want nothing, busy", got, busy, err)
	}
	b := &build{cfg: &Config{}}
	release, err := b.holdMountsDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if _, err := os.Stat(filepath.Join(dir, "tmp", "m-1")); err != nil {
		t.Fatalf("a build starting beside another swept: %v", err)
	}
	other()

	got, busy, err = MountsLeftovers(ctx, dir, false)
	slices.Sort(got)
	if err != nil || busy || !cmp.Equal(got, want) {
		t.Fatalf("idle: %q, busy %v, %v; want %q", got, busy, err, want)
	}

	// A build starting alone sweeps them, and holds the directory.
	release, err = b.holdMountsDir(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if _, err := os.Stat(filepath.Join(dir, w)); !os.IsNotExist(err) {
			t.Errorf("%s after the sweep: %v", w, err)
		}
	}
	if _, err := os.Stat(filepath.Join(cache, "0", "data")); err != nil {
		t.Errorf("the sweep took a cache mount: %v", err)
	}
	if _, busy, _ := MountsLeftovers(ctx, dir, true); !busy {
		t.Errorf("a running build's mounts directory is not busy")
	}
	release()
	if got, busy, err := MountsLeftovers(ctx, dir, true); len(got) != 0 || busy || err != nil {
		t.Errorf("after the sweep: %q, busy %v, %v", got, busy, err)
	}
}
