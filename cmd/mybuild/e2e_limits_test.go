package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The resource limit tests: --memory, --pids-limit and --cpus reach RUN
// steps through cgroups, and hitting a limit is reported as such.

// limitsSkip skips when this machine cannot create the cgroups RUN limits
// need, reporting mybuild's own error.
func limitsSkip(t *testing.T, e *env) {
	t.Helper()
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN true\n"})
	if r := e.run("build", "--progress=plain", "--pids-limit", "100", "--memory", "64m", ctx); r.err != nil {
		if strings.Contains(r.stderr, "cgroup") {
			t.Skipf("cgroups unusable: %s", r.stderr)
		}
		t.Fatalf("build with limits: %v\n%s", r.err, r.stderr)
	}
}

// checkCgroupsGone checks that the sandbox cgroups named in lines of
// /proc/self/cgroup output ("N:CONTROLLERS:/.../mybuild/ID") are gone.
func checkCgroupsGone(t *testing.T, out string) {
	t.Helper()
	found := 0
	for _, line := range strings.Split(out, "\n") {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 || !strings.Contains(parts[2], "/mybuild/") {
			continue
		}
		found++
		hier := parts[1]
		if hier == "" {
			hier = "unified"
		}
		dir := filepath.Join("/sys/fs/cgroup", hier, parts[2])
		if _, err := os.Stat(filepath.Dir(dir)); err != nil {
			t.Logf("cannot locate cgroup %s here: %v", line, err)
			continue
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("cgroup %s left behind", dir)
		}
	}
	if found == 0 {
		t.Errorf("no sandbox cgroup in the step's output:\n%s", out)
	}
}

func TestE2ELimitsMemory(t *testing.T) {
	e := newEnv(t)
	limitsSkip(t, e)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo start\nRUN x=a; while true; do x=$x$x; done\n"})
	stderr := e.mustFail("build", "--progress=plain", "--memory", "32m", ctx)
	want := "Dockerfile:3: RUN x=a; while true; do x=$x$x; done: out of memory: the step exceeded --memory 32MiB"
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr does not contain %q:\n%s", want, stderr)
	}
}

func TestE2ELimitsPids(t *testing.T) {
	e := newEnv(t)
	limitsSkip(t, e)
	// A bounded bomb: 200 sleepers against a limit of 20.
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN cat /proc/self/cgroup; for i in $(seq 200); do sleep 30 & done; wait\n"})
	start := time.Now()
	stderr := e.mustFail("build", "--progress=plain", "--pids-limit", "20", ctx)
	if d := time.Since(start); d > 25*time.Second {
		t.Errorf("build took %v", d)
	}
	want := "exit code 2: process limit reached (--pids-limit 20)"
	if !strings.Contains(stderr, "Dockerfile:2: RUN cat /proc/self/cgroup") || !strings.Contains(stderr, want) {
		t.Errorf("stderr does not contain Dockerfile:2 and %q:\n%s", want, stderr)
	}
	checkCgroupsGone(t, stderr)
}

func TestE2ELimitsUnderLimits(t *testing.T) {
	e := newEnv(t)
	limitsSkip(t, e)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN cat /proc/self/cgroup; x=a; for i in $(seq 16); do x=$x$x; done; echo ${#x} > /len\n"})
	r := e.mustRun("build", "--progress=plain", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", "-t", "limited", ctx)
	checkCgroupsGone(t, r.stderr)
}

func TestE2ELimitsFlags(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\n"})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--memory", "lots"}, "invalid --memory"},
		{[]string{"--memory", "1m"}, "minimum is 6MiB"},
		{[]string{"--cpus", "1", "--cpu-quota", "50000"}, "--cpus and --cpu-quota"},
		{[]string{"--pids-limit", "-3"}, "invalid --pids-limit"},
	} {
		stderr := e.mustFail(append(append([]string{"build"}, tc.args...), ctx)...)
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: stderr does not contain %q:\n%s", tc.args, tc.want, stderr)
		}
	}
}
