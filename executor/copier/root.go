package copier

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Root is a source root opened once, as a descriptor: the copies given it
// (Options.Root), and the files read with OpenFile, all read the directory
// it was opened on, even when a path to it has been swapped for a
// symbolic link since. A build opens its context once, before it reads
// anything of it. A Root is safe for concurrent use; Close it when done.
type Root struct {
	path string   // the host path it was opened at, free of symbolic links then: for names only
	f    *os.File // O_PATH descriptor of the directory
}

// OpenRoot opens the directory dir as a Root.
func OpenRoot(dir string) (*Root, error) {
	p, err := cleanRoot(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root: %w", bare(err))
	}
	return &Root{path: p, f: f}, nil
}

// Close releases the root.
func (r *Root) Close() error { return r.f.Close() }

// source is a source reading the root through a descriptor of its own,
// for one copier.
func (r *Root) source() (*source, error) {
	fd, err := unix.FcntlInt(r.f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root: %w", err)
	}
	return &source{root: os.NewFile(uintptr(fd), r.path), fd: fd}, nil
}

// lookup resolves name inside the root as a source (see OpenFile) and
// calls fn with the copier holding the root and what it found.
func (r *Root) lookup(name string, fn func(c *copier, it item) error) error {
	src, err := r.source()
	if err != nil {
		return err
	}
	defer src.close()
	c := &copier{srcRoot: r.path, src: src}
	it, err := c.lookup(name, path.Join("/", filepath.ToSlash(name)))
	if errors.Is(err, ErrNotFound) {
		return &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	if err != nil {
		return err
	}
	return fn(c, it)
}

// OpenFile opens the regular file name inside the root for reading, as
// COPY reads a source and BuildKit a Dockerfile or a .dockerignore:
// symbolic links, the last one included, are followed inside the root, an
// absolute target taken as inside it, never out of it. Whoever can write
// in the root cannot have a file outside it read in its place. A name that
// does not resolve inside the root gives an error matching os.ErrNotExist.
func (r *Root) OpenFile(name string) (*os.File, error) {
	var f *os.File
	err := r.lookup(name, func(c *copier, it item) error {
		var err error
		if f, err = c.src.openFile(it.rel); err != nil {
			return &os.PathError{Op: "open", Path: name, Err: bare(err)}
		}
		return nil
	})
	return f, err
}

// Sub opens the directory name inside the root, resolved as OpenFile
// resolves a file, as a Root of its own.
func (r *Root) Sub(name string) (*Root, error) {
	var sub *Root
	err := r.lookup(name, func(c *copier, it item) error {
		fd, err := c.src.open(it.rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			return &os.PathError{Op: "open", Path: name, Err: bare(err)}
		}
		sub = &Root{path: filepath.Join(r.path, filepath.FromSlash(it.rel)), f: os.NewFile(uintptr(fd), name)}
		return nil
	})
	return sub, err
}

// OpenPath opens name inside the root, resolved as OpenFile resolves a
// file, whatever its type, as an O_PATH descriptor: a handle on exactly
// that file, to bind-mount it through /proc/PID/fd/N.
func (r *Root) OpenPath(name string) (*os.File, error) {
	var f *os.File
	err := r.lookup(name, func(c *copier, it item) error {
		fd, err := c.src.open(it.rel, unix.O_PATH|unix.O_NOFOLLOW)
		if err != nil {
			return &os.PathError{Op: "open", Path: name, Err: bare(err)}
		}
		f = os.NewFile(uintptr(fd), name)
		return nil
	})
	return f, err
}
