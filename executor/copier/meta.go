package copier

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// noFollow makes open fail on a symbolic link instead of following it.
const noFollow = syscall.O_NOFOLLOW | syscall.O_CLOEXEC

// stamp is the access and modification time of a file.
type stamp struct{ atime, mtime time.Time }

// fileID identifies an inode, to keep hard links.
type fileID struct {
	dev, ino uint64
}

func stampOf(fi os.FileInfo) stamp {
	st := fi.Sys().(*syscall.Stat_t)
	return stamp{
		atime: time.Unix(st.Atim.Sec, st.Atim.Nsec),
		mtime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
	}
}

// modeOf is the mode the copy of the source fi gets: the source's
// permission bits (setuid, setgid and sticky included), changed by --chmod.
func (c *copier) modeOf(fi os.FileInfo) uint32 {
	m := fi.Sys().(*syscall.Stat_t).Mode & 0o7777
	if c.mode != nil {
		m = c.mode(m, fi.IsDir())
	}
	return m
}

// ownerOf is the owner of the copy of the source fi.
func (c *copier) ownerOf(fi os.FileInfo) (int, int) {
	if c.o.Owner == nil && c.o.KeepOwners {
		st := fi.Sys().(*syscall.Stat_t)
		return int(st.Uid), int(st.Gid)
	}
	return c.newOwner()
}

// copyMeta gives dst, the new copy of the source entry fi, its owner, mode,
// extended attributes (read from the source's descriptor srcFD, none when
// -1) and times.
func (c *copier) copyMeta(srcFD int, fi os.FileInfo, dst string) error {
	uid, gid := c.ownerOf(fi)
	var mode *uint32
	var xattrs func()
	if fi.Mode()&os.ModeSymlink == 0 {
		m := c.modeOf(fi)
		mode = &m
		if srcFD >= 0 {
			xattrs = func() { copyXattrs(srcFD, dst) }
		}
	}
	st := stampOf(fi)
	if fi.IsDir() {
		c.times[dst] = st
	}
	return c.setMeta(dst, uid, gid, mode, xattrs, st)
}

// setMeta sets the owner, then the mode (a chown clears setuid bits), then
// the extended attributes (a chown clears security.capability) with the
// xattrs function when not nil, then the times of dst, never following a
// symbolic link. A nil mode is left.
func (c *copier) setMeta(dst string, uid, gid int, mode *uint32, xattrs func(), st stamp) error {
	if err := os.Lchown(dst, uid, gid); err != nil {
		return c.destErr("chown", dst, err)
	}
	if mode != nil {
		if err := unix.Chmod(dst, *mode); err != nil {
			return c.destErr("chmod", dst, err)
		}
	}
	if xattrs != nil {
		xattrs()
	}
	if err := setTimes(dst, st); err != nil {
		return c.destErr("set times of", dst, err)
	}
	return nil
}

func setTimes(p string, st stamp) error {
	ts := []unix.Timespec{
		{Sec: st.atime.Unix(), Nsec: int64(st.atime.Nanosecond())},
		{Sec: st.mtime.Unix(), Nsec: int64(st.mtime.Nanosecond())},
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// touch records the times of the existing directory dir before Copy first
// changes its entries, so that applyTimes can put them back.
func (c *copier) touch(dir string) {
	if _, ok := c.times[dir]; ok {
		return
	}
	if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
		c.times[dir] = stampOf(fi)
	}
}

// applyTimes gives every directory Copy wrote into its final times.
func (c *copier) applyTimes() error {
	for p, st := range c.times {
		if !isDir(p) {
			continue // replaced since
		}
		if err := setTimes(p, st); err != nil {
			return c.destErr("set times of", p, err)
		}
	}
	return nil
}

// copyXattrs copies the extended attributes of the source open at fd to
// dst, best effort as BuildKit does: a filesystem without them is no error.
// The host's SELinux labels and overlayfs' own attributes are not the
// file's content.
func copyXattrs(fd int, dst string) {
	names, err := listXattrs(fd)
	if err != nil {
		return
	}
	for _, name := range names {
		if skipXattr(name) {
			continue
		}
		val, err := getXattr(fd, name)
		if err != nil {
			continue
		}
		_ = unix.Lsetxattr(dst, name, val, 0)
	}
}

func skipXattr(name string) bool {
	return name == "security.selinux" || strings.HasPrefix(name, "trusted.overlay.") ||
		strings.HasPrefix(name, "user.overlay.")
}

// flistxattr is flistxattr(2), also for an O_PATH descriptor (of a device
// or a named pipe, which the copier does not open), through /proc.
func flistxattr(fd int, buf []byte) (int, error) {
	n, err := unix.Flistxattr(fd, buf)
	if errors.Is(err, unix.EBADF) {
		return unix.Listxattr(procFD(fd), buf)
	}
	return n, err
}

// fgetxattr is fgetxattr(2), also for an O_PATH descriptor.
func fgetxattr(fd int, name string, buf []byte) (int, error) {
	n, err := unix.Fgetxattr(fd, name, buf)
	if errors.Is(err, unix.EBADF) {
		return unix.Getxattr(procFD(fd), name, buf)
	}
	return n, err
}

func listXattrs(fd int) ([]string, error) {
	size, err := flistxattr(fd, nil)
	if err != nil || size == 0 {
		return nil, err
	}
	buf := make([]byte, size)
	n, err := flistxattr(fd, buf)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name != "" {
			names = append(names, name)
		}
	}
	return names, nil
}

func getXattr(fd int, name string) ([]byte, error) {
	size, err := fgetxattr(fd, name, nil)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	n, err := fgetxattr(fd, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}
