package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mybuild/mybuild/internal/mountns"
)

// TestKillLeavesNoHostMount kills builds with SIGKILL while a RUN step
// runs, with the snapshot mounts of a COPY and a RUN, and with those of
// RUN --mount (a cache filled from a stage, a writable bind of a stage, a
// writable bind of a context file). The build's mounts live in a mount
// namespace of its own: the host never sees them, and none is left once
// it is killed, before any sweep. No process of the build survives; fsck
// exits 0 and names what the build left as leftovers; the next build
// sweeps them and succeeds.
func TestKillLeavesNoHostMount(t *testing.T) {
	for _, tc := range []struct {
		name, dockerfile string
		leftovers        []string // prefixes of leftovers fsck must list
	}{
		{"copy and run", "FROM busybox\nARG NAP\nCOPY f /f\nRUN echo started; sleep $NAP\n",
			[]string{"leftover-mount snapshots/mounts/"}},
		{"run mounts", `FROM busybox AS tools
RUN mkdir /seed && echo tool > /seed/tool.txt
FROM busybox
ARG NAP
COPY f /f
RUN --mount=type=cache,target=/cache,from=tools,source=/seed --mount=type=bind,from=tools,target=/tools,rw \
    --mount=type=bind,source=f,target=/ctxf,rw sh -c 'echo started; sleep $NAP'
`, []string{"leftover-mount snapshots/mounts/", "leftover-temp mounts/tmp/m-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := writeContext(t, map[string]string{"Dockerfile": tc.dockerfile, "f": "f\n"})
			tmpdir := t.TempDir()
			const nap = "30.1717"
			cmd := exec.Command(binPath, "--root", e.root, "build", "--progress=plain", "--build-arg", "NAP="+nap, "-t", "killed", ctx)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmpdir)
			stderr, err := cmd.StderrPipe()
			noErr(t, err)
			noErr(t, cmd.Start())
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			waitForLine(t, stderr, " started")

			// The build's mounts are there, in the namespace of the
			// re-executed mybuild, and not on the host.
			child := ""
			for _, p := range buildProcesses(nap) {
				if b, _ := os.ReadFile("/proc/" + p + "/cmdline"); bytes.Contains(b, []byte("\x00"+mountns.ChildArg+"\x00")) {
					child = p
				}
			}
			if child == "" {
				t.Fatalf("no mybuild in a mount namespace of its own among %q", buildProcesses(nap))
			}
			inside := mountsUnder(t, "/proc/"+child+"/mountinfo", e.root)
			if len(inside) == 0 {
				t.Fatalf("the running build has no mount under its store")
			}
			if host := mountsUnder(t, "/proc/self/mountinfo", e.root); len(host) > 0 {
				t.Errorf("the build's mounts show on the host:\n%s", strings.Join(host, "\n"))
			}

			noErr(t, cmd.Process.Kill())
			cmd.Wait()
			for _, dir := range []string{e.root, tmpdir, ctx} {
				if left := mountsUnder(t, "/proc/self/mountinfo", dir); len(left) > 0 {
					t.Errorf("mounts under %s after the kill:\n%s", dir, strings.Join(left, "\n"))
				}
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				left := buildProcesses(nap)
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("processes of the killed build still run: %q", left)
				}
			}

			res, code := e.fsckRun()
			if code != 0 || res.Problems != 0 {
				t.Errorf("fsck after the kill: exit %d, problems %q", code, problems(res))
			}
			for _, want := range tc.leftovers {
				found := false
				for _, l := range leftovers(res) {
					found = found || strings.HasPrefix(l, want)
				}
				if !found {
					t.Errorf("fsck does not list %q among the leftovers %q", want, leftovers(res))
				}
			}
			if r := e.run("fsck"); !strings.Contains(r.stdout, "leftovers of dead builds, which the next build sweeps") {
				t.Errorf("fsck output:\n%s", r.stdout)
			}

			e.mustRun("build", "--build-arg", "NAP=0", "-t", "after", ctx)
			e.mustBeClean()
		})
	}
}

// TestSweepClearsHostLeftoverMount: a mount that a build running without
// a namespace of its own left on the host is still taken down by the next
// build's sweep, made from inside its namespace.
func TestSweepClearsHostLeftoverMount(t *testing.T) {
	e := newEnv(t)
	e.mustRun("build", "-t", "first", writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN true\n"}))
	mdir := filepath.Join(e.root, "snapshots", "mounts", "dead1")
	noErr(t, os.MkdirAll(filepath.Join(mdir, "merged"), 0o755))
	noErr(t, os.WriteFile(filepath.Join(mdir, "owner"), []byte(deadOwner(t)+"\n"), 0o600))
	if err := unix.Mount("tmpfs", filepath.Join(mdir, "merged"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(filepath.Join(mdir, "merged"), unix.MNT_DETACH) })
	e.mustRun("build", "-t", "second", writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo 2\n"}))
	if left := mountsUnder(t, "/proc/self/mountinfo", e.root); len(left) > 0 {
		t.Errorf("the sweep left the host's mount:\n%s", strings.Join(left, "\n"))
	}
	if _, err := os.Stat(mdir); !os.IsNotExist(err) {
		t.Errorf("leftover mount directory: %v", err)
	}
	e.mustBeClean()
}

// waitForLine reads r until a line ends with suffix (60 s at most).
func waitForLine(t *testing.T, r io.Reader, suffix string) {
	t.Helper()
	found := make(chan bool, 1)
	var seen []string
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.HasSuffix(sc.Text(), suffix) {
				found <- true
				return
			}
		}
		found <- false
	}()
	select {
	case ok := <-found:
		if !ok {
			t.Fatalf("no line ending in %q:\n%s", suffix, strings.Join(seen, "\n"))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("no line ending in %q after 60s", suffix)
	}
}

// buildProcesses lists the pids of the running mybuild processes (the
// binary under test: the one started, the one in its own namespace, the
// sandbox's init) and of the RUN's sleep NAP. Zombies, which have no exe,
// are dead and not listed.
func buildProcesses(nap string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		exe, _ := os.Readlink(p + "/exe")
		cmdline, _ := os.ReadFile(p + "/cmdline")
		if exe == "" {
			continue
		}
		if exe == binPath || bytes.Equal(cmdline, []byte("sleep\x00"+nap+"\x00")) {
			out = append(out, filepath.Base(p))
		}
	}
	return out
}

// mountsUnder returns the mount points of a mountinfo file under dir.
func mountsUnder(t *testing.T, mountinfo, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}
