package copier

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"
)

// level is where the walk stands for each pattern set: the path matched
// against it and the parent's match results.
type level struct {
	ignRel  string // inside the source root, for .dockerignore
	ignInfo patternmatcher.MatchInfo
	exRel   string // inside the copied directory, for --exclude
	exInfo  patternmatcher.MatchInfo
	inRel   string // below the --parents pivot
	inInfo  patternmatcher.MatchInfo
	include *patternmatcher.PatternMatcher // --parents; nil keeps everything
}

// pending is a directory the walk went into without copying it yet: it is
// created only when something below it is copied (--parents, and the
// exceptions of .dockerignore and --exclude patterns).
type pending struct {
	src, dst string
	fi       os.FileInfo
	made     bool // created or found by materialize
	existed  bool // was there before
}

// visit decides about the entry name below parent: whether it is copied
// (keep) and, when it is a directory that is not, whether entries below it
// may be (descend).
func (c *copier) visit(parent level, name string, isDir bool) (lv level, keep, descend bool, err error) {
	lv = level{
		ignRel:  path.Join(parent.ignRel, name),
		exRel:   path.Join(parent.exRel, name),
		inRel:   path.Join(parent.inRel, name),
		include: parent.include,
	}
	keep, descend = true, isDir
	if pm := c.o.Ignore; pm != nil {
		var m bool
		if m, lv.ignInfo, err = pm.MatchesUsingParentResults(lv.ignRel, parent.ignInfo); err != nil {
			return lv, false, false, fmt.Errorf("match .dockerignore: %w", err)
		}
		if m {
			keep, descend = false, descend && pm.Exclusions()
		}
	}
	if pm := c.excludes; pm != nil {
		var m bool
		if m, lv.exInfo, err = pm.MatchesUsingParentResults(lv.exRel, parent.exInfo); err != nil {
			return lv, false, false, fmt.Errorf("match --exclude: %w", err)
		}
		if m {
			keep, descend = false, descend && pm.Exclusions()
		}
	}
	if pm := lv.include; pm != nil {
		var m bool
		if m, lv.inInfo, err = pm.MatchesUsingParentResults(lv.inRel, parent.inInfo); err != nil {
			return lv, false, false, fmt.Errorf("match --parents: %w", err)
		}
		if !m {
			keep = false
		}
	}
	return lv, keep, descend, nil
}

// eachChild calls fn, in name order, for each entry of the source
// directory dir that the include and exclude rules keep or go into, with
// its host path, its Lstat, its level and whether it is kept.
func (c *copier) eachChild(dir string, lv level, fn func(p string, fi os.FileInfo, childLv level, keep bool) error) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return c.srcErr("read directory", dir, err)
	}
	for _, e := range entries {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		childLv, keep, descend, err := c.visit(lv, e.Name(), e.IsDir())
		if err != nil {
			return err
		}
		if !keep && !descend {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			return c.srcErr("stat", p, err)
		}
		if err := fn(p, fi, childLv, keep); err != nil {
			return err
		}
	}
	return nil
}

// walk copies the entries of the source directory src into dst. The
// directories in chain are created, if need be, before the first entry is
// copied.
func (c *copier) walk(src, dst string, lv level, chain []*pending) error {
	return c.eachChild(src, lv, func(s string, fi os.FileInfo, childLv level, keep bool) error {
		d := filepath.Join(dst, filepath.Base(s))
		switch {
		case keep && fi.IsDir():
			if err := c.materialize(chain); err != nil {
				return err
			}
			if err := c.makeDir(d); err != nil {
				return err
			}
			if err := c.walk(s, d, childLv, nil); err != nil {
				return err
			}
			return c.copyMeta(s, fi, d)
		case fi.IsDir():
			p := &pending{src: s, dst: d, fi: fi}
			if err := c.walk(s, d, childLv, append(chain, p)); err != nil {
				return err
			}
			return c.finishPending([]*pending{p})
		case keep:
			if fi.Mode()&os.ModeSocket != 0 {
				return nil
			}
			if err := c.materialize(chain); err != nil {
				return err
			}
			return c.copyEntry(s, fi, d)
		}
		return nil
	})
}

// materialize creates the pending directories of chain that are not yet.
func (c *copier) materialize(chain []*pending) error {
	for _, p := range chain {
		if p.made {
			continue
		}
		p.existed = isDir(p.dst)
		if err := c.makeDir(p.dst); err != nil {
			return err
		}
		p.made = true
	}
	return nil
}

// finishPending gives the pending directories that were created their
// metadata; ones that existed only take the source's mode, as in BuildKit.
func (c *copier) finishPending(chain []*pending) error {
	for i := len(chain) - 1; i >= 0; i-- {
		p := chain[i]
		switch {
		case !p.made:
		case p.existed:
			mode := c.modeOf(p.fi)
			if err := unix.Chmod(p.dst, mode); err != nil {
				return c.destErr("chmod", p.dst, err)
			}
		default:
			if err := c.copyMeta(p.src, p.fi, p.dst); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyParents copies a --parents source: the kept path below its base
// directory, with the directories on the way.
func (c *copier) copyParents(it item, destHost string) error {
	spec := it.parents
	lv := level{ignRel: it.rel, include: spec.include}
	// Walk straight down the components without wildcards instead of
	// reading every directory of the source.
	var chain []*pending
	src, dst := it.host, destHost
	parts := strings.Split(spec.pattern, "/")
	for i := 0; i < len(parts)-1 && !hasWildcard(parts[i]) && !strings.Contains(parts[i], "**"); i++ {
		next, keep, descend, err := c.visit(lv, parts[i], true)
		if err != nil {
			return err
		}
		s := filepath.Join(src, parts[i])
		fi, err := os.Lstat(s)
		if err != nil || !fi.IsDir() || !(keep || descend) {
			return c.mkdirAll(destHost) // nothing there: BuildKit still makes the destination
		}
		if keep { // the pattern cannot match a directory above its last component
			break
		}
		src, dst, lv = s, filepath.Join(dst, parts[i]), next
		chain = append(chain, &pending{src: s, dst: dst, fi: fi})
	}
	return c.copyDirInto(it, destHost, lv, chain)
}

// copyEntry copies the non-directory src (described by fi) to dst.
func (c *copier) copyEntry(src string, fi os.FileInfo, dst string) error {
	if fi.Mode()&os.ModeSocket != 0 {
		return nil
	}
	if err := c.clearTarget(dst); err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.Mode().IsRegular():
		id := fileID{dev: uint64(st.Dev), ino: st.Ino}
		if st.Nlink > 1 {
			if first, ok := c.links[id]; ok {
				if err := os.Link(first, dst); err != nil {
					return c.destErr("link", dst, err)
				}
				return nil
			}
			c.links[id] = dst
		}
		if err := c.copyFile(src, dst); err != nil {
			return err
		}
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return c.srcErr("read link", src, err)
		}
		if err := os.Symlink(target, dst); err != nil {
			return c.destErr("symlink", dst, err)
		}
	default: // devices and named pipes
		if err := unix.Mknod(dst, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return c.destErr("mknod", dst, err)
		}
	}
	return c.copyMeta(src, fi, dst)
}

// copyFile streams the regular file src into the new file dst.
func (c *copier) copyFile(src, dst string) error {
	in, err := openRegular(src)
	if err != nil {
		return c.srcErr("open", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return c.destErr("create", dst, err)
	}
	_, err = io.Copy(out, in) // copy_file_range between two files
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", c.showSrc(src), bare(err))
	}
	return nil
}

// openRegular opens the source file p for reading; p must still be a
// regular file (opening a named pipe put there since would block).
func openRegular(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|noFollow|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = errors.New("not a regular file")
		}
		return nil, err
	}
	return f, nil
}

// clearTarget removes what stands at dst so that a non-directory can be
// written there; an existing directory is an error.
func (c *copier) clearTarget(dst string) error {
	c.touch(filepath.Dir(dst))
	fi, err := os.Lstat(dst)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return c.destErr("stat", dst, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("copy to %s: cannot replace a directory with a file", c.showDest(dst))
	}
	if err := os.Remove(dst); err != nil {
		return c.destErr("remove", dst, err)
	}
	return nil
}

// makeDir makes sure the directory dst exists, creating it when missing; an
// existing non-directory (a symbolic link included) is an error.
func (c *copier) makeDir(dst string) error {
	fi, err := os.Lstat(dst)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("copy to %s: cannot copy a directory onto a non-directory", c.showDest(dst))
	case !os.IsNotExist(err):
		return c.destErr("stat", dst, err)
	}
	c.touch(filepath.Dir(dst))
	if err := os.Mkdir(dst, 0o700); err != nil {
		return c.destErr("mkdir", dst, err)
	}
	return nil
}

// mkdirAll creates the host directory p (inside the destination root) and
// its missing parents, like mkdir -p: owned by Owner (or root), with the
// --chmod mode if octal (0755 otherwise) and DirTime. Components are checked
// one by one: a non-directory on the way is an error.
func (c *copier) mkdirAll(p string) error {
	rel, err := filepath.Rel(c.destRoot, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("mkdir %s: outside the root", c.showDest(p))
	}
	cur := c.destRoot
	if rel == "." {
		return nil
	}
	uid, gid := c.newOwner()
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("mkdir %s: %w", c.showDest(cur), syscall.ENOTDIR)
			}
			continue
		}
		if !os.IsNotExist(err) {
			return c.destErr("stat", cur, err)
		}
		c.touch(filepath.Dir(cur))
		if err := os.Mkdir(cur, 0o700); err != nil {
			return c.destErr("mkdir", cur, err)
		}
		perm := c.dirPerm
		if err := c.setMeta(cur, uid, gid, &perm, nil, stamp{atime: c.dirTime, mtime: c.dirTime}); err != nil {
			return err
		}
		c.times[cur] = stamp{atime: c.dirTime, mtime: c.dirTime}
	}
	return nil
}
