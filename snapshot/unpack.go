package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/mybuild/mybuild/internal/tarlimit"
)

// Owner is a numeric user and group.
type Owner struct {
	UID, GID int
}

// UnpackOptions controls [Unpack]. The zero value extracts an archive the way
// Docker and BuildKit do for ADD: owners, modes, times and xattrs as recorded,
// and entries named ".wh.*" as ordinary files.
type UnpackOptions struct {
	// OverlayWhiteouts turns OCI whiteouts into overlayfs ones, for a
	// directory that will be an overlay lower: ".wh.NAME" becomes NAME as a
	// character device 0/0, ".wh..wh..opq" sets trusted.overlay.opaque=y on
	// its directory, and other ".wh..wh." entries are skipped.
	OverlayWhiteouts bool
	// Owner, when set, owns every entry instead of the archive's uid/gid
	// (ADD --chown).
	Owner *Owner

	// resolveEveryParent, for tests, resolves every entry's parent with
	// mkdirAll, the reference that [unpacker.parent] must agree with.
	resolveEveryParent bool
}

const (
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	opaqueMarker       = ".wh..wh..opq"
	opaqueXattr        = "trusted.overlay.opaque"
)

// Unpack extracts the uncompressed tar stream r into the existing directory
// dir. Every name, link target and parent directory is resolved inside dir:
// absolute names are taken relative to dir, symlinks met on the way are
// followed as if dir were the root, names and hard link targets that climb
// out with ".." are refused, and the last component of an entry is never
// followed (an existing entry is replaced, a directory kept and updated).
// Missing parent directories are made with mode 0755.
//
// Modes (set-id and sticky bits included), owners, access and modification
// times (directories' after all their contents), hard links, symlinks,
// devices and fifos are kept. Of the xattrs, user.*, trusted.*,
// security.capability and POSIX ACLs are applied, and those the filesystem
// refuses (ENOTSUP, EPERM) skipped; overlay's own (trusted.overlay.*,
// user.overlay.*) are never taken from an archive.
//
// Cancelling ctx stops the extraction between entries and during file
// contents; what was written so far stays.
func Unpack(ctx context.Context, r io.Reader, dir string, opts UnpackOptions) error {
	root, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open unpack root: %w", err)
	}
	defer root.Close()
	u := &unpacker{root: root, rootPath: filepath.Clean(dir), opts: opts, buf: make([]byte, 128<<10), parentDir: parentDir{fd: -1}}
	defer u.dropParent()
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if err := u.entry(ctx, hdr, tr); err != nil {
			return fmt.Errorf("unpack %q: %w", hdr.Name, err)
		}
	}
	return u.setDirTimes()
}

type unpacker struct {
	root     *os.File // O_PATH handle of the target directory
	rootPath string   // its path
	opts     UnpackOptions
	buf      []byte
	dirs     []dirTime
	// parentDir is the directory of the last entry, see parent.
	parentDir parentDir
}

// dirTime is a directory whose times are set once all entries are written.
type dirTime struct {
	rel string
	ts  []unix.Timespec
}

func (u *unpacker) entry(ctx context.Context, hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeDir, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return fmt.Errorf("unsupported entry type %q", hdr.Typeflag)
	}
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("entry for the root is not a directory")
		}
		return u.rootDir(hdr)
	}
	parentRel, base := splitRel(rel)
	if u.opts.OverlayWhiteouts && strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(parentRel, base)
	}
	pfd, err := u.parent(parentRel)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeLink:
		return u.hardlink(pfd, base, hdr)
	case tar.TypeDir:
		return u.dir(pfd, base, rel, hdr)
	case tar.TypeSymlink:
		return u.symlink(pfd, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return u.node(pfd, base, hdr)
	default:
		return u.file(ctx, pfd, base, hdr, r)
	}
}

func (u *unpacker) owner(hdr *tar.Header) (int, int) {
	if o := u.opts.Owner; o != nil {
		return o.UID, o.GID
	}
	return hdr.Uid, hdr.Gid
}

func (u *unpacker) file(ctx context.Context, pfd int, base string, hdr *tar.Header, r io.Reader) error {
	if err := tarlimit.CheckSparse(hdr); err != nil {
		return err
	}
	// Made with the entry's permission bits (never more than it ends up
	// with: no set-id bits, and umask or a default ACL may take more), so
	// that in the usual case no chmod follows.
	fd := -1
	err := u.create(pfd, base, func() error {
		var err error
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, permBits(hdr.Mode)&0o777)
		if err != nil {
			return fmt.Errorf("create file: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	if err := u.write(ctx, fd, r); err != nil {
		return fmt.Errorf("write file: %w", err)
	}
	// chown clears set-id bits and security.capability: mode and xattrs after it.
	if err := u.ownerMode(fd, hdr, "file"); err != nil {
		return err
	}
	if err := setXattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	err = unix.Close(fd)
	fd = -1
	if err != nil {
		return fmt.Errorf("close file: %w", err)
	}
	return setTimes(pfd, base, hdr)
}

// write copies r to fd through u.buf, so that memory stays flat, checking
// ctx between reads.
func (u *unpacker) write(ctx context.Context, fd int, r io.Reader) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := r.Read(u.buf)
		for b := u.buf[:n]; len(b) > 0; {
			m, err := unix.Write(fd, b)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return err
			}
			if m == 0 {
				return io.ErrShortWrite
			}
			b = b[m:]
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// create runs mk, which makes base in pfd and fails with EEXIST if the name
// is taken; then whatever has the name is removed (see clear) and mk runs
// again. Trying first spares a stat for each entry of a fresh tree.
func (u *unpacker) create(pfd int, base string, mk func() error) error {
	err := mk()
	if errors.Is(err, unix.EEXIST) {
		if _, err := u.clear(pfd, base, false); err != nil {
			return err
		}
		err = mk()
	}
	return err
}

func (u *unpacker) dir(pfd int, base, rel string, hdr *tar.Header) error {
	// Made with the entry's permission bits, as for files.
	err := unix.Mkdirat(pfd, base, permBits(hdr.Mode)&0o777)
	if errors.Is(err, unix.EEXIST) {
		var isDir bool
		if isDir, err = u.clear(pfd, base, true); err != nil {
			return err
		}
		if !isDir {
			err = unix.Mkdirat(pfd, base, permBits(hdr.Mode)&0o777)
		}
	}
	if err != nil {
		return fmt.Errorf("make directory: %w", err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer unix.Close(fd)
	if err := u.dirMeta(fd, hdr); err != nil {
		return err
	}
	u.dirs = append(u.dirs, dirTime{rel: rel, ts: timespecs(hdr)})
	return nil
}

// rootDir applies a "./" entry to the target directory itself.
func (u *unpacker) rootDir(hdr *tar.Header) error {
	// A mode or owner of the root could change what a lookup through it
	// may see: the next entry looks its parent up again.
	u.dropParent()
	fd, err := unix.Open(procFD(int(u.root.Fd())), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open root: %w", err)
	}
	defer unix.Close(fd)
	if err := u.dirMeta(fd, hdr); err != nil {
		return err
	}
	u.dirs = append(u.dirs, dirTime{rel: "", ts: timespecs(hdr)})
	return nil
}

func (u *unpacker) dirMeta(fd int, hdr *tar.Header) error {
	if err := u.ownerMode(fd, hdr, "directory"); err != nil {
		return err
	}
	return setXattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) })
}

// ownerMode gives the open fd the entry's owner and mode, leaving out a
// chown or chmod that would change nothing. On a non-directory chown also
// clears the set-id bits and security.capability; fd is a new file then,
// with neither, so leaving the chown out changes nothing there either.
func (u *unpacker) ownerMode(fd int, hdr *tar.Header, what string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", what, err)
	}
	uid, gid := u.owner(hdr)
	if st.Uid != uint32(uid) || st.Gid != uint32(gid) {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", what, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			st.Mode &^= unix.S_ISUID | unix.S_ISGID
		}
	}
	if mode := permBits(hdr.Mode); st.Mode&0o7777 != mode {
		if err := unix.Fchmod(fd, mode); err != nil {
			return fmt.Errorf("chmod %s: %w", what, err)
		}
	}
	return nil
}

func (u *unpacker) symlink(pfd int, base string, hdr *tar.Header) error {
	err := u.create(pfd, base, func() error {
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("make symlink: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	uid, gid := u.owner(hdr)
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown symlink: %w", err)
	}
	p := procFD(pfd) + "/" + base
	if err := setXattrs(hdr, func(k string, v []byte) error { return unix.Lsetxattr(p, k, v, 0) }); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

func (u *unpacker) node(pfd int, base string, hdr *tar.Header) error {
	typ := uint32(unix.S_IFIFO)
	switch hdr.Typeflag {
	case tar.TypeChar:
		typ = unix.S_IFCHR
	case tar.TypeBlock:
		typ = unix.S_IFBLK
	}
	mode := permBits(hdr.Mode)
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	err := u.create(pfd, base, func() error {
		if err := unix.Mknodat(pfd, base, typ|mode, int(dev)); err != nil {
			return fmt.Errorf("make device node: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	uid, gid := u.owner(hdr)
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown device node: %w", err)
	}
	if err := chmodNoFollow(pfd, base, mode); err != nil {
		return fmt.Errorf("chmod device node: %w", err)
	}
	p := procFD(pfd) + "/" + base
	if err := setXattrs(hdr, func(k string, v []byte) error { return unix.Lsetxattr(p, k, v, 0) }); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

// hardlink links base to the entry named by hdr.Linkname, resolved inside the
// root; a symlink there is linked itself, not followed.
func (u *unpacker) hardlink(pfd int, base string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("link target: %w", err)
	}
	if target == "" {
		return errors.New("hard link to the root directory")
	}
	tparentRel, tbase := splitRel(target)
	tfd, err := u.openInRoot(tparentRel)
	if err != nil {
		return fmt.Errorf("resolve link target %q: %w", hdr.Linkname, bareErr(err))
	}
	defer unix.Close(tfd)
	var tst, st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &tst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("resolve link target %q: %w", hdr.Linkname, bareErr(err))
	}
	if tst.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("link target %q is a directory", hdr.Linkname)
	}
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Dev == tst.Dev && st.Ino == tst.Ino {
		return nil
	}
	if _, err := u.clear(pfd, base, false); err != nil {
		return err
	}
	if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("make hard link: %w", err)
	}
	return nil
}

// whiteout applies an OCI whiteout in overlay form.
func (u *unpacker) whiteout(parentRel, base string) error {
	if base != opaqueMarker && strings.HasPrefix(base, whiteoutMetaPrefix) {
		return nil
	}
	pfd, err := u.parent(parentRel)
	if err != nil {
		return err
	}
	if base == opaqueMarker {
		if err := unix.Setxattr(procFD(pfd), opaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("mark directory opaque: %w", err)
		}
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return errors.New("invalid whiteout name")
	}
	if err := removeAllAt(pfd, name); err != nil {
		return fmt.Errorf("remove whited-out entry: %w", err)
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("make whiteout: %w", err)
	}
	return nil
}

// setDirTimes sets the recorded directory times, once nothing more is written
// into them.
func (u *unpacker) setDirTimes() error {
	rootPath := procFD(int(u.root.Fd()))
	for _, d := range u.dirs {
		if d.rel == "" {
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, rootPath, d.ts, 0); err != nil {
				return fmt.Errorf("set times of the root: %w", err)
			}
			continue
		}
		parentRel, base := splitRel(d.rel)
		pfd, err := u.openInRoot(parentRel)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue // removed by a later entry
		}
		if err != nil {
			return fmt.Errorf("set times of %q: %w", d.rel, err)
		}
		err = unix.UtimesNanoAt(pfd, base, d.ts, unix.AT_SYMLINK_NOFOLLOW)
		unix.Close(pfd)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("set times of %q: %w", d.rel, err)
		}
	}
	return nil
}
