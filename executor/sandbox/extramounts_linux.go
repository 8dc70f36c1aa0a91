package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// Mount types of [Mount].
const (
	// MountBind binds the host file or directory Source.
	MountBind = "bind"
	// MountTmpfs mounts a fresh, empty tmpfs (Size bytes at most, 0 for
	// the kernel's default).
	MountTmpfs = "tmpfs"
	// MountFile makes a file holding Data, which lives only in memory
	// (a tmpfs private to the sandbox) and is never written to the host's
	// disk, e.g. a secret.
	MountFile = "file"
)

// Mount is a mount the command sees in addition to the root filesystem.
// Its mount point is created in the root when missing and removed again
// afterwards (with any parent directories created for it), so it leaves
// nothing behind in the root.
type Mount struct {
	// Type is MountBind, MountTmpfs or MountFile.
	Type string
	// Source is the host path of a MountBind.
	Source string
	// Target is the absolute path inside the root; symbolic links in it
	// are resolved inside the root.
	Target string
	// ReadOnly makes the mount read-only.
	ReadOnly bool
	// Size is the size limit of a MountTmpfs in bytes (0: the default).
	Size int64
	// Data, Mode, UID and GID are the content, permission bits and owner
	// of a MountFile.
	Data     []byte
	Mode     os.FileMode
	UID, GID uint32
}

// extraMount is a Mount as the init applies it.
type extraMount struct {
	Mount
	// Path is the resolved mount point in the root; empty when the target
	// lies below another mount and the init must resolve and create it.
	Path string
	Dir  bool
}

// validateMounts checks the mounts of a Spec.
func validateMounts(ms []Mount) error {
	for _, m := range ms {
		if !path.IsAbs(m.Target) {
			return fmt.Errorf("mount target %q is not absolute", m.Target)
		}
		if path.Clean(m.Target) == "/" {
			return errors.New("mount target / is not allowed")
		}
		switch m.Type {
		case MountBind:
			if m.Source == "" {
				return fmt.Errorf("bind mount %s: no source", m.Target)
			}
		case MountTmpfs, MountFile:
		default:
			return fmt.Errorf("mount %s: unknown type %q", m.Target, m.Type)
		}
	}
	return nil
}

// prepareMounts makes sure the mount points of ms exist in root, in the
// order the init mounts them (outermost first).
func (p *prepared) prepareMounts(root string, ms []Mount) ([]extraMount, error) {
	out := make([]extraMount, 0, len(ms))
	for _, m := range ms {
		m.Target = path.Clean(m.Target)
		em := extraMount{Mount: m, Dir: true}
		switch m.Type {
		case MountFile:
			em.Dir = false
		case MountBind:
			fi, err := os.Stat(m.Source)
			if err != nil {
				return nil, fmt.Errorf("bind mount %s: %w", m.Target, unwrapPath(err))
			}
			em.Dir = fi.IsDir()
		}
		out = append(out, em)
	}
	// Outermost first: a stable sort on the number of path components.
	depth := func(t string) int { return strings.Count(t, "/") }
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && depth(out[j].Target) < depth(out[j-1].Target); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	for i := range out {
		nested := false
		for _, prev := range out[:i] {
			if prev.Dir && strings.HasPrefix(out[i].Target, strings.TrimSuffix(prev.Target, "/")+"/") {
				nested = true
			}
		}
		if nested {
			continue // created by the init, inside the mount above it
		}
		var err error
		if out[i].Path, err = p.mountPoint(root, out[i].Target[1:], out[i].Dir); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// setupMounts applies the extra mounts inside the init's mount namespace,
// before the pivot into root. Files of MountFile mounts are written to a
// tmpfs mounted on scratch, which only this namespace sees.
func setupMounts(root, scratch string, ms []extraMount) error {
	if len(ms) == 0 {
		return nil
	}
	const nosuidNodev = unix.MS_NOSUID | unix.MS_NODEV
	filesMounted := false
	for i, m := range ms {
		name := m.Target
		target := m.Path
		if target == "" {
			var err error
			if target, err = nestedMountPoint(root, m); err != nil {
				return err
			}
		}
		switch m.Type {
		case MountBind:
			if err := mount(m.Source, target, "", unix.MS_BIND|unix.MS_REC, "", name); err != nil {
				return err
			}
			if m.ReadOnly {
				if err := mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|nosuidNodev, "", name); err != nil {
					return err
				}
			}
		case MountTmpfs:
			data := "mode=1777"
			if m.Size > 0 {
				data += ",size=" + strconv.FormatInt(m.Size, 10)
			}
			flags := uintptr(nosuidNodev)
			if m.ReadOnly {
				flags |= unix.MS_RDONLY
			}
			if err := mount("tmpfs", target, "tmpfs", flags, data, name); err != nil {
				return err
			}
		case MountFile:
			if !filesMounted {
				if err := mount("tmpfs", scratch, "tmpfs", nosuidNodev|unix.MS_NOEXEC, "mode=700", "mount files"); err != nil {
					return err
				}
				filesMounted = true
			}
			src := filepath.Join(scratch, strconv.Itoa(i))
			if err := writeMountFile(src, m); err != nil {
				return fmt.Errorf("create %s: %w", name, err)
			}
			if err := mount(src, target, "", unix.MS_BIND, "", name); err != nil {
				return err
			}
			if err := mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|nosuidNodev|unix.MS_NOEXEC, "", name); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeMountFile(p string, m extraMount) error {
	if err := os.WriteFile(p, m.Data, 0o600); err != nil {
		return unwrapPath(err)
	}
	mode := m.Mode.Perm()
	if mode == 0 && m.Mode == 0 {
		mode = 0o400
	}
	if err := os.Chown(p, int(m.UID), int(m.GID)); err != nil {
		return unwrapPath(err)
	}
	return unwrapPath(os.Chmod(p, mode))
}

// nestedMountPoint resolves (inside root) and creates the mount point of a
// mount that lies below another one; it is created in that mount.
func nestedMountPoint(root string, m extraMount) (string, error) {
	target, err := securejoin.SecureJoin(root, m.Target)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", m.Target, err)
	}
	fi, err := os.Lstat(target)
	switch {
	case err == nil && fi.IsDir() == m.Dir:
		return target, nil
	case err == nil:
		return "", fmt.Errorf("prepare mount point %s: wrong file type", m.Target)
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("prepare mount point %s: %w", m.Target, unwrapPath(err))
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return "", fmt.Errorf("prepare mount point %s: %w", m.Target, unwrapPath(err))
	}
	if m.Dir {
		err = os.Mkdir(target, 0o755)
	} else {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return "", fmt.Errorf("prepare mount point %s: %w", m.Target, unwrapPath(err))
	}
	return target, nil
}
