package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// maxSymlinks bounds the symbolic links followed while resolving one
// mount point, as the kernel's own limit does.
const maxSymlinks = 40

// stubs are the mount points Run created in a root for a sandbox, removed
// again once it has ended. Every operation on them goes through
// descriptors: paths inside the root are resolved component by component
// from a descriptor of the root, symbolic links resolved inside the root,
// and on removal never followed at all (openat2 with RESOLVE_IN_ROOT and
// RESOLVE_NO_SYMLINKS), so that what a step did to the root can never make
// the host side touch a file outside it.
type stubs struct {
	root  *os.File
	made  []stub
	times []dirTimes
}

// stub is one file or directory created in the root.
type stub struct {
	parent string // the parent's path inside the root, symlink-free
	dev    uint64 // the parent's device and inode when the stub was made
	ino    uint64
	name   string
	dir    bool
}

// dirTimes are the times of an existing directory the stubs were created
// in, restored after they are removed.
type dirTimes struct {
	path     string // inside the root, symlink-free
	dev, ino uint64
	ts       [2]unix.Timespec
}

// createStubs makes sure that the destination of every mount in ms that
// does not lie below an earlier one exists in root: a directory, or an
// empty file for a bind mount of a file, with missing parents.
func createStubs(root string, ms []specs.Mount) (_ *stubs, err error) {
	f, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root: %w", unwrapPath(err))
	}
	s := &stubs{root: f}
	defer func() {
		if err != nil {
			_ = s.remove()
		}
	}()
	for i, m := range ms {
		if nestedMount(ms[:i], m.Destination) {
			continue // the runtime makes it, inside the mount above it
		}
		dir, err := mountsDir(m)
		if err != nil {
			return nil, err
		}
		if err := s.ensure(m.Destination, dir); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// nestedMount reports whether dest lies below the destination of one of
// the mounts before.
func nestedMount(before []specs.Mount, dest string) bool {
	dest = path.Clean(dest)
	for _, b := range before {
		if strings.HasPrefix(dest, strings.TrimSuffix(path.Clean(b.Destination), "/")+"/") {
			return true
		}
	}
	return false
}

// mountsDir reports whether mount m is mounted on a directory: everything
// but the bind mount of something that is not a directory.
func mountsDir(m specs.Mount) (bool, error) {
	if m.Type != "bind" {
		return true, nil
	}
	fi, err := os.Stat(m.Source)
	if err != nil {
		return false, fmt.Errorf("bind mount %s: %w", m.Destination, unwrapPath(err))
	}
	return fi.IsDir(), nil
}

// ensure resolves name inside the root, following symbolic links inside
// it, and creates what is missing of it.
func (s *stubs) ensure(name string, dir bool) error {
	p := path.Clean("/" + name)
	for range maxSymlinks {
		next, err := s.walk(p, dir)
		if err != nil {
			return fmt.Errorf("prepare mount point %s: %w", name, err)
		}
		if next == "" {
			return nil
		}
		p = next
	}
	return fmt.Errorf("prepare mount point %s: %w", name, unix.ELOOP)
}

// walk goes down p (clean, absolute, inside the root) from the root's
// descriptor, creating missing components. It returns the path to restart
// from when it meets a symbolic link, or "" when p exists.
func (s *stubs) walk(p string, dir bool) (string, error) {
	if p == "/" {
		return "", errors.New("resolves to the root directory")
	}
	comps := strings.Split(p[1:], "/")
	cur, err := dupFd(s.root)
	if err != nil {
		return "", err
	}
	defer func() { unix.Close(cur) }()
	walked := "/"
	for i, c := range comps {
		last := i == len(comps)-1
		var st unix.Stat_t
		err := unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW)
		switch {
		case errors.Is(err, unix.ENOENT):
			if err := s.create(cur, walked, c, !last || dir); err != nil {
				return "", err
			}
			if err := unix.Fstatat(cur, c, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return "", err
			}
		case err != nil:
			return "", err
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			target, err := readlinkat(cur, c)
			if err != nil {
				return "", err
			}
			rest := strings.Join(comps[i+1:], "/")
			if !path.IsAbs(target) {
				target = path.Join(walked, target)
			}
			return path.Clean("/" + path.Join(target, rest)), nil
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if last {
			if isDir != dir {
				return "", errors.New("wrong file type")
			}
			return "", nil
		}
		if !isDir {
			return "", unix.ENOTDIR
		}
		next, err := unix.Openat(cur, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", err
		}
		unix.Close(cur)
		cur = next
		walked = path.Join(walked, c)
	}
	return "", nil
}

// create makes name (a directory, or an empty file) in the directory
// parentFd at parent inside the root, and records it.
func (s *stubs) create(parentFd int, parent, name string, dir bool) error {
	var before, after unix.Stat_t
	if err := unix.Fstat(parentFd, &before); err != nil {
		return err
	}
	if dir {
		if err := unix.Mkdirat(parentFd, name, 0o755); err != nil {
			return err
		}
	} else {
		fd, err := unix.Openat(parentFd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		unix.Close(fd)
	}
	// On an overlay the parent may have been copied up just now: its
	// identity is taken after that.
	if err := unix.Fstat(parentFd, &after); err != nil {
		return err
	}
	s.saveTimes(parent, after.Dev, after.Ino, before)
	s.made = append(s.made, stub{parent: parent, dev: after.Dev, ino: after.Ino, name: name, dir: dir})
	return nil
}

// saveTimes remembers the times (from st, taken before the first stub
// was made in it) of the directory at p, (dev, ino), unless it is itself
// a stub or they are saved already.
func (s *stubs) saveTimes(p string, dev, ino uint64, st unix.Stat_t) {
	for _, t := range s.times {
		if t.path == p {
			return
		}
	}
	for _, m := range s.made {
		if path.Join(m.parent, m.name) == p {
			return
		}
	}
	s.times = append(s.times, dirTimes{path: p, dev: dev, ino: ino, ts: [2]unix.Timespec{st.Atim, st.Mtim}})
}

// remove deletes the stubs that are still what Run made (an empty file, an
// empty directory) where Run made them, and restores the times of the
// directories they were made in. A stub whose parent the step moved,
// replaced or turned into a symbolic link is left where it is: it is part
// of what the step did to the root.
func (s *stubs) remove() error {
	if s.root == nil {
		return nil
	}
	defer s.root.Close()
	var errs []error
	for i := len(s.made) - 1; i >= 0; i-- {
		m := s.made[i]
		fd, ok := s.openVerified(m.parent, m.dev, m.ino, unix.O_PATH)
		if !ok {
			continue
		}
		var st unix.Stat_t
		err := unix.Fstatat(fd, m.name, &st, unix.AT_SYMLINK_NOFOLLOW)
		switch {
		case err != nil:
		case m.dir && st.Mode&unix.S_IFMT == unix.S_IFDIR:
			// A directory the step filled stays.
			if err := unix.Unlinkat(fd, m.name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.EBUSY) {
				errs = append(errs, fmt.Errorf("remove mount point: %w", err))
			}
		case !m.dir && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0:
			if err := unix.Unlinkat(fd, m.name, 0); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EBUSY) {
				errs = append(errs, fmt.Errorf("remove mount point: %w", err))
			}
		}
		unix.Close(fd)
	}
	for i := len(s.times) - 1; i >= 0; i-- {
		t := s.times[i]
		fd, ok := s.openVerified(t.path, t.dev, t.ino, unix.O_RDONLY)
		if !ok {
			continue
		}
		err := unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), t.ts[:], 0)
		if err != nil {
			errs = append(errs, fmt.Errorf("restore directory times: %w", err))
		}
		unix.Close(fd)
	}
	return errors.Join(errs...)
}

// openVerified opens the directory at p inside the root without following
// any symbolic link, and only when it is still the directory (dev, ino).
func (s *stubs) openVerified(p string, dev, ino uint64, flags int) (int, bool) {
	rel := strings.TrimPrefix(p, "/")
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(int(s.root.Fd()), rel, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return -1, false
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Dev != dev || st.Ino != ino {
		unix.Close(fd)
		return -1, false
	}
	return fd, true
}

func dupFd(f *os.File) (int, error) {
	return unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// unwrapPath drops the host path from a *fs.PathError so that it never
// reaches the user.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
