package copier

import (
	"context"
	"os"
	"path"
	"path/filepath"
)

// Entry is one entry of the source root that Copy would read.
type Entry struct {
	Source int    // the index, in Options.Sources, of the source it belongs to
	Rel    string // its path inside the source root, slash-separated ("" for the root)
	// Host is its host path. It names the entry (a stat cache's key) but is
	// not to be opened, which would follow whatever symbolic link has
	// replaced a directory on the way since: Open and Readlink read the
	// entry inside the source root, as Copy does.
	Host string
	Info os.FileInfo // its Lstat: a symbolic link only inside a copied directory
	src  *source
	// parent is the directory the walk listed the entry in, open while fn
	// runs for a non-directory; fd -1 when there is none.
	parent srcDir
}

// Open opens the entry, a regular file, for reading: from the directory
// Select found it in, or resolved inside the source root; it works while
// Select's fn runs for the entry. An error is an *os.PathError naming Rel.
func (e Entry) Open() (*os.File, error) {
	var f *os.File
	var err error
	if e.parent.fd >= 0 {
		f, err = e.parent.openFile(path.Base(e.Rel))
	} else {
		f, err = e.src.openFile(e.Rel)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: showSrc(e.Rel), Err: bare(err)}
	}
	return f, nil
}

// Readlink reads the entry, a symbolic link, as Open finds it. An error is
// an *os.PathError naming Rel.
func (e Entry) Readlink() (string, error) {
	var target string
	var err error
	if e.parent.fd >= 0 {
		target, err = e.parent.readlink(path.Base(e.Rel))
	} else {
		target, err = e.src.readlink(e.Rel)
	}
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: showSrc(e.Rel), Err: bare(err)}
	}
	return target, nil
}

// Select calls fn, in a fixed order, for every entry of o.SrcRoot that
// Copy with o would read: the resolved sources (wildcards, .dockerignore,
// --exclude and --parents applied as Copy applies them) and, below each
// directory, what Copy would copy of it, including the directories it
// would only create to hold something further down. Heredocs, DestRoot and
// the destination play no part. It is what a cache key of the copy covers.
func Select(ctx context.Context, o Options, fn func(Entry) error) error {
	o.DestRoot = "/" // unused: Select writes nothing
	c, err := newCopier(ctx, o)
	if err != nil {
		return err
	}
	defer c.close()
	return c.selectAll(fn)
}

// selectAll is Select with c.
func (c *copier) selectAll(fn func(Entry) error) error {
	for i, s := range c.o.Sources {
		if err := checkRemote(s, c.o.Add); err != nil {
			return err
		}
		items, err := c.resolveSource(s)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := c.ctx.Err(); err != nil {
				return err
			}
			if err := fn(c.entry(i, it.rel, it.fi, srcDir{fd: -1})); err != nil {
				return err
			}
			if !it.fi.IsDir() {
				continue
			}
			lv := level{ignRel: it.rel}
			if it.parents != nil {
				lv.include = it.parents.include
			}
			d, err := c.src.openDir(it.rel)
			if err != nil {
				return c.srcErr("open", it.rel, err)
			}
			err = c.selectDir(i, d, lv, nil, fn)
			d.close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// entry is the Entry of rel, from source src, found in the directory
// parent (fd -1: resolved from the root). A directory's Entry may be
// reported after its parent is closed: it never keeps the parent.
func (c *copier) entry(src int, rel string, fi os.FileInfo, parent srcDir) Entry {
	if fi.IsDir() {
		parent = srcDir{fd: -1}
	}
	return Entry{Source: src, Rel: rel, Host: filepath.Join(c.srcRoot, filepath.FromSlash(rel)), Info: fi, src: c.src, parent: parent}
}

// selectDir is walk without the copying: chain holds the directories gone
// into without keeping them, reported once something below them is kept.
func (c *copier) selectDir(src int, d srcDir, lv level, chain *[]Entry, fn func(Entry) error) error {
	return c.eachChild(d, lv, func(name string, fi os.FileInfo, childLv level, keep bool) error {
		en := c.entry(src, d.child(name), fi, d)
		var sub srcDir
		if fi.IsDir() {
			var err error
			if sub, err = d.openDir(name); err != nil {
				return c.srcErr("open", en.Rel, err)
			}
			defer sub.close()
		}
		switch {
		case keep:
			if chain != nil {
				for _, pe := range *chain {
					if err := fn(pe); err != nil {
						return err
					}
				}
				*chain = (*chain)[:0]
			}
			if err := fn(en); err != nil {
				return err
			}
			if fi.IsDir() {
				return c.selectDir(src, sub, childLv, nil, fn)
			}
		case fi.IsDir():
			var pend []Entry
			if chain != nil {
				pend = append(pend, *chain...)
			}
			pend = append(pend, en)
			if err := c.selectDir(src, sub, childLv, &pend, fn); err != nil {
				return err
			}
			if chain != nil && len(pend) == 0 {
				*chain = (*chain)[:0] // reported below
			}
		}
		return nil
	})
}
