package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ociRuntime executes sandboxes with an OCI runtime program (runc, crun),
// as BuildKit does: the spec is written as a bundle's config.json and the
// program is run in the foreground.
type ociRuntime struct {
	path, name string
}

// OCIRuntime returns the Runtime that executes sandboxes with the OCI
// runtime program name: "runc", "crun" (looked up in PATH) or a path.
//
// The runtime gets the spec [Run] makes for the built-in runtime, with
// one difference: its cgroup is a child of the one Run makes, which holds
// the resource limits (so that Run can still tell an out-of-memory kill
// after the runtime has removed its own cgroup). Run makes the network
// namespace of a sandbox without network itself, with loopback up, for
// the runtime to join.
func OCIRuntime(name string) (Runtime, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("OCI runtime %s: %w", name, err)
	}
	return &ociRuntime{path: p, name: filepath.Base(p)}, nil
}

// Name implements Runtime.
func (r *ociRuntime) Name() string { return r.name }

func (r *ociRuntime) needsNetNS() bool { return true }

func (r *ociRuntime) globalArgs(c *container) []string {
	args := []string{"--root", filepath.Join(c.dir, "state"), "--log", filepath.Join(c.dir, "runtime.log"), "--log-format", "json"}
	if r.name == "crun" {
		args = append(args, "--cgroup-manager", "cgroupfs")
	}
	return args
}

func (r *ociRuntime) run(ctx context.Context, c *container) error {
	bundle := filepath.Join(c.dir, "bundle")
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return fmt.Errorf("create bundle: %w", unwrapPath(err))
	}
	if err := os.MkdirAll(filepath.Join(c.dir, "state"), 0o700); err != nil {
		return fmt.Errorf("create runtime state: %w", unwrapPath(err))
	}
	spec := *c.spec
	linux := *spec.Linux
	spec.Linux = &linux
	linux.CgroupsPath = path.Join(linux.CgroupsPath, "runtime")
	if linux.Resources != nil {
		res := *linux.Resources
		res.Memory, res.CPU, res.Pids = nil, nil, nil // held by the parent
		linux.Resources = &res
	}
	data, err := json.Marshal(&spec)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		return fmt.Errorf("write spec: %w", unwrapPath(err))
	}
	args := append(r.globalArgs(c), "run", "--bundle", bundle, c.id)
	cmd := exec.Command(r.path, args...)
	cmd.Dir = c.dir
	cmd.Stdout = c.stdout
	cmd.Stderr = c.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.name, err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// Kill the container's processes, then the runtime.
			kill := exec.Command(r.path, append(r.globalArgs(c), "kill", "--all", c.id, "KILL")...)
			_ = kill.Run()
			_ = c.cgroup.destroy()
			_ = cmd.Process.Kill()
		case <-done:
		}
	}()
	werr := cmd.Wait()
	close(done)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("run sandbox: %w", err)
	}
	if msg := r.logError(c); msg != "" {
		if strings.Contains(msg, "executable file not found") || strings.Contains(msg, "No such file or directory") && strings.Contains(msg, "exec") {
			return fmt.Errorf("run %s: %w", c.spec.Process.Args[0], ErrNotFound)
		}
		return fmt.Errorf("%s: %s", r.name, msg)
	}
	return exitStatus(cmd.ProcessState, werr)
}

// logError returns the runtime's last error message in its log, if any.
func (r *ociRuntime) logError(c *container) string {
	f, err := os.Open(filepath.Join(c.dir, "runtime.log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	var msg string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var entry struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &entry) == nil && (entry.Level == "error" || entry.Level == "fatal") {
			msg = entry.Msg
		}
	}
	return msg
}

func (r *ociRuntime) delete(c *container) error {
	defer c.cgroup.removeEverywhere()
	if _, err := os.Stat(filepath.Join(c.dir, "state", c.id)); err != nil {
		return nil // run deleted it
	}
	cmd := exec.Command(r.path, append(r.globalArgs(c), "delete", "--force", c.id)...)
	out, err := cmd.CombinedOutput()
	if err != nil && !strings.Contains(string(out), "does not exist") && !strings.Contains(string(out), "not exist") {
		return fmt.Errorf("delete %s container: %w: %s", r.name, errors.Unwrap(err), strings.TrimSpace(string(out)))
	}
	return nil
}
