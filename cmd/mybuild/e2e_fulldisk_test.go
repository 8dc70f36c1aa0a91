package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBuildFullDisk builds on a store that fills up mid-build: the error
// says "no space left on device" and what was being written, the store is
// left consistent (fsck), and once there is room again the same build
// succeeds.
func TestBuildFullDisk(t *testing.T) {
	if skipE2E != "" {
		t.Skip(skipE2E)
	}
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(root, 0); err != nil {
			unix.Unmount(root, unix.MNT_DETACH)
		}
	})
	e := &env{t: t, root: root}
	tarPath := filepath.Join(t.TempDir(), "busybox.tar")
	e.mustRunIn(baseStore, "save", "busybox:latest", "-o", tarPath, "--format", "oci-archive")
	e.mustRun("load", "-i", tarPath)

	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY big /big\nRUN test -s /big\n"})
	big := make([]byte, 40<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	noErr(t, os.WriteFile(filepath.Join(ctx, "big"), big, 0o644))

	stderr := e.mustFail("build", "--progress=plain", "-t", "big", ctx)
	t.Logf("build on a full disk:\n%s", stderr)
	if !strings.Contains(stderr, "no space left on device") {
		t.Errorf("error does not say the disk is full:\n%s", stderr)
	}
	if !strings.Contains(stderr, "COPY big /big") {
		t.Errorf("error does not say what was being written:\n%s", stderr)
	}
	checkNoMounts(t, root)
	e.mustBeClean()

	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_REMOUNT, "size=256m"); err != nil {
		t.Fatalf("grow tmpfs: %v", err)
	}
	e.mustRun("build", "--progress=plain", "-t", "big", ctx)
	e.mustBeClean()
	checkNoMounts(t, root)
}
