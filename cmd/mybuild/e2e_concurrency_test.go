package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// concurrencyFiles are four Dockerfiles over one base that share their
// first steps and differ later, with RUN and COPY steps, and their context.
var concurrencyFiles = map[string]string{
	"a.Dockerfile": "FROM busybox\nRUN echo shared > /shared\nCOPY common /common\nRUN echo a >> /shared\nCOPY a /a\n",
	"b.Dockerfile": "FROM busybox\nRUN echo shared > /shared\nCOPY common /common\nCOPY b /b\nRUN cat /b /common > /bc\n",
	"c.Dockerfile": "FROM busybox\nRUN echo shared > /shared\nRUN mkdir /c && echo c > /c/c\nCOPY common /c/common\n",
	"d.Dockerfile": "FROM busybox\nRUN echo shared > /shared\nCOPY common /common\nRUN echo a >> /shared\nCOPY a /a\nENV D=1\n",
	"common":       "common\n",
	"a":            "a\n",
	"b":            "b\n",
}

const concEpoch = "SOURCE_DATE_EPOCH=1700000000"

// TestConcurrentBuildsOneStore runs 4 builds at once over one store and
// cache, 20 rounds. Even rounds use --no-cache, so the shared steps run
// and are stored by several builds at the same moment; odd rounds hit the
// cache together. Every image must be the one a serial build in a fresh
// store makes, and the store must pass fsck.
func TestConcurrentBuildsOneStore(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, concurrencyFiles)
	names := []string{"a", "b", "c", "d"}
	build := func(e *env, name string, noCache bool) (string, error) {
		args := []string{"build", "--progress=plain", "-f", ctx + "/" + name + ".Dockerfile", "-t", "conc-" + name}
		if noCache {
			args = append(args, "--no-cache")
		}
		r := e.runEnv(e.root, []string{concEpoch}, "", append(args, ctx)...)
		if r.err != nil {
			return "", fmt.Errorf("build %s: %v\n%s", name, r.err, r.stderr)
		}
		return strings.TrimSpace(r.stdout), nil
	}

	// The reference: serial builds in a store of their own.
	ref := newEnv(t)
	want := map[string]string{}
	for _, n := range names {
		id, err := build(ref, n, false)
		if err != nil {
			t.Fatal(err)
		}
		want[n] = id
	}

	start := time.Now()
	for round := range 20 {
		noCache := round%2 == 0
		ids := make([]string, len(names))
		errs := make([]error, len(names))
		var wg sync.WaitGroup
		for i, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids[i], errs[i] = build(e, n, noCache)
			}()
		}
		wg.Wait()
		for i, n := range names {
			if errs[i] != nil {
				t.Fatalf("round %d: %v", round, errs[i])
			}
			if ids[i] != want[n] {
				t.Errorf("round %d (no-cache %v): %s gave %s, a serial build %s", round, noCache, n, ids[i], want[n])
			}
		}
	}
	t.Logf("20 rounds of 4 concurrent builds in %v", time.Since(start).Round(time.Millisecond))
	for _, n := range names {
		img := e.image("conc-" + n + ":latest")
		refImg := ref.image("conc-" + n + ":latest")
		got, _ := img.Digest()
		w, _ := refImg.Digest()
		if got != w {
			t.Errorf("%s: manifest %s, serial build %s", n, got, w)
		}
	}
	checkNoMounts(t, e.root)
	e.mustBeClean()
}
