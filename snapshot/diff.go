package snapshot

import (
	"archive/tar"
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

// DiffOptions controls [WriteDiff]. The zero value keeps files' own
// modification times.
type DiffOptions struct {
	// SourceDateEpoch, when set, clamps modification times to it
	// (SOURCE_DATE_EPOCH); later times become it, earlier ones stay.
	SourceDateEpoch *time.Time
	// Lowers are the layer directories under the upper (top-most first).
	// With them, a directory that overlay copied up but that holds nothing
	// and kept the lower's mode, owner and time is left out, as BuildKit's
	// overlay differ leaves it out (a RUN's /etc/hosts mount point does
	// that to /etc).
	Lowers []string
}

// WriteDiff writes the OCI layer tar (uncompressed) of the overlay upper
// directory upper to w and returns the number of entries; 0 means the step
// changed nothing (the tar is then only its end marker). Only upper is read,
// so the cost follows the size of the change.
//
// The tar is deterministic: in each directory, entries sorted by name, a
// directory before its contents; names relative, without "./", directories
// ending in "/"; PAX format, empty user and group names, no access or change
// times; modification times clamped to opts.SourceDateEpoch. Overlay
// whiteouts (character devices 0/0) become ".wh.NAME" and an opaque directory
// (trusted.overlay.opaque=y or user.overlay.opaque=y) is followed by its
// ".wh..wh..opq"; both are empty regular files with mode 0, owner 0:0 and
// time 0. Files sharing an inode are written once, the later names as hard
// links to the first. security.capability is the only xattr kept (as PAX
// SCHILY.xattr.), as Docker and BuildKit do. Sockets are skipped.
//
// A name starting with ".wh." in upper is an error, and so are redirected
// directories and metacopy files, which this format cannot express (the
// store mounts overlays with both off). File contents are streamed.
func WriteDiff(ctx context.Context, w io.Writer, upper string, opts DiffOptions) (int, error) {
	d := &differ{
		ctx:    ctx,
		tw:     tar.NewWriter(w),
		upper:  upper,
		epoch:  opts.SourceDateEpoch,
		lowers: opts.Lowers,
		links:  make(map[fileID]string),
		buf:    make([]byte, 128<<10),
	}
	if err := d.walkDir("", nil); err != nil {
		return d.n, err
	}
	if err := d.tw.Close(); err != nil {
		return d.n, fmt.Errorf("write layer: %w", err)
	}
	return d.n, nil
}

// IsEmpty reports whether the directory dir, typically a mount's upper
// directory, has no entries: the step changed nothing.
func IsEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, fmt.Errorf("open directory: %w", err)
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read directory: %w", err)
	}
	return false, nil
}

type fileID struct {
	dev, ino uint64
}

type differ struct {
	ctx    context.Context
	tw     *tar.Writer
	upper  string
	epoch  *time.Time
	lowers []string
	links  map[fileID]string // first name of each multiply-linked inode
	buf    []byte
	n      int
}

type diffItem struct {
	name     string // in the upper
	out      string // in the tar: name, or ".wh."+name for a whiteout
	whiteout bool
	st       unix.Stat_t
}

func joinRel(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// walkDir writes the entries below the upper-relative directory rel. A
// non-nil lv means rel replaces a lower directory wholesale (it, or a
// directory above it, is opaque): every entry lv shows that the upper
// lacks gets a whiteout.
func (d *differ) walkDir(rel string, lv *lowerDir) error {
	abs := filepath.Join(d.upper, rel)
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("read upper directory: %w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("read upper directory: %w", err)
	}
	items := make([]diffItem, 0, len(names))
	for _, name := range names {
		if strings.HasPrefix(name, whiteoutPrefix) {
			return fmt.Errorf("write diff: %q: names starting with %q are reserved for whiteouts", joinRel(rel, name), whiteoutPrefix)
		}
		it := diffItem{name: name, out: name}
		if err := unix.Lstat(filepath.Join(abs, name), &it.st); err != nil {
			return fmt.Errorf("stat %q: %w", joinRel(rel, name), err)
		}
		if it.st.Mode&unix.S_IFMT == unix.S_IFCHR && it.st.Rdev == 0 {
			it.whiteout = true
			it.out = whiteoutPrefix + name
		}
		items = append(items, it)
	}
	if lv != nil {
		inUpper := make(map[string]bool, len(names))
		for _, n := range names {
			inUpper[n] = true
		}
		for n := range lv.names {
			if !inUpper[n] {
				items = append(items, diffItem{name: n, out: whiteoutPrefix + n, whiteout: true})
			}
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].out < items[j].out })
	for i := range items {
		if err := d.ctx.Err(); err != nil {
			return err
		}
		if err := d.entry(rel, &items[i], lv); err != nil {
			return err
		}
	}
	return nil
}

func (d *differ) entry(dir string, it *diffItem, parent *lowerDir) error {
	if it.whiteout {
		return d.marker(joinRel(dir, it.out))
	}
	name := joinRel(dir, it.name)
	p := filepath.Join(d.upper, name)
	st := &it.st
	mtime := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	if d.epoch != nil && mtime.After(*d.epoch) {
		mtime = *d.epoch
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: mtime,
		Format:  tar.FormatPAX,
	}
	opaque, err := d.xattrs(name, p, hdr)
	if err != nil {
		return err
	}
	// The lower view a directory's contents replace, if they replace one.
	var lv *lowerDir
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		switch {
		case parent != nil:
			if lv, err = parent.child(name, it.name); err != nil {
				return err
			}
		case opaque && len(d.lowers) > 0:
			if lv, err = lowerView(d.lowers, name); err != nil {
				return err
			}
			opaque = false // written as whiteouts instead
		case !opaque:
			if same, err := d.unchangedDir(name, p, st); err != nil || same {
				return err
			}
		}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		if hdr.Linkname, err = os.Readlink(p); err != nil {
			return fmt.Errorf("read symlink %q: %w", name, err)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		return nil // a tar cannot carry sockets
	default:
		return fmt.Errorf("%q has unknown file type %#o", name, st.Mode&unix.S_IFMT)
	}
	if hdr.Typeflag != tar.TypeDir && st.Nlink > 1 {
		id := fileID{dev: st.Dev, ino: st.Ino}
		if first, ok := d.links[id]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			hdr.Size = 0
			hdr.PAXRecords = nil
			hdr.Devmajor, hdr.Devminor = 0, 0
		} else {
			d.links[id] = name
		}
	}
	if err := d.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write header of %q: %w", name, err)
	}
	d.n++
	switch hdr.Typeflag {
	case tar.TypeReg:
		return d.contents(name, p, hdr.Size)
	case tar.TypeDir:
		if opaque {
			if err := d.marker(name + "/" + opaqueMarker); err != nil {
				return err
			}
		}
		return d.walkDir(name, lv)
	}
	return nil
}

// unchangedDir reports whether the upper directory name is empty and has
// the mode, owner and modification time of the same directory in the
// top-most lower that has it: a copy-up that changed nothing.
func (d *differ) unchangedDir(name, p string, st *unix.Stat_t) (bool, error) {
	if len(d.lowers) == 0 {
		return false, nil
	}
	empty, err := IsEmpty(p)
	if err != nil || !empty {
		return false, err
	}
	for _, l := range d.lowers {
		var lst unix.Stat_t
		err := unix.Lstat(filepath.Join(l, name), &lst)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("stat lower of %q: %w", name, err)
		}
		return lst.Mode == st.Mode && lst.Uid == st.Uid && lst.Gid == st.Gid &&
			lst.Mtim == st.Mtim, nil
	}
	return false, nil
}

// xattrs records security.capability in hdr and reports whether the entry
// is an opaque directory.
func (d *differ) xattrs(name, p string, hdr *tar.Header) (opaque bool, err error) {
	names, err := listXattrs(p)
	if err != nil {
		return false, fmt.Errorf("list xattrs of %q: %w", name, err)
	}
	for _, x := range names {
		switch x {
		case "trusted.overlay.opaque", "user.overlay.opaque":
			v, err := getXattr(p, x)
			if err != nil {
				return false, fmt.Errorf("read xattr %s of %q: %w", x, name, err)
			}
			// "x" (kernel 6.7+) marks a directory holding xattr whiteouts, not an opaque one.
			opaque = opaque || string(v) == "y"
		case "trusted.overlay.redirect", "user.overlay.redirect", "trusted.overlay.metacopy", "user.overlay.metacopy":
			return false, fmt.Errorf("write diff: %q carries %s, which a layer tar cannot express", name, x)
		case "security.capability":
			v, err := getXattr(p, x)
			if err != nil {
				return false, fmt.Errorf("read xattr %s of %q: %w", x, name, err)
			}
			hdr.PAXRecords = map[string]string{paxXattrPrefix + x: string(v)}
		}
	}
	return opaque, nil
}

// contents streams the file's data into the tar.
func (d *differ) contents(name, p string, size int64) error {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %q: %w", name, err)
	}
	defer f.Close()
	n, err := io.CopyBuffer(struct{ io.Writer }{d.tw}, ctxReader{d.ctx, io.LimitReader(f, size)}, d.buf)
	if err != nil {
		return fmt.Errorf("copy %q: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("copy %q: file shrank while being read", name)
	}
	return nil
}

// marker writes a whiteout or opaque marker entry.
func (d *differ) marker(name string) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	}
	if err := d.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write header of %q: %w", name, err)
	}
	d.n++
	return nil
}
