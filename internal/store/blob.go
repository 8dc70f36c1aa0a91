package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/mybuild/mybuild/internal/ctxio"
)

// tempPrefix starts the names of temp files in directories that are not
// only ours (a user's OCI layout).
const tempPrefix = ".mybuild-tmp-"

// blobDir writes content-addressed blobs atomically.
type blobDir struct {
	dir  string        // …/blobs/sha256
	tmp  string        // temp directory on the same filesystem
	mark func(v1.Hash) // called before a blob is made visible or reused; may be nil
	// linkFrom, when set, is another blob directory (the store's) whose
	// blobs are hard-linked instead of copied when the file systems allow.
	linkFrom string
}

func (b blobDir) path(h v1.Hash) string { return filepath.Join(b.dir, h.Hex) }

// has reports whether blob h is present with the given size (size < 0: any).
func (b blobDir) has(h v1.Hash, size int64) bool {
	fi, err := os.Stat(b.path(h))
	if err != nil || !fi.Mode().IsRegular() || (size >= 0 && fi.Size() != size) {
		return false
	}
	if b.mark != nil {
		b.mark(h)
	}
	return true
}

// write stores the blob with digest want and size (size < 0: unknown)
// unless it is present, reading it from open. It verifies the digest and
// size while copying.
func (b blobDir) write(ctx context.Context, want v1.Hash, size int64, open func() (io.ReadCloser, error)) error {
	if want.Algorithm != "sha256" || len(want.Hex) != 64 {
		return fmt.Errorf("write blob %s: unsupported digest", want)
	}
	if b.has(want, size) {
		return nil
	}
	if b.link(want, size) {
		return nil
	}
	rc, err := open()
	if err != nil {
		return fmt.Errorf("write blob %s: %w", want, err)
	}
	defer rc.Close()
	f, err := createTemp(b.tmp)
	if err != nil {
		return fmt.Errorf("write blob %s: %w", want, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxio.NewReader(ctx, rc))
	if err == nil {
		err = checkBlob(want, size, h, n)
	}
	if err != nil {
		discard(f)
		return fmt.Errorf("write blob %s: %w", want, err)
	}
	if err := b.commit(f, want); err != nil {
		return fmt.Errorf("write blob %s: %w", want, err)
	}
	return nil
}

// link hard-links blob want from linkFrom, when it is there with the
// right size; the source was verified when it was written. It reports
// whether the blob is now present.
func (b blobDir) link(want v1.Hash, size int64) bool {
	if b.linkFrom == "" {
		return false
	}
	src := filepath.Join(b.linkFrom, want.Hex)
	fi, err := os.Lstat(src)
	if err != nil || !fi.Mode().IsRegular() || (size >= 0 && fi.Size() != size) {
		return false
	}
	if err := os.Link(src, b.path(want)); err != nil {
		return b.has(want, size) // another writer was first; EXDEV and others: copy
	}
	return true
}

// writeBytes stores data as a blob and returns its digest.
func (b blobDir) writeBytes(ctx context.Context, data []byte) (v1.Hash, error) {
	sum := sha256.Sum256(data)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	return h, b.write(ctx, h, int64(len(data)), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}

// commit makes the fsynced temp file f the blob h and closes it.
func (b blobDir) commit(f *os.File, h v1.Hash) error {
	if b.mark != nil {
		b.mark(h)
	}
	if err := f.Chmod(0o644); err != nil {
		discard(f)
		return err
	}
	if err := f.Sync(); err != nil {
		discard(f)
		return err
	}
	if err := os.Rename(f.Name(), b.path(h)); err != nil {
		discard(f)
		return err
	}
	return f.Close()
}

// sync makes renames into the blob directory durable.
func (b blobDir) sync() error { return syncDir(b.dir) }

func checkBlob(want v1.Hash, size int64, h hash.Hash, n int64) error {
	if size >= 0 && n != size {
		return fmt.Errorf("size mismatch: got %d bytes, want %d", n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.Hex {
		return fmt.Errorf("digest mismatch: got sha256:%s", got)
	}
	return nil
}

// createTemp creates a temp file in dir and locks it, marking it in use for
// sweepDir until it is closed.
func createTemp(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		discard(f)
		return nil, fmt.Errorf("lock temp file: %w", err)
	}
	return f, nil
}

// createTempDir creates a locked temp directory in dir; release unlocks and
// removes it.
func createTempDir(dir string) (path string, release func(), err error) {
	path, err = os.MkdirTemp(dir, tempPrefix+"*")
	if err != nil {
		return "", nil, err
	}
	f, err := os.Open(path)
	if err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		os.RemoveAll(path)
		return "", nil, fmt.Errorf("lock temp dir: %w", err)
	}
	return path, func() { os.RemoveAll(path); f.Close() }, nil
}

// discard closes and removes a temp file.
func discard(f *os.File) {
	os.Remove(f.Name())
	f.Close()
}

// writeFileAtomic replaces path with data through a temp file in tmp.
func writeFileAtomic(tmp, path string, data []byte) error {
	f, err := createTemp(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		discard(f)
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		discard(f)
		return err
	}
	if err := f.Sync(); err != nil {
		discard(f)
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		discard(f)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// createFileAtomic creates path with data unless it exists.
func createFileAtomic(tmp, path string, data []byte) error {
	if _, err := os.Lstat(path); err == nil {
		return nil
	}
	f, err := createTemp(tmp)
	if err != nil {
		return err
	}
	defer discard(f)
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := os.Link(f.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxWriter fails writes once ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (w ctxWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

// countWriter counts the bytes written through it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
