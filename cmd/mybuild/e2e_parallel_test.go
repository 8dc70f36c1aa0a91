package main

import (
	"strings"
	"testing"
)

// TestParallelStages builds two independent stages whose RUN records its
// start and end times: with --jobs 2 the two intervals overlap, with
// --jobs 1 they do not. (A functional check of concurrency; how much time
// it saves is measured by the benchmarks.)
func TestParallelStages(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": `FROM busybox AS a
RUN date +%s%N > /start; sleep 1; date +%s%N > /end

FROM busybox AS b
RUN date +%s%N > /start; sleep 1; date +%s%N > /end

FROM busybox
COPY --from=a /start /a.start
COPY --from=a /end /a.end
COPY --from=b /start /b.start
COPY --from=b /end /b.end
`})
	overlap := func(jobs string) bool {
		tag := "par" + jobs
		e.mustRun("build", "--no-cache", "--jobs", jobs, "-t", tag, ctx)
		img := e.image(tag + ":latest")
		get := func(p string) string {
			v, ok := fileIn(t, img, p)
			if !ok {
				t.Fatalf("%s missing", p)
			}
			return strings.TrimSpace(v)
		}
		aStart, aEnd, bStart, bEnd := get("a.start"), get("a.end"), get("b.start"), get("b.end")
		// Nanosecond timestamps of equal length compare as strings.
		return aStart < bEnd && bStart < aEnd
	}
	if !overlap("2") {
		t.Errorf("with --jobs 2 the independent stages did not run at the same time")
	}
	if overlap("1") {
		t.Errorf("with --jobs 1 two stages ran at the same time")
	}
}

// TestParallelStageFailure checks that a failing stage stops the build and
// its own error is the one reported, not a sibling's cancellation.
func TestParallelStageFailure(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": `FROM busybox AS slow
RUN sleep 30

FROM busybox AS broken
RUN exit 7

FROM busybox
COPY --from=slow /bin/sh /x
COPY --from=broken /bin/sh /y
`})
	stderr := e.mustFail("build", "--jobs", "2", ctx)
	if !strings.Contains(stderr, "Dockerfile:5: RUN exit 7: exit code 7") {
		t.Errorf("error is not the failing stage's:\n%s", stderr)
	}
}
