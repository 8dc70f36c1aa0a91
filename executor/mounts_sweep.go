package executor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Config.MountsDir is shared by every build of a store, in any number of
// processes. What a step needs only while it runs (tmp/: copies of the
// context for a bind mount; the ".new-" directories in which a cache mount
// is filled) carries no owner, so a build that dies leaves it there. Each
// build holds mountsLock shared while it runs; whoever takes it
// exclusively knows that no build is under way, and that all of these are
// leftovers.
const (
	mountsLock     = "lock"
	mountsTmp      = "tmp"   // as mountsDir and tempDir make it
	newCachePrefix = ".new-" // as initCache makes them
)

// holdMountsDir sweeps what dead builds left in dir when no other build
// is using it, then holds the shared lock until release is called.
func (b *build) holdMountsDir(ctx context.Context, dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock mounts directory: %w", unwrapPath(err))
	}
	lock := filepath.Join(dir, mountsLock)
	unlock, err := lockFile(ctx, lock, unix.LOCK_EX, false)
	if err == nil {
		_, serr := mountsLeftovers(ctx, dir, true)
		unlock()
		if serr != nil {
			b.logger().Warn("sweep mounts directory", "err", serr)
		}
	} else if !errors.Is(err, errBusy) {
		return nil, fmt.Errorf("lock mounts directory: %w", err)
	}
	// Between the two locks another build may sweep: nothing of this
	// one is there yet.
	release, err = lockFile(ctx, lock, unix.LOCK_SH, true)
	if err != nil {
		return nil, fmt.Errorf("lock mounts directory: %w", err)
	}
	return release, nil
}

// MountsLeftovers lists what builds that died left in mountsDir (a
// [Config].MountsDir): the throwaway directories of RUN --mount and the
// cache mounts they were filling, as paths relative to mountsDir. With
// remove set it deletes them too. While a build is using mountsDir,
// whatever is there may be that build's: MountsLeftovers then lists
// nothing and reports busy. The next build to start alone sweeps the same.
func MountsLeftovers(ctx context.Context, mountsDir string, remove bool) (leftovers []string, busy bool, err error) {
	if _, err := os.Stat(mountsDir); errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	unlock, err := lockFile(ctx, filepath.Join(mountsDir, mountsLock), unix.LOCK_EX, false)
	if errors.Is(err, errBusy) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("check mounts directory: %w", err)
	}
	defer unlock()
	leftovers, err = mountsLeftovers(ctx, mountsDir, remove)
	return leftovers, false, err
}

// mountsLeftovers lists, and with remove deletes, the leftovers in dir;
// the caller holds the lock exclusively.
func mountsLeftovers(ctx context.Context, dir string, remove bool) ([]string, error) {
	var found []string
	ents, err := os.ReadDir(filepath.Join(dir, mountsTmp))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read mounts directory: %w", unwrapPath(err))
	}
	for _, e := range ents {
		found = append(found, filepath.Join(mountsTmp, e.Name()))
	}
	caches, err := os.ReadDir(filepath.Join(dir, CacheMountsDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read cache mounts: %w", unwrapPath(err))
	}
	for _, c := range caches {
		insts, err := os.ReadDir(filepath.Join(dir, CacheMountsDir, c.Name()))
		if err != nil {
			continue // not a cache mount's directory
		}
		for _, in := range insts {
			if strings.HasPrefix(in.Name(), newCachePrefix) {
				found = append(found, filepath.Join(CacheMountsDir, c.Name(), in.Name()))
			}
		}
	}
	if !remove {
		return found, nil
	}
	var errs []error
	for _, f := range found {
		if err := ctx.Err(); err != nil {
			return found, err
		}
		if err := os.RemoveAll(filepath.Join(dir, f)); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", f, unwrapPath(err)))
		}
	}
	return found, errors.Join(errs...)
}
