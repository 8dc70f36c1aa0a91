package sandbox

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Init is the built-in runtime's init. The binary's main function (and a
// test binary's TestMain) must call it, before doing anything else, when
// os.Args[1] == InitArg. It reads the spec from the builder, sets up the
// sandbox and executes the command in its own place; only when that fails
// does it report why and exit. It never returns.
func Init() {
	// Capabilities, the seccomp filter and the credentials are set on the
	// thread that executes the command.
	runtime.LockOSThread()
	err := runInit()
	res := initResult{Err: err.Error(), NotFound: errors.Is(err, ErrNotFound)}
	data, _ := json.Marshal(res)
	status := os.NewFile(statusFD, "status")
	_, _ = status.Write(data)
	unix.Exit(1)
}

// runInit sets the sandbox up as the spec says and executes the command;
// it returns only on failure.
func runInit() error {
	unix.CloseOnExec(statusFD)
	cfg, err := readConfig()
	if err != nil {
		return err
	}
	spec := cfg.Spec
	if spec == nil || spec.Process == nil || spec.Linux == nil || spec.Root == nil {
		return errors.New("sandbox config: incomplete spec")
	}
	unix.Umask(0)
	// The builder put this process in its cgroup before sending the
	// config: the cgroup namespace starts there.
	for _, ns := range spec.Linux.Namespaces {
		switch {
		case ns.Type == specs.CgroupNamespace:
			if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
				return fmt.Errorf("create cgroup namespace: %w", err)
			}
		case ns.Type == specs.NetworkNamespace && ns.Path != "":
			if err := joinNamespace(ns.Path, unix.CLONE_NEWNET); err != nil {
				return err
			}
		case ns.Type == specs.NetworkNamespace:
			if err := loopbackUp(); err != nil {
				return err
			}
		}
	}
	if err := setupRootfs(spec, cfg.Cgroups); err != nil {
		return err
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("set hostname: %w", err)
		}
	}
	if err := setRlimits(spec.Process.Rlimits); err != nil {
		return err
	}
	if err := newSessionKeyring(); err != nil {
		return err
	}
	p := spec.Process
	env := withHome(p.Env, p.User.UID)
	// Before the user changes: a directory only root may enter is entered
	// as runc does, but a missing one is an error.
	if err := unix.Chdir(p.Cwd); err != nil {
		return fmt.Errorf("change to working directory %s: %w", p.Cwd, err)
	}
	path, err := lookPath(p.Args[0], env)
	if err != nil {
		return err
	}
	// Nothing the builder opened reaches the command: every descriptor
	// but the standard three closes on exec.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close descriptors: %w", err)
	}
	if err := finalizeProcess(p, cfg); err != nil {
		return err
	}
	unix.Umask(0o022)
	if err := unix.Exec(path, p.Args, env); err != nil {
		return fmt.Errorf("start %s: %w", p.Args[0], err)
	}
	return nil
}

func readConfig() (*initConfig, error) {
	f := os.NewFile(specFD, "spec")
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read sandbox config: %w", err)
	}
	var cfg initConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("decode sandbox config: %w", err)
	}
	return &cfg, nil
}

// finalizeProcess gives the thread the spec's bounding set, seccomp
// filter, credentials and capabilities, in the order runc does when
// no_new_privs is off: the filter is loaded while CAP_SYS_ADMIN is still
// there, and it allows what follows.
func finalizeProcess(p *specs.Process, cfg *initConfig) error {
	caps := cfg.Caps
	if err := caps.dropBounding(); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keep capabilities: %w", err)
	}
	if len(cfg.Seccomp) > 0 {
		if err := loadSeccomp(cfg.Seccomp, cfg.SeccompFlags); err != nil {
			return err
		}
	}
	if err := setCredentials(p.User); err != nil {
		return err
	}
	if err := caps.apply(); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("keep capabilities: %w", err)
	}
	// A change of credentials clears the parent-death signal.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("set parent death signal: %w", err)
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	return nil
}

// setCredentials switches the calling thread (the only one that matters:
// it executes the command) to the spec's groups and user.
func setCredentials(u specs.User) error {
	gids := u.AdditionalGids
	var ptr uintptr
	if len(gids) > 0 {
		ptr = uintptr(unsafe.Pointer(&gids[0]))
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), ptr, 0); e != 0 {
		return fmt.Errorf("set groups: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("set group id: %w", e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("set user id: %w", e)
	}
	return nil
}

// joinNamespace enters the namespace bound at p.
func joinNamespace(p string, typ int) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open namespace: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, typ); err != nil {
		return fmt.Errorf("join namespace: %w", err)
	}
	return nil
}

// newSessionKeyring gives the sandbox a new, anonymous session keyring, so
// that it shares none with the builder or other steps. A kernel without
// keys has nothing to share.
func newSessionKeyring() error {
	_, _, e := unix.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0)
	if e != 0 && e != unix.ENOSYS {
		return fmt.Errorf("create session keyring: %w", e)
	}
	return nil
}

// setRlimits applies the spec's resource limits.
func setRlimits(limits []specs.POSIXRlimit) error {
	for _, l := range limits {
		res, ok := rlimitResources[l.Type]
		if !ok {
			return fmt.Errorf("unknown resource limit %s", l.Type)
		}
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: l.Soft, Max: l.Hard}); err != nil {
			return fmt.Errorf("set %s: %w", l.Type, err)
		}
	}
	return nil
}

var rlimitResources = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// maxPasswdBytes bounds how much of /etc/passwd is read (as BuildKit does).
const maxPasswdBytes = 10 << 20

// withHome returns env with HOME set, when it is missing, to the home
// directory of uid in the root's /etc/passwd, or "/", as runc does.
func withHome(env []string, uid uint32) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "HOME=") {
			return env
		}
	}
	return append(env, "HOME="+homeDir(uid))
}

func homeDir(uid uint32) string {
	// Non-blocking, and only a regular file: a FIFO planted at
	// /etc/passwd must not hang the step.
	fd, err := unix.Open("/etc/passwd", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return "/"
	}
	f := os.NewFile(uintptr(fd), "/etc/passwd")
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return "/"
	}
	want := strconv.FormatUint(uint64(uid), 10)
	sc := bufio.NewScanner(io.LimitReader(f, maxPasswdBytes))
	for sc.Scan() {
		// name:password:uid:gid:gecos:home:shell
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 6 && fields[2] == want && fields[5] != "" {
			return fields[5]
		}
	}
	return "/"
}
