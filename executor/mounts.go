package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
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
	if m.From.Context {
		if b.cfg.ContextDir == "" {
			return fmt.Errorf("bind mount %s: no build context", target)
		}
		p, err := securejoin.SecureJoin(b.cfg.ContextDir, src)
		if err != nil {
			return fmt.Errorf("bind mount %s: resolve %s: %w", target, src, err)
		}
		if b.cfg.Ignore == nil && spec.ReadOnly {
			host = p
		} else {
			// .dockerignore applies to bind mounts too (as in BuildKit),
			// and rw must not write to the context: a copy.
			if host, err = b.contextCopy(ctx, rm, src, p); err != nil {
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

// contextCopy copies the context's src (resolved to p), without what
// .dockerignore excludes, to a directory that lasts as long as the step.
func (b *build) contextCopy(ctx context.Context, rm *runMounts, src, p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", src, unwrapPath(err))
	}
	dir, err := b.tempDir(rm)
	if err != nil {
		return "", err
	}
	o := copier.Options{SrcRoot: b.cfg.ContextDir, Sources: []string{src}, DestRoot: dir, Dest: "/", Ignore: b.cfg.Ignore, DirTime: b.dirTime()}
	if err := copier.Copy(ctx, o); err != nil {
		return "", err
	}
	if fi.IsDir() {
		return dir, nil
	}
	return filepath.Join(dir, filepath.Base(p)), nil
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

// sshMount forwards the agent socket of Config.SSH[id] (id "default"
// unless set) through a socket of the mount's owner and mode. It reports
// whether the mount was added (an optional missing agent is skipped).
func (b *build) sshMount(rm *runMounts, m planner.RunMount, target string) (bool, error) {
	spec := m.Spec
	id := spec.CacheID
	if id == "" {
		id = "default"
	}
	sock, ok := b.cfg.SSH[id]
	if !ok {
		if spec.Required {
			return false, fmt.Errorf("ssh %s: not provided (use --ssh %s=SOCKET)", id, id)
		}
		return false, nil
	}
	dir, err := b.tempDir(rm)
	if err != nil {
		return false, err
	}
	p := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", p)
	if err != nil {
		return false, fmt.Errorf("ssh %s: listen: %w", id, err)
	}
	fwd := &forwarder{l: l, to: sock}
	go fwd.serve()
	rm.release = append(rm.release, fwd.close)
	o := sandbox.Mount{Mode: 0o600}
	setOwner(&o, spec.Mode, spec.UID, spec.GID)
	if err := os.Chown(p, int(o.UID), int(o.GID)); err != nil {
		return false, fmt.Errorf("ssh %s: %w", id, unwrapPath(err))
	}
	if err := os.Chmod(p, o.Mode.Perm()); err != nil {
		return false, fmt.Errorf("ssh %s: %w", id, unwrapPath(err))
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return false, fmt.Errorf("ssh %s: %w", id, unwrapPath(err))
	}
	rm.mounts = append(rm.mounts, sandbox.Mount{Type: sandbox.MountBind, Source: p, Target: target})
	return true, nil
}

// forwarder relays connections on l to the unix socket to.
type forwarder struct {
	l  net.Listener
	to string
	wg sync.WaitGroup
	mu sync.Mutex
	cs []net.Conn
}

func (f *forwarder) serve() {
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("unix", f.to, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		f.cs = append(f.cs, c, up)
		f.mu.Unlock()
		f.wg.Add(2)
		go f.pipe(c, up)
		go f.pipe(up, c)
	}
}

func (f *forwarder) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	_, _ = io.Copy(dst, src)
	if uc, ok := dst.(*net.UnixConn); ok {
		_ = uc.CloseWrite()
	}
}

func (f *forwarder) close() {
	f.l.Close()
	f.mu.Lock()
	for _, c := range f.cs {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// cacheMount shows a persistent directory, keyed by id (the target unless
// set), shared, private or locked between concurrent steps.
func (b *build) cacheMount(ctx context.Context, rm *runMounts, m planner.RunMount, target string) error {
	spec := m.Spec
	if target == "" {
		return errors.New("cache mount: no target")
	}
	id := spec.CacheID
	if id == "" {
		id = target
	}
	md, err := b.mountsDir()
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(id))
	base := filepath.Join(md, CacheMountsDir, hex.EncodeToString(sum[:]))
	if err := os.MkdirAll(base, 0o700); err != nil {
		return fmt.Errorf("cache mount %s: %w", target, unwrapPath(err))
	}
	var (
		inst   int
		unlock func()
	)
	switch spec.CacheSharing {
	case "", "shared":
		unlock, err = lockFile(ctx, filepath.Join(base, "0.lock"), unix.LOCK_SH, true)
	case "locked":
		unlock, err = lockFile(ctx, filepath.Join(base, "0.lock"), unix.LOCK_EX, true)
	case "private":
		// The first instance no other step holds; a new one when all are busy.
		for inst = 0; ; inst++ {
			unlock, err = lockFile(ctx, filepath.Join(base, strconv.Itoa(inst)+".lock"), unix.LOCK_EX, false)
			if !errors.Is(err, errBusy) {
				break
			}
		}
	default:
		return fmt.Errorf("cache mount %s: unknown sharing %q", target, spec.CacheSharing)
	}
	if err != nil {
		return fmt.Errorf("cache mount %s: %w", target, err)
	}
	rm.release = append(rm.release, unlock)
	dir := filepath.Join(base, strconv.Itoa(inst))
	if err := b.initCache(ctx, rm, m, dir); err != nil {
		return fmt.Errorf("cache mount %s: %w", target, err)
	}
	rm.mounts = append(rm.mounts, sandbox.Mount{Type: sandbox.MountBind, Source: dir, Target: target, ReadOnly: spec.ReadOnly})
	return nil
}

// initCache creates a cache directory on first use: owner and mode from
// the mount's options, content from its from= stage or image.
func (b *build) initCache(ctx context.Context, rm *runMounts, m planner.RunMount, dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".new-")
	if err != nil {
		return unwrapPath(err)
	}
	defer os.RemoveAll(tmp)
	if !m.From.Scratch && !m.From.Context {
		root, err := b.mountSource(ctx, rm, m.From, false)
		if err != nil {
			return err
		}
		src := m.Spec.Source
		if src == "" {
			src = "/"
		}
		o := copier.Options{SrcRoot: root, Sources: []string{src}, DestRoot: tmp, Dest: "/", KeepOwners: true, DirTime: b.dirTime()}
		if err := copier.Copy(ctx, o); err != nil {
			return err
		}
	}
	o := sandbox.Mount{Mode: 0o755}
	setOwner(&o, m.Spec.Mode, m.Spec.UID, m.Spec.GID)
	if err := os.Chown(tmp, int(o.UID), int(o.GID)); err != nil {
		return unwrapPath(err)
	}
	if err := os.Chmod(tmp, o.Mode.Perm()); err != nil {
		return unwrapPath(err)
	}
	// Another step may have made it meanwhile: never replace it.
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create: %w", err)
	}
	return nil
}

// CacheMountsDir is the directory of cache mounts under Config.MountsDir.
const CacheMountsDir = "cache"

// errBusy is a lock another holder has.
var errBusy = errors.New("busy")

// lockFile takes a flock on p, waiting (until ctx ends) when wait is set,
// else failing with errBusy. The returned function releases it.
func lockFile(ctx context.Context, p string, how int, wait bool) (func(), error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", unwrapPath(err))
	}
	for delay := time.Millisecond; ; delay = min(delay*2, 100*time.Millisecond) {
		err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock: %w", err)
		}
		if !wait {
			f.Close()
			return nil, errBusy
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// PruneCacheMounts removes the cache mounts under mountsDir that no build
// is using, and returns how many bytes that freed.
func PruneCacheMounts(mountsDir string) (int64, error) {
	dir := filepath.Join(mountsDir, CacheMountsDir)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read cache mounts: %w", unwrapPath(err))
	}
	var freed int64
	var errs []error
	for _, e := range ents {
		base := filepath.Join(dir, e.Name())
		insts, err := os.ReadDir(base)
		if err != nil {
			errs = append(errs, fmt.Errorf("read cache mount: %w", unwrapPath(err)))
			continue
		}
		for _, in := range insts {
			name, ok := strings.CutSuffix(in.Name(), ".lock")
			if !ok {
				continue
			}
			unlock, err := lockFile(context.Background(), filepath.Join(base, in.Name()), unix.LOCK_EX, false)
			if err != nil {
				continue // in use
			}
			p := filepath.Join(base, name)
			freed += duSize(p)
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, fmt.Errorf("remove cache mount: %w", unwrapPath(err)))
			}
			unlock()
		}
	}
	return freed, errors.Join(errs...)
}

func duSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
