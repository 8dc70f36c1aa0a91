package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// racyWindow is how recent a file's change may be for its digest to be
// trusted on stat alone later: a file written within it could change again
// without its times moving (git's "racily clean" entries).
const racyWindow = 2 * time.Second

// statEntry is what the stat cache knows of one file.
type statEntry struct {
	Size   int64  `json:"s"`
	Mtime  int64  `json:"m"`
	Ctime  int64  `json:"c"`
	Ino    uint64 `json:"i"`
	Dev    uint64 `json:"v"`
	Digest string `json:"d"`
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
	c := &StatCache{s: s, path: s.path("stat", Digest([]byte(dir))[7:]+".json"), files: map[string]statEntry{}}
	if b, err := os.ReadFile(c.path); err == nil {
		if json.Unmarshal(b, &c.files) != nil {
			c.files = map[string]statEntry{}
		}
	}
	return c
}

// FileDigest returns the sha256 of the contents of the regular file at
// host path p, whose Lstat is fi, reading it only when its stat differs
// from the last time. A nil StatCache always reads the file.
func (c *StatCache) FileDigest(ctx context.Context, p string, fi os.FileInfo) (string, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || c == nil {
		return c.hash(ctx, p)
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
	d, err := c.hash(ctx, p)
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

func (*StatCache) hash(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
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
	b, err := json.Marshal(c.files)
	if err != nil {
		return fmt.Errorf("save stat cache: %w", err)
	}
	if err := c.s.writeFile(c.path, b); err != nil {
		return fmt.Errorf("save stat cache: %w", err)
	}
	c.dirty = false
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
