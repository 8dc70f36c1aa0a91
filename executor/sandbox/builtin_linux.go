package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"github.com/mybuild/mybuild/internal/atomicfile"
	"github.com/mybuild/mybuild/internal/procstat"
)

// Builtin is mybuild's own runtime. It starts a copy of the running binary
// (sealed in memory, so that no step can reach the binary on the host
// through /proc/PID/exe) as the sandbox's init in new namespaces, puts it
// in the sandbox's cgroup, and sends it the spec; the init sets up the
// mounts, devices, user, capabilities, session keyring and seccomp filter
// and then executes the command in its own place, as runc's init does:
// the command is pid 1 of its pid namespace and nothing of the builder is
// left inside. The zero value is ready to use and may be shared.
type Builtin struct {
	// CacheDir, when set, keeps the compiled seccomp filters across
	// builds (compiling Docker's profile takes about 16 ms); it must be
	// as private as the rest of the builder's store.
	CacheDir string

	exeOnce sync.Once
	exe     *os.File
	exeErr  error

	mu      sync.Mutex
	filters map[[32]byte][]byte // compiled seccomp programs, by profile
}

// defaultBuiltin is the runtime of a Spec without one.
var defaultBuiltin = &Builtin{}

// Name implements Runtime.
func (b *Builtin) Name() string { return "builtin" }

func (b *Builtin) needsNetNS() bool        { return false }
func (b *Builtin) delete(*container) error { return nil }

// initConfig is what the built-in runtime sends to Init, as JSON on the
// spec pipe.
type initConfig struct {
	Spec *specs.Spec
	// Seccomp is the compiled filter (struct sock_filter array) of
	// Spec.Linux.Seccomp, loaded just before the command starts.
	Seccomp      []byte
	SeccompFlags uint
	// Caps are the spec's capability sets, as masks.
	Caps capSets
	// Cgroups are the cgroup hierarchies the init is in a cgroup of its
	// own in: what /sys/fs/cgroup shows.
	Cgroups []hierarchy
}

// initResult is what Init reports back on the status pipe when it could
// not start the command; a command that starts closes the pipe unwritten.
type initResult struct {
	Err      string
	NotFound bool
}

// Fixed descriptors of the pipes in the init process (cmd.ExtraFiles).
const (
	specFD   = 3
	statusFD = 4
)

func (b *Builtin) run(ctx context.Context, c *container) error {
	exe, err := b.executable()
	if err != nil {
		return err
	}
	// The init gets the compiled filter and capability masks, not the
	// profile and the names: less to decode before the command starts.
	spec := *c.spec
	linux := *spec.Linux
	spec.Linux = &linux
	linux.Seccomp = nil
	cfg := initConfig{Spec: &spec}
	if sc := c.spec.Linux.Seccomp; sc != nil {
		if cfg.Seccomp, cfg.SeccompFlags, err = b.seccompFilter(sc); err != nil {
			return err
		}
	}
	caps, err := newCapSets(c.spec.Process.Capabilities)
	if err != nil {
		return err
	}
	cfg.Caps = *caps
	cfg.Cgroups = c.cgroup.hierarchies()
	flags, err := cloneFlags(c.spec)
	if err != nil {
		return err
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode sandbox config: %w", err)
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create pipe: %w", err)
	}
	defer specR.Close()
	defer specW.Close()
	statR, statW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create pipe: %w", err)
	}
	defer statR.Close()
	defer statW.Close()

	cmd := exec.CommandContext(ctx, exe, InitArg)
	cmd.Args[0] = "mybuild-init"
	cmd.Env = []string{}
	cmd.Dir = "/"
	cmd.Stdout = c.stdout
	cmd.Stderr = c.stderr
	cmd.ExtraFiles = []*os.File{specR, statW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags, Pdeathsig: syscall.SIGKILL}
	// The pid namespace dies with its pid 1, so nothing can keep the
	// output pipes open for long; this only bounds a pathological case.
	cmd.WaitDelay = 5 * time.Second
	// The init starts in the v2 cgroup (clone3 CLONE_INTO_CGROUP, kernel
	// 5.7+), else it is moved there like into the v1 ones.
	inV2 := false
	if fd := c.cgroup.openV2(); fd >= 0 {
		defer unix.Close(fd)
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
		inV2 = true
	}
	err = cmd.Start()
	if err != nil && inV2 {
		cmd = cloneCmd(ctx, cmd)
		inV2 = false
		err = cmd.Start()
	}
	if err != nil {
		return fmt.Errorf("start sandbox: %w", err)
	}
	specR.Close()
	statW.Close()
	// The init waits for its config, so it is in the cgroup before it
	// does anything else.
	if err := c.cgroup.place(cmd.Process.Pid, inV2); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("run sandbox: %w", err)
	}
	// A failed write means the init died early; Wait tells why.
	_, _ = specW.Write(data)
	specW.Close()
	stopReaping := reapTraced(cmd.Process.Pid)
	defer stopReaping()

	var status bytes.Buffer
	_, rerr := io.Copy(&status, statR)
	werr := cmd.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("read sandbox status: %w", rerr)
	}
	if status.Len() > 0 {
		var res initResult
		if err := json.Unmarshal(status.Bytes(), &res); err != nil {
			return fmt.Errorf("run sandbox init: bad status %q", status.Bytes())
		}
		if res.NotFound {
			return fmt.Errorf("run %s: %w", c.spec.Process.Args[0], ErrNotFound)
		}
		return errors.New(res.Err)
	}
	return exitStatus(cmd.ProcessState, werr)
}

// reapTraced reaps, until the returned function is called, the exited
// threads of the process pid that are traced by the builder. A thread of
// the step's pid 1 (whose parent is the builder) that calls
// PTRACE_TRACEME makes the builder its tracer; once it has exited, only
// its tracer can reap it (a wait with __WALL for its tid), and until then
// neither the pid namespace nor pid 1 can finish dying, so Wait would
// never return. The builder never traces anything itself.
func reapTraced(pid int) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			if st, err := procstat.Read(strconv.Itoa(pid)); err != nil || st.State != "Z" {
				continue
			}
			tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
			for _, t := range tasks {
				tid, err := strconv.Atoi(t.Name())
				if err != nil || tid == pid {
					continue
				}
				var info unix.Siginfo
				_ = unix.Waitid(unix.P_PID, tid, &info, unix.WEXITED|unix.WNOHANG|unix.WALL, nil)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// cloneCmd copies cmd, not yet started, without CLONE_INTO_CGROUP.
func cloneCmd(ctx context.Context, cmd *exec.Cmd) *exec.Cmd {
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Args = cmd.Args
	c.Env, c.Dir, c.Stdout, c.Stderr, c.ExtraFiles, c.WaitDelay = cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr, cmd.ExtraFiles, cmd.WaitDelay
	attr := *cmd.SysProcAttr
	attr.UseCgroupFD, attr.CgroupFD = false, 0
	c.SysProcAttr = &attr
	return c
}

// exitStatus turns how the command ended into nil or an *ExitError.
func exitStatus(ps *os.ProcessState, werr error) error {
	if ps == nil {
		return fmt.Errorf("run sandbox: %w", werr)
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	switch {
	case !ok:
		return fmt.Errorf("run sandbox: %w", werr)
	case ws.Signaled():
		return &ExitError{Code: 128 + int(ws.Signal())}
	case ws.ExitStatus() != 0:
		return &ExitError{Code: ws.ExitStatus()}
	}
	return nil
}

// cloneFlags are the namespaces the init is started in. The cgroup
// namespace is made by the init itself, once it is in its cgroup.
func cloneFlags(spec *specs.Spec) (uintptr, error) {
	var flags uintptr
	for _, ns := range spec.Linux.Namespaces {
		var f uintptr
		switch ns.Type {
		case specs.PIDNamespace:
			f = unix.CLONE_NEWPID
		case specs.IPCNamespace:
			f = unix.CLONE_NEWIPC
		case specs.UTSNamespace:
			f = unix.CLONE_NEWUTS
		case specs.MountNamespace:
			f = unix.CLONE_NEWNS
		case specs.NetworkNamespace:
			f = unix.CLONE_NEWNET
		case specs.CgroupNamespace:
			continue
		default:
			return 0, fmt.Errorf("run sandbox: %s namespace not supported", ns.Type)
		}
		if ns.Path != "" {
			if ns.Type != specs.NetworkNamespace {
				return 0, fmt.Errorf("run sandbox: joining a %s namespace is not supported", ns.Type)
			}
			continue // the init joins it
		}
		flags |= f
	}
	if flags&unix.CLONE_NEWNS == 0 || flags&unix.CLONE_NEWPID == 0 {
		return 0, errors.New("run sandbox: new mount and pid namespaces are required")
	}
	return flags, nil
}

// executable returns the path by which to start the init: a sealed
// in-memory copy of the running binary (as runc protects itself since
// CVE-2019-5736), so that a step that gets to run the binary cannot
// open it for writing through /proc/PID/exe. Where memfds are not
// available it is the binary itself.
func (b *Builtin) executable() (string, error) {
	b.exeOnce.Do(func() { b.exe, b.exeErr = sealedCopy("/proc/self/exe") })
	if b.exeErr != nil {
		return "", b.exeErr
	}
	return "/proc/self/fd/" + strconv.Itoa(int(b.exe.Fd())), nil
}

// sealedCopy copies the file at p into a sealed memfd.
func sealedCopy(p string) (*os.File, error) {
	src, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open own binary: %w", err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("mybuild-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("copy own binary: %w", err)
	}
	dst := os.NewFile(uintptr(fd), "mybuild-init")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return nil, fmt.Errorf("copy own binary: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(dst.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		dst.Close()
		return nil, fmt.Errorf("seal own binary: %w", err)
	}
	return dst, nil
}

// seccompFilter compiles sc (once per profile, and with CacheDir once
// per store) into a BPF program.
func (b *Builtin) seccompFilter(sc *specs.LinuxSeccomp) ([]byte, uint, error) {
	flags, err := seccompFlags(sc.Flags)
	if err != nil {
		return nil, 0, err
	}
	data, err := json.Marshal(sc)
	if err != nil {
		return nil, 0, fmt.Errorf("encode seccomp profile: %w", err)
	}
	major, minor, micro := libseccomp.GetLibraryVersion()
	key := sha256.Sum256(fmt.Appendf(data, "\nlibseccomp %d.%d.%d %s", major, minor, micro, goruntime.GOARCH))
	b.mu.Lock()
	defer b.mu.Unlock()
	if prog, ok := b.filters[key]; ok {
		return prog, flags, nil
	}
	cached := ""
	if b.CacheDir != "" {
		cached = filepath.Join(b.CacheDir, hex.EncodeToString(key[:])+".bpf")
	}
	prog, err := os.ReadFile(cached)
	if cached == "" || err != nil || len(prog) == 0 || len(prog)%8 != 0 {
		if prog, err = compileSeccomp(sc); err != nil {
			return nil, 0, err
		}
		if cached != "" {
			// A failure to cache costs the next build a compilation only.
			_ = os.MkdirAll(filepath.Dir(cached), 0o700)
			_ = atomicfile.WriteFile(cached, prog, 0o600)
		}
	}
	if b.filters == nil {
		b.filters = map[[32]byte][]byte{}
	}
	b.filters[key] = prog
	return prog, flags, nil
}
