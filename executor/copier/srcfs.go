package copier

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"syscall"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// source is the source root of a copy, opened once. Every read of a source
// goes through descriptors: a path is resolved inside the root by openat2
// (RESOLVE_IN_ROOT), and a walk goes down from a directory's descriptor to
// its entries by name (openat and fstatat, never following a symbolic link),
// never through a host path looked up again later. A directory of the
// context swapped for a symbolic link while a build runs then gives an
// error, or an entry of the root, never a file outside it.
type source struct {
	root *os.File // O_PATH descriptor of the root directory
	fd   int      // root's descriptor
	// emulate resolves paths with pathrs-lite, which falls back to a
	// lookup in user space where openat2 is missing: set when openat2
	// fails with ENOSYS (an old kernel) or EPERM (a seccomp filter), and by
	// tests.
	emulate bool
	buf     []byte // getdents buffer, reused
}

// openSource opens the directory root, already free of symbolic links.
func openSource(root string) (*source, error) {
	f, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open source root: %w", bare(err))
	}
	return &source{root: f, fd: int(f.Fd())}, nil
}

func (s *source) close() error { return s.root.Close() }

// open opens rel, a slash-separated path inside the root ("" is the root),
// with flags (O_CLOEXEC added): symbolic links on the way, absolute ones
// included, are resolved as if the root were "/", ".." stops at the root,
// and magic links are refused. With O_NOFOLLOW a final symbolic link is
// not followed: O_PATH opens the link itself, anything else fails.
func (s *source) open(rel string, flags int) (int, error) {
	rel = cleanRel(rel)
	flags |= unix.O_CLOEXEC
	if rel == "." {
		return unix.Openat(s.fd, ".", flags, 0)
	}
	if s.emulate {
		return s.openEmulated(rel, flags)
	}
	how := unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(s.fd, rel, &how)
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN) && tries < 64:
			// EAGAIN: a rename raced the lookup of a "..".
		case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
			s.emulate = true
			return s.openEmulated(rel, flags)
		default:
			return fd, err
		}
	}
}

// openEmulated is open without openat2: pathrs-lite resolves the parent
// directory (or, without O_NOFOLLOW, rel itself, as an O_PATH handle)
// inside the root, and the last component is opened from the parent's
// descriptor.
func (s *source) openEmulated(rel string, flags int) (int, error) {
	if flags&unix.O_NOFOLLOW == 0 {
		if flags&^(unix.O_CLOEXEC|unix.O_DIRECTORY|unix.O_NOFOLLOW) != unix.O_PATH {
			return -1, unix.EINVAL // not needed by the copier
		}
		h, err := pathrs.OpenatInRoot(s.root, rel)
		if err != nil {
			return -1, err
		}
		defer h.Close()
		return unix.FcntlInt(h.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	}
	dir, name := path.Split(rel)
	if dir == "" {
		dir = "."
	}
	parent, err := pathrs.OpenatInRoot(s.root, dir)
	if err != nil {
		return -1, err
	}
	defer parent.Close()
	return unix.Openat(int(parent.Fd()), name, flags, 0)
}

// cleanRel makes rel a clean path relative to the root, "." for the root
// itself: a leading "/" or ".." never leaves it.
func cleanRel(rel string) string {
	rel = path.Clean("/" + rel)[1:]
	if rel == "" {
		return "."
	}
	return rel
}

// lstat stats rel inside the root, not following a final symbolic link.
func (s *source) lstat(rel string) (os.FileInfo, error) {
	fd, err := s.open(rel, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return fstatInfo(fd, path.Base(cleanRel(rel)))
}

// readlink reads the symbolic link rel inside the root.
func (s *source) readlink(rel string) (string, error) {
	fd, err := s.open(rel, unix.O_PATH|unix.O_NOFOLLOW)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	return readlinkAt(fd, "")
}

// openDir opens the directory rel inside the root for reading; a final
// symbolic link is an error.
func (s *source) openDir(rel string) (srcDir, error) {
	fd, err := s.open(rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return srcDir{fd: -1}, err
	}
	return srcDir{fd: fd, rel: relOrRoot(rel)}, nil
}

// openParent opens the directory holding rel (which is not the root) as
// an O_PATH descriptor, and returns it with rel's last component.
func (s *source) openParent(rel string) (srcDir, string, error) {
	dir, name := path.Split(cleanRel(rel))
	fd, err := s.open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		return srcDir{fd: -1}, "", err
	}
	return srcDir{fd: fd, rel: relOrRoot(dir)}, name, nil
}

// openFile opens the regular file rel inside the root for reading.
func (s *source) openFile(rel string) (*os.File, error) {
	d, name, err := s.openParent(rel)
	if err != nil {
		return nil, err
	}
	defer d.close()
	return d.openFile(name)
}

// relOrRoot is rel as items and levels hold it: "" for the root.
func relOrRoot(rel string) string {
	if rel = cleanRel(rel); rel == "." {
		return ""
	}
	return rel
}

// srcDir is an open directory of the source root and its path inside it
// ("" for the root). Its entries are reached by name from its descriptor,
// without following symbolic links.
type srcDir struct {
	fd  int
	rel string
}

func (d srcDir) close() {
	if d.fd >= 0 {
		unix.Close(d.fd)
	}
}

// child is the path of the entry name inside the source root.
func (d srcDir) child(name string) string { return path.Join(d.rel, name) }

// lstat stats the entry name, not following a symbolic link.
func (d srcDir) lstat(name string) (os.FileInfo, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return nil, err
	}
	return newStatInfo(name, &st), nil
}

// openDir opens the directory name for reading; a symbolic link there is
// an error, not followed.
func (d srcDir) openDir(name string) (srcDir, error) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return srcDir{fd: -1}, err
	}
	return srcDir{fd: fd, rel: d.child(name)}, nil
}

// openFile opens the entry name for reading; it must be a regular file (a
// named pipe put there since would block, a symbolic link is not
// followed).
func (d srcDir) openFile(name string) (*os.File, error) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, errors.New("not a regular file")
	}
	return os.NewFile(uintptr(fd), name), nil
}

// readlink reads the symbolic link name.
func (d srcDir) readlink(name string) (string, error) { return readlinkAt(d.fd, name) }

// readlinkAt reads the symbolic link name in the directory dirfd, or the
// one dirfd is an O_PATH descriptor of when name is "".
func readlinkAt(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// dirent is one entry of a directory as getdents lists it.
type dirent struct {
	name string
	typ  uint8 // DT_*; DT_UNKNOWN where the filesystem does not tell
}

// isDir tells whether the entry is a directory, asking fstatat when
// getdents did not say.
func (e dirent) isDir(d srcDir) bool {
	if e.typ != unix.DT_UNKNOWN {
		return e.typ == unix.DT_DIR
	}
	fi, err := d.lstat(e.name)
	return err == nil && fi.IsDir()
}

// entries lists the directory d by getdents on its descriptor, sorted by
// name as os.ReadDir sorts them, without "." and "..".
func (s *source) entries(d srcDir) ([]dirent, error) {
	if s.buf == nil {
		s.buf = make([]byte, 32<<10)
	}
	var out []dirent
	for {
		n, err := unix.Getdents(d.fd, s.buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		// struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name.
		for b := s.buf[:n]; len(b) > 0; {
			if len(b) < 19 {
				return nil, unix.EIO
			}
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return nil, unix.EIO
			}
			ino, typ, name := binary.NativeEndian.Uint64(b[:8]), b[18], b[19:reclen]
			b = b[reclen:]
			for i, ch := range name {
				if ch == 0 {
					name = name[:i]
					break
				}
			}
			if ino == 0 || string(name) == "." || string(name) == ".." {
				continue
			}
			out = append(out, dirent{name: string(name), typ: typ})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// statInfo is the os.FileInfo of an fstat or fstatat, the same as os.Lstat
// gives: Sys is a *syscall.Stat_t.
type statInfo struct {
	name string
	mode fs.FileMode
	st   syscall.Stat_t
}

func fstatInfo(fd int, name string) (os.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	return newStatInfo(name, &st), nil
}

// newStatInfo converts st, with the file mode os.Lstat would give.
func newStatInfo(name string, st *unix.Stat_t) *statInfo {
	fi := &statInfo{name: name, st: syscall.Stat_t{
		Dev: st.Dev, Ino: st.Ino, Nlink: st.Nlink, Mode: st.Mode, Uid: st.Uid, Gid: st.Gid,
		Rdev: st.Rdev, Size: st.Size, Blksize: st.Blksize, Blocks: st.Blocks,
		Atim: syscall.Timespec{Sec: st.Atim.Sec, Nsec: st.Atim.Nsec},
		Mtim: syscall.Timespec{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec},
		Ctim: syscall.Timespec{Sec: st.Ctim.Sec, Nsec: st.Ctim.Nsec},
	}}
	m := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	fi.mode = m
	return fi
}

func (fi *statInfo) Name() string       { return fi.name }
func (fi *statInfo) Size() int64        { return fi.st.Size }
func (fi *statInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *statInfo) ModTime() time.Time { return time.Unix(fi.st.Mtim.Sec, fi.st.Mtim.Nsec) }
func (fi *statInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *statInfo) Sys() any           { return &fi.st }

// ignoringEINTR retries fn while it is interrupted by a signal.
func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// procFD is the /proc path of the descriptor fd, through which the path
// calls reach the file fd is an O_PATH descriptor of.
func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }
