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
)

// item is one resolved source.
type item struct {
	name string      // the source as written, for messages
	host string      // host path, symbolic links resolved
	rel  string      // host's path inside the source root, slash-separated, "" for the root
	fi   os.FileInfo // Lstat of host: never a symbolic link
	base string      // the name a file takes in a destination directory
	// parents is set for a --parents source: host is then the directory the
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
	fi, err := c.lstatInRoot(host)
	if err != nil {
		if c.o.Ignore != nil && errors.Is(err, ErrNotFound) && c.existsIgnoringPatterns(p) {
			return item{}, fmt.Errorf("resolve %q: %w: excluded by .dockerignore", name, ErrNotFound)
		}
		return item{}, fmt.Errorf("resolve %q: %w", name, err)
	}
	return item{name: name, host: host, rel: c.rel(host), fi: fi, base: path.Base(p)}, nil
}

// existsIgnoringPatterns tells whether p would resolve without .dockerignore.
func (c *copier) existsIgnoringPatterns(p string) bool {
	host, err := securejoin.SecureJoin(c.srcRoot, p)
	if err != nil {
		return false
	}
	_, err = os.Lstat(host)
	return err == nil
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
	var matches []string // relative to the source root
	var find func(host, rel string, depth int) error
	find = func(host, rel string, depth int) error {
		entries, err := os.ReadDir(host)
		if err != nil {
			return c.srcErr("read directory", host, err)
		}
		for _, e := range entries {
			ok, _ := filepath.Match(parts[i+depth], e.Name())
			if !ok {
				continue
			}
			childRel := path.Join(rel, e.Name())
			fi, err := e.Info()
			if err != nil {
				return c.srcErr("stat", filepath.Join(host, e.Name()), err)
			}
			if !c.visible(childRel, fi) {
				continue
			}
			if i+depth == len(parts)-1 {
				matches = append(matches, childRel)
			} else if e.IsDir() {
				if err := find(filepath.Join(host, e.Name()), childRel, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := find(dir.host, dir.rel, 0); err != nil {
		return nil, err
	}
	items := make([]item, 0, len(matches))
	for _, m := range matches {
		// A match that is not a directory is subject to --exclude, relative
		// to the wildcard's directory, as documented for COPY --exclude
		// (BuildKit itself only filters inside directories).
		excluded := false
		if c.excludes != nil {
			exRel := strings.TrimPrefix(strings.TrimPrefix(m, dir.rel), "/")
			excluded, _ = c.excludes.MatchesOrParentMatches(exRel)
		}
		it, err := c.lookup(m, "/"+m)
		if excluded && (err != nil || !it.fi.IsDir()) {
			continue
		}
		if err != nil {
			return nil, err
		}
		it.base = path.Base(m)
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

// lstatInRoot stats host path p (inside the source root) component by
// component, so that no symbolic link is followed on the way; entries
// hidden by .dockerignore do not exist.
func (c *copier) lstatInRoot(p string) (os.FileInfo, error) {
	rel := c.rel(p)
	cur := c.srcRoot
	fi, err := os.Lstat(cur)
	if err != nil {
		return nil, bare(err)
	}
	if rel == "" {
		return fi, nil
	}
	parts := strings.Split(rel, "/")
	for i, part := range parts {
		if !fi.IsDir() {
			return nil, ErrNotFound
		}
		cur = filepath.Join(cur, part)
		if fi, err = os.Lstat(cur); err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil, ErrNotFound
			}
			return nil, bare(err)
		}
		if !c.visible(strings.Join(parts[:i+1], "/"), fi) {
			return nil, ErrNotFound
		}
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil, ErrNotFound // a dangling or looping link
	}
	return fi, nil
}

// visible tells whether the entry at rel (inside the source root) is part of
// the build context: not ignored by .dockerignore, or a directory holding
// something that is not.
func (c *copier) visible(rel string, fi os.FileInfo) bool {
	pm := c.o.Ignore
	if pm == nil || rel == "" {
		return true
	}
	ignored, err := pm.MatchesOrParentMatches(rel)
	if err != nil || !ignored {
		return err == nil
	}
	if !fi.IsDir() || !pm.Exclusions() {
		return false
	}
	if v, ok := c.hidden[rel]; ok {
		return v
	}
	v := c.hasVisible(rel)
	c.hidden[rel] = v
	return v
}

// hasVisible tells whether the ignored directory rel holds a visible entry.
func (c *copier) hasVisible(rel string) bool {
	entries, err := os.ReadDir(filepath.Join(c.srcRoot, filepath.FromSlash(rel)))
	if err != nil {
		return false
	}
	for _, e := range entries {
		child := rel + "/" + e.Name()
		if ignored, err := c.o.Ignore.MatchesOrParentMatches(child); err == nil && !ignored {
			return true
		}
		if e.IsDir() && c.hasVisible(child) {
			return true
		}
	}
	return false
}

// visibleFS lets securejoin see the source root as the build context is:
// ignored entries do not exist.
type visibleFS struct{ c *copier }

func (v visibleFS) Lstat(name string) (os.FileInfo, error) {
	fi, err := os.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !v.c.visible(v.c.rel(name), fi) {
		return nil, &os.PathError{Op: "lstat", Path: name, Err: syscall.ENOENT}
	}
	return fi, nil
}

func (v visibleFS) Readlink(name string) (string, error) { return os.Readlink(name) }

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
