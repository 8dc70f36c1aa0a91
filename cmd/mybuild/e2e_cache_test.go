package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cacheDockerfile has two COPYs, a RUN that uses a build arg and one that
// does not name it (but sees it, as every RUN sees the args in scope).
const cacheDockerfile = `FROM busybox:latest
COPY a.txt /a.txt
COPY b.txt /b.txt
ENV GREETING=hi
ARG FOO=x
RUN echo "$FOO" > /foo
RUN cat /a.txt /b.txt > /ab
`

// All the steps of cacheDockerfile that make progress lines, FROM aside.
var allCacheSteps = []string{"COPY a.txt /a.txt", "COPY b.txt /b.txt", `RUN echo "$FOO" > /foo`, "RUN cat /a.txt /b.txt > /ab"}

var stepLine = regexp.MustCompile(`^#(\d+) (?:\[[^\]]*\] )?(.*)$`)

// ranSteps parses --progress=plain output: the instructions of the steps
// that ran (DONE), FROM left out, and the cache miss reasons by
// instruction.
func ranSteps(t *testing.T, stderr string) (ran []string, why map[string]string) {
	t.Helper()
	names := map[string]string{}
	why = map[string]string{}
	for _, line := range strings.Split(stderr, "\n") {
		m := stepLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		id, rest := m[1], m[2]
		if _, ok := names[id]; !ok && strings.HasPrefix(line, "#"+id+" [") {
			names[id] = rest
			continue
		}
		if strings.HasPrefix(rest, "DONE") && !strings.HasPrefix(names[id], "FROM ") {
			ran = append(ran, names[id])
		}
		if i := strings.Index(rest, "cache miss: "); i >= 0 {
			why[names[id]] = rest[i+len("cache miss: "):]
		}
	}
	sort.Strings(ran)
	return ran, why
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func (e *env) buildPlain(ctx string, args ...string) (id string, ran []string, why map[string]string) {
	e.t.Helper()
	r := e.mustRun(append(append([]string{"build", "--progress=plain", "-t", "cached"}, args...), ctx)...)
	ran, why = ranSteps(e.t, r.stderr)
	return strings.TrimSpace(r.stdout), ran, why
}

func TestCacheInvalidation(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{
		"Dockerfile":    cacheDockerfile,
		"a.txt":         "a\n",
		"b.txt":         "b\n",
		"ignored.txt":   "ignored\n",
		".dockerignore": "ignored.txt\n",
	})
	// Files written just now are hashed every time (racily clean); make
	// them old enough for the stat cache.
	old := time.Now().Add(-time.Hour)
	for _, f := range []string{"a.txt", "b.txt", "ignored.txt", "Dockerfile", ".dockerignore"} {
		os.Chtimes(filepath.Join(ctx, f), old, old)
	}
	id0, ran, _ := e.buildPlain(ctx)
	if diff := cmp.Diff(sorted(allCacheSteps), ran); diff != "" {
		t.Fatalf("cold build: steps that ran (-want +got):\n%s", diff)
	}

	type scenario struct {
		name   string
		change func(t *testing.T)
		args   []string
		ran    []string
		why    map[string]string // instruction → reason, checked when set
		sameID bool
	}
	write := func(name, content string) func(t *testing.T) {
		return func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(ctx, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []scenario{
		{name: "no change", sameID: true},
		{name: "touch", change: func(t *testing.T) {
			now := time.Now()
			if err := os.Chtimes(filepath.Join(ctx, "a.txt"), now, now); err != nil {
				t.Fatal(err)
			}
		}, sameID: true},
		{name: "ignored file changed", change: write("ignored.txt", "changed\n"), sameID: true},
		{name: "unused build arg", args: []string{"--build-arg", "UNUSED=1"}, sameID: true},
		{name: "content change", change: write("b.txt", "B\n"),
			ran: []string{"COPY b.txt /b.txt", `RUN echo "$FOO" > /foo`, "RUN cat /a.txt /b.txt > /ab"},
			why: map[string]string{"COPY b.txt /b.txt": "file b.txt changed", `RUN echo "$FOO" > /foo`: "parent step changed"}},
		{name: "used build arg", args: []string{"--build-arg", "FOO=y"},
			ran: []string{`RUN echo "$FOO" > /foo`, "RUN cat /a.txt /b.txt > /ab"},
			why: map[string]string{`RUN echo "$FOO" > /foo`: "build arg FOO changed"}},
		{name: "back to the default arg", sameID: false,
			ran: nil}, // both results are kept: nothing runs
		{name: "chmod", change: func(t *testing.T) {
			if err := os.Chmod(filepath.Join(ctx, "a.txt"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, ran: sorted(allCacheSteps), why: map[string]string{"COPY a.txt /a.txt": "file a.txt changed"}},
		{name: "no-cache", args: []string{"--no-cache"}, ran: sorted(allCacheSteps)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.change != nil {
				tc.change(t)
			}
			id, ran, why := e.buildPlain(ctx, tc.args...)
			if diff := cmp.Diff(sorted(tc.ran), ran, cmp.Comparer(func(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") })); diff != "" {
				t.Errorf("steps that ran (-want +got):\n%s", diff)
			}
			for step, want := range tc.why {
				if why[step] != want {
					t.Errorf("%s: cache miss reason %q, want %q", step, why[step], want)
				}
			}
			if tc.sameID && id != id0 {
				t.Errorf("image ID %s, want %s (the cold build's)", id, id0)
			}
		})
	}
}

func TestCacheBaseImageChanged(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": cacheDockerfile, "a.txt": "a\n", "b.txt": "b\n"})
	e.buildPlain(ctx)
	// A new busybox:latest: the same files, another digest.
	rebase := writeContext(t, map[string]string{"Dockerfile": "FROM busybox:latest\nLABEL rebuilt=yes\n"})
	e.mustRun("build", "-t", "busybox:latest", rebase)
	_, ran, why := e.buildPlain(ctx)
	if diff := cmp.Diff(sorted(allCacheSteps), ran); diff != "" {
		t.Errorf("steps that ran (-want +got):\n%s", diff)
	}
	if got := why["COPY a.txt /a.txt"]; got != "base image digest changed" {
		t.Errorf("first step's miss reason %q, want the base", got)
	}
}

func TestCacheConcurrentBuilds(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox:latest\nCOPY a.txt /a.txt\nWORKDIR /app\nCOPY b.txt .\nENV X=1\n",
		"a.txt":      "a\n",
		"b.txt":      "b\n",
	})
	ids := make([]string, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.run("build", "--progress=plain", ctx)
			ids[i], errs[i] = strings.TrimSpace(r.stdout), r.err
			if r.err != nil {
				errs[i] = &buildErr{r.err, r.stderr}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if ids[0] != ids[1] {
		t.Errorf("concurrent builds gave %s and %s, want one image", ids[0], ids[1])
	}
	id, ran, _ := e.buildPlain(ctx)
	if len(ran) != 0 || id != ids[0] {
		t.Errorf("rebuild ran %q and gave %s, want all cached and %s", ran, id, ids[0])
	}
}

type buildErr struct {
	err    error
	stderr string
}

func (b *buildErr) Error() string { return b.err.Error() + "\n" + b.stderr }

func TestCachePrune(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": cacheDockerfile, "a.txt": "a\n", "b.txt": "b\n"})
	e.buildPlain(ctx)
	// rmi keeps the layers the cache uses: the rebuild is all cached.
	e.mustRun("rmi", "cached")
	if _, ran, _ := e.buildPlain(ctx); len(ran) != 0 {
		t.Errorf("after rmi, steps ran: %q", ran)
	}
	for _, args := range [][]string{{"prune"}, {"prune", "--filter", "until=24h"}, {"prune", "--keep-storage", "1GB"}} {
		e.mustRun(args...)
		if _, ran, _ := e.buildPlain(ctx); len(ran) != 0 {
			t.Errorf("after %q, steps ran: %q", args, ran)
		}
	}
	e.mustRun("rmi", "cached")
	r := e.mustRun("prune", "--all")
	if !strings.Contains(r.stdout, "Deleted") {
		t.Errorf("prune --all printed %q", r.stdout)
	}
	_, ran, why := e.buildPlain(ctx)
	if diff := cmp.Diff(sorted(allCacheSteps), ran); diff != "" {
		t.Errorf("after prune --all, steps that ran (-want +got):\n%s", diff)
	}
	if got := why["COPY a.txt /a.txt"]; got != "no earlier result" {
		t.Errorf("miss reason after prune %q", got)
	}
}

func TestCacheExportImportLocal(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox:latest AS builder\nCOPY a.txt /a.txt\nRUN cat /a.txt > /built\n" +
			"FROM busybox:latest\nCOPY --from=builder /built /built\nCOPY b.txt /b.txt\nRUN cat /built /b.txt > /all\nLABEL done=yes\n",
		"a.txt": "a\n",
		"b.txt": "b\n",
	})
	dir := filepath.Join(t.TempDir(), "cache")
	id, ran, _ := e.buildPlain(ctx, "--cache-to", "type=local,dest="+dir+",mode=max")
	if len(ran) != 5 {
		t.Fatalf("cold build ran %q", ran)
	}
	fresh := newEnv(t)
	id2, ran, _ := fresh.buildPlain(ctx, "--cache-from", "type=local,src="+dir)
	if len(ran) != 0 {
		t.Errorf("build from the imported cache ran %q, want nothing", ran)
	}
	if id2 != id {
		t.Errorf("build from the imported cache gave %s, want %s", id2, id)
	}
	// mode=min exports the target stage only: its steps hit, and the
	// builder stage is not needed... but it is still built, so it runs.
	dir2 := filepath.Join(t.TempDir(), "cache-min")
	e.buildPlain(ctx, "--cache-to", "type=local,dest="+dir2)
	other := newEnv(t)
	id3, ran, _ := other.buildPlain(ctx, "--cache-from", "type=local,src="+dir2)
	if diff := cmp.Diff([]string{"COPY a.txt /a.txt", "RUN cat /a.txt > /built"}, ran); diff != "" {
		t.Errorf("mode=min import: steps that ran (-want +got):\n%s", diff)
	}
	if id3 != id {
		t.Errorf("mode=min import gave %s, want %s", id3, id)
	}
}

func TestCacheExportImportRegistry(t *testing.T) {
	e := newEnv(t)
	reg := startRegistry(t, "", "")
	ctx := writeContext(t, map[string]string{"Dockerfile": cacheDockerfile, "a.txt": "a\n", "b.txt": "b\n"})
	ref := reg.host + "/team/app:cache"
	id, _, _ := e.buildPlain(ctx, "--cache-to", "type=registry,ref="+ref+",mode=max")
	fresh := newEnv(t)
	id2, ran, _ := fresh.buildPlain(ctx, "--cache-from", "type=registry,ref="+ref)
	if len(ran) != 0 {
		t.Errorf("build from the registry cache ran %q, want nothing", ran)
	}
	if id2 != id {
		t.Errorf("build from the registry cache gave %s, want %s", id2, id)
	}
	// A cache that cannot be read is a warning, not a failure.
	r := fresh.mustRun("build", "--cache-from", reg.host+"/team/none:cache", ctx)
	if !strings.Contains(r.stderr, "warning: import cache") {
		t.Errorf("missing cache: stderr %q, want a warning", r.stderr)
	}
}

func TestCacheNoCacheFilterAndInstruction(t *testing.T) {
	e := newEnv(t)
	df := "FROM busybox:latest AS builder\nCOPY a.txt /a.txt\n" +
		"FROM busybox:latest\nCOPY --from=builder /a.txt /a.txt\nRUN echo one > /one\n"
	ctx := writeContext(t, map[string]string{"Dockerfile": df, "a.txt": "a\n"})
	id, _, _ := e.buildPlain(ctx)
	// The builder's COPY runs again, with the same result: the last stage,
	// keyed by the builder's inputs, is cached.
	id2, ran, why := e.buildPlain(ctx, "--no-cache-filter", "builder")
	if diff := cmp.Diff([]string{"COPY a.txt /a.txt"}, ran); diff != "" {
		t.Errorf("--no-cache-filter builder: steps that ran (-want +got):\n%s", diff)
	}
	if got := why["COPY a.txt /a.txt"]; !strings.Contains(got, "--no-cache-filter") {
		t.Errorf("miss reason %q", got)
	}
	if id2 != id {
		t.Errorf("image %s, want %s", id2, id)
	}
	df2 := strings.Replace(df, "echo one", "echo two", 1)
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(df2), 0o644); err != nil {
		t.Fatal(err)
	}
	_, ran, why = e.buildPlain(ctx)
	if diff := cmp.Diff([]string{"RUN echo two > /one"}, ran); diff != "" {
		t.Errorf("changed RUN: steps that ran (-want +got):\n%s", diff)
	}
	if got := why["RUN echo two > /one"]; got != "instruction changed" {
		t.Errorf("changed RUN: miss reason %q, want instruction changed", got)
	}
}
