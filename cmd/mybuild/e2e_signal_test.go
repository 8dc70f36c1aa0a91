package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptStopsRun sends SIGINT and SIGTERM to a build whose RUN
// sleeps: mybuild must stop promptly, exit non-zero, and leave no mount,
// no process and no image behind.
func TestInterruptStopsRun(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			e := newEnv(t)
			ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo started; sleep 1001.5151\n"})
			cmd := exec.Command(binPath, "--root", e.root, "build", "--progress=plain", "-t", "interrupted", ctx)
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stderr)
			var out []string
			for sc.Scan() {
				out = append(out, sc.Text())
				if strings.HasSuffix(sc.Text(), " started") {
					break
				}
			}
			t0 := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				for sc.Scan() {
					out = append(out, sc.Text())
				}
				done <- cmd.Wait()
			}()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("mybuild still running 20s after %v\n%s", sig, strings.Join(out, "\n"))
			}
			t.Logf("mybuild exited %v after %v", err, time.Since(t0))
			if err == nil {
				t.Errorf("interrupted build exited 0")
			}
			if !strings.Contains(strings.Join(out, "\n"), "interrupted") {
				t.Errorf("no 'interrupted' message:\n%s", strings.Join(out, "\n"))
			}
			procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, p := range procs {
				if b, err := os.ReadFile(p); err == nil && strings.HasPrefix(string(b), "sleep\x001001.5151") {
					t.Errorf("the RUN's process survived: %s", p)
				}
			}
			if strings.Contains(e.mustRun("images").stdout, "interrupted") {
				t.Errorf("an interrupted build stored an image")
			}
			if left, _ := filepath.Glob(filepath.Join(e.root, "snapshots", "mounts", "*")); len(left) > 0 {
				t.Errorf("mount dirs left: %v", left)
			}
		})
	}
}

// TestKillDuringRunLeavesNothingOutside: a build killed outright (SIGKILL,
// no chance to clean up) during a RUN leaves nothing in $TMPDIR: the
// sandbox's host-side files live in a temp dir of the store, which the
// next build sweeps.
func TestKillDuringRunLeavesNothingOutside(t *testing.T) {
	e := newEnv(t)
	tmpdir := t.TempDir()
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo started; sleep 1002.5151\n"})
	cmd := exec.Command(binPath, "--root", e.root, "build", "--progress=plain", "-t", "killed", ctx)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmpdir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.HasSuffix(sc.Text(), " started") {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second) // the sandbox dies with its parent
	for {
		alive := false
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			if b, err := os.ReadFile(p); err == nil && strings.HasPrefix(string(b), "sleep\x001002.5151") {
				alive = true
			}
		}
		if !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the RUN's process outlived the killed build")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if left, _ := os.ReadDir(tmpdir); len(left) > 0 {
		t.Errorf("the killed build left %d entries in $TMPDIR (%s)", len(left), left[0].Name())
	}
	storeTmp := filepath.Join(e.root, "tmp")
	if left, _ := os.ReadDir(storeTmp); len(left) == 0 {
		t.Errorf("nothing of the killed RUN in the store's temp dir: where did the sandbox keep its files?")
	}
	e.mustRun("build", "-t", "after", writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN true\n"}))
	if left, _ := os.ReadDir(storeTmp); len(left) > 0 {
		t.Errorf("the next build did not sweep the store's temp dir: %d entries left", len(left))
	}
}
