package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// setupRootfs builds the sandbox's mount tree under the spec's root and
// pivots into it. It runs in the init's own mount namespace, before the
// command exists. Every mount point is resolved inside the root
// (pathrs-lite: openat2 with RESOLVE_IN_ROOT) and mounted on through its
// descriptor, so a symbolic link in the root (or one that another step
// swaps into a shared cache directory) cannot redirect a mount outside.
//
// cgroups are the hierarchies /sys/fs/cgroup shows.
func setupRootfs(spec *specs.Spec, cgroups []hierarchy) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := spec.Root.Path
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("mount /: %w", err)
	}
	// Opened after the bind, so that walks from it see the mounts below.
	rootf, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open root: %w", unwrapPath(err))
	}
	defer rootf.Close()
	for _, m := range spec.Mounts {
		if err := mountEntry(rootf, m, cgroups); err != nil {
			return err
		}
	}
	if err := createDevices(rootf, spec.Linux.Devices); err != nil {
		return err
	}
	for _, p := range spec.Linux.MaskedPaths {
		if err := maskPath(rootf, p); err != nil {
			return err
		}
	}
	for _, p := range spec.Linux.ReadonlyPaths {
		if err := readonlyPath(rootf, p); err != nil {
			return err
		}
	}
	if spec.Root.Readonly {
		if err := unix.Mount("", root, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("mount / read-only: %w", err)
		}
	}
	return pivotRoot(root)
}

// mountOptions are the OCI mount options that are mount flags; "ro"
// clears nothing, "rw" and the like clear a flag.
var mountOptions = map[string]struct {
	clear bool
	flag  uintptr
}{
	"async": {true, unix.MS_SYNCHRONOUS}, "atime": {true, unix.MS_NOATIME}, "bind": {false, unix.MS_BIND},
	"defaults": {false, 0}, "dev": {true, unix.MS_NODEV}, "diratime": {true, unix.MS_NODIRATIME},
	"dirsync": {false, unix.MS_DIRSYNC}, "exec": {true, unix.MS_NOEXEC}, "mand": {false, unix.MS_MANDLOCK},
	"noatime": {false, unix.MS_NOATIME}, "nodev": {false, unix.MS_NODEV}, "nodiratime": {false, unix.MS_NODIRATIME},
	"noexec": {false, unix.MS_NOEXEC}, "nomand": {true, unix.MS_MANDLOCK}, "norelatime": {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME}, "nosuid": {false, unix.MS_NOSUID}, "rbind": {false, unix.MS_BIND | unix.MS_REC},
	"relatime": {false, unix.MS_RELATIME}, "remount": {false, unix.MS_REMOUNT}, "ro": {false, unix.MS_RDONLY},
	"rw": {true, unix.MS_RDONLY}, "strictatime": {false, unix.MS_STRICTATIME}, "suid": {true, unix.MS_NOSUID},
	"sync": {false, unix.MS_SYNCHRONOUS},
}

// propagationOptions are the OCI mount options that set propagation.
var propagationOptions = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parseMountOptions splits OCI mount options into flags, propagation
// flags and the file system's own data.
func parseMountOptions(opts []string) (flags uintptr, prop []uintptr, data string) {
	var rest []string
	for _, o := range opts {
		if f, ok := mountOptions[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		if p, ok := propagationOptions[o]; ok {
			prop = append(prop, p)
			continue
		}
		rest = append(rest, o)
	}
	return flags, prop, strings.Join(rest, ",")
}

// fdPath names the file behind an open descriptor, for syscalls that take
// a path: the kernel resolves it to exactly that file.
func fdPath(f *os.File) string {
	return "/proc/thread-self/fd/" + strconv.Itoa(int(f.Fd()))
}

// mountEntry mounts m inside the root.
func mountEntry(root *os.File, m specs.Mount, cgroups []hierarchy) error {
	dir := true
	if m.Type == "bind" {
		fi, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("mount %s: %w", m.Destination, unwrapPath(err))
		}
		dir = fi.IsDir()
	}
	target, err := mountPoint(root, m.Destination, dir)
	if err != nil {
		return fmt.Errorf("prepare mount point %s: %w", m.Destination, err)
	}
	defer target.Close()
	flags, prop, data := parseMountOptions(m.Options)
	tpath := fdPath(target)
	switch m.Type {
	case "bind":
		if err := unix.Mount(m.Source, tpath, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.Destination, err)
		}
		// The other flags take a remount of the new mount, reached
		// through a descriptor opened on it.
		if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			if err := remountBind(root, m.Destination, rest); err != nil {
				return err
			}
		}
	case "cgroup":
		if err := mountCgroup(root, m.Destination, flags, cgroups); err != nil {
			return err
		}
	default:
		if err := unix.Mount(m.Source, tpath, m.Type, flags, data); err != nil {
			return fmt.Errorf("mount %s: %w", m.Destination, err)
		}
	}
	for _, p := range prop {
		if err := remountAt(root, m.Destination, func(p2 string) error { return unix.Mount("", p2, "", p, "") }); err != nil {
			return fmt.Errorf("set propagation of %s: %w", m.Destination, err)
		}
	}
	return nil
}

// remountBind applies flags to the bind mount at dest, keeping the flags
// of the mount it came from that cannot be cleared.
func remountBind(root *os.File, dest string, flags uintptr) error {
	return remountAt(root, dest, func(p string) error {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err == nil {
			flags |= uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY)
		}
		if err := unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|flags, ""); err != nil {
			return fmt.Errorf("mount %s: %w", dest, err)
		}
		return nil
	})
}

// remountAt calls fn with a path to the mount now at dest in the root.
func remountAt(root *os.File, dest string, fn func(string) error) error {
	f, err := pathrs.OpenatInRoot(root, dest)
	if err != nil {
		return fmt.Errorf("open %s: %w", dest, unwrapPath(err))
	}
	defer f.Close()
	return fn(fdPath(f))
}

// mountPoint opens dest inside the root, creating it (a directory, or an
// empty file) with its missing parents when it does not exist. A mount
// point below another mount, which Run could not create, is made here.
func mountPoint(root *os.File, dest string, dir bool) (*os.File, error) {
	f, err := pathrs.OpenatInRoot(root, dest)
	if err == nil {
		fi, serr := f.Stat()
		if serr == nil && fi.IsDir() != dir {
			f.Close()
			return nil, errors.New("wrong file type")
		}
		return f, unwrapPath(serr)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, unwrapPath(err)
	}
	if dir {
		f, err := pathrs.MkdirAllHandle(root, dest, 0o755)
		return f, unwrapPath(err)
	}
	parent, err := pathrs.MkdirAllHandle(root, path.Dir(path.Clean("/"+dest)), 0o755)
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer parent.Close()
	name := path.Base(dest)
	fd, err := unix.Openat(int(parent.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, err
	}
	unix.Close(fd)
	fd, err = unix.Openat(int(parent.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// mountCgroup mounts the cgroup file system at dest as the host has it,
// seen from the sandbox's cgroup namespace: the unified hierarchy alone,
// or a tmpfs holding, where the host has them, the hierarchies in show
// (those the sandbox has a cgroup of its own in: the others would show
// the builder's).
func mountCgroup(root *os.File, dest string, flags uintptr, show []hierarchy) error {
	flags &^= unix.MS_BIND | unix.MS_REC
	for _, h := range show {
		if h.V2 && h.Dir == "/sys/fs/cgroup" {
			return remountAt(root, dest, func(p string) error {
				if err := unix.Mount("cgroup2", p, "cgroup2", flags, ""); err != nil {
					return fmt.Errorf("mount %s: %w", dest, err)
				}
				return nil
			})
		}
	}
	err := remountAt(root, dest, func(p string) error {
		if err := unix.Mount("tmpfs", p, "tmpfs", flags&^unix.MS_RDONLY, "mode=755"); err != nil {
			return fmt.Errorf("mount %s: %w", dest, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, h := range show {
		rel, ok := strings.CutPrefix(h.Dir, "/sys/fs/cgroup/")
		if !ok || strings.Contains(rel, "/") {
			continue
		}
		sub := filepath.Join(dest, rel)
		target, err := mountPoint(root, sub, true)
		if err != nil {
			return fmt.Errorf("prepare mount point %s: %w", sub, err)
		}
		typ, data := "cgroup", strings.Join(h.Options, ",")
		if h.V2 {
			typ, data = "cgroup2", ""
		}
		err = unix.Mount("cgroup", fdPath(target), typ, flags, data)
		target.Close()
		if err != nil {
			return fmt.Errorf("mount %s: %w", sub, err)
		}
	}
	if flags&unix.MS_RDONLY != 0 {
		return remountAt(root, dest, func(p string) error {
			if err := unix.Mount("", p, "", unix.MS_REMOUNT|flags, "mode=755"); err != nil {
				return fmt.Errorf("mount %s read-only: %w", dest, err)
			}
			return nil
		})
	}
	return nil
}

// createDevices makes the spec's device nodes (in the sandbox's /dev, a
// tmpfs) and runc's default links of /dev.
func createDevices(root *os.File, devs []specs.LinuxDevice) error {
	for _, d := range devs {
		dest := path.Clean("/" + d.Path)
		parent, err := pathrs.MkdirAllHandle(root, path.Dir(dest), 0o755)
		if err != nil {
			return fmt.Errorf("create %s: %w", d.Path, unwrapPath(err))
		}
		mode := uint32(0o666)
		if d.FileMode != nil {
			mode = uint32(d.FileMode.Perm())
		}
		switch d.Type {
		case "c", "u":
			mode |= unix.S_IFCHR
		case "b":
			mode |= unix.S_IFBLK
		case "p":
			mode |= unix.S_IFIFO
		default:
			parent.Close()
			return fmt.Errorf("create %s: unknown device type %q", d.Path, d.Type)
		}
		name := path.Base(dest)
		err = unix.Mknodat(int(parent.Fd()), name, mode, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor))))
		if err == nil {
			var uid, gid int
			if d.UID != nil {
				uid = int(*d.UID)
			}
			if d.GID != nil {
				gid = int(*d.GID)
			}
			err = unix.Fchownat(int(parent.Fd()), name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
		}
		parent.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create %s: %w", d.Path, err)
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	dev, err := pathrs.OpenatInRoot(root, "/dev")
	if err != nil {
		return fmt.Errorf("open /dev: %w", unwrapPath(err))
	}
	defer dev.Close()
	for _, l := range links {
		if err := unix.Symlinkat(l[0], int(dev.Fd()), l[1]); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create /dev/%s: %w", l[1], err)
		}
	}
	return nil
}

// maskPath hides p: a directory under a read-only empty tmpfs, anything
// else under the sandbox's /dev/null. A missing path is left alone.
func maskPath(root *os.File, p string) error {
	f, err := pathrs.OpenatInRoot(root, p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mask %s: %w", p, unwrapPath(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("mask %s: %w", p, unwrapPath(err))
	}
	if fi.IsDir() {
		err = unix.Mount("tmpfs", fdPath(f), "tmpfs", unix.MS_RDONLY, "")
	} else {
		// The sandbox's own /dev/null, as runc uses.
		var null *os.File
		if null, err = pathrs.OpenatInRoot(root, "/dev/null"); err == nil {
			err = unix.Mount(fdPath(null), fdPath(f), "", unix.MS_BIND, "")
			null.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	return nil
}

// readonlyPath binds p onto itself read-only. A missing path is left alone.
func readonlyPath(root *os.File, p string) error {
	f, err := pathrs.OpenatInRoot(root, p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("make %s read-only: %w", p, unwrapPath(err))
	}
	err = unix.Mount(fdPath(f), fdPath(f), "", unix.MS_BIND|unix.MS_REC, "")
	f.Close()
	if err != nil {
		return fmt.Errorf("make %s read-only: %w", p, err)
	}
	return remountBind(root, p, unix.MS_RDONLY)
}

// pivotRoot makes root the process's root directory and detaches the old
// root from the mount namespace.
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("enter root: %w", err)
	}
	// Stacking the old root under the new one avoids needing a directory
	// for it (runc's approach).
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("enter root: %w", err)
	}
	return nil
}
