package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// InitArg is the first argument with which Run re-executes the current
// binary. A main function (or TestMain) must call [Init] when os.Args[1]
// equals it.
const InitArg = "__mybuild_sandbox_init"

// DefaultHostname is the hostname of a sandbox whose Spec.Hostname is empty.
const DefaultHostname = "sandbox"

// DefaultPath is the search path used to find the command when Spec.Env
// has no PATH.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Network modes of a sandbox.
const (
	// NetworkHost shares the host's network namespace (the default).
	NetworkHost = "host"
	// NetworkNone gives the sandbox its own network namespace with only
	// the loopback interface, up.
	NetworkNone = "none"
)

// ErrNotFound is returned (wrapped) by Run when the command cannot be found
// or is not executable inside the root.
var ErrNotFound = errors.New("executable file not found")

// Spec describes the process to run. Its zero values work, except Root and
// Args which are required.
type Spec struct {
	// Root is the host directory to use as the process's root filesystem.
	// It must already be prepared (mounted); Run does not unmount it. Only
	// one Run at a time may use a given root.
	Root string
	// Args is the command and its arguments; Args[0] is looked up in the
	// PATH of Env inside Root when it has no slash.
	Args []string
	// Env is the process's whole environment, as "KEY=value" entries.
	Env []string
	// Cwd is the working directory inside Root; it must exist. Empty means "/".
	Cwd string
	// UID and GID are the process's user and group ids.
	UID, GID uint32
	// Groups are the supplementary group ids.
	Groups []uint32
	// Hostname is the sandbox's hostname; empty means DefaultHostname.
	Hostname string
	// Network is NetworkHost (or empty) or NetworkNone.
	Network string
	// Stdout and Stderr receive the process's output; nil discards it.
	// The process's standard input is /dev/null.
	Stdout, Stderr io.Writer
	// Hosts and Resolv are the contents of /etc/hosts and /etc/resolv.conf.
	// A nil Hosts gives localhost entries and the hostname; a nil Resolv
	// copies the host's /etc/resolv.conf.
	Hosts, Resolv []byte
	// ExtraHosts are "IP\tNAME" lines appended to the default /etc/hosts
	// (ignored when Hosts is set).
	ExtraHosts []string
	// DevFiles are files to create under the sandbox's /dev (a tmpfs, so
	// they never reach the root filesystem), e.g. a RUN heredoc script at
	// /dev/pipes/EOF.
	DevFiles []DevFile
	// Limits are the resource limits of the command and its descendants;
	// the zero value sets none.
	Limits Limits
	// Mounts are mounted over the root, outermost first; they vanish with
	// the sandbox and leave nothing in Root.
	Mounts []Mount
	// TempDir is where Run keeps the host side of the sandbox's files
	// (/etc/hosts and the like) while it runs; empty means os.TempDir().
	// A caller that may be killed passes a directory it sweeps later.
	TempDir string
}

// DevFile is a file created in the sandbox's /dev before the command runs.
type DevFile struct {
	// Name is the path below /dev, e.g. "pipes/EOF"; parents are created.
	Name string
	Data []byte
	Mode os.FileMode
}

// ExitError reports that the command ran and exited with a non-zero status.
type ExitError struct {
	// Code is the exit status, or 128 + the signal number when the command
	// was killed by a signal (as a shell reports it).
	Code int
	// PidsLimit is Limits.PidsLimit when a fork or clone of the sandbox
	// failed because of it, and 0 otherwise.
	PidsLimit int64
}

func (e *ExitError) Error() string {
	if e.PidsLimit > 0 {
		return fmt.Sprintf("exit code %d (process limit of %d reached)", e.Code, e.PidsLimit)
	}
	return fmt.Sprintf("exit code %d", e.Code)
}

// initConfig is what Run sends to Init, as JSON on the spec pipe.
type initConfig struct {
	Root     string
	Args     []string
	Env      []string
	Cwd      string
	UID, GID uint32
	Groups   []uint32
	Hostname string
	Network  string
	// Binds maps host files to absolute, already resolved targets inside
	// Root (which exist).
	Binds []bind
	// Proc, Sys and Dev are the resolved mount points inside Root.
	Proc, Sys, Dev string
	DevFiles       []DevFile
	// Mounts are the extra mounts; Scratch is an empty host directory on
	// which the init mounts the tmpfs holding the files of MountFile mounts.
	Mounts  []extraMount
	Scratch string
	// Cgroup is where the command starts, nil for none.
	Cgroup *initCgroup
}

type bind struct {
	Source, Target string
}

// initResult is what Init reports back on the status pipe.
type initResult struct {
	Code     int
	Err      string
	NotFound bool
}

// Fixed descriptors of the pipes in the init process (cmd.ExtraFiles).
const (
	specFD   = 3
	statusFD = 4
)

// Run runs the command described by s in a new sandbox and waits for it and
// every process it started to end. A non-zero exit returns an *ExitError,
// or an *OOMError (matching ErrOOM) when the out-of-memory killer killed a
// process at s.Limits.MemoryBytes. Cancelling ctx kills the whole sandbox.
// With limits set, the command runs in a cgroup of its own, removed when
// it ends.
func Run(ctx context.Context, s Spec) (err error) {
	if len(s.Args) == 0 || s.Args[0] == "" {
		return errors.New("run sandbox: empty command")
	}
	if s.Root == "" {
		return errors.New("run sandbox: no root directory")
	}
	switch s.Network {
	case "":
		s.Network = NetworkHost
	case NetworkHost, NetworkNone:
	default:
		return fmt.Errorf("run sandbox: unknown network mode %q", s.Network)
	}
	if s.Hostname == "" {
		s.Hostname = DefaultHostname
	}
	if s.Cwd == "" {
		s.Cwd = "/"
	}
	if err := s.Limits.validate(); err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}
	if err := validateMounts(s.Mounts); err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}

	p, err := prepare(s)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := p.cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	cfg := initConfig{
		Root: s.Root, Args: s.Args, Env: s.Env, Cwd: s.Cwd,
		UID: s.UID, GID: s.GID, Groups: s.Groups,
		Hostname: s.Hostname, Network: s.Network,
		Binds: p.binds, Proc: p.proc, Sys: p.sys, Dev: p.dev,
		DevFiles: s.DevFiles,
		Mounts:   p.mounts, Scratch: p.scratch,
	}
	if !s.Limits.any() {
		return start(ctx, s, cfg)
	}
	cg, err := newCgroup(s.Limits)
	if err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}
	defer func() {
		if derr := cg.destroy(); derr != nil && err == nil {
			err = derr
		}
	}()
	cfg.Cgroup = cg.placement()
	return cg.annotate(start(ctx, s, cfg))
}

// start re-executes the binary as the sandbox's init and waits for it.
func start(ctx context.Context, s Spec, cfg initConfig) error {
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

	flags := uintptr(syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC)
	if cfg.Network == NetworkNone {
		flags |= syscall.CLONE_NEWNET
	}
	cmd := exec.CommandContext(ctx, "/proc/self/exe", InitArg)
	cmd.Env = []string{}
	cmd.Dir = "/"
	cmd.Stdout = s.Stdout
	cmd.Stderr = s.Stderr
	cmd.ExtraFiles = []*os.File{specR, statW}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: flags,
		Pdeathsig:  syscall.SIGKILL,
	}
	// The pid namespace dies with its init, so nothing can keep the output
	// pipes open for long; this only bounds a pathological case.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sandbox: %w", err)
	}
	specR.Close()
	statW.Close()
	// A failed write means the init died early; Wait tells why.
	_, _ = specW.Write(data)
	specW.Close()

	var status bytes.Buffer
	_, rerr := io.Copy(&status, statR)
	werr := cmd.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("read sandbox status: %w", rerr)
	}
	var res initResult
	if status.Len() == 0 || json.Unmarshal(status.Bytes(), &res) != nil {
		if werr == nil {
			werr = errors.New("no status reported")
		}
		return fmt.Errorf("run sandbox init: %w", werr)
	}
	switch {
	case res.NotFound:
		return fmt.Errorf("run %s: %w", cfg.Args[0], ErrNotFound)
	case res.Err != "":
		return errors.New(res.Err)
	case res.Code != 0:
		return &ExitError{Code: res.Code}
	}
	return nil
}

// lookPath finds the executable file name in the directories of the PATH
// entry of env, inside the current root.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		if isExecutable(name) {
			return name, nil
		}
		return "", ErrNotFound
	}
	path := DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range strings.Split(path, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", ErrNotFound
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
