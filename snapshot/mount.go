package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Mount is a root filesystem made by a [Store]: an overlay mount, or with
// the naive snapshotter a copy of the layers. Release it (or Commit it)
// when done.
type Mount struct {
	// Dir is the merged root filesystem.
	Dir string
	// Upper is the upper directory, where the mount's changes land; empty
	// for a read-only mount. With the naive snapshotter it is only filled
	// by [Mount.Changes]: use that rather than Upper.
	Upper string

	path  string      // mounts/<id>
	naive *naiveState // set for the naive snapshotter

	mu       sync.Mutex
	released bool
}

// Mount stacks the layer directories lowers (top-most first, as in overlay's
// lowerdir=) under a fresh, empty upper directory and mounts the result
// read-write on m.Dir. No lowers (FROM scratch) gives an empty root. The
// root directory of the mount takes its owner, mode and times from the
// top-most lower. The overlay runs with redirect_dir, metacopy and index
// off, as Docker's overlay2 does, so that the upper stays an OCI diff:
// renaming a directory that comes from a lower fails with EXDEV, and tools
// such as mv then copy it. With the naive snapshotter m.Dir is a copy of
// the merged layers instead. Either way, [Mount.Changes] gives the upper
// directory once the step is done.
func (s *Store) Mount(ctx context.Context, lowers []string) (*Mount, error) {
	m, err := s.mount(ctx, lowers, true)
	if err != nil {
		return nil, fmt.Errorf("mount layers: %w", err)
	}
	return m, nil
}

// MountReadOnly mounts the layer directories lowers (top-most first)
// read-only on m.Dir, with no upper directory; m.Upper is empty. It is an
// overlay for any number of lowers (padded with empty directories, since
// overlay needs two without an upper), so whiteouts in a single lower stay
// hidden. With the naive snapshotter m.Dir is a copy, which nothing stops
// from being written to.
func (s *Store) MountReadOnly(ctx context.Context, lowers []string) (*Mount, error) {
	m, err := s.mount(ctx, lowers, false)
	if err != nil {
		return nil, fmt.Errorf("mount layers read-only: %w", err)
	}
	return m, nil
}

func (s *Store) mount(ctx context.Context, lowers []string, writable bool) (*Mount, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stack := make([]string, 0, len(lowers)+2)
	for _, l := range lowers {
		if !filepath.IsAbs(l) {
			return nil, fmt.Errorf("lower directory %q is not absolute", l)
		}
		stack = append(stack, filepath.Clean(l))
	}
	for i := 0; len(stack) == 0 || (!writable && len(stack) < 2); i++ {
		stack = append(stack, s.path(emptyDirs[i]))
	}
	var top unix.Stat_t
	if err := unix.Stat(stack[0], &top); err != nil {
		return nil, fmt.Errorf("stat top layer: %w", err)
	}
	if top.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, errors.New("top layer is not a directory")
	}

	// Build the mount directory in tmp/ (named after this process, for
	// Sweep), then move it into mounts/, so every mounts/* has its owner file.
	tmp, err := s.tempDir()
	if err != nil {
		return nil, err
	}
	if err := s.prepareMountDir(tmp, &top, writable && !s.naive); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	_, id, _ := strings.Cut(filepath.Base(tmp), "-")
	dir := s.path("mounts", id)
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("make mount directory: %w", err)
	}
	m := &Mount{Dir: filepath.Join(dir, "merged"), path: dir}
	if writable {
		m.Upper = filepath.Join(dir, "upper")
	}
	if s.naive {
		err = s.mountNaive(ctx, m, stack)
	} else {
		err = s.mountOverlay(stack, dir, writable)
	}
	if err != nil {
		removeMountDir(dir)
		return nil, err
	}
	return m, nil
}

// Changes returns the upper directory holding what changed in m.Dir since
// it was mounted, in overlay form (whiteouts as character devices 0/0,
// opaque directories marked with trusted.overlay.opaque=y), for [IsEmpty],
// [WriteDiff] and [Store.Commit]. Call it once the step is done. For an
// overlay mount it is m.Upper, as it stands. The naive snapshotter walks
// m.Dir and compares it with the layers (owner, mode, times, size, xattrs,
// link counts, and contents where the change time leaves a doubt), each
// call afresh: a deleted name becomes a whiteout, one per name, as BuildKit
// writes them, and a directory put in place of another entry is opaque,
// as overlayfs makes it.
func (m *Mount) Changes(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.released:
		return "", errors.New("compute changes: mount already released")
	case m.Upper == "":
		return "", errors.New("compute changes: read-only mount has no upper directory")
	case m.naive == nil:
		return m.Upper, nil
	}
	if err := os.RemoveAll(m.Upper); err != nil {
		return "", fmt.Errorf("compute changes: %w", err)
	}
	w := &changeWalker{treeCopier: newTreeCopier(ctx), st: m.naive, merged: m.Dir, upper: m.Upper}
	if err := m.naiveChanges(w); err != nil {
		return "", fmt.Errorf("compute changes: %w", err)
	}
	m.naive.changed = true
	return m.Upper, nil
}

func (s *Store) prepareMountDir(dir string, top *unix.Stat_t, writable bool) error {
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(s.owner+"\n"), 0o600); err != nil {
		return fmt.Errorf("record mount owner: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "merged"), 0o755); err != nil {
		return fmt.Errorf("make mount point: %w", err)
	}
	if !writable {
		return nil
	}
	upper := filepath.Join(dir, "upper")
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
		return fmt.Errorf("make work directory: %w", err)
	}
	if err := os.Mkdir(upper, 0o755); err != nil {
		return fmt.Errorf("make upper directory: %w", err)
	}
	// The merged root is the upper's root inode: give it the image's.
	if err := os.Lchown(upper, int(top.Uid), int(top.Gid)); err != nil {
		return fmt.Errorf("set upper directory owner: %w", err)
	}
	if err := unix.Chmod(upper, top.Mode&0o7777); err != nil {
		return fmt.Errorf("set upper directory mode: %w", err)
	}
	ts := []unix.Timespec{top.Atim, top.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, upper, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set upper directory times: %w", err)
	}
	return nil
}

// overlayOptions keep the upper directory expressible as an OCI diff:
// no redirected directories, no metadata-only copy-ups, no inode index.
var overlayOptions = [][2]string{{"redirect_dir", "off"}, {"metacopy", "off"}, {"index", "off"}}

func (s *Store) mountOverlay(lowers []string, dir string, writable bool) error {
	if !s.legacy.Load() {
		err := mountNewAPI(lowers, dir, writable)
		if !errors.Is(err, errNoLowerdirAppend) {
			return err
		}
		s.legacy.Store(true)
	}
	return s.mountLegacy(lowers, dir, writable)
}

var errNoLowerdirAppend = errors.New("overlay lowerdir+ not supported")

// mountNewAPI mounts with fsopen/fsconfig, one "lowerdir+" per lower, which
// has no limit on the options' total length (Linux 6.8).
func mountNewAPI(lowers []string, dir string, writable bool) error {
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) {
		return errNoLowerdirAppend
	}
	if err != nil {
		return fmt.Errorf("open overlay: %w", err)
	}
	defer unix.Close(fsfd)
	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fsfd, key, value); err != nil {
			return fmt.Errorf("configure overlay %s: %w%s", key, err, fsLog(fsfd))
		}
		return nil
	}
	for i, l := range lowers {
		err := unix.FsconfigSetString(fsfd, "lowerdir+", l)
		if err != nil && i == 0 && errors.Is(err, unix.EINVAL) {
			if msg := fsLog(fsfd); msg == "" || strings.Contains(msg, "nknown parameter") {
				return errNoLowerdirAppend
			}
		}
		if err != nil {
			return fmt.Errorf("configure overlay lower %d: %w%s", i, err, fsLog(fsfd))
		}
	}
	if writable {
		if err := set("upperdir", filepath.Join(dir, "upper")); err != nil {
			return err
		}
		if err := set("workdir", filepath.Join(dir, "work")); err != nil {
			return err
		}
	}
	for _, o := range overlayOptions {
		if err := set(o[0], o[1]); err != nil {
			return err
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("create overlay: %w%s", err, fsLog(fsfd))
	}
	attr := 0
	if !writable {
		attr = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("make overlay mount: %w%s", err, fsLog(fsfd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, filepath.Join(dir, "merged"), unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach overlay mount: %w", err)
	}
	return nil
}

// fsLog returns the kernel's messages about a filesystem context, as
// ": msg; msg", or "".
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 4096)
	for range 16 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return ": " + strings.Join(msgs, "; ")
}

// mountLegacy mounts with mount(2), whose options must fit in a page: lowers
// are named through short symlinks in l/, and every path is relative to the
// store root, made the current directory of one throw-away OS thread.
func (s *Store) mountLegacy(lowers []string, dir string, writable bool) error {
	names := make([]string, len(lowers))
	for i, l := range lowers {
		name, err := s.shortLink(l)
		if err != nil {
			return err
		}
		names[i] = "l/" + name
	}
	rel, err := filepath.Rel(s.root, dir)
	if err != nil {
		return fmt.Errorf("mount overlay: %w", err)
	}
	opts := "lowerdir=" + strings.Join(names, ":")
	if writable {
		opts += ",upperdir=" + rel + "/upper,workdir=" + rel + "/work"
	}
	for _, o := range overlayOptions {
		opts += "," + o[0] + "=" + o[1]
	}
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("mount overlay: %d lower layers do not fit in the mount options", len(lowers))
	}
	var flags uintptr
	if !writable {
		flags = unix.MS_RDONLY
	}
	target := filepath.Join(dir, "merged")
	err = inDir(s.root, func() error { return unix.Mount("overlay", target, "overlay", flags, opts) })
	if err != nil {
		return fmt.Errorf("mount overlay: %w", err)
	}
	return nil
}

var shortLinkEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// shortLink returns the name in l/ of a symlink to dir, making it if needed.
func (s *Store) shortLink(dir string) (string, error) {
	sum := sha256.Sum256([]byte(dir))
	name := shortLinkEncoding.EncodeToString(sum[:])[:12]
	p := s.path("l", name)
	err := os.Symlink(dir, p)
	if errors.Is(err, os.ErrExist) {
		cur, rerr := os.Readlink(p)
		if rerr == nil && cur == dir {
			return name, nil
		}
		return "", fmt.Errorf("make short link for %q: %s is taken", dir, name)
	}
	if err != nil {
		return "", fmt.Errorf("make short link: %w", err)
	}
	return name, nil
}

// inDir runs fn on an OS thread of its own whose current directory is dir,
// leaving the process's current directory alone. The thread has unshared
// its filesystem attributes and is discarded afterwards.
func inDir(dir string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// No UnlockOSThread: the runtime ends a thread still locked when
		// its goroutine returns, so the changed cwd dies with it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare filesystem attributes: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("change directory: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Release unmounts m and removes its upper and work directories. It is
// safe to call more than once. A mount still busy after a short wait is
// detached lazily.
func (m *Mount) Release() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.released {
		return nil
	}
	if err := unmount(m.Dir, true); err != nil {
		return fmt.Errorf("release mount: %w", err)
	}
	if err := removeMountDir(m.path); err != nil {
		return fmt.Errorf("release mount: %w", err)
	}
	m.released = true
	return nil
}

// unmount unmounts everything mounted on target. A busy mount is retried
// for a second, then detached lazily if detach is set.
func unmount(target string, detach bool) error {
	busy := 0
	for range 1000 {
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			continue // something may be mounted below
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not (or no longer) a mount point
		case errors.Is(err, unix.EBUSY) && busy < 50:
			busy++
			time.Sleep(20 * time.Millisecond)
		case errors.Is(err, unix.EBUSY) && detach:
			if err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
				return fmt.Errorf("unmount: %w", err)
			}
		default:
			return fmt.Errorf("unmount: %w", err)
		}
	}
	return errors.New("unmount: too many stacked mounts")
}

// removeMountDir deletes a mount directory, refusing while its mount point
// is still mounted (deleting through the mount would reach the layers).
func removeMountDir(dir string) error {
	merged := filepath.Join(dir, "merged")
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, merged, unix.AT_SYMLINK_NOFOLLOW, 0, &stx)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("check mount point: %w", err)
	}
	if err == nil && stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return errors.New("remove mount directory: still mounted")
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove mount directory: %w", err)
	}
	return nil
}
