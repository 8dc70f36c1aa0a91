package remotecontext

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/mybuild/mybuild/executor/copier"
	"github.com/mybuild/mybuild/internal/ctxio"
)

// Default limits of Options.
const (
	DefaultMaxDownload   = 4 << 30  // bytes downloaded from an http(s) URL
	DefaultMaxUnpacked   = 16 << 30 // bytes of files a downloaded archive unpacks to
	DefaultMaxDockerfile = 16 << 20 // bytes of a downloaded Dockerfile
)

// ErrTooLarge is returned (wrapped) when a download or what it unpacks to
// is over its limit.
var ErrTooLarge = errors.New("too large")

// Options configure Fetch. The zero value works.
type Options struct {
	// Named fetches a --build-context rather than the main context. As in
	// BuildKit, an http(s) URL is then never unpacked nor taken as a
	// Dockerfile: the context holds the downloaded file, named "context".
	Named bool
	// KeepGitDir keeps the .git directory of a Git context (the build arg
	// BUILDKIT_CONTEXT_KEEP_GIT_DIR); the URL's keep-git-dir query also
	// does.
	KeepGitDir bool
	// Env is the environment git runs with; nil means this process's.
	Env []string
	// Client downloads http(s) URLs; nil means http.DefaultClient.
	Client *http.Client
	// MaxDownload, MaxUnpacked and MaxDockerfile are limits in bytes;
	// zero means the Default one.
	MaxDownload, MaxUnpacked, MaxDockerfile int64
}

// Context is a fetched build context.
type Context struct {
	// Dir is the context directory, inside the directory given to Fetch.
	Dir string
	// Dockerfile is the host path of the Dockerfile when the URL was a
	// plain-text file (Dir is then empty); "" otherwise.
	Dockerfile string
	// Commit is the commit checked out, for a Git context.
	Commit string
}

// Fetch brings the remote context s (Detect says Git or HTTP) into dir, an
// empty scratch directory that the caller removes afterwards, whatever
// happens. Errors do not repeat s.
func Fetch(ctx context.Context, s, dir string, o Options) (*Context, error) {
	switch Detect(s) {
	case Git:
		r, err := ParseGit(s)
		if err != nil {
			return nil, err
		}
		src := filepath.Join(dir, "git")
		if err := os.Mkdir(src, 0o755); err != nil {
			return nil, err
		}
		keep := o.KeepGitDir || (r.KeepGitDir != nil && *r.KeepGitDir)
		cdir, commit, err := checkout(ctx, r, src, keep, o.Env)
		if err != nil {
			return nil, err
		}
		return &Context{Dir: cdir, Commit: commit}, nil
	case HTTP:
		return fetchHTTP(ctx, s, dir, o)
	}
	return nil, errors.New("not a Git or http(s) URL")
}

// fetchHTTP downloads s and makes the context of it.
func fetchHTTP(ctx context.Context, s, dir string, o Options) (*Context, error) {
	cdir := filepath.Join(dir, "context")
	if err := os.Mkdir(cdir, 0o755); err != nil {
		return nil, err
	}
	if o.Named {
		// BuildKit's HTTP source: the file alone, mode 0600, dated by
		// Last-Modified.
		if _, err := download(ctx, s, filepath.Join(cdir, "context"), o); err != nil {
			return nil, err
		}
		return &Context{Dir: cdir}, nil
	}
	file := filepath.Join(dir, "download")
	n, err := download(ctx, s, file, o)
	if err != nil {
		return nil, err
	}
	return fromFile(ctx, file, n, cdir, o)
}

// FromReader makes the context of r, as `docker build -` does with its
// standard input: a tar archive (compressed or not) is unpacked as the
// context; anything else is the Dockerfile, with an empty context. dir is
// as for Fetch.
func FromReader(ctx context.Context, r io.Reader, dir string, o Options) (*Context, error) {
	cdir := filepath.Join(dir, "context")
	if err := os.Mkdir(cdir, 0o755); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "stdin")
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	max := limit(o.MaxDownload, DefaultMaxDownload)
	n, err := io.Copy(f, io.LimitReader(ctxio.NewReader(ctx, r), max+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	if n > max {
		return nil, fmt.Errorf("%w: standard input is over %d bytes", ErrTooLarge, max)
	}
	return fromFile(ctx, file, n, cdir, o)
}

// fromFile makes the context cdir of the downloaded file of n bytes: its
// contents when it is an archive, else the file is the Dockerfile.
func fromFile(ctx context.Context, file string, n int64, cdir string, o Options) (*Context, error) {
	err := copier.Unpack(ctx, file, cdir, copier.UnpackOptions{MaxSize: limit(o.MaxUnpacked, DefaultMaxUnpacked)})
	switch {
	case errors.Is(err, copier.ErrNotArchive):
		if max := limit(o.MaxDockerfile, DefaultMaxDockerfile); n > max {
			return nil, fmt.Errorf("%w: not an archive, and at %d bytes over the %d-byte limit for a Dockerfile", ErrTooLarge, n, max)
		}
		return &Context{Dir: cdir, Dockerfile: file}, nil
	case errors.Is(err, copier.ErrTooLarge):
		return nil, fmt.Errorf("%w: the archive unpacks to more than %d bytes", ErrTooLarge, limit(o.MaxUnpacked, DefaultMaxUnpacked))
	case err != nil:
		return nil, err
	}
	if err := os.Remove(file); err != nil {
		return nil, err
	}
	return &Context{Dir: cdir}, nil
}

// download writes the content of the URL s to the new file path (mode
// 0600, dated by the Last-Modified header or the epoch) and returns its
// size.
func download(ctx context.Context, s, path string, o Options) (int64, error) {
	max := limit(o.MaxDownload, DefaultMaxDownload)
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s, nil)
	if err != nil {
		return 0, fmt.Errorf("download: %w", unwrapURL(err))
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download: %w", unwrapURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, fmt.Errorf("download: invalid response status %s", resp.Status)
	}
	if resp.ContentLength > max {
		return 0, fmt.Errorf("download: %w: %d bytes, over the %d-byte limit", ErrTooLarge, resp.ContentLength, max)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, max+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	if n > max {
		return 0, fmt.Errorf("download: %w: over the %d-byte limit", ErrTooLarge, max)
	}
	mtime := time.Unix(0, 0)
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		mtime = t
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	return n, nil
}

func limit(v, def int64) int64 {
	if v > 0 {
		return v
	}
	return def
}
