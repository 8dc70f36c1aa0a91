package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"

	"github.com/mybuild/mybuild/executor/copier"
	"github.com/mybuild/mybuild/executor/sandbox"
	"github.com/mybuild/mybuild/planner"
	"github.com/mybuild/mybuild/snapshot"
)

// Secret is a secret that RUN --mount=type=secret can show a step. Its
// content never enters a layer, the history, a cache key or a message.
type Secret struct {
	// File is a host file read when a step mounts the secret.
	File string
	// Data is the secret itself when File is empty (e.g. taken from an
	// environment variable).
	Data []byte
}

// mountsState is the build's RUN --mount directory, made on first use.
type mountsState struct {
	once sync.Once
	dir  string
	tmp  bool // made for this build only, removed at its end
	err  error
}

// mountsDir is Config.MountsDir, or a temporary directory for the build.
func (b *build) mountsDir() (string, error) {
	st := &b.mounts
	st.once.Do(func() {
		if st.dir = b.cfg.MountsDir; st.dir != "" {
			st.err = os.MkdirAll(filepath.Join(st.dir, "tmp"), 0o700)
			return
		}
		st.dir, st.err = os.MkdirTemp("", "mybuild-mounts-")
		st.tmp = st.err == nil
	})
	if st.err != nil {
		return "", fmt.Errorf("create mounts directory: %w", st.err)
	}
	return st.dir, nil
}

// releaseMounts removes the build's temporary mounts directory.
func (b *build) releaseMounts() {
	if b.mounts.tmp {
		if err := os.RemoveAll(b.mounts.dir); err != nil {
			b.logger().Warn("remove mounts directory", "err", err)
		}
	}
}

// runMounts is what the mounts of one RUN need while it runs.
type runMounts struct {
	mounts  []sandbox.Mount
	env     []string
	secrets []string // values to hide from the step's log lines
	release []func()
}

func (r *runMounts) close() {
	for i := len(r.release) - 1; i >= 0; i-- {
		r.release[i]()
	}
	r.release = nil
}

// redact hides the step's secret values in a line of its output.
func (r *runMounts) redact(line string) string {
	for _, s := range r.secrets {
		line = strings.ReplaceAll(line, s, "****")
	}
	return line
}

// prepareMounts sets up the sources of the RUN's --mount options.
func (b *build) prepareMounts(ctx context.Context, r *planner.RunStep) (_ *runMounts, err error) {
	rm := &runMounts{}
	defer func() {
		if err != nil {
			rm.close()
		}
	}()
	wd := path.Clean("/" + r.Workdir)
	nssh := 0
	for _, m := range r.MountSpecs {
		spec := m.Spec
		if spec == nil {
			continue
		}
		target := spec.Target
		if target != "" && !path.IsAbs(target) {
			target = path.Join(wd, target)
		}
		switch spec.Type {
		case "", "bind":
			err = b.bindMount(ctx, rm, m, target)
		case "cache":
			err = b.cacheMount(ctx, rm, m, target)
		case "tmpfs":
			rm.mounts = append(rm.mounts, sandbox.Mount{Type: sandbox.MountTmpfs, Target: target, Size: spec.SizeLimit, ReadOnly: spec.ReadOnly})
		case "secret":
			err = b.secretMount(rm, m, target)
		case "ssh":
			if target == "" {
				target = "/run/buildkit/ssh_agent." + strconv.Itoa(nssh)
			}
			var added bool
			if added, err = b.sshMount(rm, m, target); added {
				if nssh == 0 {
					rm.env = append(rm.env, "SSH_AUTH_SOCK="+target)
				}
				nssh++
			}
		default:
			err = fmt.Errorf("unsupported mount type %q", spec.Type)
		}
		if err != nil {
			return nil, err
		}
	}
	return rm, nil
}

// bindMount shows a path of the context, a stage or an image: read-only,
// or with rw a throwaway writable copy.
func (b *build) bindMount(ctx context.Context, rm *runMounts, m planner.RunMount, target string) error {
	spec := m.Spec
	if target == "" {
		return errors.New("bind mount: no target")
	}
	src := spec.Source
	if src == "" {
		src = "/"
	}
	var host string
	var dir *copier.Root // a context's directory, or nil for a stage or image
	ignore := b.cfg.Ignore
	switch {
	case m.From.Context:
		if dir = b.context; dir == nil {
			return fmt.Errorf("bind mount %s: no build context", target)
		}
	case m.From.Named != "":
		var err error
		if dir, err = b.namedRoot(m.From.Named); err != nil {
			return fmt.Errorf("bind mount %s: %w", target, err)
		}
		ignore = nil // .dockerignore is the main context's
	}
	if dir != nil {
		// The source is pinned now, resolved inside the context as COPY
		// resolves it (symbolic links followed inside it), and used
		// through its descriptor: whoever can change the context cannot
		// swap a path to the host in before the step mounts it.
		h, err := dir.OpenPath(src)
		if err != nil {
			return fmt.Errorf("bind mount %s: source %s: %w", target, src, unwrapPath(err))
		}
		rm.release = append(rm.release, func() { h.Close() })
		if ignore == nil && spec.ReadOnly {
			if host, err = b.pin(rm, h); err != nil {
				return fmt.Errorf("bind mount %s: source %s: %w", target, src, err)
			}
		} else {
			// .dockerignore applies to bind mounts too (as in BuildKit),
			// and rw must not write to the context: a copy.
			fi, err := h.Stat()
			if err != nil {
				return fmt.Errorf("bind mount %s: source %s: %w", target, src, unwrapPath(err))
			}
			if host, err = b.contextCopy(ctx, rm, dir, ignore, src, fi.IsDir()); err != nil {
				return fmt.Errorf("bind mount %s: %w", target, err)
			}
		}
	} else {
		root, err := b.mountSource(ctx, rm, m.From, !spec.ReadOnly)
		if err != nil {
			return fmt.Errorf("bind mount %s: %w", target, err)
		}
		if host, err = securejoin.SecureJoin(root, src); err != nil {
			return fmt.Errorf("bind mount %s: resolve %s: %w", target, src, err)
		}
	}
	if _, err := os.Stat(host); err != nil {
		return fmt.Errorf("bind mount %s: source %s: %w", target, src, unwrapPath(err))
	}
	rm.mounts = append(rm.mounts, sandbox.Mount{Type: sandbox.MountBind, Source: host, Target: target, ReadOnly: spec.ReadOnly})
	return nil
}

// pin binds the file or directory h is open on at a new mount point in a
// directory of the step, in the builder's own mount namespace (which the
// sandbox's is copied from): a mount made from a descriptor of another
// namespace's mount is refused. The mount goes when the step's mounts are
// released.
func (b *build) pin(rm *runMounts, h *os.File) (string, error) {
	fi, err := h.Stat()
	if err != nil {
		return "", unwrapPath(err)
	}
	tmp, err := b.tempDir(rm)
	if err != nil {
		return "", err
	}
	target := filepath.Join(tmp, "pinned")
	if fi.IsDir() {
		err = os.Mkdir(target, 0o700)
	} else {
		err = os.WriteFile(target, nil, 0o600)
	}
	if err != nil {
		return "", fmt.Errorf("create mount point: %w", unwrapPath(err))
	}
	src := fmt.Sprintf("/proc/self/fd/%d", h.Fd())
	if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return "", fmt.Errorf("pin: %w", err)
	}
	rm.release = append(rm.release, func() {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			b.logger().Warn("unmount pinned source", "err", err)
		}
	})
	return target, nil
}

// contextCopy copies src of the context root (a directory when dir is
// set), without what ignore excludes, to a directory that lasts as long as
// the step, and returns the path of the copy.
func (b *build) contextCopy(ctx context.Context, rm *runMounts, root *copier.Root, ignore *patternmatcher.PatternMatcher, src string, dir bool) (string, error) {
	tmp, err := b.tempDir(rm)
	if err != nil {
		return "", err
	}
	o := copier.Options{Root: root, Sources: []string{src}, DestRoot: tmp, Dest: "/", Ignore: ignore, DirTime: b.dirTime()}
	if err := copier.Copy(ctx, o); err != nil {
		return "", err
	}
	if dir {
		return tmp, nil
	}
	return filepath.Join(tmp, path.Base(path.Clean("/"+src))), nil
}

// tempDir makes a directory removed when the step's mounts are released.
func (b *build) tempDir(rm *runMounts) (string, error) {
	md, err := b.mountsDir()
	if err != nil {
		return "", err
	}
	parent := filepath.Join(md, "tmp")
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", fmt.Errorf("create mount directory: %w", unwrapPath(err))
	}
	dir, err := os.MkdirTemp(parent, "m-")
	if err != nil {
		return "", fmt.Errorf("create mount directory: %w", unwrapPath(err))
	}
	rm.release = append(rm.release, func() {
		if err := os.RemoveAll(dir); err != nil {
			b.logger().Warn("remove mount directory", "err", err)
		}
	})
	return dir, nil
}

// mountSource mounts the filesystem of a stage or image, read-only or
// writable over a throwaway upper directory, until the step ends.
func (b *build) mountSource(ctx context.Context, rm *runMounts, from planner.CopySource, writable bool) (string, error) {
	var s *state
	switch {
	case from.Scratch:
		s = &state{}
	case from.Image != nil:
		var err error
		if s, err = b.imageState(from.Image); err != nil {
			return "", err
		}
	default:
		prev, ok := b.result(from.Stage)
		if !ok {
			return "", fmt.Errorf("stage %d has not been built", from.Stage)
		}
		s = prev.clone()
	}
	lowers, err := b.lowers(ctx, s)
	if err != nil {
		return "", err
	}
	var m *snapshot.Mount
	if writable {
		m, err = b.cfg.Snapshots.Mount(ctx, lowers)
	} else {
		m, err = b.cfg.Snapshots.MountReadOnly(ctx, lowers)
	}
	if err != nil {
		return "", err
	}
	rm.release = append(rm.release, func() {
		if err := m.Release(); err != nil {
			b.logger().Warn("release mount", "err", err)
		}
	})
	return m.Dir, nil
}

// secretMount shows a secret as a file (target, by default
// /run/secrets/ID) and/or an environment variable (env=).
func (b *build) secretMount(rm *runMounts, m planner.RunMount, target string) error {
	spec := m.Spec
	id := spec.CacheID
	if id == "" && target != "" {
		id = path.Base(target)
	}
	if id == "" {
		return errors.New("secret mount: no id")
	}
	sec, ok := b.cfg.Secrets[id]
	if !ok {
		if spec.Required {
			return fmt.Errorf("secret %s: not provided (use --secret id=%s,...)", id, id)
		}
		return nil
	}
	data := sec.Data
	if sec.File != "" {
		var err error
		if data, err = os.ReadFile(sec.File); err != nil {
			return fmt.Errorf("secret %s: read: %w", id, unwrapPath(err))
		}
	}
	if v := strings.TrimSpace(string(data)); len(v) >= 4 {
		rm.secrets = append(rm.secrets, v)
	}
	if spec.Env != nil {
		rm.env = append(rm.env, *spec.Env+"="+string(data))
		if spec.Target == "" {
			return nil // env only, as BuildKit does
		}
	}
	if target == "" {
		target = "/run/secrets/" + id
	}
	f := sandbox.Mount{Type: sandbox.MountFile, Target: target, Data: data, Mode: 0o400}
	setOwner(&f, spec.Mode, spec.UID, spec.GID)
	rm.mounts = append(rm.mounts, f)
	return nil
}

func setOwner(m *sandbox.Mount, mode, uid, gid *uint64) {
	if mode != nil {
		m.Mode = os.FileMode(*mode & 0o7777)
	}
	if uid != nil {
		m.UID = uint32(*uid)
	}
	if gid != nil {
		m.GID = uint32(*gid)
	}
}
