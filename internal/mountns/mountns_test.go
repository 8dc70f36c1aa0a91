package mountns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary plays both parts. Run with parentEnv set, it is a
// program that calls Reexec (falling back to running the scenario itself,
// as mybuild does); re-executed with ChildArg, it runs the scenario named
// by its arguments.
const parentEnv = "MOUNTNS_TEST_PARENT"

func TestMain(m *testing.M) {
	if args, ok := Child(os.Args); ok {
		os.Exit(scenario(args[1:]))
	}
	if os.Getenv(parentEnv) != "" {
		if err := Reexec(os.Args); err != nil {
			fmt.Println("no namespace:", err)
		}
		os.Exit(scenario(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// scenario runs what a test asks the child to do and returns its exit code.
func scenario(args []string) int {
	say := func(format string, a ...any) { fmt.Printf(format+"\n", a...) }
	switch args[0] {
	case "exit": // exit N
		n, _ := strconv.Atoi(args[1])
		return n
	case "raise": // raise SIGNUM: die by a signal, as a Go program can
		n, _ := strconv.Atoi(args[1])
		dieBy(syscall.Signal(n))
	case "ns": // the namespace, and whether Child thought it new
		own, _ := os.Readlink("/proc/self/ns/mnt")
		say("%s %v", own, newNamespace(os.Getppid()))
	case "echo": // a line from stdin to stdout, the identity of fd N on stderr
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		fmt.Print(line)
		n, _ := strconv.Atoi(args[1])
		var st unix.Stat_t
		if err := unix.Fstat(n, &st); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "%d:%d\n", st.Dev, st.Ino)
	case "term": // wait for SIGTERM, then exit 42
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		say("ready %d", os.Getpid())
		<-c
		return 42
	case "sleep": // say the pid, sleep
		say("ready %d", os.Getpid())
		time.Sleep(time.Minute)
	case "mount": // mount DIR: a tmpfs on DIR/out, then look for DIR/in
		dir := args[1]
		if err := unix.Mount("tmpfs", filepath.Join(dir, "out"), "tmpfs", 0, "size=1m"); err != nil {
			say("mount: %v", err)
			return 1
		}
		say("mounted")
		bufio.NewReader(os.Stdin).ReadString('\n')
		say("in mounted: %v", isMountPoint(filepath.Join(dir, "in")))
	}
	return 0
}

// parent starts the test binary as a program calling Reexec with args.
func parent(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), parentEnv+"=1")
	return cmd
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mount namespaces need root")
	}
}

// readyPid starts cmd and reads the child's "ready PID" line.
func readyPid(t *testing.T, cmd *exec.Cmd) (int, *bufio.Scanner) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatalf("no ready line from the child")
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "ready "))
	if err != nil {
		t.Fatalf("child said %q", sc.Text())
	}
	return pid, sc
}

func TestChildInNewNamespace(t *testing.T) {
	needRoot(t)
	out, err := parent(t, "ns").Output()
	if err != nil {
		t.Fatal(err)
	}
	own, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] == own || f[1] != "true" {
		t.Errorf("child says %q; the test runs in %s", out, own)
	}
	if newNamespace(os.Getpid()) {
		t.Errorf("newNamespace(own pid) = true")
	}
}

// TestExitStatus: the parent exits with the child's code, or dies by the
// signal that killed the child.
func TestExitStatus(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		args []string
		code int
		sig  syscall.Signal
	}{
		{[]string{"exit", "0"}, 0, 0},
		{[]string{"exit", "7"}, 7, 0},
		{[]string{"raise", strconv.Itoa(int(syscall.SIGHUP))}, -1, syscall.SIGHUP},
		{[]string{"raise", strconv.Itoa(int(syscall.SIGPIPE))}, -1, syscall.SIGPIPE},
		{[]string{"raise", strconv.Itoa(int(syscall.SIGUSR1))}, -1, syscall.SIGUSR1},
	} {
		cmd := parent(t, tc.args...)
		out, err := cmd.Output()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if strings.Contains(string(out), "no namespace") {
			t.Fatalf("%v: %s", tc.args, out)
		}
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if got := cmd.ProcessState.ExitCode(); got != tc.code || (tc.sig != 0 && (!ws.Signaled() || ws.Signal() != tc.sig)) {
			t.Errorf("%v: parent ended with %v, want code %d, signal %v", tc.args, cmd.ProcessState, tc.code, tc.sig)
		}
	}
}

// TestPassesDescriptors: stdin, stdout, stderr and an inherited fd 3 reach
// the child as they are.
func TestPassesDescriptors(t *testing.T) {
	needRoot(t)
	f, err := os.CreateTemp(t.TempDir(), "fd")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	cmd := parent(t, "echo", "3")
	cmd.Stdin = strings.NewReader("hello\n")
	cmd.ExtraFiles = []*os.File{f}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if string(out) != "hello\n" {
		t.Errorf("stdout %q, want hello", out)
	}
	if want := fmt.Sprintf("%d:%d\n", st.Dev, st.Ino); stderr.String() != want {
		t.Errorf("fd 3 in the child is %q, want %q", stderr.String(), want)
	}
}

// TestForwardsSignals: SIGTERM sent to the parent reaches the child, whose
// exit code the parent then takes.
func TestForwardsSignals(t *testing.T) {
	needRoot(t)
	cmd := parent(t, "term")
	readyPid(t, cmd)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the child did not get the SIGTERM sent to the parent")
	}
	if got := cmd.ProcessState.ExitCode(); got != 42 {
		t.Errorf("parent ended with %v, want exit 42 from the child", cmd.ProcessState)
	}
}

// TestKilledParentTakesChild: SIGKILL to the parent kills the child too.
func TestKilledParentTakesChild(t *testing.T) {
	needRoot(t)
	cmd := parent(t, "sleep")
	pid, _ := readyPid(t, cmd)
	cmd.Process.Kill()
	cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		// A killed child is a zombie until init reaps it: it has no exe.
		if _, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d outlived its killed parent", pid)
		}
	}
}

// TestPropagation: a mount made in the child's namespace never shows on
// the host, even under a shared mount; one made on the host shows in the
// child.
func TestPropagation(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		t.Fatalf("make shared: %v", err)
	}
	for _, d := range []string{"out", "in"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := parent(t, "mount", dir)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer in.Close()
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "mounted" {
		t.Fatalf("child: %q", sc.Text())
	}
	if isMountPoint(filepath.Join(dir, "out")) {
		unix.Unmount(filepath.Join(dir, "out"), unix.MNT_DETACH)
		t.Errorf("the child's mount propagated to the host")
	}
	if err := unix.Mount("tmpfs", filepath.Join(dir, "in"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(filepath.Join(dir, "in"), unix.MNT_DETACH)
	io.WriteString(in, "go\n")
	if !sc.Scan() || sc.Text() != "in mounted: true" {
		t.Errorf("the host's mount did not propagate to the child: %q", sc.Text())
	}
}

// TestFallback: without the right to make a namespace, Reexec returns an
// error and the program goes on by itself.
func TestFallback(t *testing.T) {
	needRoot(t)
	// A copy of the test binary that an unprivileged user can run.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "mountns-fallback-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "mountns.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "exit", "5")
	cmd.Env = append(os.Environ(), parentEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.Output()
	if got := cmd.ProcessState.ExitCode(); got != 5 || !strings.Contains(string(out), "operation not permitted") {
		t.Errorf("unprivileged: %v, output %q; want exit 5 after an EPERM", cmd.ProcessState, out)
	}
}

func isMountPoint(p string) bool {
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, 0, &stx)
	return err == nil && stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
}
