package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Init is the sandbox's init process. The binary's main function (and a test
// binary's TestMain) must call it, before doing anything else, when
// os.Args[1] == InitArg. It reads its configuration from Run, sets up the
// sandbox, runs the command, reaps every process until the command exits and
// reports the command's status to Run. It never returns.
func Init() {
	// Capabilities are per thread: the thread that drops them must be the
	// one that starts the command.
	runtime.LockOSThread()
	res := runInit()
	status := os.NewFile(statusFD, "status")
	data, _ := json.Marshal(res)
	code := 0
	if _, err := status.Write(data); err != nil {
		code = 1
	}
	// Exit at once: the pid namespace, and with it the command's leftover
	// processes, dies with this process, and Run waits for that.
	unix.Exit(code)
}

func runInit() initResult {
	cfg, err := readConfig()
	if err != nil {
		return initResult{Err: err.Error()}
	}
	code, err := runCommand(cfg)
	switch {
	case errors.Is(err, ErrNotFound):
		return initResult{NotFound: true}
	case err != nil:
		return initResult{Err: err.Error()}
	}
	return initResult{Code: code}
}

func readConfig() (*initConfig, error) {
	unix.CloseOnExec(statusFD)
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

// runCommand sets up the sandbox, starts the command and reaps processes
// until it exits, returning its exit code.
func runCommand(cfg *initConfig) (int, error) {
	unix.Umask(0)
	cg, err := openCgroup(cfg.Cgroup)
	if err != nil {
		return 0, err
	}
	defer cg.close()
	if err := setupRoot(cfg); err != nil {
		return 0, err
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return 0, fmt.Errorf("set hostname: %w", err)
	}
	if cfg.Network == NetworkNone {
		if err := loopbackUp(); err != nil {
			return 0, err
		}
	}
	if err := os.Chdir(cfg.Cwd); err != nil {
		return 0, fmt.Errorf("change to working directory %s: %w", cfg.Cwd, unwrapPath(err))
	}
	path, err := lookPath(cfg.Args[0], cfg.Env)
	if err != nil {
		return 0, err
	}
	if err := dropCapabilities(); err != nil {
		return 0, err
	}
	unix.Umask(0o022)

	env := cfg.Env
	if env == nil {
		env = []string{}
	}
	cmd := &exec.Cmd{
		Path:   path,
		Args:   cfg.Args,
		Env:    env,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: cfg.UID, Gid: cfg.GID, Groups: cfg.Groups},
			Setsid:     true,
		},
	}
	if err := cg.start(cmd); err != nil {
		return 0, fmt.Errorf("start %s: %w", cfg.Args[0], unwrapPath(err))
	}
	return reap(cmd.Process.Pid)
}

// reap waits for every child, as a pid namespace's init must, until pid
// exits, and returns its exit code in the shell's convention.
func reap(pid int) (int, error) {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for command: %w", err)
		}
		if got != pid {
			continue
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus(), nil
		case ws.Signaled():
			return 128 + int(ws.Signal()), nil
		}
	}
}

// loopbackUp brings up the "lo" interface of the current network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	return nil
}
