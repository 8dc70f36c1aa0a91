package executor

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mybuild/mybuild/cache"
	"github.com/mybuild/mybuild/executor/copier"
	"github.com/mybuild/mybuild/internal/ctxio"
	"github.com/mybuild/mybuild/planner"
)

// fetcher downloads the URLs of ADD, each once per build, into a temporary
// directory removed when the build ends.
type fetcher struct {
	// tempDir makes that directory: a locked temp dir of the store, so
	// that a build killed before cleanup leaves it to the next sweep.
	tempDir func() (string, func(), error)
	mu      sync.Mutex
	dir     string
	release func()
	files   map[string]*fetched // by URL and checksum
}

// fetched is one download: a directory holding one file, Name.
type fetched struct {
	once   sync.Once
	dir    string
	name   string
	digest string // sha256:... of the content
	mtime  string // the Last-Modified header, "" when none
	err    error
}

// urlFileName is the name BuildKit gives the file of ADD <url>: the last
// element of the URL's path, or "__unnamed__" (the Dockerfile frontend
// always names the file, so Content-Disposition is not used).
func urlFileName(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if base := path.Base(u.Path); base != "." && base != "/" {
			return base
		}
	}
	return "__unnamed__"
}

// isURL reports whether an ADD source is an http(s) URL (the planner has
// refused Git URLs already).
func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// get downloads raw (once per build), verifying it against checksum
// ("algorithm:hex", "" for none).
func (f *fetcher) get(ctx context.Context, raw, checksum string) (*fetched, error) {
	f.mu.Lock()
	if f.files == nil {
		f.files = map[string]*fetched{}
	}
	k := raw + "\x00" + checksum
	e, ok := f.files[k]
	if !ok {
		e = &fetched{}
		f.files[k] = e
	}
	if f.dir == "" {
		dir, release, err := f.tempDir()
		if err != nil {
			f.mu.Unlock()
			return nil, fmt.Errorf("download %s: %w", raw, err)
		}
		f.dir, f.release = dir, release
	}
	base := f.dir
	f.mu.Unlock()
	e.once.Do(func() {
		e.err = e.download(ctx, base, raw, checksum)
		if e.err != nil {
			// A cancelled or failed download may be tried again by another step.
			f.mu.Lock()
			delete(f.files, k)
			f.mu.Unlock()
		}
	})
	return e, e.err
}

func (e *fetched) download(ctx context.Context, base, raw, checksum string) error {
	var want string
	var h hash.Hash
	if checksum != "" {
		alg, hexDigest, _ := strings.Cut(checksum, ":")
		switch alg {
		case "sha256":
			h = sha256.New()
		case "sha384":
			h = sha512.New384()
		case "sha512":
			h = sha512.New()
		default:
			return fmt.Errorf("invalid checksum %q: unsupported digest algorithm", checksum)
		}
		want = hexDigest
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return fmt.Errorf("download %s: %w", raw, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", raw, unwrapURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("download %s: invalid response status %s", raw, resp.Status)
	}
	dir, err := os.MkdirTemp(base, "url-")
	if err != nil {
		return fmt.Errorf("download %s: %w", raw, err)
	}
	e.dir, e.name = dir, urlFileName(raw)
	p := filepath.Join(dir, e.name)
	// 0600, as BuildKit's HTTP source writes it.
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("download %s: %w", raw, unwrapPath(err))
	}
	sum := sha256.New()
	w := io.MultiWriter(out, sum)
	if h != nil {
		w = io.MultiWriter(out, sum, h)
	}
	_, err = io.Copy(w, ctxio.NewReader(ctx, resp.Body))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", raw, err)
	}
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return fmt.Errorf("download %s: checksum mismatch: got %s:%s, want %s", raw, strings.SplitN(checksum, ":", 2)[0], got, checksum)
		}
	}
	e.digest = "sha256:" + hex.EncodeToString(sum.Sum(nil))
	// The file's time is the Last-Modified header's, or the epoch, as in
	// BuildKit.
	mtime := time.Unix(0, 0)
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			e.mtime, mtime = lm, t
		}
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		return fmt.Errorf("download %s: %w", raw, unwrapPath(err))
	}
	return nil
}

// cleanup removes the downloads.
func (f *fetcher) cleanup() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dir != "" {
		f.release()
		f.dir, f.release = "", nil
	}
}

func unwrapURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// urlInputs splits the sources of c into URLs and local paths, and returns
// the cache inputs of the URLs: the checksum when one was given, else the
// downloaded content (and its Last-Modified time, which the file keeps).
func (b *build) urlInputs(ctx context.Context, c *planner.CopyStep) ([]cache.Input, []string, error) {
	var in []cache.Input
	var local []string
	for _, s := range c.Sources {
		if !c.Add || !isURL(s) {
			local = append(local, s)
			continue
		}
		if c.Checksum != "" {
			in = append(in, cache.Input{Name: "url " + s, Digest: c.Checksum})
			continue
		}
		f, err := b.fetches.get(ctx, s, "")
		if err != nil {
			return nil, nil, err
		}
		in = append(in, cache.Input{Name: "url " + s, Digest: cache.Digest([]byte(f.digest + "\x00" + f.mtime))})
	}
	return in, local, nil
}

// copyURLs downloads the URL sources of an ADD (verifying the checksum)
// and copies each file to the destination; o is the copy of the local
// sources, whose options apply.
func (b *build) copyURLs(ctx context.Context, c *planner.CopyStep, o copier.Options) error {
	n := len(c.Sources) + len(c.Heredocs)
	dirLike := strings.HasSuffix(c.Dest, "/") || strings.HasSuffix(c.Dest, "/.")
	for _, s := range c.Sources {
		if !isURL(s) {
			continue
		}
		if n > 1 && !dirLike {
			return fmt.Errorf("When using ADD with more than one source file, the destination must be a directory and end with a /") //nolint:staticcheck // Docker's message
		}
		f, err := b.fetches.get(ctx, s, c.Checksum)
		if err != nil {
			return err
		}
		uo := o
		uo.SrcRoot, uo.Sources, uo.Heredocs = f.dir, []string{f.name}, nil
		uo.Ignore, uo.Excludes, uo.KeepOwners, uo.Parents = nil, nil, false, false
		uo.Add = false // remote archives are not unpacked, unless --unpack says so
		if err := copier.Copy(ctx, uo); err != nil {
			return err
		}
	}
	return nil
}
