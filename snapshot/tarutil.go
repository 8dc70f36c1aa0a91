package snapshot

import (
	"archive/tar"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// bareErr reduces err to its errno, dropping the host paths that path
// errors carry: the archive's name is what the user needs to see.
func bareErr(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// clear removes whatever is at base unless both it and the new entry are
// directories; it reports whether a directory is kept.
func (u *unpacker) clear(pfd int, base string, wantDir bool) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat existing entry: %w", err)
	}
	if wantDir && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return true, nil
	}
	if err := removeAllAt(pfd, base); err != nil {
		return false, fmt.Errorf("remove existing entry: %w", err)
	}
	return false, nil
}

// cleanName turns an archive name into a clean path relative to the root ("" for
// the root itself). Leading slashes are dropped; a name that climbs out of the
// root with ".." is an error.
func cleanName(name string) (string, error) {
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == "." {
		return "", nil
	}
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("name %q escapes the root", name)
	}
	return p, nil
}

func splitRel(rel string) (parent, base string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

func permBits(mode int64) uint32 {
	return uint32(mode) & 0o7777
}

func timespecs(hdr *tar.Header) []unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return []unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
}

func timespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

func setTimes(pfd int, base string, hdr *tar.Header) error {
	if err := unix.UtimesNanoAt(pfd, base, timespecs(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

const paxXattrPrefix = "SCHILY.xattr."

// setXattrs applies the archive's xattrs that [Unpack] keeps.
func setXattrs(hdr *tar.Header, set func(name string, value []byte) error) error {
	var names []string
	for k := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, paxXattrPrefix); ok && keepXattr(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		err := set(name, []byte(hdr.PAXRecords[paxXattrPrefix+name]))
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
			continue
		}
		if err != nil {
			return fmt.Errorf("set xattr %s: %w", name, err)
		}
	}
	return nil
}

func keepXattr(name string) bool {
	switch {
	case strings.HasPrefix(name, "trusted.overlay."), strings.HasPrefix(name, "user.overlay."):
		return false
	case strings.HasPrefix(name, "user."), strings.HasPrefix(name, "trusted."):
		return true
	}
	switch name {
	case "security.capability", "system.posix_acl_access", "system.posix_acl_default":
		return true
	}
	return false
}
