package copier

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/patternmatcher"
)

// Options describes one COPY or ADD. The zero value of each field is the
// instruction without the corresponding flag.
type Options struct {
	// SrcRoot is the directory sources are read from: the build context, or
	// the mounted root filesystem of a stage or image (COPY --from).
	SrcRoot string
	// Root, when set, is the source root opened once by the caller (a
	// build's context, see OpenRoot), read instead of SrcRoot: copies from
	// it all read the same directory, whatever becomes of its path.
	Root *Root
	// Sources are the source paths as written (variables expanded), relative
	// to SrcRoot; a leading "/" and ".." never leave it. A source may hold
	// wildcards (filepath.Match syntax) in any component.
	Sources []string
	// Heredocs are inline sources (COPY <<EOF), written as files named after
	// their delimiter, after the other sources.
	Heredocs []Inline
	// DestRoot is the root filesystem of the step, mounted on the host.
	DestRoot string
	// Dest is the destination inside DestRoot, already absolute; a trailing
	// "/" (or "/.") means a directory. Symbolic links on the way are
	// followed inside DestRoot.
	Dest string
	// Owner is the resolved --chown. Without it, what Copy writes is owned by
	// 0:0 (unless KeepOwners), and unpacked archives keep their owners.
	Owner *Owner
	// KeepOwners keeps the owners of copied files and directories when Owner
	// is nil, as BuildKit does for COPY --from a stage or image. Directories
	// Copy has to create are still owned by 0:0.
	KeepOwners bool
	// Chmod is --chmod: octal ("755", "0644") or symbolic ("u+x,g-w", "a=rX").
	// Empty keeps the modes of the sources.
	Chmod string
	// Add gives ADD semantics: local tar archives (uncompressed, gzip, bzip2,
	// xz or zstd, recognised by content) are unpacked into Dest.
	Add bool
	// Unpack is ADD --unpack: when set it decides whether archives are
	// unpacked, whatever Add says.
	Unpack *bool
	// Excludes are --exclude patterns (.dockerignore syntax), matched against
	// the paths inside a copied directory, relative to it, and against the
	// non-directory matches of a wildcard, relative to the wildcard's
	// directory.
	Excludes []string
	// Parents is --parents: sources keep their directories below the root or
	// below a "/./" pivot, and Dest is always a directory.
	Parents bool
	// Ignore is the .dockerignore of the build context (see LoadIgnore);
	// what it excludes does not exist for Copy. Nil ignores nothing.
	Ignore *patternmatcher.PatternMatcher
	// DirTime is the modification time of what Copy makes rather than
	// copies: the directories it has to create and the heredoc files. The
	// zero value means the time Copy is called.
	DirTime time.Time
}

// Owner is a resolved user and group id.
type Owner struct {
	UID int
	GID int
}

// Inline is an inline (heredoc) source.
type Inline struct {
	Name string // the file name, the heredoc's delimiter word
	Data string
}

var (
	// ErrNotFound is returned (wrapped) when a source does not exist in the
	// source root, or is excluded by .dockerignore.
	ErrNotFound = errors.New("not found")
	// ErrUnsafeArchive is returned (wrapped) when an archive entry would be
	// written outside the directory it is unpacked into.
	ErrUnsafeArchive = errors.New("path outside the destination")
)

// Copy performs the COPY or ADD that o describes. It stops at the first
// error, between two files when ctx is cancelled; what it wrote until then
// stays.
func Copy(ctx context.Context, o Options) error {
	c, err := newCopier(ctx, o)
	if err != nil {
		return err
	}
	defer c.close()
	return c.copy()
}

// copy performs the copy c was made for.
func (c *copier) copy() error {
	o := c.o
	var items []item
	for _, s := range o.Sources {
		if err := checkRemote(s, o.Add); err != nil {
			return err
		}
		found, err := c.resolveSource(s)
		if err != nil {
			return err
		}
		items = append(items, found...)
	}
	for _, h := range o.Heredocs {
		if h.Name == "" || strings.ContainsRune(h.Name, '/') || h.Name == "." || h.Name == ".." {
			return fmt.Errorf("copy heredoc %q: invalid file name", h.Name)
		}
	}
	if len(items)+len(o.Heredocs) == 0 {
		return nil // only wildcards that matched nothing: BuildKit copies nothing
	}

	dirLike := o.Parents || strings.HasSuffix(o.Dest, "/") || strings.HasSuffix(o.Dest, "/.") || o.Dest == "." || o.Dest == ""
	dest := path.Join("/", o.Dest)
	destHost, err := securejoin.SecureJoin(c.destRoot, dest)
	if err != nil {
		return fmt.Errorf("resolve destination %s: %w", dest, bare(err))
	}
	if len(items)+len(o.Heredocs) > 1 && !dirLike && !isDir(destHost) {
		cmd := "COPY"
		if o.Add {
			cmd = "ADD"
		}
		return fmt.Errorf("When using %s with more than one source file, the destination must be a directory and end with a /", cmd) //nolint:staticcheck // Docker's message
	}

	for _, it := range items {
		if err := c.copyItem(it, destHost, dirLike); err != nil {
			return err
		}
	}
	for _, h := range o.Heredocs {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if err := c.writeInline(h, destHost, dirLike); err != nil {
			return err
		}
	}
	return c.applyTimes()
}

// copier is the state of one Copy call.
type copier struct {
	ctx      context.Context
	o        Options
	srcRoot  string  // host path of the source root, for securejoin and the names of entries
	src      *source // the source root, which every read of a source goes through
	destRoot string
	mode     modeFunc // nil: modes kept
	dirPerm  uint32   // permissions of the directories Copy creates
	dirTime  time.Time
	excludes *patternmatcher.PatternMatcher
	unpack   bool
	// times holds the times every directory Copy has written into must end
	// with: restored for existing ones, DirTime for created ones, the
	// source's for copied ones. Applied last, when nothing changes them.
	times map[string]stamp
	// links maps a source inode with several links to its first copy.
	links  map[fileID]string
	hidden map[string]bool // cache of ignored directories' visibility
	// maxSize is the most bytes of file content unpacking may write (0: no
	// limit, as for ADD); unpacked counts them.
	maxSize, unpacked int64
}

func newCopier(ctx context.Context, o Options) (*copier, error) {
	if o.DestRoot == "" {
		return nil, errors.New("copy: no destination root")
	}
	if len(o.Sources) > 0 && o.SrcRoot == "" && o.Root == nil {
		return nil, errors.New("copy: no source root")
	}
	c := &copier{
		ctx:     ctx,
		o:       o,
		dirPerm: 0o755,
		dirTime: o.DirTime,
		unpack:  o.Add,
		times:   map[string]stamp{},
		links:   map[fileID]string{},
		hidden:  map[string]bool{},
	}
	if o.Unpack != nil {
		c.unpack = *o.Unpack
	}
	if c.dirTime.IsZero() {
		c.dirTime = time.Now()
	}
	var err error
	if c.destRoot, err = cleanRoot(o.DestRoot); err != nil {
		return nil, err
	}
	if o.Chmod != "" {
		var perm *uint32
		if c.mode, perm, err = parseChmod(o.Chmod); err != nil {
			return nil, err
		}
		if perm != nil {
			c.dirPerm = *perm & 0o777
		}
	}
	if len(o.Excludes) > 0 {
		if c.excludes, err = patternmatcher.New(o.Excludes); err != nil {
			return nil, fmt.Errorf("parse --exclude patterns: %w", err)
		}
	}
	switch {
	case o.Root != nil:
		c.srcRoot = o.Root.path
		if c.src, err = o.Root.source(); err != nil {
			return nil, err
		}
	case o.SrcRoot != "":
		if c.srcRoot, err = cleanRoot(o.SrcRoot); err != nil {
			return nil, err
		}
		if c.src, err = openSource(c.srcRoot); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// close releases the source root.
func (c *copier) close() {
	if c.src != nil {
		c.src.close()
	}
}

// cleanRoot makes a root absolute and free of symbolic links, as
// securejoin wants it.
func cleanRoot(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return "", fmt.Errorf("resolve root: %w", bare(err))
	}
	return abs, nil
}

// checkRemote refuses the URL and Git sources that are not implemented.
func checkRemote(s string, add bool) error {
	remote := strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
	git := strings.HasPrefix(s, "git@") || strings.HasPrefix(s, "git://")
	switch {
	case remote && add:
		return errors.New("ADD from URL is not supported yet")
	case git && add:
		return errors.New("ADD from a Git repository is not supported yet")
	case remote || git:
		return fmt.Errorf("copy %q: source can't be a URL for COPY", s)
	}
	return nil
}

// copyItem copies one resolved source into the destination.
func (c *copier) copyItem(it item, destHost string, dirLike bool) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	c.links = map[fileID]string{} // BuildKit keeps hard links within a source
	if it.parents != nil {
		return c.copyParents(it, destHost)
	}
	if c.unpack && it.fi.Mode().IsRegular() {
		done, err := c.tryUnpack(it, destHost)
		if done || err != nil {
			return err
		}
	}
	if it.fi.IsDir() {
		d, err := c.src.openDir(it.rel)
		if err != nil {
			return c.srcErr("open", it.rel, err)
		}
		defer d.close()
		return c.copyDirInto(it, d, destHost, level{ignRel: it.rel}, nil)
	}
	target := destHost
	if dirLike {
		if err := c.mkdirAll(destHost); err != nil {
			return err
		}
	}
	if isDir(destHost) {
		target = filepath.Join(destHost, it.base)
	} else if err := c.mkdirAll(filepath.Dir(destHost)); err != nil {
		return err
	}
	parent, name, err := c.src.openParent(it.rel)
	if err != nil {
		return c.srcErr("open", it.rel, err)
	}
	defer parent.close()
	return c.copyEntry(parent, name, it.fi, target)
}

// copyDirInto copies the contents of the directory it, open as top, into
// dir, which is created when missing; the directories in chain (--parents)
// are the pending parents of the walk's start.
func (c *copier) copyDirInto(it item, top srcDir, dir string, lv level, chain []*pending) error {
	if err := c.mkdirAll(dir); err != nil {
		return err
	}
	start, startDst := top, dir
	for _, p := range chain {
		start, startDst = p.src, p.dst
	}
	if err := c.walk(start, startDst, lv, chain); err != nil {
		return err
	}
	if err := c.finishPending(chain); err != nil {
		return err
	}
	// Like BuildKit, the destination takes the time of the source directory.
	c.times[dir] = stampOf(it.fi)
	return nil
}

// writeInline writes a heredoc source.
func (c *copier) writeInline(h Inline, destHost string, dirLike bool) error {
	target := destHost
	if dirLike {
		if err := c.mkdirAll(destHost); err != nil {
			return err
		}
	}
	if isDir(destHost) {
		target = filepath.Join(destHost, h.Name)
	} else if err := c.mkdirAll(filepath.Dir(destHost)); err != nil {
		return err
	}
	if err := c.clearTarget(target); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return c.destErr("create", target, err)
	}
	_, err = f.WriteString(h.Data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return c.destErr("write", target, err)
	}
	mode := uint32(0o644)
	if c.mode != nil {
		mode = c.mode(mode, false)
	}
	uid, gid := c.newOwner()
	st := stamp{atime: c.dirTime, mtime: c.dirTime}
	return c.setMeta(target, uid, gid, &mode, nil, st)
}

// isDir reports whether host path p is a directory, without following a
// final symbolic link.
func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

// newOwner is the owner of what Copy creates rather than copies.
func (c *copier) newOwner() (int, int) {
	if c.o.Owner != nil {
		return c.o.Owner.UID, c.o.Owner.GID
	}
	return 0, 0
}

// showDest is host path p as seen inside the image.
func (c *copier) showDest(p string) string {
	rel, err := filepath.Rel(c.destRoot, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "(outside the root)"
	}
	return path.Join("/", filepath.ToSlash(rel))
}

// showSrc is rel, a path inside the source root, as messages show it.
func showSrc(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

func (c *copier) destErr(op, p string, err error) error {
	return fmt.Errorf("%s %s: %w", op, c.showDest(p), bare(err))
}

// srcErr is the error of op on rel, a path inside the source root.
func (c *copier) srcErr(op, rel string, err error) error {
	return fmt.Errorf("%s %s: %w", op, showSrc(rel), bare(err))
}

// bare strips the host paths an os error carries, keeping its cause; it
// unwraps path errors nested in path errors too, as pathrs-lite makes them.
func bare(err error) error {
	for {
		var pe *os.PathError
		var le *os.LinkError
		var se *os.SyscallError
		switch {
		case errors.As(err, &pe):
			err = pe.Err
		case errors.As(err, &le):
			err = le.Err
		case errors.As(err, &se):
			err = se.Err
		default:
			return err
		}
	}
}
