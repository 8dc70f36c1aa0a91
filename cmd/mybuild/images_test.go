package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/mybuild/mybuild/internal/store"
)

// These tests run the store subcommands in-process on a store filled with
// synthetic images; they need neither root nor a build.

// historyImage has two layers and, between them, a step without a layer.
func historyImage(t *testing.T, created time.Time) v1.Image {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	var adds []mutate.Addendum
	for _, by := range []string{"COPY a.txt /a.txt", "RUN make all && make install && rm -rf /tmp/build-things"} {
		l, err := random.Layer(3000, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: by, Created: v1.Time{Time: created}}})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", "amd64", v1.Time{Time: created}
	cf.Config.Env = []string{"A=1"}
	cf.History = []v1.History{cf.History[0], {CreatedBy: "ENV A=1", EmptyLayer: true, Created: v1.Time{Time: created}}, cf.History[1]}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

type cli struct {
	t    *testing.T
	root string
}

func newCLI(t *testing.T) (*cli, *store.Store) {
	t.Helper()
	root := t.TempDir()
	st, err := store.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &cli{t: t, root: root}, st
}

func (c *cli) run(stdin string, args ...string) (string, string, int) {
	c.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"--root", c.root}, args...), strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, stderr, code := c.run("", args...)
	if code != 0 {
		c.t.Fatalf("mybuild %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return out
}

func (c *cli) fail(args ...string) string {
	c.t.Helper()
	_, stderr, code := c.run("", args...)
	if code == 0 {
		c.t.Fatalf("mybuild %s succeeded", strings.Join(args, " "))
	}
	return stderr
}

func put(t *testing.T, st *store.Store, img v1.Image, names ...string) v1.Hash {
	t.Helper()
	h, err := st.Put(context.Background(), img, names)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func imageID(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestImagesCommand(t *testing.T) {
	c, st := newCLI(t)
	app := historyImage(t, time.Now().Add(-3*time.Hour))
	old := historyImage(t, time.Now().Add(-30*24*time.Hour))
	appDigest := put(t, st, app, "app:v1", "localhost:5000/app")
	put(t, st, old, "old")
	put(t, st, historyImage(t, time.Now()), "old") // old loses its name: <none>

	out := c.ok("images")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "REPOSITORY") {
		t.Fatalf("images:\n%s", out)
	}
	for _, want := range []string{"app ", "v1 ", "localhost:5000/app ", "<none>", shortID(imageID(t, app)), "3 hours ago", "4 weeks ago", "kB"} {
		if !strings.Contains(out, want) {
			t.Errorf("images lacks %q:\n%s", want, out)
		}
	}
	if !strings.HasPrefix(lines[1], "old ") { // newest first
		t.Errorf("first row %q, want the newest image", lines[1])
	}
	if out := c.ok("images", "--digests"); !strings.Contains(out, "DIGEST") || !strings.Contains(out, appDigest.String()) {
		t.Errorf("images --digests:\n%s", out)
	}
	if got := strings.Fields(c.ok("images", "-q")); len(got) != 3 {
		t.Errorf("images -q = %q, want 3 unique IDs", got)
	}
	if got := strings.Fields(c.ok("images", "-q", "--no-trunc", "app:v1")); !cmp.Equal(got, []string{imageID(t, app).String()}) {
		t.Errorf("images -q --no-trunc app:v1 = %q", got)
	}
	// A repository without a tag lists all its tags, like docker.
	if got := strings.Fields(c.ok("images", "-q", "app")); !cmp.Equal(got, []string{shortID(imageID(t, app))}) {
		t.Errorf("images -q app = %q", got)
	}
	if got := strings.Fields(c.ok("images", "-q", "app:v2")); len(got) != 0 {
		t.Errorf("images -q app:v2 = %q", got)
	}
	var rows []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(c.ok("images", "--format", "json")), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("images --format json line %q: %v", l, err)
		}
		rows = append(rows, m)
	}
	if len(rows) != 4 || rows[0]["Repository"] != "old" || rows[0]["Tag"] != "latest" {
		t.Errorf("images --format json = %v", rows)
	}
	c.fail("images", "--format", "yaml")
	c.fail("images", "a", "b")
}

func TestInspectCommand(t *testing.T) {
	c, st := newCLI(t)
	img := historyImage(t, time.Now())
	h := put(t, st, img, "app:v1", "app:v2")
	var got []inspectImage
	if err := json.Unmarshal([]byte(c.ok("inspect", "app:v1", h.Hex[:8])), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("inspect returned %d images", len(got))
	}
	g := got[0]
	if g.ID != imageID(t, img).String() || g.Digest != h.String() || g.Os != "linux" || g.Architecture != "amd64" {
		t.Errorf("inspect = %+v", g)
	}
	if d := cmp.Diff([]string{"app:v1", "app:v2"}, g.RepoTags); d != "" {
		t.Errorf("RepoTags (-want +got):\n%s", d)
	}
	if len(g.RootFS.Layers) != 2 || len(g.History) != 3 || g.Manifest == nil || len(g.Manifest.Layers) != 2 || g.Config.Env[0] != "A=1" {
		t.Errorf("inspect = %+v", g)
	}
	// A missing image: the others are printed, the command fails.
	out, stderr, code := c.run("", "inspect", "app:v1", "nope")
	if code == 0 || !strings.Contains(stderr, `no such image: "nope:latest"`) {
		t.Errorf("inspect nope: exit %d, stderr %q", code, stderr)
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 {
		t.Errorf("inspect with a missing image printed %q", out)
	}
}

func TestHistoryCommand(t *testing.T) {
	c, st := newCLI(t)
	img := historyImage(t, time.Now().Add(-2*time.Hour))
	put(t, st, img, "app")
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := c.ok("history", "app")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("history:\n%s", out)
	}
	for i, want := range []string{
		"IMAGE",
		shortID(imageID(t, img)) + " ",
		"<missing> ",
		"<missing> ",
	} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("history line %d = %q, want prefix %q", i, lines[i], want)
		}
	}
	for i, want := range []string{"RUN make all && make install && rm -rf /tmp/…", "ENV A=1", "COPY a.txt /a.txt"} {
		if !strings.Contains(lines[i+1], want) {
			t.Errorf("history line %d = %q, want %q", i+1, lines[i+1], want)
		}
	}
	if !strings.Contains(lines[2], " 0B ") || !strings.Contains(lines[1], humanSize(m.Layers[1].Size)) || !strings.Contains(lines[1], "2 hours ago") {
		t.Errorf("history sizes/times:\n%s", out)
	}
	if out := c.ok("history", "--no-trunc", "app"); !strings.Contains(out, "rm -rf /tmp/build-things") || !strings.Contains(out, imageID(t, img).String()) {
		t.Errorf("history --no-trunc:\n%s", out)
	}
	lines = strings.Split(strings.TrimSpace(c.ok("history", "--format", "json", "--human=false", "app")), "\n")
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || len(lines) != 3 {
		t.Fatalf("history --format json: %v\n%s", err, lines)
	}
	if first["Size"] != fmt.Sprint(m.Layers[1].Size) || first["SizeBytes"] != float64(m.Layers[1].Size) || first["ID"] != shortID(imageID(t, img)) {
		t.Errorf("history json first row = %v", first)
	}
	if stderr := c.fail("history", "nope"); !strings.Contains(stderr, `no such image: "nope:latest"`) {
		t.Errorf("history nope: %s", stderr)
	}
}

func TestTagRmiCommands(t *testing.T) {
	c, st := newCLI(t)
	img := historyImage(t, time.Now())
	h := put(t, st, img, "app")
	c.ok("tag", "app", "app:v2")
	c.ok("tag", h.Hex[:6], "other")
	if stderr := c.fail("tag", "nope", "x"); !strings.Contains(stderr, `no such image: "nope:latest"`) {
		t.Errorf("tag nope: %s", stderr)
	}
	if stderr := c.fail("tag", "app", "Bad"); !strings.Contains(stderr, `"Bad"`) {
		t.Errorf("tag app Bad: %s", stderr)
	}
	if out := c.ok("rmi", "app:v2"); out != "Untagged: app:v2\n" {
		t.Errorf("rmi app:v2 = %q", out)
	}
	if stderr := c.fail("rmi", imageID(t, img).Hex[:12]); !strings.Contains(stderr, "2 names") {
		t.Errorf("rmi ID with 2 names: %s", stderr)
	}
	// With no other Store open, rmi also deletes the blobs.
	st.Close()
	want := "Untagged: app:latest\nUntagged: other:latest\nDeleted: " + h.String() + "\n"
	if out := c.ok("rmi", "-f", imageID(t, img).Hex[:12]); out != want {
		t.Errorf("rmi -f ID = %q, want %q", out, want)
	}
	if out := c.ok("images", "-q"); out != "" {
		t.Errorf("images after rmi: %q", out)
	}
	if blobs, _ := os.ReadDir(filepath.Join(c.root, "oci", "blobs", "sha256")); len(blobs) != 0 {
		t.Errorf("%d blobs left after rmi", len(blobs))
	}
	if stderr := c.fail("rmi", "app"); !strings.Contains(stderr, `no such image: "app:latest"`) {
		t.Errorf("rmi app again: %s", stderr)
	}
}

func TestSaveLoadCommands(t *testing.T) {
	for _, format := range []string{"", "docker-archive", "oci-archive"} {
		t.Run("format="+format, func(t *testing.T) {
			c, st := newCLI(t)
			img := historyImage(t, time.Now())
			put(t, st, img, "app:v1")
			untagged := put(t, st, historyImage(t, time.Now()))
			file := filepath.Join(t.TempDir(), "out.tar")
			args := []string{"save", "-o", file, "app:v1", untagged.Hex[:10]}
			if format != "" {
				args = append(args, "--format", format)
			}
			c.ok(args...)
			c2, _ := newCLI(t)
			out := c2.ok("load", "-i", file)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 2 || !strings.Contains(out, "Loaded image: app:v1\n") || !strings.Contains(out, "Loaded image ID: sha256:") {
				t.Errorf("load printed %q", out)
			}
			// From standard input.
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c3, _ := newCLI(t)
			if out, stderr, code := c3.run(string(data), "load", "-q"); code != 0 || out != "" {
				t.Errorf("load -q from stdin: exit %d, out %q, stderr %s", code, out, stderr)
			}
			if got := c3.ok("images", "-q", "--no-trunc", "app:v1"); strings.TrimSpace(got) != imageID(t, img).String() {
				t.Errorf("loaded image ID %q, want %s", got, imageID(t, img))
			}
		})
	}
	c, st := newCLI(t)
	put(t, st, historyImage(t, time.Now()), "app")
	if stderr := c.fail("save", "--format", "oci-layout", "-o", filepath.Join(t.TempDir(), "x"), "app"); !strings.Contains(stderr, "--format") {
		t.Errorf("save --format oci-layout: %s", stderr)
	}
	if stderr := c.fail("save", "-o", filepath.Join(t.TempDir(), "x"), "nope"); !strings.Contains(stderr, `no such image: "nope:latest"`) {
		t.Errorf("save nope: %s", stderr)
	}
	c.fail("load", "-i", filepath.Join(t.TempDir(), "missing.tar"))
	c.fail("load", "-i", "a", "--oci-layout", "b")
}

func TestLoadOCILayoutCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	img := historyImage(t, time.Now())
	if err := store.WriteLayout(context.Background(), dir, img, []string{"ghcr.io/x/y:1"}); err != nil {
		t.Fatal(err)
	}
	c, _ := newCLI(t)
	if out := c.ok("load", "--oci-layout", dir); out != "Loaded image: ghcr.io/x/y:1\n" {
		t.Errorf("load --oci-layout = %q", out)
	}
}

func TestStoreCommandHelp(t *testing.T) {
	c, _ := newCLI(t)
	for cmd, flags := range map[string][]string{
		"images":  {"--quiet", "--digests", "--no-trunc", "--format", "--help"},
		"inspect": {"--help"},
		"history": {"--no-trunc", "--human", "--format"},
		"tag":     {"--help"},
		"rmi":     {"--force"},
		"save":    {"--output", "--format"},
		"load":    {"--input", "--oci-layout", "--quiet"},
	} {
		out := c.ok(cmd, "--help")
		if !strings.HasPrefix(out, "Usage: mybuild "+cmd) {
			t.Errorf("%s --help starts %q", cmd, out[:min(len(out), 40)])
		}
		for _, f := range flags {
			if !strings.Contains(out, f) {
				t.Errorf("%s --help does not explain %s:\n%s", cmd, f, out)
			}
		}
		if stderr := c.fail(cmd, "--bogus"); !strings.Contains(stderr, "unknown flag") {
			t.Errorf("%s --bogus: %s", cmd, stderr)
		}
	}
}

func TestHumanFormats(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 4260000: "4.26MB", 12345678: "12.3MB", 1 << 40: "1.1TB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
	now := time.Now()
	for d, want := range map[time.Duration]string{
		0:                        "Less than a second ago",
		30 * time.Second:         "30 seconds ago",
		90 * time.Second:         "About a minute ago",
		5 * time.Minute:          "5 minutes ago",
		90 * time.Minute:         "About an hour ago",
		5 * time.Hour:            "5 hours ago",
		3 * 24 * time.Hour:       "3 days ago",
		21 * 24 * time.Hour:      "3 weeks ago",
		90 * 24 * time.Hour:      "3 months ago",
		3 * 365 * 24 * time.Hour: "3 years ago",
	} {
		if got := humanSince(now, now.Add(-d)); got != want {
			t.Errorf("humanSince(%v) = %q, want %q", d, got, want)
		}
	}
	if got := humanSince(now, time.Time{}); got != "N/A" {
		t.Errorf("humanSince(zero) = %q", got)
	}
}
