package executor_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mybuild/mybuild/cache"
	"github.com/mybuild/mybuild/executor"
	"github.com/mybuild/mybuild/internal/progress"
)

// statuses runs a build and returns, by step name (without its "[k/n] "
// prefix), what the last event said of it, and the image digest.
func statuses(t *testing.T, c *executor.Config, dockerfile string) (map[string]progress.Status, map[string]string, string) {
	t.Helper()
	var mu sync.Mutex
	got := map[string]progress.Status{}
	logs := map[string]string{}
	c.Progress = func(ev progress.Event) {
		mu.Lock()
		defer mu.Unlock()
		_, name, _ := strings.Cut(ev.Name, "] ")
		if ev.Status == progress.Log {
			logs[name] = ev.Message
			return
		}
		got[name] = ev.Status
	}
	img, err := c.Build(context.Background(), plan(t, dockerfile))
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return got, logs, d.String()
}

func TestCacheHitsAndMisses(t *testing.T) {
	ctxDir := writeFiles(t, map[string]string{"a.txt": "a", "b.txt": "b"})
	c := newConfig(t, ctxDir)
	cs, err := cache.Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	c.Cache = executor.CacheConfig{Store: cs}
	const df = "FROM scratch\nCOPY a.txt /a.txt\nENV X=1\nCOPY b.txt /b.txt\nWORKDIR /w\n"
	first, logs, d1 := statuses(t, c, df)
	for _, step := range []string{"COPY a.txt /a.txt", "COPY b.txt /b.txt", "WORKDIR /w"} {
		if first[step] != progress.Done {
			t.Errorf("cold build: %s is %q, want done", step, first[step])
		}
		if logs[step] != "cache miss: no earlier result" {
			t.Errorf("cold build: %s logged %q", step, logs[step])
		}
	}
	second, _, d2 := statuses(t, c, df)
	want := map[string]progress.Status{"FROM scratch": progress.Done, "COPY a.txt /a.txt": progress.Cached, "COPY b.txt /b.txt": progress.Cached, "WORKDIR /w": progress.Cached}
	if diff := cmp.Diff(want, second); diff != "" {
		t.Errorf("rebuild (-want +got):\n%s", diff)
	}
	if d1 != d2 {
		t.Errorf("rebuild digest %s, want %s", d2, d1)
	}

	// A layer collected since is built again.
	ents, err := cs.Records(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var removed bool
	for _, e := range ents {
		if l := e.Record.Layer; l != nil && !removed {
			p := filepath.Join(c.Store.Root(), "oci", "blobs", "sha256", l.Digest.Hex)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			removed = true
		}
	}
	third, _, d3 := statuses(t, c, df)
	var ran []string
	for step, st := range third {
		if st == progress.Done && step != "FROM scratch" {
			ran = append(ran, step)
		}
	}
	sort.Strings(ran)
	if len(ran) == 0 {
		t.Errorf("with a layer gone, nothing ran")
	}
	if d3 != d1 {
		t.Errorf("rebuilt layer: digest %s, want %s", d3, d1)
	}

	c.Cache.Disabled = true
	fourth, logs, _ := statuses(t, c, df)
	if fourth["COPY a.txt /a.txt"] != progress.Done || logs["COPY a.txt /a.txt"] != "cache miss: cache disabled (--no-cache)" {
		t.Errorf("--no-cache: %q, %q", fourth["COPY a.txt /a.txt"], logs["COPY a.txt /a.txt"])
	}
}
