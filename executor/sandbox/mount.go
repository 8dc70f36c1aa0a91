package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path"
)

// Mount types of [Mount].
const (
	// MountBind binds the host file or directory Source.
	MountBind = "bind"
	// MountTmpfs mounts a fresh, empty tmpfs (Size bytes at most, 0 for
	// the kernel's default).
	MountTmpfs = "tmpfs"
	// MountFile makes a file holding Data, which lives only in memory (a
	// tmpfs of the sandbox's host files) and is never written to the
	// host's disk, e.g. a secret.
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
