package executor_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/mybuild/mybuild/executor"
	"github.com/mybuild/mybuild/internal/progress"
	"github.com/mybuild/mybuild/internal/store"
	"github.com/mybuild/mybuild/parser"
	"github.com/mybuild/mybuild/planner"
	"github.com/mybuild/mybuild/snapshot"
)

// newConfig gives an executor over fresh stores, or skips when this
// machine cannot mount overlayfs.
func newConfig(t *testing.T, contextDir string) *executor.Config {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the executor needs root for overlayfs mounts")
	}
	root := t.TempDir()
	st, err := store.Open(filepath.Join(root, "store"))
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := snapshot.New(filepath.Join(root, "snapshots"), snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := snaps.Mount(context.Background(), nil)
	if err != nil {
		t.Skipf("overlayfs cannot be mounted here: %v", err)
	}
	if err := m.Release(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkNoMounts(t, root) })
	return &executor.Config{Store: st, Snapshots: snaps, ContextDir: contextDir}
}

func plan(t *testing.T, dockerfile string) *planner.Plan {
	t.Helper()
	df, err := parser.Parse(strings.NewReader(dockerfile), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	p, err := planner.New(df, planner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func names(t *testing.T, l v1.Layer) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
	}
}

func TestBuildScratchStages(t *testing.T) {
	ctx := writeFiles(t, map[string]string{"a.txt": "a", "dir/b.txt": "b"})
	cfg := newConfig(t, ctx)
	var events []progress.Event
	cfg.Progress = func(ev progress.Event) { events = append(events, ev) }
	img, err := cfg.Build(context.Background(), plan(t, `FROM scratch AS one
COPY dir /d/
WORKDIR /d
FROM scratch
COPY --from=one /d /copied
COPY a.txt .
ENV K=v
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, l := range ls {
		got = append(got, names(t, l))
	}
	want := [][]string{{"copied/", "copied/b.txt"}, {"a.txt"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layers (-want +got):\n%s", diff)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var hist []string
	for _, h := range cf.History {
		hist = append(hist, h.CreatedBy)
	}
	wantHist := []string{"COPY /d /copied # buildkit", "COPY a.txt . # buildkit", "ENV K=v"}
	if diff := cmp.Diff(wantHist, hist); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	if cf.Config.WorkingDir != "" && cf.Config.WorkingDir != "/" {
		t.Errorf("WorkingDir leaked from stage one: %q", cf.Config.WorkingDir)
	}
	// FROM, COPY, WORKDIR of stage one; FROM, COPY, COPY of the target.
	var started []string
	for _, ev := range events {
		if ev.Status == progress.Started {
			started = append(started, ev.Name)
		}
	}
	wantStarted := []string{"[one 1/3] FROM scratch", "[one 2/3] COPY dir /d/", "[one 3/3] WORKDIR /d", "[1/3] FROM scratch", "[2/3] COPY --from=one /d /copied", "[3/3] COPY a.txt ."}
	if diff := cmp.Diff(wantStarted, started); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
}

func TestBuildReproducibleWithSourceDateEpoch(t *testing.T) {
	ctx := writeFiles(t, map[string]string{"a.txt": "a", "dir/b.txt": "b"})
	sde := time.Unix(1700000000, 0)
	var digests []v1.Hash
	for i := 0; i < 2; i++ {
		cfg := newConfig(t, ctx)
		cfg.SourceDateEpoch = &sde
		img, err := cfg.Build(context.Background(), plan(t, "FROM scratch\nWORKDIR /w/x\nCOPY . /app/\nLABEL a=b\n"))
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
		time.Sleep(10 * time.Millisecond)
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds with SOURCE_DATE_EPOCH differ: %s vs %s", digests[0], digests[1])
	}
}

func TestBuildStepErrorIsLocated(t *testing.T) {
	cfg := newConfig(t, writeFiles(t, map[string]string{"a.txt": "a"}))
	_, err := cfg.Build(context.Background(), plan(t, "FROM scratch\nCOPY a.txt /a\n\nCOPY nope.txt /b\n"))
	var se *executor.StepError
	if !errors.As(err, &se) {
		t.Fatalf("error %v is not a *StepError", err)
	}
	if se.Loc.Line != 4 || !strings.Contains(err.Error(), "Dockerfile:4: COPY nope.txt /b") {
		t.Errorf("error = %q, want it located at Dockerfile:4", err)
	}
}

func TestBuildCancelled(t *testing.T) {
	cfg := newConfig(t, writeFiles(t, map[string]string{"a.txt": "a"}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cfg.Build(ctx, plan(t, "FROM scratch\nCOPY a.txt /a\n")); !errors.Is(err, context.Canceled) {
		t.Errorf("Build with a cancelled context = %v, want context.Canceled", err)
	}
}

// checkNoMounts fails when anything under dir is still mounted.
func checkNoMounts(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, dir) {
			t.Errorf("mount left behind: %s", line)
		}
	}
}
