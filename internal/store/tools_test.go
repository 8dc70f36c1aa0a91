package store

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// These tests check that other tools read what the store writes. They are
// skipped where the tools are not installed.

func needTool(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s is not installed", tool)
	}
	return p
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// toolStore is a store with a build-made image under two names, another
// image, and an untagged one.
func toolStore(t *testing.T) (*Store, string) {
	t.Helper()
	s := newStore(t)
	ctx := context.Background()
	h, err := s.Put(ctx, storeImage(t, s, 2), []string{"busybox", "localhost:5000/a/b:v1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, ociImage(t, 1), []string{"other:2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, ociImage(t, 1), nil); err != nil {
		t.Fatal(err)
	}
	return s, h.String()
}

func TestSkopeoReadsStore(t *testing.T) {
	skopeo := needTool(t, "skopeo")
	s, digest := toolStore(t)
	ctx := context.Background()
	oci := filepath.Join(s.Root(), "oci")

	dir := filepath.Join(t.TempDir(), "layout")
	img, _, err := s.Image("busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(ctx, dir, img, []string{"busybox"}); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "img.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteArchive(ctx, f, img, []string{"busybox"}, FormatOCIArchive); err != nil {
		t.Fatal(err)
	}
	f.Close()

	for _, ref := range []string{
		"oci:" + oci + ":busybox:latest",
		"oci:" + oci + ":localhost:5000/a/b:v1",
		"oci:" + dir + ":busybox:latest",
		"oci-archive:" + archive + ":busybox:latest",
	} {
		out := runTool(t, skopeo, "inspect", "--raw", ref)
		var m struct{ MediaType string }
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("skopeo inspect --raw %s: %v", ref, err)
		}
		out = runTool(t, skopeo, "inspect", ref)
		var info struct {
			Digest       string
			Os           string
			Architecture string
			Layers       []string
		}
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatalf("skopeo inspect %s: %v", ref, err)
		}
		if info.Digest != digest || info.Os != "linux" || len(info.Layers) != 2 {
			t.Errorf("skopeo inspect %s = %+v, want digest %s, linux, 2 layers", ref, info, digest)
		}
	}
	// skopeo copies out of the store into a fresh layout, which we load back.
	copyDir := filepath.Join(t.TempDir(), "copy")
	runTool(t, skopeo, "copy", "oci:"+oci+":other:2", "oci:"+copyDir+":other:2")
	names, err := newStore(t).LoadLayout(ctx, copyDir)
	if err != nil || len(names) != 1 || names[0] != "other:2" {
		t.Errorf("LoadLayout of skopeo's copy = %v, %v", names, err)
	}
}

func TestUmociReadsStore(t *testing.T) {
	umoci := needTool(t, "umoci")
	s, _ := toolStore(t)
	out := runTool(t, umoci, "ls", "--layout", filepath.Join(s.Root(), "oci"))
	got := strings.Fields(out)
	want := map[string]bool{"busybox:latest": true, "localhost:5000/a/b:v1": true, "other:2": true}
	for _, n := range got {
		delete(want, n)
	}
	if len(want) != 0 {
		t.Errorf("umoci ls = %q, missing %v", out, want)
	}
	out = runTool(t, umoci, "stat", "--image", filepath.Join(s.Root(), "oci")+":busybox:latest", "--json")
	if !strings.Contains(out, "RUN 1") {
		t.Errorf("umoci stat does not show the history: %s", out)
	}
	// Unpacking checks every layer blob against its digest and diffID.
	bundle := filepath.Join(t.TempDir(), "bundle")
	runTool(t, umoci, "unpack", "--rootless", "--image", filepath.Join(s.Root(), "oci")+":busybox:latest", bundle)
	if _, err := os.Stat(filepath.Join(bundle, "rootfs", "data")); err != nil {
		t.Errorf("unpacked rootfs: %v", err)
	}
}
