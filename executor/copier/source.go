package copier

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/patternmatcher"
	"golang.org/x/sys/unix"
)

// item is one resolved source.
type item struct {
	name string      // the source as written, for messages
	rel  string      // its path inside the source root, symbolic links resolved, slash-separated, "" for the root
	fi   os.FileInfo // its Lstat: never a symbolic link
	base string      // the name a file takes in a destination directory
	// parents is set for a --parents source: rel is then the directory the
	// kept paths are relative to, and parents matches them.
	parents *parentsSpec
}

// parentsSpec is the path a --parents source keeps below its pivot.
type parentsSpec struct {
	pattern  string // cleaned, relative; "" keeps everything
	include  *patternmatcher.PatternMatcher
	required bool // no wildcard: the path must exist
}

// resolveSource expands one source into the entries it names. A wildcard
// matching nothing yields none; a plain path that does not exist is an
// error.
func (c *copier) resolveSource(s string) ([]item, error) {
	if c.o.Parents {
		return c.resolveParents(s)
	}
	return c.resolvePlain(s)
}

// resolvePlain expands a source without --parents.
func (c *copier) resolvePlain(s string) ([]item, error) {
	p := path.Join("/", filepath.ToSlash(s))
	if !hasWildcard(p) {
		it, err := c.lookup(s, p)
		if err != nil {
			return nil, err
		}
		return []item{it}, nil
	}
	return c.glob(s, p)
}

// lookup resolves the plain path p (absolute inside the source root),
// following symbolic links inside the root.
func (c *copier) lookup(name, p string) (item, error) {
	host, err := securejoin.SecureJoinVFS(c.srcRoot, p, visibleFS{c})
	if err != nil {
		return item{}, fmt.Errorf("resolve %q: %w", name, bare(err))
	}
	rel := c.rel(host)
	fi, err := c.lstatInRoot(rel)
	if err != nil {
		if c.o.Ignore != nil && errors.Is(err, ErrNotFound) && c.existsIgnoringPatterns(p) {
			return item{}, fmt.Errorf("resolve %q: %w: excluded by .dockerignore", name, ErrNotFound)
		}
		return item{}, fmt.Errorf("resolve %q: %w", name, err)
	}
	return item{name: name, rel: rel, fi: fi, base: path.Base(p)}, nil
}

// existsIgnoringPatterns tells whether p would resolve without .dockerignore.
func (c *copier) existsIgnoringPatterns(p string) bool {
	fd, err := c.src.open(p, unix.O_PATH)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// glob expands the wildcard path p: the components before the first
// wildcard are resolved like a plain path; the rest is matched, component by
// component, against the entries below, whose matches are then followed if
// they are symbolic links.
func (c *copier) glob(name, p string) ([]item, error) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	i := 0
	for i < len(parts) && !hasWildcard(parts[i]) {
		i++
	}
	for _, part := range parts[i:] {
		if _, err := filepath.Match(part, ""); err != nil {
			return nil, fmt.Errorf("resolve %q: %w", name, err)
		}
	}
	prefix := "/" + strings.Join(parts[:i], "/")
	dir, err := c.lookup(name, prefix)
	if err != nil {
		return nil, err
	}
	if !dir.fi.IsDir() {
		return nil, nil
	}
	type match struct {
		rel string // relative to the source root
		fi  os.FileInfo
	}
	var matches []match
	var find func(d srcDir, depth int) error
	find = func(d srcDir, depth int) error {
		entries, err := c.src.entries(d)
		if err != nil {
			return c.srcErr("read directory", d.rel, err)
		}
		for _, e := range entries {
			ok, _ := filepath.Match(parts[i+depth], e.name)
			if !ok {
				continue
			}
			childRel := d.child(e.name)
			fi, err := d.lstat(e.name)
			if err != nil {
				return c.srcErr("stat", childRel, err)
			}
			if !c.visible(childRel, fi.IsDir()) {
				continue
			}
			if i+depth == len(parts)-1 {
				matches = append(matches, match{childRel, fi})
			} else if fi.IsDir() {
				sub, err := d.openDir(e.name)
				if err != nil {
					return c.srcErr("open", childRel, err)
				}
				err = find(sub, depth+1)
				sub.close()
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	top, err := c.src.openDir(dir.rel)
	if err != nil {
		return nil, c.srcErr("open", dir.rel, err)
	}
	err = find(top, 0)
	top.close()
	if err != nil {
		return nil, err
	}
	items := make([]item, 0, len(matches))
	for _, m := range matches {
		// A match that is not a directory is subject to --exclude, relative
		// to the wildcard's directory, as documented for COPY --exclude
		// (BuildKit itself only filters inside directories).
		excluded := false
		if c.excludes != nil {
			exRel := strings.TrimPrefix(strings.TrimPrefix(m.rel, dir.rel), "/")
			excluded, _ = c.excludes.MatchesOrParentMatches(exRel)
		}
		// A match reached through directories is resolved already; a
		// symbolic link is followed inside the root.
		it, err := item{rel: m.rel, fi: m.fi}, error(nil)
		if m.fi.Mode()&os.ModeSymlink != 0 {
			it, err = c.lookup(m.rel, "/"+m.rel)
		}
		if excluded && (err != nil || !it.fi.IsDir()) {
			continue
		}
		if err != nil {
			return nil, err
		}
		it.base = path.Base(m.rel)
		it.name = name
		items = append(items, it)
	}
	return items, nil
}

// resolveParents resolves a --parents source: the part before a "/./"
// pivot (the source root without one) is the directory to copy from, the
// part after it the path to keep below that directory.
func (c *copier) resolveParents(s string) ([]item, error) {
	s = filepath.ToSlash(s)
	base, pattern, ok := strings.Cut(s, "/./")
	if !ok {
		base, pattern = "/", s
	}
	pattern = strings.TrimPrefix(path.Join("/", pattern), "/")
	spec := &parentsSpec{pattern: pattern, required: !hasWildcard(base) && !hasWildcard(pattern)}
	if pattern != "" {
		pm, err := patternmatcher.New([]string{pattern})
		if err != nil {
			return nil, fmt.Errorf("resolve %q: %w", s, err)
		}
		spec.include = pm
	}
	bases, err := c.resolvePlain(base)
	if err != nil {
		return nil, err
	}
	var items []item
	for _, b := range bases {
		if !b.fi.IsDir() {
			return nil, fmt.Errorf("resolve %q: %s is not a directory", s, path.Join("/", b.rel))
		}
		if spec.required {
			if _, err := c.lookup(s, path.Join("/", b.rel, pattern)); err != nil {
				return nil, err
			}
		}
		b.name, b.parents = s, spec
		items = append(items, b)
	}
	return items, nil
}

// rel is host path p relative to the source root, slash-separated.
func (c *copier) rel(p string) string {
	r := strings.TrimPrefix(strings.TrimPrefix(p, c.srcRoot), "/")
	return filepath.ToSlash(r)
}

// lstatInRoot stats rel, a path inside the source root free of symbolic
// links, through a descriptor opened inside the root; entries hidden by
// .dockerignore do not exist, nor does a final symbolic link (dangling or
// looping).
func (c *copier) lstatInRoot(rel string) (os.FileInfo, error) {
	if rel != "" {
		for i, ch := range rel {
			if ch == '/' && !c.visible(rel[:i], true) {
				return nil, ErrNotFound
			}
		}
	}
	fi, err := c.src.lstat(rel)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, ErrNotFound
		}
		return nil, bare(err)
	}
	if !c.visible(rel, fi.IsDir()) || fi.Mode()&os.ModeSymlink != 0 {
		return nil, ErrNotFound
	}
	return fi, nil
}

// visible tells whether the entry at rel (inside the source root), a
// directory or not, is part of the build context: not ignored by
// .dockerignore, or a directory holding something that is not.
func (c *copier) visible(rel string, isDir bool) bool {
	pm := c.o.Ignore
	if pm == nil || rel == "" {
		return true
	}
	ignored, err := pm.MatchesOrParentMatches(rel)
	if err != nil || !ignored {
		return err == nil
	}
	if !isDir || !pm.Exclusions() {
		return false
	}
	if v, ok := c.hidden[rel]; ok {
		return v
	}
	v := false
	if d, err := c.src.openDir(rel); err == nil {
		d.rel = rel // as the caller wrote it
		v = c.hasVisible(d)
		d.close()
	}
	c.hidden[rel] = v
	return v
}

// hasVisible tells whether the ignored directory d holds a visible entry.
func (c *copier) hasVisible(d srcDir) bool {
	entries, err := c.src.entries(d)
	if err != nil {
		return false
	}
	for _, e := range entries {
		child := d.rel + "/" + e.name
		if ignored, err := c.o.Ignore.MatchesOrParentMatches(child); err == nil && !ignored {
			return true
		}
		if !e.isDir(d) {
			continue
		}
		sub, err := d.openDir(e.name)
		if err != nil {
			continue
		}
		v := c.hasVisible(sub)
		sub.close()
		if v {
			return true
		}
	}
	return false
}

// visibleFS lets securejoin see the source root as the build context is:
// ignored entries do not exist. It reads the root through its descriptor.
type visibleFS struct{ c *copier }

func (v visibleFS) Lstat(name string) (os.FileInfo, error) {
	fi, err := v.c.src.lstat(v.c.rel(name))
	if err != nil {
		return nil, &os.PathError{Op: "lstat", Path: name, Err: err}
	}
	if !v.c.visible(v.c.rel(name), fi.IsDir()) {
		return nil, &os.PathError{Op: "lstat", Path: name, Err: syscall.ENOENT}
	}
	return fi, nil
}

func (v visibleFS) Readlink(name string) (string, error) {
	target, err := v.c.src.readlink(v.c.rel(name))
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: name, Err: err}
	}
	return target, nil
}

// hasWildcard tells whether p holds an unescaped wildcard character.
func hasWildcard(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '*', '?', '[':
			return true
		case '\\':
			i++
		}
	}
	return false
}
