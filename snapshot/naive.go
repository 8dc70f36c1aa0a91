package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The naive snapshotter, for where overlayfs cannot be mounted: a mount is
// a plain directory holding a copy of the merged layers, and after the step
// [Mount.Changes] walks it, compares it with the layers and writes what
// differs as an overlay upper directory, which [WriteDiff] and
// [Store.Commit] then take as they take overlay's.

// naiveState is what a naive mount remembers of its making.
type naiveState struct {
	lowers []string // the layer directories, top-most first
	// done is when the copy was finished; a file whose change time is
	// later may have been rewritten in place.
	done time.Time
	// changed is set once Changes has filled the upper directory.
	changed bool
}

// mountNaive fills m.Dir with the merged view of lowers (top-most first).
func (s *Store) mountNaive(ctx context.Context, m *Mount, lowers []string) error {
	c := newTreeCopier(ctx)
	if err := c.copyView(lowers, m.Dir); err != nil {
		return fmt.Errorf("copy layers: %w", err)
	}
	var top unix.Stat_t
	if err := unix.Lstat(lowers[0], &top); err != nil {
		return fmt.Errorf("stat top layer: %w", err)
	}
	if err := c.setMeta(lowers[0], &top, m.Dir, true); err != nil {
		return fmt.Errorf("copy layers: %w", err)
	}
	m.naive = &naiveState{lowers: lowers, done: time.Now()}
	return nil
}

// viewEntry is one entry of the merged view of several layers.
type viewEntry struct {
	path string // in the top-most layer that has it
	st   unix.Stat_t
	// dirs are, for a directory, the layer directories whose contents
	// make its contents, top-most first.
	dirs []string
}

// readView lists the merged directory made of the layer directories dirs
// (top-most first) as overlayfs shows it: the top-most entry of a name
// wins, a whiteout (character device 0/0) hides the name below it, and a
// directory is merged with the directories of that name below it down to
// an opaque one or anything that is not a directory.
func readView(dirs []string) (map[string]*viewEntry, error) {
	out := make(map[string]*viewEntry)
	hidden := make(map[string]bool)
	for i, d := range dirs {
		names, err := readNames(d)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if _, ok := out[name]; ok || hidden[name] {
				continue
			}
			e := &viewEntry{path: filepath.Join(d, name)}
			if err := unix.Lstat(e.path, &e.st); err != nil {
				return nil, fmt.Errorf("stat layer entry: %w", err)
			}
			if isWhiteout(&e.st) {
				hidden[name] = true
				continue
			}
			if isDir(&e.st) {
				if e.dirs, err = mergedDirs(e.path, dirs[i+1:], name); err != nil {
					return nil, err
				}
			}
			out[name] = e
		}
	}
	return out, nil
}

// mergedDirs returns top followed by the directories name in below that
// overlay merges with it.
func mergedDirs(top string, below []string, name string) ([]string, error) {
	out := []string{top}
	if op, err := isOpaque(top); err != nil || op {
		return out, err
	}
	for _, b := range below {
		p := filepath.Join(b, name)
		var st unix.Stat_t
		err := unix.Lstat(p, &st)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stat layer entry: %w", err)
		}
		if !isDir(&st) {
			break // a whiteout or a file ends the merge
		}
		out = append(out, p)
		if op, err := isOpaque(p); err != nil || op {
			return out, err
		}
	}
	return out, nil
}

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func isOpaque(dir string) (bool, error) {
	for _, x := range []string{opaqueXattr, "user.overlay.opaque"} {
		v, err := getXattr(dir, x)
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read opaque xattr: %w", err)
		}
		if string(v) == "y" {
			return true, nil
		}
	}
	return false, nil
}

func isOverlayXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}

// readNames returns the names in dir, sorted.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

// treeCopier copies files with their metadata, keeping hard links: files
// sharing a source inode share one copy.
type treeCopier struct {
	ctx   context.Context
	links map[fileID]string // source inode → its first copy
}

func newTreeCopier(ctx context.Context) *treeCopier {
	return &treeCopier{ctx: ctx, links: make(map[fileID]string)}
}

// copyView copies the merged view of the layer directories dirs into the
// existing directory dst.
func (c *treeCopier) copyView(dirs []string, dst string) error {
	view, err := readView(dirs)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(view))
	for name := range view {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		e := view[name]
		target := filepath.Join(dst, name)
		if !isDir(&e.st) {
			if err := c.copyEntry(e.path, &e.st, target); err != nil {
				return err
			}
			continue
		}
		if err := os.Mkdir(target, 0o700); err != nil {
			return fmt.Errorf("make directory: %w", err)
		}
		if err := c.copyView(e.dirs, target); err != nil {
			return err
		}
		if err := c.setMeta(e.path, &e.st, target, true); err != nil {
			return err
		}
	}
	return nil
}

// copyEntry copies the non-directory src, whose stat is st, to the new
// name dst with its metadata, or links dst to the copy already made of
// src's inode.
func (c *treeCopier) copyEntry(src string, st *unix.Stat_t, dst string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	id := fileID{st.Dev, st.Ino}
	if st.Nlink > 1 {
		if first, ok := c.links[id]; ok {
			if err := unix.Linkat(unix.AT_FDCWD, first, unix.AT_FDCWD, dst, 0); err != nil {
				return fmt.Errorf("link file: %w", err)
			}
			return nil
		}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if err := c.copyFile(src, st.Size, dst); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("read symlink: %w", err)
		}
		if err := os.Symlink(target, dst); err != nil {
			return fmt.Errorf("make symlink: %w", err)
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dst, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return fmt.Errorf("make special file: %w", err)
		}
	default:
		return fmt.Errorf("copy file: unknown file type %#o", st.Mode&unix.S_IFMT)
	}
	if err := c.setMeta(src, st, dst, true); err != nil {
		return err
	}
	if st.Nlink > 1 {
		c.links[id] = dst
	}
	return nil
}

// copyChunk bounds one copy_file_range pass, so that cancellation is
// noticed within large files.
const copyChunk = 16 << 20

func (c *treeCopier) copyFile(src string, size int64, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open file: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("make file: %w", err)
	}
	defer out.Close()
	if size > 0 && unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return out.Close()
	}
	for done := int64(0); done < size; {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		// *os.File.ReadFrom of a limited *os.File uses copy_file_range.
		n, err := out.ReadFrom(io.LimitReader(in, min(copyChunk, size-done)))
		done += n
		if err != nil {
			return fmt.Errorf("copy file: %w", err)
		}
		if n == 0 {
			return errors.New("copy file: file shrank while being read")
		}
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy file: %w", err)
	}
	return nil
}

// setMeta gives dst src's owner, mode, xattrs (overlay's own left out)
// and, if times is set, access and modification times.
func (c *treeCopier) setMeta(src string, st *unix.Stat_t, dst string, times bool) error {
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("set owner: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(dst, st.Mode&0o7777); err != nil {
			return fmt.Errorf("set mode: %w", err)
		}
	}
	xs, err := readXattrs(src)
	if err != nil {
		return err
	}
	for name, v := range xs {
		err := unix.Lsetxattr(dst, name, v, 0)
		if err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	if !times {
		return nil
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// readXattrs returns path's xattrs but overlay's own.
func readXattrs(path string) (map[string][]byte, error) {
	names, err := listXattrs(path)
	if err != nil {
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	var out map[string][]byte
	for _, name := range names {
		if isOverlayXattr(name) {
			continue
		}
		v, err := getXattr(path, name)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read xattr %s: %w", name, err)
		}
		if out == nil {
			out = make(map[string][]byte)
		}
		out[name] = v
	}
	return out, nil
}
