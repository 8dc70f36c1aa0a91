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

	"github.com/mybuild/mybuild/internal/ctxio"
)

// DiffOptions controls [WriteDiff]. The zero value keeps files' own
// modification times.
type DiffOptions struct {
	// SourceDateEpoch, when set, clamps modification times to it
	// (SOURCE_DATE_EPOCH); later times become it, earlier ones stay.
	SourceDateEpoch *time.Time
	// Lowers are the layer directories under the upper (top-most first).
	// With them, what overlay copied up without changing it is left out,
	// as BuildKit's overlay differ leaves it out: any entry but a
	// directory that is the lower's "same dirent" (see [WriteDiff]), and a
	// directory with nothing written below it that kept the lower's mode
	// and owner (a RUN's /etc/hosts mount point does that to /etc).
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
//
// With opts.Lowers, an entry other than a directory is left out when the
// lowers show the same entry at its path, judged as BuildKit's overlay
// differ (sameDirent) judges it: same type and mode, owner, device
// number, security.capability, size and modification time to the second,
// and the same nanoseconds, unless both have 0 nanoseconds (a time that
// went through a tar without them), when the contents decide (a
// symlink's target; empty files are equal). A file that overlay only
// copied up (ln, touch -a, chown to the same owner, mv there and back)
// thus makes no entry, and the first name written of an inode is the
// regular file: "ln lowerfile newlink" gives newlink as a full copy. The
// lowers are looked up only below directories they have, so new
// directories cost nothing there.
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
	if err := d.walkDir("", nil, opts.Lowers); err != nil {
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
	links  map[fileID]string // first written name of each multiply-linked inode
	// pending are the headers of the directories being walked that are
	// written only once something below them is (see pendingDir).
	pending []*tar.Header
	buf     []byte
	n       int
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
// lacks gets a whiteout. layers are the lowers (top-most first) whose
// directory rel the lowers' merged view is made of: the only ones its
// entries are looked up in.
func (d *differ) walkDir(rel string, lv *lowerDir, layers []string) error {
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
		if err := d.entry(rel, &items[i], lv, layers); err != nil {
			return err
		}
	}
	return nil
}

// entry writes the item it of the upper directory dir; parent and layers
// are dir's as walkDir has them.
func (d *differ) entry(dir string, it *diffItem, parent *lowerDir, layers []string) error {
	if it.whiteout {
		if it.st.Mode&unix.S_IFMT == unix.S_IFCHR && len(d.lowers) > 0 {
			// A whiteout overlay made: dropped when no lower has the
			// name, as BuildKit's differ drops it (there is nothing to
			// hide).
			var lst unix.Stat_t
			if lp, err := lowerEntry(layers, joinRel(dir, it.name), &lst); err != nil || lp == "" {
				return err
			}
		}
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
	// The lower view a directory's contents replace, if they replace one,
	// and the lowers that have the directory.
	var lv *lowerDir
	var sub []string
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		switch {
		case parent != nil:
			if lv, err = parent.child(name, it.name); err != nil {
				return err
			}
			sub = lv.layers
		case opaque && len(d.lowers) > 0:
			if lv, err = lowerView(layers, name); err != nil {
				return err
			}
			sub = lv.layers
			opaque = false // written as whiteouts instead
		case !opaque:
			if sub, err = dirLayers(layers, name); err != nil {
				return err
			}
		}
	} else if len(layers) > 0 {
		if same, err := d.unchangedFile(name, p, st, hdr, layers); err != nil || same {
			return err
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
	if hdr.Typeflag == tar.TypeDir && lv == nil && !opaque && len(sub) > 0 {
		return d.pendingDir(name, hdr, st, sub)
	}
	if err := d.writeHeader(hdr); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		return d.contents(name, p, hdr.Size)
	case tar.TypeDir:
		if opaque {
			if err := d.marker(name + "/" + opaqueMarker); err != nil {
				return err
			}
		}
		return d.walkDir(name, lv, sub)
	}
	return nil
}

// pendingDir writes the upper directory name, whose header is hdr, and
// the entries below it; sub are the lowers that have it. The header waits
// until an entry below is written, and if none is and the directory kept
// the mode and owner of the lowers' (a copy-up that changed nothing, or
// whose changes WriteDiff leaves out), it is left out.
func (d *differ) pendingDir(name string, hdr *tar.Header, st *unix.Stat_t, sub []string) error {
	d.pending = append(d.pending, hdr)
	depth := len(d.pending)
	if err := d.walkDir(name, nil, sub); err != nil {
		return err
	}
	if len(d.pending) < depth {
		return nil // written before the first entry below it
	}
	d.pending = d.pending[:depth-1]
	if same, err := d.unchangedDir(name, st, sub); err != nil || same {
		return err
	}
	return d.writeHeader(hdr)
}

// unchangedDir reports whether the upper directory name has the mode and
// owner of the same directory in sub[0], the top-most lower that has it.
// Its modification time is not compared, as BuildKit's differ does not
// compare it: a directory whose only change is that something was made
// and removed in it again (rm -rf /tmp/*) makes no entry.
func (d *differ) unchangedDir(name string, st *unix.Stat_t, sub []string) (bool, error) {
	var lst unix.Stat_t
	if err := unix.Lstat(filepath.Join(sub[0], name), &lst); err != nil {
		return false, fmt.Errorf("stat lower of %q: %w", name, err)
	}
	return lst.Mode == st.Mode && lst.Uid == st.Uid && lst.Gid == st.Gid, nil
}

// unchangedFile reports whether the upper's non-directory name, at p, is
// the same dirent (see [WriteDiff]) as the entry the lowers show there;
// layers hold its directory. hdr carries the upper's security.capability.
func (d *differ) unchangedFile(name, p string, st *unix.Stat_t, hdr *tar.Header, layers []string) (bool, error) {
	var lst unix.Stat_t
	lp, err := lowerEntry(layers, name, &lst)
	if err != nil || lp == "" {
		return false, err
	}
	if lst.Mode != st.Mode || lst.Uid != st.Uid || lst.Gid != st.Gid || lst.Rdev != st.Rdev ||
		lst.Size != st.Size || lst.Mtim.Sec != st.Mtim.Sec {
		return false, nil
	}
	const capXattr = "security.capability"
	lcap, err := getXattr(lp, capXattr)
	if err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) {
		return false, fmt.Errorf("read xattr %s of lower %q: %w", capXattr, name, err)
	}
	if string(lcap) != hdr.PAXRecords[paxXattrPrefix+capXattr] {
		return false, nil
	}
	if lst.Mtim.Nsec != 0 || st.Mtim.Nsec != 0 {
		return lst.Mtim.Nsec == st.Mtim.Nsec, nil
	}
	// Both times may have lost their nanoseconds: compare what they hold.
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		a, err := os.Readlink(p)
		if err != nil {
			return false, fmt.Errorf("read symlink %q: %w", name, err)
		}
		b, err := os.Readlink(lp)
		if err != nil {
			return false, fmt.Errorf("read symlink lower of %q: %w", name, err)
		}
		return a == b, nil
	case unix.S_IFREG:
		if st.Size == 0 {
			return true, nil
		}
		same, err := sameContent(d.ctx, p, lp)
		if err != nil {
			return false, fmt.Errorf("compare %q with its lower: %w", name, err)
		}
		return same, nil
	}
	return true, nil
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
	n, err := io.CopyBuffer(struct{ io.Writer }{d.tw}, ctxio.NewReader(d.ctx, io.LimitReader(f, size)), d.buf)
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
	return d.writeHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	})
}

// writeHeader writes the pending directory headers, then hdr.
func (d *differ) writeHeader(hdr *tar.Header) error {
	for _, h := range d.pending {
		if err := d.tw.WriteHeader(h); err != nil {
			return fmt.Errorf("write header of %q: %w", h.Name, err)
		}
		d.n++
	}
	d.pending = d.pending[:0]
	if err := d.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write header of %q: %w", hdr.Name, err)
	}
	d.n++
	return nil
}
