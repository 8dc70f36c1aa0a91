package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// ErrNotFound is returned (wrapped) when no stored image matches a reference.
var ErrNotFound = errors.New("no such image")

// ErrBusy is returned by GC when another Store is open on the same root.
var ErrBusy = errors.New("store in use")

// staleAfter is how old an unlocked temp file must be before it is swept.
const staleAfter = time.Minute

// Store is a local image store rooted at a directory. Its methods are safe
// for concurrent use, also by several processes sharing the root.
type Store struct {
	root string
	oci  layoutDir

	openLock *os.File // shared flock while the Store is open

	mu      sync.Mutex           // guards written, held by GC throughout
	written map[v1.Hash]struct{} // blobs written or reused by this Store
}

// Open opens the store at root, creating what is missing, and sweeps temp
// files left by processes that died. Close releases it.
func Open(root string) (*Store, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{root: root, written: map[v1.Hash]struct{}{}}
	tmp := filepath.Join(root, "tmp")
	oci := filepath.Join(root, "oci")
	s.oci = layoutDir{
		dir:   oci,
		tmp:   tmp,
		lock:  filepath.Join(root, "lock"),
		blobs: blobDir{dir: filepath.Join(oci, "blobs", "sha256"), tmp: tmp, mark: s.mark},
	}
	for _, d := range []string{s.oci.blobs.dir, tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	for _, f := range []string{s.oci.lock, filepath.Join(root, "open.lock")} {
		lf, err := os.OpenFile(f, os.O_RDONLY|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		lf.Close()
	}
	if err := s.oci.init(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	lf, err := os.Open(filepath.Join(root, "open.lock"))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := flock(lf, unix.LOCK_SH); err != nil {
		lf.Close()
		return nil, fmt.Errorf("open store: lock: %w", err)
	}
	s.openLock = lf
	if err := sweepDir(tmp, ""); err != nil {
		s.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

// Root returns the store's root directory (absolute).
func (s *Store) Root() string { return s.root }

// TempDir creates an empty directory (mode 0700) under <root>/tmp for a
// caller's scratch work, such as a build context fetched from a URL. It
// stays locked, so that no sweep removes it, until release removes it; a
// process killed before release leaves it to the next sweep.
func (s *Store) TempDir() (dir string, release func(), err error) {
	dir, release, err = createTempDir(s.oci.tmp)
	if err != nil {
		return "", nil, fmt.Errorf("create temp dir: %w", err)
	}
	return dir, release, nil
}

// Close releases the store's shared lock, letting GC run elsewhere. Layers
// written through this Store and not yet referenced by a stored image may
// then be collected.
func (s *Store) Close() error {
	if s.openLock == nil {
		return nil
	}
	err := s.openLock.Close()
	s.openLock = nil
	return err
}

// Sweep deletes temp files and directories under <root>/tmp that no process
// holds a lock on and that are older than a minute: what a killed process
// left behind. When no other Store is open, no writer can be between
// creating a temp file and locking it, so every unlocked one goes, however
// new (fsck reports those as left by a dead process). Open sweeps the old
// ones; a build calls Sweep when it starts.
func (s *Store) Sweep(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.openLock == nil {
		return errors.New("sweep store: store closed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	age := staleAfter
	if unix.Flock(int(s.openLock.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		age = 0 // swept while holding the lock exclusively
	}
	err := sweepDirOlder(s.oci.tmp, "", age)
	// Back to shared (a failed conversion may also have dropped it).
	if lerr := flock(s.openLock, unix.LOCK_SH); lerr != nil && err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("sweep store: %w", err)
	}
	return nil
}

// mark records that h is about to be referenced, so GC keeps it.
func (s *Store) mark(h v1.Hash) {
	s.mu.Lock()
	s.written[h] = struct{}{}
	s.mu.Unlock()
}

// GC deletes blobs that no manifest in index.json refers to, except those
// this Store wrote itself. It returns ErrBusy, deleting nothing, when
// another Store (in this or another process) is open on the same root.
func (s *Store) GC(ctx context.Context) ([]v1.Hash, error) {
	return s.GCKeep(ctx, nil)
}

// GCKeep is GC that also keeps the blobs for which keep (when not nil)
// returns true: those a step cache still refers to.
func (s *Store) GCKeep(ctx context.Context, keep func(v1.Hash) bool) ([]v1.Hash, error) {
	if s.openLock == nil {
		return nil, errors.New("collect garbage: store closed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Converting the shared lock may drop it when it fails; take it back.
	if err := unix.Flock(int(s.openLock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if lerr := flock(s.openLock, unix.LOCK_SH); lerr != nil {
			return nil, fmt.Errorf("collect garbage: relock: %w", lerr)
		}
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, fmt.Errorf("collect garbage: %w", err)
	}
	defer flock(s.openLock, unix.LOCK_SH)

	var removed []v1.Hash
	err := s.oci.update(ctx, func(idx *v1.IndexManifest) error {
		used := map[v1.Hash]bool{}
		for h := range s.written {
			used[h] = true
		}
		for _, d := range idx.Manifests {
			used[d.Digest] = true
			m, err := s.oci.manifest(d.Digest)
			if err != nil {
				return err
			}
			used[m.Config.Digest] = true
			for _, l := range m.Layers {
				used[l.Digest] = true
			}
		}
		ents, err := os.ReadDir(s.oci.blobs.dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
			if used[h] || (keep != nil && keep(h)) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := os.Remove(filepath.Join(s.oci.blobs.dir, e.Name())); err != nil {
				return err
			}
			removed = append(removed, h)
		}
		return errNoChange
	})
	if err != nil {
		return removed, fmt.Errorf("collect garbage: %w", err)
	}
	return removed, nil
}

// flock takes a blocking lock of kind how on f.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// flockCtx takes an exclusive lock on f, polling so that ctx can cancel.
func flockCtx(ctx context.Context, f *os.File) error {
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// sweepDir removes entries of dir whose names start with prefix that are
// unlocked and older than staleAfter.
func sweepDir(dir, prefix string) error { return sweepDirOlder(dir, prefix, staleAfter) }

// sweepDirOlder is sweepDir for the entries older than age.
func sweepDirOlder(dir, prefix string, age time.Duration) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if len(e.Name()) < len(prefix) || e.Name()[:len(prefix)] != prefix {
			continue
		}
		p := filepath.Join(dir, e.Name())
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < age {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			f.Close() // in use
			continue
		}
		err = os.RemoveAll(p)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
