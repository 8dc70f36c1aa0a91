package sandbox_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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

// cgroupScript prints the sandbox's cgroups, then runs script.
const cgroupScript = "cat /proc/self/cgroup; echo ---; "

// sandboxCgroups returns the host directories of the cgroups the command
// printed with cgroupScript.
func sandboxCgroups(t *testing.T, stdout string) []string {
	t.Helper()
	head, _, _ := strings.Cut(stdout, "---")
	dirs := sandbox.HostCgroupDirs(head)
	if len(dirs) == 0 {
		t.Fatalf("command is in no sandbox cgroup:\n%s", head)
	}
	return dirs
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
	s := sh(root, cgroupScript+"x=a; while true; do x=$x$x; done")
	s.Limits.MemoryBytes = 32 << 20
	stdout, stderr, err := run(t, ctx, s)
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
	checkRemoved(t, sandboxCgroups(t, stdout))
}

func TestLimitsMemoryUnderLimit(t *testing.T) {
	root := limitsRoot(t)
	s := sh(root, cgroupScript+"x=a; for i in $(seq 10); do x=$x$x; done; echo ${#x}")
	s.Limits.MemoryBytes = 32 << 20
	stdout, _, err := run(t, context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(stdout, "1024\n") {
		t.Errorf("stdout = %q", stdout)
	}
	checkRemoved(t, sandboxCgroups(t, stdout))
}

func TestLimitsPids(t *testing.T) {
	root := limitsRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A bounded bomb: 200 sleepers, far over the limit.
	s := sh(root, cgroupScript+"for i in $(seq 200); do sleep 4321 & done; wait")
	s.Limits.PidsLimit = 32
	start := time.Now()
	stdout, stderr, err := run(t, ctx, s)
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
	checkRemoved(t, sandboxCgroups(t, stdout))
	checkNoProcess(t, "4321")
}

func TestLimitsForkBomb(t *testing.T) {
	root := limitsRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// The classic bomb never ends by itself; the limit keeps the machine
	// alive until the context kills the sandbox.
	s := sh(root, cgroupScript+"b() { b | b & }; b; sleep 1000")
	s.Limits.PidsLimit = 32
	stdout, _, err := run(t, ctx, s)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	checkRemoved(t, sandboxCgroups(t, stdout))
	checkNoProcess(t, "1000")
}

func TestLimitsCPU(t *testing.T) {
	root := limitsRoot(t)
	s := sh(root, cgroupScript+"sleep 3")
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
	dirs := sandboxCgroups(t, string(out))
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
	s := sh(root, cgroupScript+"sleep 2")
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
	n, _ := pr.Read(buf)
	dirs := sandboxCgroups(t, string(buf[:n]))
	// Make the live cgroup look old, and add a stale empty one beside it.
	old := time.Now().Add(-time.Hour)
	stale := filepath.Join(filepath.Dir(dirs[0]), "stale-test")
	if err := os.Mkdir(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range append(dirs, stale) {
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if err := sandbox.SweepCgroups(); err != nil {
		t.Fatal(err)
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
