package sandbox_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mybuild/mybuild/executor/sandbox"
)

func TestMounts(t *testing.T) {
	lower := newRoot(t)
	// The image has /work but none of the other mount points.
	merged, upper := overlayRoot(t, lower)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "in.txt"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cacheDir := t.TempDir()
	before := tree(t, merged)
	s := sh(merged, `cat /src/in.txt
{ echo x > /src/new; } 2>/dev/null || echo ro refused
echo cached > /var/cache/app/out
echo scratch > /tmp/t/file && cat /tmp/t/file
cat /run/secrets/tok; echo
ls -l /run/secrets/tok | cut -c1-10
{ echo x > /run/secrets/tok; } 2>/dev/null || echo secret refused
ls /var/cache/app/nested
mount | grep -c ' /deep/a/b '`)
	s.Mounts = []sandbox.Mount{
		{Type: sandbox.MountBind, Source: src, Target: "/src", ReadOnly: true},
		{Type: sandbox.MountBind, Source: cacheDir, Target: "/var/cache/app"},
		{Type: sandbox.MountTmpfs, Target: "/var/cache/app/nested", Size: 1 << 20},
		{Type: sandbox.MountTmpfs, Target: "/tmp/t"},
		{Type: sandbox.MountFile, Target: "/run/secrets/tok", Data: []byte("s3cr3t"), Mode: 0o400},
		{Type: sandbox.MountTmpfs, Target: "/deep/a/b"},
	}
	stdout, stderr, err := run(t, t.Context(), s)
	if err != nil {
		t.Fatalf("Run: %v (stderr %q)", err, stderr)
	}
	want := "from host\nro refused\nscratch\ns3cr3t\n-r--------\nsecret refused\n1\n"
	if diff := cmp.Diff(want, stdout); diff != "" {
		t.Errorf("stdout (-want +got):\n%s\nstderr: %s", diff, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(cacheDir, "out")); err != nil || string(b) != "cached\n" {
		t.Errorf("cache dir out = %q, %v", b, err)
	}
	// Mount points and the parents made for them are gone; /etc and /tmp
	// exist in the image and the stubs copied them up, with their times
	// restored (the diff skips such unchanged directories).
	if diff := cmp.Diff([]string{"etc", "tmp"}, upperEntries(t, upper)); diff != "" {
		t.Errorf("upper (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, tree(t, merged)); diff != "" {
		t.Errorf("merged root changed (-before +after):\n%s", diff)
	}
}

func TestMountErrors(t *testing.T) {
	root := newRoot(t)
	for _, m := range []sandbox.Mount{
		{Type: sandbox.MountBind, Target: "/x"},
		{Type: sandbox.MountTmpfs, Target: "relative"},
		{Type: sandbox.MountTmpfs, Target: "/"},
		{Type: "weird", Target: "/x"},
	} {
		s := sh(root, "true")
		s.Mounts = []sandbox.Mount{m}
		if _, _, err := run(t, t.Context(), s); err == nil {
			t.Errorf("mount %+v: no error", m)
		}
	}
}
