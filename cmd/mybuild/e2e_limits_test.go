package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mybuild/mybuild/internal/procstat"
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

// hostSandboxCgroups lists the sandbox cgroups on the host now: the
// directories below a "mybuild" directory in any cgroup hierarchy.
func hostSandboxCgroups() []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var dirs []string
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if !ok || len(f) < 5 || !strings.HasPrefix(post, "cgroup") {
			continue
		}
		_ = filepath.WalkDir(f[4], func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			if filepath.Base(filepath.Dir(p)) == "mybuild" {
				dirs = append(dirs, p)
				return filepath.SkipDir
			}
			return nil
		})
	}
	return dirs
}

// watchSandboxCgroups records the sandbox cgroups that appear on the host
// for builders started by this test process (a cgroup is named after its
// builder's pid; other packages' tests run sandboxes at the same time)
// until the returned function is called; it returns them.
func watchSandboxCgroups(t *testing.T) func() []string {
	t.Helper()
	before := map[string]bool{}
	for _, d := range hostSandboxCgroups() {
		before[d] = true
	}
	stop := make(chan struct{})
	result := make(chan []string, 1)
	go func() {
		seen := map[string]bool{}
		others := map[string]bool{}
		for {
			for _, d := range hostSandboxCgroups() {
				if before[d] || seen[d] || others[d] {
					continue
				}
				pid, _, _ := strings.Cut(filepath.Base(d), "-")
				if descendant(pid, os.Getpid()) {
					seen[d] = true
				} else {
					others[d] = true
				}
			}
			select {
			case <-stop:
				var out []string
				for d := range seen {
					out = append(out, d)
				}
				result <- out
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() []string {
		close(stop)
		return <-result
	}
}

// descendant reports whether process pid is a descendant of ancestor.
func descendant(pid string, ancestor int) bool {
	for range 64 {
		st, err := procstat.Read(pid)
		if err != nil || st.PPID == "0" || st.PPID == "1" {
			return false
		}
		if pid = st.PPID; pid == strconv.Itoa(ancestor) {
			return true
		}
	}
	return false
}

// checkCgroupsGone checks that the steps ran in sandbox cgroups (seen) and
// that none of them is left.
func checkCgroupsGone(t *testing.T, seen []string) {
	t.Helper()
	if len(seen) == 0 {
		t.Error("no sandbox cgroup appeared while the build ran")
	}
	for _, d := range seen {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("cgroup %s left behind", d)
		}
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
	watch := watchSandboxCgroups(t)
	stderr := e.mustFail("build", "--progress=plain", "--pids-limit", "20", ctx)
	seen := watch()
	if d := time.Since(start); d > 25*time.Second {
		t.Errorf("build took %v", d)
	}
	want := "exit code 2: process limit reached (--pids-limit 20)"
	if !strings.Contains(stderr, "Dockerfile:2: RUN cat /proc/self/cgroup") || !strings.Contains(stderr, want) {
		t.Errorf("stderr does not contain Dockerfile:2 and %q:\n%s", want, stderr)
	}
	checkCgroupsGone(t, seen)
}

func TestE2ELimitsUnderLimits(t *testing.T) {
	e := newEnv(t)
	limitsSkip(t, e)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN sleep 0.2; x=a; for i in $(seq 16); do x=$x$x; done; echo ${#x} > /len\n"})
	watch := watchSandboxCgroups(t)
	e.mustRun("build", "--progress=plain", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", "-t", "limited", ctx)
	checkCgroupsGone(t, watch())
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
