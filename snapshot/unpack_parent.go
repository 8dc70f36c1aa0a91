package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// parentDir is the directory the last entry was unpacked into.
type parentDir struct {
	rel   string   // its name in the archive, cleaned
	fd    int      // a descriptor of it, -1 when none is held
	file  *os.File // what holds fd when mkdirAll made it, else nil
	plain bool     // reached from the root without meeting a symlink
}

// parent returns a descriptor of the directory rel inside the root, made if
// missing, as mkdirAll resolves it; it stays valid until the next call of
// parent or dropParent.
//
// Where rel is a path of real directories (no symlink, no magic link), one
// openat2 finds it, and the descriptor is kept for the entries with the
// same parent that follow (tar entries of one directory usually come one
// after the other). Such entries only add, replace or remove names inside
// the directory, which cannot change the directories on the path to it (no
// symlink on that path leads through it, and a directory has no second
// name), so it is still what mkdirAll would resolve. An entry with any
// other parent, which may replace a directory on that path, drops it first,
// and so does the root's own entry. Any other rel goes through mkdirAll and
// is not kept.
func (u *unpacker) parent(rel string) (int, error) {
	p := &u.parentDir
	keep := !u.opts.resolveEveryParent
	if keep && p.fd >= 0 && p.plain && p.rel == rel {
		return p.fd, nil
	}
	u.dropParent()
	if keep {
		if fd, err := openPlainDir(int(u.root.Fd()), rel); err == nil {
			*p = parentDir{rel: rel, fd: fd, plain: true}
			return fd, nil
		}
	}
	f, err := u.mkdirAll(rel)
	if err != nil {
		return -1, err
	}
	*p = parentDir{rel: rel, fd: int(f.Fd()), file: f}
	return p.fd, nil
}

// dropParent releases the directory kept by parent.
func (u *unpacker) dropParent() {
	p := &u.parentDir
	switch {
	case p.file != nil:
		p.file.Close()
	case p.fd >= 0:
		unix.Close(p.fd)
	}
	*p = parentDir{fd: -1}
}

// openPlainDir opens an O_PATH descriptor of the directory rel below dirfd
// if every component of rel is a real directory: no symlink, no "..", no
// magic link. Where that holds, it is the directory that a lookup inside
// the root (RESOLVE_IN_ROOT, as pathrs-lite does) finds; in every other
// case (and on kernels without openat2) it fails, and the caller takes the
// general way.
func openPlainDir(dirfd int, rel string) (int, error) {
	if rel == "" {
		rel = "."
	}
	return unix.Openat2(dirfd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
}

// mkdirAll returns an O_PATH handle of the directory rel inside the root,
// making the missing parts.
func (u *unpacker) mkdirAll(rel string) (*os.File, error) {
	if rel == "" {
		rel = "."
	}
	f, err := pathrs.MkdirAllHandle(u.root, rel, 0o755)
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENOENT) {
		// pathrs does not make directories through a dangling symlink;
		// Docker's chrooted extraction does. Resolve the symlinks inside
		// the root first, then make what is missing.
		var full string
		if full, err = securejoin.SecureJoin(u.rootPath, rel); err == nil {
			if rel, err = filepath.Rel(u.rootPath, full); err == nil {
				f, err = pathrs.MkdirAllHandle(u.root, rel, 0o755)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("resolve parent directory: %w", bareErr(err))
	}
	return f, nil
}

// openInRoot opens an O_PATH descriptor of the existing directory rel,
// resolved inside the root; the caller closes it.
func (u *unpacker) openInRoot(rel string) (int, error) {
	if !u.opts.resolveEveryParent {
		if fd, err := openPlainDir(int(u.root.Fd()), rel); err == nil {
			return fd, nil
		}
	}
	if rel == "" {
		rel = "."
	}
	f, err := pathrs.OpenatInRoot(u.root, rel)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	return unix.Dup(int(f.Fd()))
}
