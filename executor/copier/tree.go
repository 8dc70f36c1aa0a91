package copier

import (
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
	src     srcDir // open while the walk is below it
	dst     string
	fi      os.FileInfo
	made    bool // created or found by materialize
	existed bool // was there before
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
// directory d that the include and exclude rules keep or go into, with its
// name, its Lstat, its level and whether it is kept.
func (c *copier) eachChild(d srcDir, lv level, fn func(name string, fi os.FileInfo, childLv level, keep bool) error) error {
	entries, err := c.src.entries(d)
	if err != nil {
		return c.srcErr("read directory", d.rel, err)
	}
	for _, e := range entries {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		childLv, keep, descend, err := c.visit(lv, e.name, e.isDir(d))
		if err != nil {
			return err
		}
		if !keep && !descend {
			continue
		}
		fi, err := d.lstat(e.name)
		if err != nil {
			return c.srcErr("stat", d.child(e.name), err)
		}
		if err := fn(e.name, fi, childLv, keep); err != nil {
			return err
		}
	}
	return nil
}

// walk copies the entries of the source directory src into dst. The
// directories in chain are created, if need be, before the first entry is
// copied. It goes down by descriptors: a directory swapped for a symbolic
// link meanwhile is an error, never followed.
func (c *copier) walk(src srcDir, dst string, lv level, chain []*pending) error {
	return c.eachChild(src, lv, func(name string, fi os.FileInfo, childLv level, keep bool) error {
		d := filepath.Join(dst, name)
		if fi.IsDir() {
			sub, err := src.openDir(name)
			if err != nil {
				return c.srcErr("open", src.child(name), err)
			}
			defer sub.close()
			if !keep {
				p := &pending{src: sub, dst: d, fi: fi}
				if err := c.walk(sub, d, childLv, append(chain, p)); err != nil {
					return err
				}
				return c.finishPending([]*pending{p})
			}
			if err := c.materialize(chain); err != nil {
				return err
			}
			if err := c.makeDir(d); err != nil {
				return err
			}
			if err := c.walk(sub, d, childLv, nil); err != nil {
				return err
			}
			return c.copyMeta(sub.fd, fi, d)
		}
		if !keep || fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		if err := c.materialize(chain); err != nil {
			return err
		}
		return c.copyEntry(src, name, fi, d)
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
			if err := c.copyMeta(p.src.fd, p.fi, p.dst); err != nil {
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
	top, err := c.src.openDir(it.rel)
	if err != nil {
		return c.srcErr("open", it.rel, err)
	}
	defer top.close()
	// Walk straight down the components without wildcards instead of
	// reading every directory of the source.
	var chain []*pending
	defer func() {
		for _, p := range chain {
			p.src.close()
		}
	}()
	src, dst := top, destHost
	parts := strings.Split(spec.pattern, "/")
	for i := 0; i < len(parts)-1 && !hasWildcard(parts[i]) && !strings.Contains(parts[i], "**"); i++ {
		next, keep, descend, err := c.visit(lv, parts[i], true)
		if err != nil {
			return err
		}
		fi, err := src.lstat(parts[i])
		if err != nil || !fi.IsDir() || !(keep || descend) {
			return c.mkdirAll(destHost) // nothing there: BuildKit still makes the destination
		}
		if keep { // the pattern cannot match a directory above its last component
			break
		}
		sub, err := src.openDir(parts[i])
		if err != nil {
			return c.srcErr("open", src.child(parts[i]), err)
		}
		src, dst, lv = sub, filepath.Join(dst, parts[i]), next
		chain = append(chain, &pending{src: sub, dst: dst, fi: fi})
	}
	return c.copyDirInto(it, top, destHost, lv, chain)
}

// copyEntry copies the non-directory name of the source directory d
// (described by fi) to dst.
func (c *copier) copyEntry(d srcDir, name string, fi os.FileInfo, dst string) error {
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
		return c.copyFile(d, name, fi, dst)
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := d.readlink(name)
		if err != nil {
			return c.srcErr("read link", d.child(name), err)
		}
		if err := os.Symlink(target, dst); err != nil {
			return c.destErr("symlink", dst, err)
		}
		return c.copyMeta(-1, fi, dst)
	default: // devices and named pipes
		if err := unix.Mknod(dst, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return c.destErr("mknod", dst, err)
		}
		// Opened only to read its extended attributes.
		fd, err := unix.Openat(d.fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return c.copyMeta(-1, fi, dst)
		}
		defer unix.Close(fd)
		return c.copyMeta(fd, fi, dst)
	}
}

// copyFile streams the regular file name of the source directory d into
// the new file dst, and gives dst its metadata.
func (c *copier) copyFile(d srcDir, name string, fi os.FileInfo, dst string) error {
	in, err := d.openFile(name)
	if err != nil {
		return c.srcErr("open", d.child(name), err)
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
		return fmt.Errorf("copy %s: %w", showSrc(d.child(name)), bare(err))
	}
	return c.copyMeta(int(in.Fd()), fi, dst)
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
