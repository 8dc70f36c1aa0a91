package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/mybuild/mybuild/internal/ctxio"
)

// racyWindow is how recent a file's change may be for its digest to be
// trusted on stat alone later: a file written within it could change again
// without its times moving (git's "racily clean" entries).
const racyWindow = 2 * time.Second

// statMagic starts a stat cache file; the version in it changes with the
// encoding, and a file with another one is ignored (and rewritten).
const statMagic = "mybuild stat cache 1\n"

// statEntry is what the stat cache knows of one file.
type statEntry struct {
	Size   int64
	Mtime  int64
	Ctime  int64
	Ino    uint64
	Dev    uint64
	Digest string // "sha256:" + hex
}

// StatCache maps host files to the digests of their contents, trusted while
// their size, modification and change times, inode and device stay the
// same, like git's index. It is kept per context directory between builds.
// Safe for concurrent use.
type StatCache struct {
	s     *Store
	path  string
	mu    sync.Mutex
	files map[string]statEntry
	dirty bool
}

// StatCache loads the stat cache of the directory dir (an absolute path).
func (s *Store) StatCache(dir string) *StatCache {
	c := &StatCache{s: s, path: s.path("stat", Digest([]byte(dir))[7:]), files: map[string]statEntry{}}
	if b, err := os.ReadFile(c.path); err == nil {
		if files, err := decodeStat(b); err == nil {
			c.files = files
		}
	}
	return c
}

// encodeStat writes the entries as statMagic followed by, per file: the
// path (uvarint length, bytes), size, mtime and ctime (varints), inode and
// device (uvarints) and the 32 bytes of the sha256. A no-op rebuild reads
// this back for every context file, so it is kept small and cheap to
// decode (JSON took longer than the stat calls it saves).
func encodeStat(files map[string]statEntry) ([]byte, error) {
	b := make([]byte, 0, len(statMagic)+len(files)*96)
	b = append(b, statMagic...)
	for p, e := range files {
		sum, err := hex.DecodeString(e.Digest[len("sha256:"):])
		if err != nil || len(sum) != sha256.Size {
			return nil, fmt.Errorf("digest %q of %q", e.Digest, p)
		}
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
		b = binary.AppendVarint(b, e.Size)
		b = binary.AppendVarint(b, e.Mtime)
		b = binary.AppendVarint(b, e.Ctime)
		b = binary.AppendUvarint(b, e.Ino)
		b = binary.AppendUvarint(b, e.Dev)
		b = append(b, sum...)
	}
	return b, nil
}

var errStatFormat = errors.New("not a stat cache of this version")

// decodeStat reads what encodeStat wrote.
func decodeStat(b []byte) (map[string]statEntry, error) {
	if !bytes.HasPrefix(b, []byte(statMagic)) {
		return nil, errStatFormat
	}
	b = b[len(statMagic):]
	files := make(map[string]statEntry, len(b)/96)
	uvarint := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	varint := func() int64 {
		v, n := binary.Varint(b)
		if n <= 0 {
			b = nil
			return 0
		}
		b = b[n:]
		return v
	}
	for len(b) > 0 {
		n := uvarint()
		if b == nil || n > uint64(len(b)) {
			return nil, errStatFormat
		}
		p := string(b[:n])
		b = b[n:]
		e := statEntry{Size: varint(), Mtime: varint(), Ctime: varint(), Ino: uvarint(), Dev: uvarint()}
		if len(b) < sha256.Size {
			return nil, errStatFormat
		}
		e.Digest = "sha256:" + hex.EncodeToString(b[:sha256.Size])
		b = b[sha256.Size:]
		files[p] = e
	}
	return files, nil
}

// FileDigest returns the sha256 of the contents of the regular file at
// host path p, whose Lstat is fi, reading what open opens only when its
// stat differs from the last time; p names the file, open is how to read
// it (a copier.Entry's Open, which a symbolic link swapped in on the way
// cannot lead out of the build context). A nil StatCache always reads the
// file.
func (c *StatCache) FileDigest(ctx context.Context, p string, fi os.FileInfo, open func() (io.ReadCloser, error)) (string, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || c == nil {
		return c.hash(ctx, open)
	}
	e := statEntry{
		Size:  fi.Size(),
		Mtime: st.Mtim.Nano(),
		Ctime: st.Ctim.Nano(),
		Ino:   st.Ino,
		Dev:   uint64(st.Dev),
	}
	c.mu.Lock()
	old, ok := c.files[p]
	c.mu.Unlock()
	if ok && old.Digest != "" && old.Size == e.Size && old.Mtime == e.Mtime && old.Ctime == e.Ctime && old.Ino == e.Ino && old.Dev == e.Dev {
		return old.Digest, nil
	}
	d, err := c.hash(ctx, open)
	if err != nil {
		return "", err
	}
	recent := time.Now().Add(-racyWindow).UnixNano()
	if e.Mtime < recent && e.Ctime < recent {
		e.Digest = d
		c.mu.Lock()
		c.files[p] = e
		c.dirty = true
		c.mu.Unlock()
	}
	return d, nil
}

func (*StatCache) hash(ctx context.Context, open func() (io.ReadCloser, error)) (string, error) {
	f, err := open()
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxio.NewReader(ctx, f)); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// Save writes the stat cache back when it learned something.
func (c *StatCache) Save() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	b, err := encodeStat(c.files)
	if err != nil {
		return fmt.Errorf("save stat cache: %w", err)
	}
	if err := c.s.writeFile(c.path, b); err != nil {
		return fmt.Errorf("save stat cache: %w", err)
	}
	c.dirty = false
	return nil
}
