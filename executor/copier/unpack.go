package copier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
)

// ErrNotArchive is returned (wrapped) by Unpack when the file is not a tar
// archive, plain or compressed.
var ErrNotArchive = errors.New("not a tar archive")

// ErrTooLarge is returned (wrapped) by Unpack when the archive holds more
// file content than UnpackOptions.MaxSize.
var ErrTooLarge = errors.New("archive too large")

// UnpackOptions are the options of Unpack. The zero value has no limit.
type UnpackOptions struct {
	// MaxSize is the most bytes of file content unpacking may write; 0
	// means no limit.
	MaxSize int64
}

// Unpack unpacks the tar archive in the host file src (uncompressed, gzip,
// bzip2, xz or zstd, recognised by content) into the directory dest, with
// the rules of ADD: every entry stays inside dest, and entries keep their
// modes and owners. It returns ErrNotArchive, having written nothing, when
// src is not an archive.
func Unpack(ctx context.Context, src, dest string, o UnpackOptions) error {
	c, err := newCopier(ctx, Options{SrcRoot: filepath.Dir(src), DestRoot: dest})
	if err != nil {
		return err
	}
	defer c.close()
	name := filepath.Base(src)
	fi, err := c.src.lstat(name)
	if err != nil {
		return fmt.Errorf("unpack: %w", bare(err))
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("unpack: %w", ErrNotArchive)
	}
	c.maxSize = max(o.MaxSize, 0)
	it := item{name: name, rel: name, fi: fi, base: name}
	done, err := c.tryUnpack(it, c.destRoot)
	if err != nil {
		return err
	}
	if !done {
		return fmt.Errorf("unpack %q: %w", it.name, ErrNotArchive)
	}
	return c.applyTimes()
}

// limitReader counts what is read from r against the copier's maxSize.
type limitReader struct {
	c *copier
	r io.Reader
}

func (l limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.c.unpacked += int64(n)
	if l.c.unpacked > l.c.maxSize {
		return n, fmt.Errorf("%w: more than %d bytes of files", ErrTooLarge, l.c.maxSize)
	}
	return n, err
}

// content is the reader of an archive entry's data, counted against
// maxSize when there is one.
func (c *copier) content(r io.Reader) io.Reader {
	if c.maxSize == 0 {
		return r
	}
	return limitReader{c: c, r: r}
}
