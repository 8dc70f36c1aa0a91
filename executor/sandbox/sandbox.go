package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mybuild/mybuild/internal/procstat"
)

// InitArg is the first argument with which the built-in runtime
// re-executes the current binary. A main function (or TestMain) must call
// [Init] when os.Args[1] equals it.
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
	// Without HOME, the process gets the home directory of its user in
	// the root's /etc/passwd (or "/"), as runc sets it.
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
	// Security is SecuritySandbox (or empty) or SecurityInsecure.
	Security string
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
	// DevFiles are files shown read-only under the sandbox's /dev (a
	// tmpfs, so they never reach the root filesystem), e.g. a RUN heredoc
	// script at /dev/pipes/EOF.
	DevFiles []DevFile
	// Limits are the resource limits of the command and its descendants;
	// the zero value sets none (the command still gets a cgroup).
	Limits Limits
	// Mounts are mounted over the root, outermost first; they vanish with
	// the sandbox and leave nothing in Root.
	Mounts []Mount
	// TempDir is where Run keeps the host side of the sandbox's files
	// (/etc/hosts and the like) while it runs; empty means os.TempDir().
	// A caller that may be killed passes a directory it sweeps later.
	TempDir string
	// Runtime executes the sandbox's OCI spec; nil is [Builtin].
	Runtime Runtime
}

// DevFile is a file shown in the sandbox's /dev.
type DevFile struct {
	// Name is the path below /dev, e.g. "pipes/EOF".
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

// normalize fills in the defaults of s.
func (s *Spec) normalize() {
	if s.Network == "" {
		s.Network = NetworkHost
	}
	if s.Security == "" {
		s.Security = SecuritySandbox
	}
	if s.Hostname == "" {
		s.Hostname = DefaultHostname
	}
	if s.Cwd == "" {
		s.Cwd = "/"
	}
}

// validate checks what a spec can be made of.
func (s Spec) validate() error {
	if len(s.Args) == 0 || s.Args[0] == "" {
		return errors.New("run sandbox: empty command")
	}
	if s.Root == "" {
		return errors.New("run sandbox: no root directory")
	}
	switch s.Network {
	case "", NetworkHost, NetworkNone:
	default:
		return fmt.Errorf("run sandbox: unknown network mode %q", s.Network)
	}
	switch s.Security {
	case "", SecuritySandbox, SecurityInsecure:
	default:
		return fmt.Errorf("run sandbox: unknown security mode %q", s.Security)
	}
	if err := s.Limits.validate(); err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}
	if err := validateMounts(s.Mounts); err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}
	return nil
}

// Run runs the command described by s in a new sandbox and waits for it and
// every process it started to end. A non-zero exit returns an *ExitError,
// or an *OOMError (matching ErrOOM) when the out-of-memory killer killed a
// process at s.Limits.MemoryBytes. Cancelling ctx kills the whole sandbox.
//
// Run writes the sandbox's files outside the root, makes the command's
// cgroup, turns s into an OCI runtime spec ([GenerateSpec]), creates the
// mount points that the root lacks, has s.Runtime execute the spec, and
// then undoes all of it: the root is left as the command left it.
func Run(ctx context.Context, s Spec) (err error) {
	s.normalize()
	if err := s.validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}
	rt := s.Runtime
	if rt == nil {
		rt = defaultBuiltin
	}
	id, err := sandboxID()
	if err != nil {
		return err
	}
	p, err := prepare(s, rt.needsNetNS())
	if err != nil {
		return err
	}
	defer func() {
		if cerr := p.cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	cg, err := newCgroup(id, s.Limits, deviceRules(s.Security))
	if err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}
	defer func() {
		if derr := cg.destroy(); derr != nil && err == nil {
			err = derr
		}
	}()
	p.paths.CgroupsPath = cg.specPath
	spec, err := GenerateSpec(s, p.paths)
	if err != nil {
		return err
	}
	stubs, err := createStubs(s.Root, spec.Mounts)
	if err != nil {
		return err
	}
	defer func() {
		if serr := stubs.remove(); serr != nil && err == nil {
			err = serr
		}
	}()
	c := &container{id: id, spec: spec, stdout: s.Stdout, stderr: s.Stderr, dir: p.tmp, cgroup: cg}
	err = cg.annotate(rt.run(ctx, c))
	if derr := rt.delete(c); derr != nil && err == nil {
		err = derr
	}
	return err
}

// sandboxID names a sandbox: its cgroup and its runtime state. It starts
// with the builder's pid and start time, so that a sweep can tell the
// cgroups of dead builders from those of running ones.
func sandboxID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("create sandbox id: %w", err)
	}
	return fmt.Sprintf("%d-%s-%s", os.Getpid(), selfStartTime(), hex.EncodeToString(b)), nil
}

// selfStartTime is this process's start time in clock ticks after boot,
// or "0" when it cannot be read.
func selfStartTime() string {
	st, err := procstat.Read("self")
	if err != nil {
		return "0"
	}
	return st.StartTime
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
