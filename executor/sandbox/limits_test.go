package sandbox_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mybuild/mybuild/executor/sandbox"
)

// limitsRoot is newRoot with the applets the limit tests use, skipping
// when this machine cannot create cgroups.
func limitsRoot(t *testing.T) string {
	t.Helper()
	root := newRoot(t)
	for _, a := range []string{"seq", "dd", "head", "tail", "yes"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := run(t, context.Background(), sandbox.Spec{Root: root, Args: []string{"true"}, Limits: sandbox.Limits{PidsLimit: 10}})
	if err != nil && strings.Contains(err.Error(), "cgroup") {
		t.Skipf("cgroups unusable: %v", err)
	}
	return root
}

// watchCgroups records the cgroups of this process's sandboxes while they
// exist; the returned function stops and returns what it saw (failing the
// test when it saw none).
func watchCgroups(t *testing.T) func() []string {
	t.Helper()
	stop := make(chan struct{})
	seen := make(chan []string, 1)
	go func() {
		var dirs []string
		for {
			for _, d := range sandbox.SandboxCgroupDirs() {
				if !slices.Contains(dirs, d) {
					dirs = append(dirs, d)
				}
			}
			select {
			case <-stop:
				seen <- dirs
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() []string {
		t.Helper()
		close(stop)
		dirs := <-seen
		if len(dirs) == 0 {
			t.Fatal("the command ran in no sandbox cgroup")
		}
		return dirs
	}
}

func checkRemoved(t *testing.T, dirs []string) {
	t.Helper()
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left behind (%v)", d, err)
		}
	}
}

func TestLimitsMemory(t *testing.T) {
	root := limitsRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := sh(root, "sleep 0.2; x=a; while true; do x=$x$x; done")
	s.Limits.MemoryBytes = 32 << 20
	cgroups := watchCgroups(t)
	stdout, stderr, err := run(t, ctx, s)
	dirs := cgroups()
	if !errors.Is(err, sandbox.ErrOOM) {
		t.Fatalf("err = %v, want ErrOOM\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	var oe *sandbox.OOMError
	if !errors.As(err, &oe) || oe.Limit != 32<<20 || oe.Code != 137 {
		t.Errorf("err = %#v, want an *OOMError at 32MiB with code 137", err)
	}
	if want := "out of memory: killed at the memory limit of 32MiB"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q does not contain %q", err, want)
	}
	checkRemoved(t, dirs)
}

func TestLimitsMemoryUnderLimit(t *testing.T) {
	root := limitsRoot(t)
	s := sh(root, "sleep 0.2; x=a; for i in $(seq 10); do x=$x$x; done; echo ${#x}")
	s.Limits.MemoryBytes = 32 << 20
	cgroups := watchCgroups(t)
	stdout, _, err := run(t, context.Background(), s)
	dirs := cgroups()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(stdout, "1024\n") {
		t.Errorf("stdout = %q", stdout)
	}
	checkRemoved(t, dirs)
}

func TestLimitsPids(t *testing.T) {
	root := limitsRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A bounded bomb: 200 sleepers, far over the limit.
	s := sh(root, "sleep 0.2; for i in $(seq 200); do sleep 4321 & done; wait")
	s.Limits.PidsLimit = 32
	start := time.Now()
	cgroups := watchCgroups(t)
	_, stderr, err := run(t, ctx, s)
	dirs := cgroups()
	var ee *sandbox.ExitError
	if !errors.As(err, &ee) || ee.PidsLimit != 32 {
		t.Fatalf("err = %#v (%v), want an *ExitError with PidsLimit 32\nstderr:\n%s", err, err, stderr)
	}
	if want := "process limit of 32 reached"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q does not contain %q", err, want)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v", d)
	}
	checkRemoved(t, dirs)
	checkNoProcess(t, "4321")
}

func TestLimitsForkBomb(t *testing.T) {
	root := limitsRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// The classic bomb never ends by itself; the limit keeps the machine
	// alive until the context kills the sandbox.
	s := sh(root, "sleep 0.2; b() { b | b & }; b; sleep 1000")
	s.Limits.PidsLimit = 32
	cgroups := watchCgroups(t)
	_, _, err := run(t, ctx, s)
	dirs := cgroups()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	checkRemoved(t, dirs)
	checkNoProcess(t, "1000")
}

func TestLimitsCPU(t *testing.T) {
	root := limitsRoot(t)
	s := sh(root, "echo ---; sleep 3")
	s.Limits.CPUQuota, s.Limits.CPUPeriod = 50000, 200000
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	s.Stdout = pw
	done := make(chan error, 1)
	go func() { done <- sandbox.Run(context.Background(), s); pw.Close() }()
	var out []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(out), "---") {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatalf("read output: %v (%q)", err, out)
		}
		out = append(out, buf[:n]...)
	}
	dirs := sandbox.SandboxCgroupDirs()
	var got []string
	for _, d := range dirs {
		for _, f := range []string{"cpu.max", "cpu.cfs_quota_us", "cpu.cfs_period_us"} {
			if data, err := os.ReadFile(filepath.Join(d, f)); err == nil {
				got = append(got, f+"="+strings.TrimSpace(string(data)))
			}
		}
	}
	joined := strings.Join(got, " ")
	if !strings.Contains(joined, "cpu.max=50000 200000") &&
		!(strings.Contains(joined, "cpu.cfs_quota_us=50000") && strings.Contains(joined, "cpu.cfs_period_us=200000")) {
		t.Errorf("cpu files: %s", joined)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkRemoved(t, dirs)
}

func TestLimitsInvalid(t *testing.T) {
	root := limitsRoot(t)
	for _, l := range []sandbox.Limits{{MemoryBytes: -1}, {CPUQuota: 10}, {CPUQuota: 50000, CPUPeriod: 10}, {PidsLimit: -2}} {
		if _, _, err := run(t, context.Background(), sandbox.Spec{Root: root, Args: []string{"true"}, Limits: l}); err == nil {
			t.Errorf("%+v: no error", l)
		}
	}
}

// checkNoProcess fails when a process runs with arg among its arguments.
func checkNoProcess(t *testing.T, arg string) {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(data), "\x00") {
			if a == arg && strings.Contains(string(data), "sleep") {
				t.Errorf("process %s left behind: %q", e.Name(), data)
			}
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{512: "512B", 32 << 20: "32MiB", 3 << 29: "1.5GiB", 6 * 1000 * 1000: "5.722MiB"} {
		if got := sandbox.FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestSweepCgroups(t *testing.T) {
	root := limitsRoot(t)
	// A live sandbox's cgroup survives a sweep.
	s := sh(root, "echo ---; sleep 2")
	s.Limits.PidsLimit = 10
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	s.Stdout = pw
	done := make(chan error, 1)
	go func() { done <- sandbox.Run(context.Background(), s); pw.Close() }()
	buf := make([]byte, 4096)
	_, _ = pr.Read(buf)
	dirs := sandbox.SandboxCgroupDirs()
	if len(dirs) == 0 {
		t.Fatal("the command runs in no sandbox cgroup")
	}
	// Beside it, the cgroup of a builder that is gone (pid 1 did not
	// start at tick 0), with a process a killed build left running.
	stale := filepath.Join(filepath.Dir(dirs[0]), "1-0-stale")
	if err := os.Mkdir(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	leftover := exec.Command("sleep", "999.4242")
	if err := leftover.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- leftover.Wait() }()
	if err := os.WriteFile(filepath.Join(stale, "cgroup.procs"), []byte(strconv.Itoa(leftover.Process.Pid)), 0o644); err != nil {
		_ = leftover.Process.Kill()
		t.Fatal(err)
	}
	if err := sandbox.SweepCgroups(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		_ = leftover.Process.Kill()
		t.Error("the stale cgroup's process was not killed")
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		os.Remove(stale)
		t.Errorf("stale cgroup not removed: %v", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("live cgroup removed: %v", err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkRemoved(t, dirs)
}
