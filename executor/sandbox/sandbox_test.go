package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mybuild/mybuild/executor/sandbox"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitArg {
		sandbox.Init()
	}
	os.Exit(m.Run())
}

var busyboxApplets = []string{
	"sh", "ls", "cat", "id", "hostname", "ip", "sleep", "grep", "wc", "echo",
	"mount", "pwd", "env", "touch", "ps", "true", "false", "kill", "test",
}

// newRoot builds a busybox root filesystem in a temporary directory, or
// skips the test when that or a namespace is not available.
func newRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandbox needs root")
	}
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no busybox: %v", err)
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "etc", "tmp", "work", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n"
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	probeNamespaces(t)
	return root
}

var (
	probeOnce sync.Once
	probeErr  error
)

func probeNamespaces(t *testing.T) {
	probeOnce.Do(func() {
		cmd := exec.Command("/bin/true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
			syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET}
		probeErr = cmd.Run()
	})
	if probeErr != nil {
		t.Skipf("namespaces refused: %v", probeErr)
	}
}

// run runs args in root with the spec's other fields from s and returns
// stdout, stderr and the error.
func run(t *testing.T, ctx context.Context, s sandbox.Spec) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	if s.Env == nil {
		s.Env = []string{"PATH=/bin"}
	}
	err := sandbox.Run(ctx, s)
	return stdout.String(), stderr.String(), err
}

func sh(root, script string) sandbox.Spec {
	return sandbox.Spec{Root: root, Args: []string{"/bin/sh", "-c", script}}
}

// tree lists the paths under root with their modification times.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		m[p] = fi.Mode().String() + " " + fi.ModTime().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// devListing is what ls /dev shows in a sandbox: runc's devices and
// links, /dev/core only where the kernel has /proc/kcore.
func devListing() string {
	core := ""
	if _, err := os.Stat("/proc/kcore"); err == nil {
		core = "core\n"
	}
	return core + "fd\nfull\nmqueue\nnull\nptmx\npts\nrandom\nshm\nstderr\nstdin\nstdout\ntty\nurandom\nzero\n"
}

func TestRun(t *testing.T) {
	root := newRoot(t)
	tests := []struct {
		name   string
		spec   sandbox.Spec
		stdout string
		stderr string
		code   int
	}{
		{name: "exit 0", spec: sh(root, "true")},
		{name: "exit 3", spec: sh(root, "exit 3"), code: 3},
		// The command is pid 1, which ignores signals it has no handler
		// for; a child killed by one gives the shell's 128+N.
		{name: "signal", spec: sh(root, "sh -c 'kill -9 $$'; exit $?"), code: 137, stderr: "Killed\n"},
		{name: "output", spec: sh(root, "echo out; echo err >&2"), stdout: "out\n", stderr: "err\n"},
		{name: "env", spec: sandbox.Spec{Root: root, Args: []string{"env"}, Env: []string{"PATH=/bin", "A=b c"}},
			stdout: "PATH=/bin\nA=b c\nHOME=/root\n"},
		{name: "home from passwd", spec: sandbox.Spec{Root: root, Args: []string{"sh", "-c", "echo $HOME"}, UID: 1000}, stdout: "/home/u\n"},
		{name: "home set", spec: sandbox.Spec{Root: root, Args: []string{"sh", "-c", "echo $HOME"}, Env: []string{"HOME=/x"}}, stdout: "/x\n"},
		{name: "cwd", spec: sandbox.Spec{Root: root, Args: []string{"pwd"}, Cwd: "/work"}, stdout: "/work\n"},
		{name: "default cwd", spec: sandbox.Spec{Root: root, Args: []string{"pwd"}}, stdout: "/\n"},
		{name: "root id", spec: sandbox.Spec{Root: root, Args: []string{"id"}}, stdout: "uid=0(root) gid=0 groups=0\n"},
		{name: "user", spec: sandbox.Spec{Root: root, Args: []string{"id"}, UID: 1000, GID: 1001, Groups: []uint32{1001, 20}},
			stdout: "uid=1000(u) gid=1001 groups=20,1001\n"}, // the kernel sorts groups
		{name: "hostname", spec: sandbox.Spec{Root: root, Args: []string{"hostname"}, Hostname: "box"}, stdout: "box\n"},
		// As under BuildKit, /etc/hostname is the image's.
		{name: "default hostname", spec: sh(root, "hostname; test -e /etc/hostname || echo none"), stdout: "sandbox\nnone\n"},
		// The command is pid 1, as under runc: nothing else is in /proc.
		{name: "pid 1", spec: sh(root, "echo $$ $PPID; set -- /proc/[0-9]*; echo $#"), stdout: "1 0\n1\n"},
		{name: "caps root", spec: sh(root, "grep -E '^Cap(Eff|Prm|Bnd|Inh)' /proc/self/status"),
			stdout: "CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n"},
		{name: "caps user", spec: sandbox.Spec{Root: root, UID: 1000, GID: 1000,
			Args: []string{"sh", "-c", "grep -E '^Cap(Eff|Bnd)' /proc/self/status"}},
			stdout: "CapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\n"},
		{name: "no mount", spec: sh(root, "mount -t tmpfs none /tmp 2>/dev/null || echo refused"), stdout: "refused\n"},
		{name: "network none", spec: sandbox.Spec{Root: root, Network: "none", Args: []string{"sh", "-c", "ls /sys/class/net; ip -o link | grep -c UP"}},
			stdout: "lo\n1\n"},
		{name: "etc files", spec: sandbox.Spec{Root: root, Hosts: []byte("1.2.3.4 x\n"), Resolv: []byte("nameserver 9.9.9.9\n"),
			Args: []string{"cat", "/etc/hosts", "/etc/resolv.conf"}}, stdout: "1.2.3.4 x\nnameserver 9.9.9.9\n"},
		{name: "etc read-only", spec: sh(root, "{ echo x > /etc/hosts; } 2>/dev/null || echo refused"), stdout: "refused\n"},
		{name: "proc masked", spec: sh(root, "wc -c < /proc/keys; ls /proc/acpi /sys/firmware | wc -l; { echo x > /proc/sys/kernel/hostname; } 2>/dev/null || echo refused"),
			stdout: "0\n3\nrefused\n"},
		{name: "dev files", spec: sandbox.Spec{Root: root, Args: []string{"/dev/pipes/EOF", "arg"},
			DevFiles: []sandbox.DevFile{{Name: "pipes/EOF", Data: []byte("#!/bin/sh\necho script $1\n"), Mode: 0o755}}},
			stdout: "script arg\n"},
		{name: "sys read-only", spec: sh(root, "touch /sys/x 2>/dev/null || echo refused"), stdout: "refused\n"},
		{name: "dev", spec: sh(root, "ls /dev; echo x > /dev/null; wc -c < /dev/zero >/dev/null & sleep 0; kill $!"),
			stdout: devListing()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := run(t, t.Context(), tt.spec)
			code := 0
			var ee *sandbox.ExitError
			if errors.As(err, &ee) {
				code = ee.Code
			} else if err != nil {
				t.Fatalf("Run: %v (stderr %q)", err, stderr)
			}
			if code != tt.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if diff := cmp.Diff(tt.stdout, stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.stderr, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	root := newRoot(t)
	_, _, err := run(t, t.Context(), sandbox.Spec{Root: root, Args: []string{"nosuchcmd"}})
	if !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("missing command: err = %v, want ErrNotFound", err)
	}
	_, _, err = run(t, t.Context(), sandbox.Spec{Root: root, Args: []string{"true"}, Cwd: "/nonexistent"})
	if err == nil || strings.Contains(err.Error(), root) {
		t.Errorf("missing cwd: err = %v, want an error without host paths", err)
	}
	_, _, err = run(t, t.Context(), sandbox.Spec{Root: root, Args: []string{"true"}, Network: "bridge"})
	if err == nil {
		t.Error("unknown network: no error")
	}
}

func TestHostHidden(t *testing.T) {
	root := newRoot(t)
	marker, err := os.CreateTemp("", "mybuild-marker-")
	if err != nil {
		t.Fatal(err)
	}
	marker.Close()
	defer os.Remove(marker.Name())
	script := "cat " + marker.Name() + " 2>/dev/null && echo visible; ls /tmp | wc -l; cat /proc/1/cmdline >/dev/null && echo proc"
	stdout, stderr, err := run(t, t.Context(), sh(root, script))
	if err != nil {
		t.Fatalf("Run: %v (stderr %q)", err, stderr)
	}
	if stdout != "0\nproc\n" {
		t.Errorf("stdout = %q, want the marker unreachable and an empty /tmp", stdout)
	}
}

func TestRootLeftClean(t *testing.T) {
	root := newRoot(t)
	// A root without the mount points, as a minimal image may be.
	before := tree(t, root)
	if _, stderr, err := run(t, t.Context(), sh(root, "cat /etc/hosts /etc/resolv.conf >/dev/null; ls /proc /sys /dev >/dev/null")); err != nil {
		t.Fatalf("Run: %v (stderr %q)", err, stderr)
	}
	if diff := cmp.Diff(before, tree(t, root)); diff != "" {
		t.Errorf("root changed (-before +after):\n%s", diff)
	}

	// A root with an /etc/hosts of its own keeps it unchanged.
	hosts := filepath.Join(root, "etc/hosts")
	if err := os.WriteFile(hosts, []byte("image hosts\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before = tree(t, root)
	stdout, _, err := run(t, t.Context(), sh(root, "cat /etc/hosts"))
	if err != nil || stdout == "image hosts\n" {
		t.Errorf("Run = %q, %v; want the sandbox's hosts", stdout, err)
	}
	if diff := cmp.Diff(before, tree(t, root)); diff != "" {
		t.Errorf("root changed (-before +after):\n%s", diff)
	}
	if data, _ := os.ReadFile(hosts); string(data) != "image hosts\n" {
		t.Errorf("image /etc/hosts = %q", data)
	}

	// Files the command writes stay.
	if _, _, err := run(t, t.Context(), sh(root, "echo hi > /work/out")); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "work/out")); string(data) != "hi\n" {
		t.Errorf("/work/out = %q", data)
	}
}

func TestNoLeftovers(t *testing.T) {
	root := newRoot(t)
	mountsBefore := mounts(t, root)
	stdout, stderr, err := run(t, t.Context(), sh(root, "sleep 1000.4242 >/dev/null 2>&1 & echo $!"))
	if err != nil {
		t.Fatalf("Run: %v (stderr %q)", err, stderr)
	}
	if stdout == "" {
		t.Fatal("no background pid")
	}
	if p := sleepers(t, "1000.4242"); len(p) != 0 {
		t.Errorf("processes left running: %v", p)
	}
	if diff := cmp.Diff(mountsBefore, mounts(t, root)); diff != "" {
		t.Errorf("mounts changed (-before +after):\n%s", diff)
	}
}

func TestCancel(t *testing.T) {
	root := newRoot(t)
	ctx, cancel := context.WithCancel(t.Context())
	var stdout bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- sandbox.Run(ctx, sandbox.Spec{Root: root, Args: []string{"sh", "-c", "echo started; sleep 100.4242"}, Stdout: &stdout})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(sleepers(t, "100.4242")) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("cancellation took %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
	if p := sleepers(t, "100.4242"); len(p) != 0 {
		t.Errorf("processes left running: %v", p)
	}
}

// sleepers lists the pids of host processes running "sleep ARG" (an
// argument no other test uses).
func sleepers(t *testing.T, arg string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if string(cmdline) == "sleep\x00"+arg+"\x00" {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// mounts lists the host's mount points under dir or the system's temporary
// directory (where Run keeps its files); other tests may mount elsewhere.
func mounts(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var m []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (strings.HasPrefix(f[4], dir) || strings.Contains(f[4], "mybuild-sandbox-")) {
			m = append(m, f[4])
		}
	}
	sort.Strings(m)
	return m
}

func TestSymlinkedMountPoints(t *testing.T) {
	root := newRoot(t)
	// Mount points planted as symbolic links leading out of the root stay
	// inside it.
	if err := os.RemoveAll(filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	host, host2 := t.TempDir(), t.TempDir()
	links := map[string]string{"etc": "/", "dev": "../../../../../" + host, "sys": host2}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	before := tree(t, root)
	stdout, stderr, err := run(t, t.Context(), sh(root, "cat /hosts >/dev/null && ls /dev/null"))
	if err != nil {
		t.Fatalf("Run: %v (stderr %q)", err, stderr)
	}
	if stdout != "/dev/null\n" {
		t.Errorf("stdout = %q", stdout)
	}
	for _, h := range []string{host, host2} {
		if entries, _ := os.ReadDir(h); len(entries) != 0 {
			t.Errorf("host directory written through a symbolic link: %v", entries)
		}
	}
	if diff := cmp.Diff(before, tree(t, root)); diff != "" {
		t.Errorf("root changed (-before +after):\n%s", diff)
	}

	// A mount point that resolves to the root itself is refused.
	if err := os.Symlink("/", filepath.Join(root, "proc")); err != nil {
		t.Fatal(err)
	}
	_, _, err = run(t, t.Context(), sh(root, "true"))
	if err == nil || strings.Contains(err.Error(), root) {
		t.Errorf("proc linked to /: err = %v, want an error without host paths", err)
	}
}
