package mountns

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ChildArg is the first argument of the program [Reexec] starts, which
// [Child] looks for.
const ChildArg = "__mybuild_mountns"

// forwarded are the signals the parent passes on to the child: those a
// user or a supervisor sends to stop a program.
var forwarded = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT}

// Reexec runs the program again, with the arguments args (os.Args), in a
// mount namespace of its own, and ends this process the way the child
// ended. It returns only when the child could not be started (typically
// EPERM: creating a mount namespace needs CAP_SYS_ADMIN); nothing has
// happened then, and the caller may go on in its own namespace.
func Reexec(args []string) error {
	// PR_SET_PDEATHSIG fires when the thread that started the child exits,
	// not the process: this goroutine keeps its thread until the end.
	runtime.LockOSThread()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	cmd := &exec.Cmd{
		Path:   "/proc/self/exe",
		Args:   append([]string{args[0], ChildArg}, args[1:]...),
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		// Descriptors beyond the three that are not close-on-exec (the
		// ones this process inherited) stay open across the exec, at the
		// same numbers: nothing to do for them.
		SysProcAttr: &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS, Pdeathsig: unix.SIGKILL},
	}
	if err := cmd.Start(); err != nil {
		signal.Stop(sigs)
		runtime.UnlockOSThread()
		return fmt.Errorf("start in a new mount namespace: %w", err)
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s) // fails only once the child is gone
		}
	}()
	err := cmd.Wait()
	signal.Stop(sigs)
	close(sigs)
	if cmd.ProcessState == nil {
		fmt.Fprintf(os.Stderr, "error: wait for the process in the new mount namespace: %v\n", err)
		os.Exit(1)
	}
	exitAs(cmd.ProcessState)
	return nil // not reached
}

// exitAs ends this process with st's exit code, or by the signal that
// killed st's process.
func exitAs(st *os.ProcessState) {
	ws, ok := st.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		// The child dumped core already if the signal asked for it.
		unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
		dieBy(ws.Signal())
	}
	os.Exit(st.ExitCode())
}

// dieBy ends this process by the signal sig, or with exit code 128+sig
// for a signal whose default action does not kill.
func dieBy(sig syscall.Signal) {
	signal.Reset(sig)
	// The Go runtime keeps a handler for some signals even after Reset, and
	// ignores a SIGPIPE or SIGUSR1 that no one asked for: restore the
	// kernel's default action itself. An all-zero struct sigaction is
	// SIG_DFL with no flags and an empty mask, whatever the architecture.
	var dfl [4]uintptr
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	unix.Kill(unix.Getpid(), sig)
	os.Exit(128 + int(sig))
}

// Child reports whether args (os.Args) are those of a program [Reexec]
// started. If so, it makes the mounts of the new namespace slaves of those
// of the old one, recursively from "/", so that nothing mounted from now
// on propagates out, and returns args without ChildArg. A ChildArg given
// to a program that is not in a namespace of its own (run by hand) leaves
// the mounts alone: the caller then behaves as it would without one.
func Child(args []string) ([]string, bool) {
	if len(args) < 2 || args[1] != ChildArg {
		return args, false
	}
	if newNamespace(os.Getppid()) {
		// Should this fail, mounts propagate to the host as they would
		// without a namespace: no worse than that.
		unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, "")
	}
	return append([]string{args[0]}, args[2:]...), true
}

// newNamespace reports whether this process is in another mount namespace
// than the process parent. When either cannot be read, it says no.
func newNamespace(parent int) bool {
	own, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return false
	}
	theirs, err := os.Readlink("/proc/" + strconv.Itoa(parent) + "/ns/mnt")
	return err == nil && own != theirs
}
