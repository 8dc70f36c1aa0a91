package copier

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"

	"github.com/mybuild/mybuild/internal/tarlimit"
)

// tryUnpack unpacks the source it into the directory dest when it is a tar
// archive, plain or compressed; done is false when it is not one.
func (c *copier) tryUnpack(it item, dest string) (done bool, err error) {
	f, err := c.src.openFile(it.rel)
	if err != nil {
		return false, c.srcErr("open", it.rel, err)
	}
	defer f.Close()
	r, closeFn, err := decompress(bufio.NewReader(f))
	if err != nil {
		return false, nil // not a stream we know: copied as a file
	}
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err != nil {
		closeFn()
		return false, nil
	}
	defer closeFn()
	// What unpacking creates is 0755 whatever --chmod says, as in BuildKit.
	saved := c.dirPerm
	c.dirPerm = 0o755
	defer func() { c.dirPerm = saved }()
	if err := c.mkdirAll(dest); err != nil {
		return true, err
	}
	for ; err == nil; hdr, err = tr.Next() {
		if cerr := c.ctx.Err(); cerr != nil {
			return true, cerr
		}
		if xerr := c.extract(tr, hdr, dest); xerr != nil {
			return true, fmt.Errorf("unpack %q: %w", it.name, xerr)
		}
	}
	if !errors.Is(err, io.EOF) {
		return true, fmt.Errorf("unpack %q: %w", it.name, err)
	}
	return true, nil
}

// decompress recognises gzip, bzip2, xz and zstd by their magic numbers and
// returns the decompressed stream; other data is returned as it is.
func decompress(br *bufio.Reader) (io.Reader, func(), error) {
	magic, _ := br.Peek(6)
	noop := func() {}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b, 0x08}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, []byte("BZh")):
		return bzip2.NewReader(br), noop, nil
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return xr, noop, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}
	return br, noop, nil
}

// extract writes one archive entry below dest, which acts as the root of
// the archive (as docker's chrooted unpacking does): an absolute name is
// taken as relative to it, a name or hard link climbing out of it with ".."
// and a relative symbolic link pointing out of it are refused, and a
// symbolic link met on the way is resolved inside it.
func (c *copier) extract(tr *tar.Reader, hdr *tar.Header, dest string) error {
	name := path.Clean("/" + hdr.Name)
	if escapes(hdr.Name) {
		return fmt.Errorf("entry %q: %w", hdr.Name, ErrUnsafeArchive)
	}
	target := dest
	if name != "/" {
		parent, err := securejoin.SecureJoin(dest, path.Dir(name))
		if err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, bare(err))
		}
		if err := c.mkdirAll(parent); err != nil {
			return err
		}
		target = filepath.Join(parent, path.Base(name))
	}
	uid, gid := hdr.Uid, hdr.Gid
	if c.o.Owner != nil {
		uid, gid = c.o.Owner.UID, c.o.Owner.GID
	}
	mode := uint32(hdr.Mode) & 0o7777
	st := stamp{atime: hdr.AccessTime, mtime: hdr.ModTime}
	if st.atime.IsZero() {
		st.atime = st.mtime
	}

	if hdr.Typeflag == tar.TypeDir {
		if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
			if err := c.removeAll(target); err != nil {
				return err
			}
		}
		if err := c.makeDir(target); err != nil {
			return err
		}
		c.times[target] = st
		return c.setMeta(target, uid, gid, &mode, func() { setXattrs(target, hdr) }, st)
	}

	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return nil // pax headers are read by archive/tar; others carry no file
	}
	if target == dest {
		return fmt.Errorf("entry %q: cannot replace the destination directory", hdr.Name)
	}
	if err := c.removeAll(target); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		if err := tarlimit.CheckSparse(hdr); err != nil {
			// Holes cost the archive nothing and the disk everything.
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
		if err != nil {
			return c.destErr("create", target, err)
		}
		_, err = io.Copy(f, c.content(tr))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return c.destErr("write", target, err)
		}
	case tar.TypeSymlink:
		rel := strings.TrimPrefix(name, "/")
		if !path.IsAbs(hdr.Linkname) && escapes(path.Join(path.Dir(rel), hdr.Linkname)) {
			return fmt.Errorf("entry %q: symbolic link to %q: %w", hdr.Name, hdr.Linkname, ErrUnsafeArchive)
		}
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return c.destErr("symlink", target, err)
		}
		return c.setMeta(target, uid, gid, nil, nil, st)
	case tar.TypeLink:
		if escapes(hdr.Linkname) {
			return fmt.Errorf("entry %q: hard link to %q: %w", hdr.Name, hdr.Linkname, ErrUnsafeArchive)
		}
		ln := path.Clean("/" + hdr.Linkname)
		parent, err := securejoin.SecureJoin(dest, path.Dir(ln))
		if err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, bare(err))
		}
		src := filepath.Join(parent, path.Base(ln))
		if fi, err := os.Lstat(src); err != nil || fi.IsDir() || ln == "/" {
			return fmt.Errorf("entry %q: hard link to %q: no such file in the archive", hdr.Name, hdr.Linkname)
		}
		if err := os.Link(src, target); err != nil {
			return c.destErr("link", target, err)
		}
		return nil
	default:
		typ := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknod(target, typ|0o600, dev); err != nil {
			return c.destErr("mknod", target, err)
		}
	}
	return c.setMeta(target, uid, gid, &mode, func() { setXattrs(target, hdr) }, st)
}

// escapes tells whether the archive path p climbs above its root.
func escapes(p string) bool {
	p = path.Clean(strings.TrimPrefix(p, "/"))
	return p == ".." || strings.HasPrefix(p, "../")
}

// removeAll removes what stands at target, a directory included, as tar -x
// replaces entries.
func (c *copier) removeAll(target string) error {
	c.touch(filepath.Dir(target))
	if _, err := os.Lstat(target); os.IsNotExist(err) {
		return nil
	}
	if err := os.RemoveAll(target); err != nil {
		return c.destErr("remove", target, err)
	}
	return nil
}

// setXattrs sets the extended attributes an archive entry carries, best
// effort.
func setXattrs(target string, hdr *tar.Header) {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || skipXattr(name) {
			continue
		}
		_ = unix.Lsetxattr(target, name, []byte(v), 0)
	}
}
