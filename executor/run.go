package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"

	"github.com/mybuild/mybuild/executor/sandbox"
	"github.com/mybuild/mybuild/executor/users"
	"github.com/mybuild/mybuild/internal/progress"
	"github.com/mybuild/mybuild/planner"
)

// RunHostname is the hostname a RUN step sees (hostname, /etc/hostname and
// /etc/hosts): BuildKit's, which build scripts test for to tell they are
// running inside an image build.
const RunHostname = "buildkitsandbox"

// HostEntry is a name that a RUN step's /etc/hosts maps to IP.
type HostEntry struct {
	Name, IP string
}

// tailLines is how many of a failed RUN's last output lines its error shows.
const tailLines = 10

// RunError is a RUN step that ran and exited non-zero. Its message reads
// "exit code N" (and ": HINT" when a limit was reached), followed by the
// last lines the step printed.
type RunError struct {
	Code int
	Hint string   // e.g. "process limit reached (--pids-limit 20)"
	Tail []string // the last lines of output, oldest first
}

// Error implements error.
func (e *RunError) Error() string {
	msg := fmt.Sprintf("exit code %d", e.Code)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	if len(e.Tail) > 0 {
		msg += "\n  " + strings.Join(e.Tail, "\n  ")
	}
	return msg
}

// runStep runs a RUN in the sandbox over the mounted root.
func (b *build) runStep(ctx context.Context, root string, step *planner.Step, id int, name string) error {
	r := step.Run
	if len(r.MountSpecs) != len(r.Mounts) {
		return errors.New("RUN --mount: mounts not decoded")
	}
	if len(r.Devices) > 0 {
		return errors.New("RUN --device is not supported")
	}
	security := sandbox.SecuritySandbox
	switch r.Security {
	case "", "sandbox":
	case "insecure":
		if !b.cfg.AllowInsecure {
			return errors.New("RUN --security=insecure needs the security.insecure entitlement (--allow security.insecure)")
		}
		security = sandbox.SecurityInsecure
	default:
		return fmt.Errorf("RUN --security=%s is not supported (want sandbox or insecure)", r.Security)
	}
	network := r.Network
	if network == "" || network == "default" {
		network = b.cfg.Network
	}
	switch network {
	case "", "host":
		network = sandbox.NetworkHost
	case "none":
		network = sandbox.NetworkNone
	default:
		return fmt.Errorf("unknown network mode %q (want host or none)", network)
	}
	user := r.User
	if user == "" {
		user = "0"
	}
	owner, err := users.Lookup(root, user)
	if err != nil {
		return err
	}
	cwd := path.Clean("/" + r.Workdir)
	if err := ensureDir(root, cwd); err != nil {
		return err
	}
	spec := sandbox.Spec{
		Root:     root,
		Args:     r.Args,
		Env:      append(append([]string(nil), step.Env...), r.ProxyEnv...),
		Cwd:      cwd,
		UID:      uint32(owner.UID),
		GID:      uint32(owner.GID),
		Hostname: RunHostname,
		Network:  network,
		Security: security,
		Limits:   b.cfg.Limits,
		Runtime:  b.cfg.Runtime,
	}
	// The sandbox's host-side files go in a temp dir of the store, so a
	// build killed during the step leaves them to the next build's sweep.
	tmp, releaseTmp, err := b.cfg.Store.TempDir()
	if err != nil {
		return err
	}
	defer releaseTmp()
	spec.TempDir = tmp
	for _, h := range b.cfg.ExtraHosts {
		spec.ExtraHosts = append(spec.ExtraHosts, h.IP+"\t"+h.Name)
	}
	for _, g := range owner.Groups {
		spec.Groups = append(spec.Groups, uint32(g))
	}
	if r.Script != nil {
		spec.DevFiles = []sandbox.DevFile{{Name: "pipes/" + r.Script.Name, Data: []byte(r.Script.Data), Mode: 0o755}}
	}
	mounts, err := b.prepareMounts(ctx, r)
	if err != nil {
		return err
	}
	defer mounts.close()
	spec.Mounts = mounts.mounts
	spec.Env = append(spec.Env, mounts.env...)
	out := &lineWriter{redact: mounts.redact, emit: func(line string) {
		b.emit(progress.Event{ID: id, Name: name, Status: progress.Log, Message: line})
	}}
	spec.Stdout, spec.Stderr = out, out
	err = sandbox.Run(ctx, spec)
	out.flush()
	if errors.Is(err, sandbox.ErrOOM) {
		return fmt.Errorf("%w: the step exceeded --memory %s", sandbox.ErrOOM, sandbox.FormatBytes(b.cfg.Limits.MemoryBytes))
	}
	var ee *sandbox.ExitError
	if errors.As(err, &ee) {
		re := &RunError{Code: ee.Code, Tail: out.tail()}
		if ee.PidsLimit > 0 {
			re.Hint = fmt.Sprintf("process limit reached (--pids-limit %d)", ee.PidsLimit)
		}
		return re
	}
	return err
}

// ensureDir creates dir inside root (as root, mode 0755) when it is
// missing, as runc does for a process's working directory.
func ensureDir(root, dir string) error {
	p, err := securejoin.SecureJoin(root, dir)
	if err != nil {
		return fmt.Errorf("resolve working directory %s: %w", dir, err)
	}
	if fi, err := os.Stat(p); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("working directory %s is not a directory", dir)
		}
		return nil
	}
	if err := pathrs.MkdirAll(root, dir, 0o755); err != nil {
		return fmt.Errorf("create working directory %s: %w", dir, err)
	}
	return nil
}

// lineWriter splits a step's output into lines for progress events and
// keeps the last few for the error message. Safe for concurrent writes
// (stdout and stderr share it).
type lineWriter struct {
	mu     sync.Mutex
	emit   func(string)
	redact func(string) string // hides secrets (nil: nothing to hide)
	buf    []byte
	last   []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a very long line without newline
		w.line(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *lineWriter) line(s string) {
	if w.redact != nil {
		s = w.redact(s)
	}
	w.emit(s)
	w.last = append(w.last, s)
	if len(w.last) > tailLines {
		w.last = w.last[len(w.last)-tailLines:]
	}
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func (w *lineWriter) tail() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.last...)
}
