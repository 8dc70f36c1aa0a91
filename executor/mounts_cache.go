package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mybuild/mybuild/executor/copier"
	"github.com/mybuild/mybuild/executor/sandbox"
	"github.com/mybuild/mybuild/planner"
)

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
