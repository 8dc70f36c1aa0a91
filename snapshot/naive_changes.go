package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// ctimeSlack covers the coarse clock filesystems stamp change times with:
// a file changed less than this before the copy was finished is compared
// by content even when its metadata say it is unchanged.
const ctimeSlack = 100 * time.Millisecond

// changeWalker writes the difference between a naive mount's directory and
// its layers as an overlay upper directory.
type changeWalker struct {
	*treeCopier // copies from the mount into the upper, keeping hard links
	st          *naiveState
	merged      string
	upper       string
}

// naiveChanges fills upper, which must not exist, with the changes made
// in the naive mount m.
func (m *Mount) naiveChanges(w *changeWalker) error {
	var root unix.Stat_t
	if err := unix.Lstat(w.merged, &root); err != nil {
		return fmt.Errorf("stat mount root: %w", err)
	}
	if err := os.Mkdir(w.upper, 0o700); err != nil {
		return fmt.Errorf("make upper directory: %w", err)
	}
	if err := w.setMeta(w.merged, &root, w.upper, false); err != nil {
		return err
	}
	base, err := readView(w.st.lowers)
	if err != nil {
		return err
	}
	return w.dir("", base)
}

// dir compares the directory rel of the mount with base, its view of the
// layers, and writes the differences below it.
func (w *changeWalker) dir(rel string, base map[string]*viewEntry) error {
	cur, err := readNames(filepath.Join(w.merged, rel))
	if err != nil {
		return err
	}
	present := make(map[string]bool, len(cur))
	for _, name := range cur {
		present[name] = true
	}
	for _, name := range sortedKeys(base) {
		if present[name] {
			continue
		}
		if err := w.ensureDir(rel); err != nil {
			return err
		}
		if err := unix.Mknod(filepath.Join(w.upper, rel, name), unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("make whiteout: %w", err)
		}
	}
	for _, name := range cur {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		if err := w.entry(joinRel(rel, name), base[name]); err != nil {
			return err
		}
	}
	return w.finishDir(rel)
}

// entry compares the mount's entry rel with b, the layers' (nil if they
// have none).
func (w *changeWalker) entry(rel string, b *viewEntry) error {
	p := filepath.Join(w.merged, rel)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fmt.Errorf("stat %q: %w", rel, err)
	}
	switch {
	case b == nil:
		return w.copyNew(rel, &st, false)
	case st.Mode&unix.S_IFMT != b.st.Mode&unix.S_IFMT:
		// A directory in place of something else hides nothing below it,
		// but overlayfs marks it opaque all the same: do as it does.
		return w.copyNew(rel, &st, isDir(&st))
	case isDir(&st):
		same, err := sameMeta(p, &st, b)
		if err != nil {
			return err
		}
		if !same {
			if err := w.ensureDir(rel); err != nil {
				return err
			}
		}
		sub, err := readView(b.dirs)
		if err != nil {
			return err
		}
		return w.dir(rel, sub)
	}
	changed, err := w.changed(p, &st, b)
	if err != nil || !changed {
		return err
	}
	return w.copyNew(rel, &st, false)
}

// changed reports whether the non-directory p, of the same type as b, is
// not what the layers have. Its link count does not count: a new name
// made for a file of the layers is a new file in the diff, and the file
// itself unchanged, as with overlay (where the link copies the file up
// unchanged and [WriteDiff] leaves it out).
func (w *changeWalker) changed(p string, st *unix.Stat_t, b *viewEntry) (bool, error) {
	if st.Size != b.st.Size || st.Mtim != b.st.Mtim || st.Rdev != b.st.Rdev {
		return true, nil
	}
	if same, err := sameMeta(p, st, b); err != nil || !same {
		return !same, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		a, err := os.Readlink(p)
		if err != nil {
			return false, fmt.Errorf("read symlink: %w", err)
		}
		c, err := os.Readlink(b.path)
		if err != nil {
			return false, fmt.Errorf("read symlink: %w", err)
		}
		return a != c, nil
	case unix.S_IFREG:
		ctime := time.Unix(st.Ctim.Unix())
		if ctime.Before(w.st.done.Add(-ctimeSlack)) {
			return false, nil // untouched since the copy
		}
		same, err := sameContent(w.ctx, p, b.path)
		return !same, err
	}
	return false, nil
}

// sameMeta reports whether p has b's owner, mode, modification time and
// xattrs.
func sameMeta(p string, st *unix.Stat_t, b *viewEntry) (bool, error) {
	if st.Uid != b.st.Uid || st.Gid != b.st.Gid || st.Mode != b.st.Mode || st.Mtim != b.st.Mtim {
		return false, nil
	}
	x1, err := readXattrs(p)
	if err != nil {
		return false, err
	}
	x2, err := readXattrs(b.path)
	if err != nil {
		return false, err
	}
	if len(x1) != len(x2) {
		return false, nil
	}
	for k, v := range x1 {
		if v2, ok := x2[k]; !ok || !bytes.Equal(v, v2) {
			return false, nil
		}
	}
	return true, nil
}

// sameContent reports whether the regular files a and b hold the same
// bytes, stopping when ctx is cancelled.
func sameContent(ctx context.Context, a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, fmt.Errorf("open file: %w", err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, fmt.Errorf("open file: %w", err)
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		na, erra := io.ReadFull(fa, ba)
		nb, errb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		endA := errors.Is(erra, io.EOF) || errors.Is(erra, io.ErrUnexpectedEOF)
		endB := errors.Is(errb, io.EOF) || errors.Is(errb, io.ErrUnexpectedEOF)
		switch {
		case erra != nil && !endA:
			return false, fmt.Errorf("read file: %w", erra)
		case errb != nil && !endB:
			return false, fmt.Errorf("read file: %w", errb)
		case endA || endB:
			return endA == endB, nil
		}
	}
}

// copyNew copies the mount's entry rel, and all below it, into the upper;
// a directory is marked opaque if opaque is set.
func (w *changeWalker) copyNew(rel string, st *unix.Stat_t, opaque bool) error {
	parent, _ := splitRel(rel)
	if err := w.ensureDir(parent); err != nil {
		return err
	}
	src := filepath.Join(w.merged, rel)
	dst := filepath.Join(w.upper, rel)
	if !isDir(st) {
		return w.copyEntry(src, st, dst)
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return fmt.Errorf("make directory: %w", err)
	}
	if err := w.setMeta(src, st, dst, false); err != nil {
		return err
	}
	if opaque {
		if err := unix.Lsetxattr(dst, opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark directory opaque: %w", err)
		}
	}
	names, err := readNames(src)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		var cst unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, name), &cst); err != nil {
			return fmt.Errorf("stat %q: %w", joinRel(rel, name), err)
		}
		if err := w.copyNew(joinRel(rel, name), &cst, false); err != nil {
			return err
		}
	}
	return w.finishDir(rel)
}

// ensureDir makes the upper's directory rel, and its parents, with the
// mount's owner, mode and xattrs; finishDir sets its times.
func (w *changeWalker) ensureDir(rel string) error {
	dst := filepath.Join(w.upper, rel)
	if _, err := os.Lstat(dst); err == nil || rel == "" {
		return nil
	}
	parent, _ := splitRel(rel)
	if err := w.ensureDir(parent); err != nil {
		return err
	}
	src := filepath.Join(w.merged, rel)
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("stat %q: %w", rel, err)
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return fmt.Errorf("make directory: %w", err)
	}
	return w.setMeta(src, &st, dst, false)
}

// finishDir gives the upper's directory rel, if it was made, the mount's
// times, once everything below it is written.
func (w *changeWalker) finishDir(rel string) error {
	dst := filepath.Join(w.upper, rel)
	if _, err := os.Lstat(dst); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(w.merged, rel), &st); err != nil {
		return fmt.Errorf("stat %q: %w", rel, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func sortedKeys(m map[string]*viewEntry) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
