package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// snapshotterEnv names the environment variable that runs the end-to-end
// builds with a given snapshotter: MYBUILD_TEST_SNAPSHOTTER=naive go test
// ./cmd/mybuild/ runs the whole suite without overlayfs.
const snapshotterEnv = "MYBUILD_TEST_SNAPSHOTTER"

// withSnapshotter adds --snapshotter=$MYBUILD_TEST_SNAPSHOTTER to a build
// command line that does not choose one itself.
func withSnapshotter(args []string) []string {
	driver := os.Getenv(snapshotterEnv)
	if driver == "" || len(args) == 0 || args[0] != "build" {
		return args
	}
	for _, a := range args {
		if a == "--snapshotter" || strings.HasPrefix(a, "--snapshotter=") {
			return args
		}
	}
	return append([]string{"build", "--snapshotter=" + driver}, args[1:]...)
}

// TestBuildNaiveSnapshotter builds the COPY Dockerfile of
// TestBuildCopySemantics with both snapshotters: the layers must be the
// same, byte for byte, and the naive one must leave nothing behind.
func TestBuildNaiveSnapshotter(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, copySemanticsFiles)
	digests := map[string][]v1.Hash{}
	for _, driver := range []string{"overlay", "naive"} {
		r := e.mustRun("build", "--progress=plain", "--snapshotter="+driver, "-t", "copies:"+driver, ctx)
		if strings.Contains(r.stderr, "notice:") {
			t.Errorf("--snapshotter=%s printed a notice:\n%s", driver, r.stderr)
		}
		ls, err := e.image("copies:" + driver).Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			d, err := l.Digest()
			if err != nil {
				t.Fatal(err)
			}
			digests[driver] = append(digests[driver], d)
		}
	}
	if len(digests["naive"]) != baseLayers+7 {
		t.Errorf("naive build has %d layers, want %d", len(digests["naive"]), baseLayers+7)
	}
	if diff := cmp.Diff(digests["overlay"], digests["naive"]); diff != "" {
		t.Errorf("layer digests (-overlay +naive):\n%s", diff)
	}
	for _, d := range []string{"mounts", "tmp"} {
		left, err := os.ReadDir(filepath.Join(e.root, "snapshots", d))
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Errorf("snapshots/%s left after the builds: %v", d, left)
		}
	}

	stderr := e.mustFail("build", "--snapshotter=fast", ctx)
	if !strings.Contains(stderr, `unknown snapshotter "fast"`) {
		t.Errorf("--snapshotter=fast: stderr %q, want it to name the snapshotter", stderr)
	}
}
