package copier

import (
	"context"
	"os"
)

// Entry is one entry of the source root that Copy would read.
type Entry struct {
	Source int         // the index, in Options.Sources, of the source it belongs to
	Rel    string      // its path inside the source root, slash-separated ("" for the root)
	Host   string      // its host path
	Info   os.FileInfo // its Lstat: a symbolic link only inside a copied directory
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
	for i, s := range o.Sources {
		if err := checkRemote(s, o.Add); err != nil {
			return err
		}
		items, err := c.resolveSource(s)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(Entry{Source: i, Rel: it.rel, Host: it.host, Info: it.fi}); err != nil {
				return err
			}
			if !it.fi.IsDir() {
				continue
			}
			lv := level{ignRel: it.rel}
			if it.parents != nil {
				lv.include = it.parents.include
			}
			if err := c.selectDir(i, it.host, lv, nil, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// selectDir is walk without the copying: chain holds the directories gone
// into without keeping them, reported once something below them is kept.
func (c *copier) selectDir(src int, dir string, lv level, chain *[]Entry, fn func(Entry) error) error {
	return c.eachChild(dir, lv, func(p string, fi os.FileInfo, childLv level, keep bool) error {
		en := Entry{Source: src, Rel: c.rel(p), Host: p, Info: fi}
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
				return c.selectDir(src, p, childLv, nil, fn)
			}
		case fi.IsDir():
			var pend []Entry
			if chain != nil {
				pend = append(pend, *chain...)
			}
			pend = append(pend, en)
			if err := c.selectDir(src, p, childLv, &pend, fn); err != nil {
				return err
			}
			if chain != nil && len(pend) == 0 {
				*chain = (*chain)[:0] // reported below
			}
		}
		return nil
	})
}
