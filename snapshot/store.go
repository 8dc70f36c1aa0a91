package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/mybuild/mybuild/internal/ctxio"
	"github.com/mybuild/mybuild/internal/procstat"
)

// Store keeps extracted layers, stored once by diffID, and the overlay
// mounts stacked on them, under one root directory. Its methods are safe for
// concurrent use, also by several processes sharing the root.
type Store struct {
	root  string
	owner string // "<pid>.<start time>" of this process, for Sweep

	mu       sync.Mutex
	inflight map[string]chan struct{} // extractions under way, by diffID hex

	// legacy is set once the kernel turned out not to know overlay's
	// "lowerdir+" (Linux < 6.8): mounts then go through mount(2).
	legacy atomic.Bool

	naive  bool   // the naive snapshotter instead of overlayfs
	notice string // why DriverAuto chose the naive snapshotter
}

// New opens the store at root, making its directories if needed, and
// chooses its snapshotter as opts says.
func New(root string, opts Options) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	owner, _, err := processOwner(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	s := &Store{root: abs, owner: owner, inflight: make(map[string]chan struct{})}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	for _, d := range []string{"layers", "mounts", "tmp", "l", "empty", emptyDirs[0], emptyDirs[1]} {
		if err := os.Mkdir(s.path(d), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("open snapshot store: %w", err)
		}
	}
	for _, d := range emptyDirs {
		if err := os.Chmod(s.path(d), 0o755); err != nil {
			return nil, fmt.Errorf("open snapshot store: %w", err)
		}
	}
	if err := s.chooseDriver(opts.Driver); err != nil {
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	return s, nil
}

// emptyDirs are two empty lower directories: the base of a mount with no
// lowers, and the filler that lets overlay mount fewer than two lowers
// read-only.
var emptyDirs = [2]string{"empty/a", "empty/b"}

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

func (s *Store) layerPath(diffID v1.Hash) (string, error) {
	if diffID.Algorithm != "sha256" || len(diffID.Hex) != 64 {
		return "", fmt.Errorf("invalid diffID %q", diffID)
	}
	if _, err := hex.DecodeString(diffID.Hex); err != nil || strings.ToLower(diffID.Hex) != diffID.Hex {
		return "", fmt.Errorf("invalid diffID %q", diffID)
	}
	return s.path("layers", diffID.Hex), nil
}

// Lookup returns the directory of the layer diffID if the store has it.
func (s *Store) Lookup(diffID v1.Hash) (string, bool) {
	p, err := s.layerPath(diffID)
	if err != nil {
		return "", false
	}
	fi, err := os.Lstat(p)
	if err != nil || !fi.IsDir() {
		return "", false
	}
	if s.fromEarlierBoot(diffID.Hex) {
		// Possibly incomplete after a crash: make it again from its blob.
		if s.dropIfStale(diffID.Hex, p) != nil || s.fromEarlierBoot(diffID.Hex) {
			return "", false
		}
		// Another build made it again meanwhile.
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			return "", false
		}
	}
	return p, true
}

// Extract makes the layer diffID available as an overlay lower directory and
// returns it. If the store already has it, that is all; otherwise open gives
// the uncompressed layer tar, which is unpacked (OCI whiteouts turned into
// overlay ones) into a temporary directory, checked against diffID, and
// renamed into place. Concurrent calls for one diffID, in this process or
// others, are safe: one extraction wins, the others' work is discarded.
func (s *Store) Extract(ctx context.Context, diffID v1.Hash, open func() (io.ReadCloser, error)) (string, error) {
	final, err := s.layerPath(diffID)
	if err != nil {
		return "", fmt.Errorf("extract layer: %w", err)
	}
	for {
		if dir, ok := s.Lookup(diffID); ok {
			return dir, nil
		}
		s.mu.Lock()
		wait, busy := s.inflight[diffID.Hex]
		if !busy {
			wait = make(chan struct{})
			s.inflight[diffID.Hex] = wait
		}
		s.mu.Unlock()
		if busy {
			select {
			case <-wait:
				continue // look again; if that extraction failed, try ourselves
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		err := s.extract(ctx, diffID, final, open)
		s.mu.Lock()
		delete(s.inflight, diffID.Hex)
		s.mu.Unlock()
		close(wait)
		if err != nil {
			return "", fmt.Errorf("extract layer %s: %w", diffID, err)
		}
		return final, nil
	}
}

func (s *Store) extract(ctx context.Context, diffID v1.Hash, final string, open func() (io.ReadCloser, error)) (err error) {
	tmp, err := s.tempDir()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	rc, err := open()
	if err != nil {
		return fmt.Errorf("open layer: %w", err)
	}
	defer rc.Close()
	hr := newHashingReader(rc, sha256.New())
	defer hr.Close()
	if err := Unpack(ctx, hr, tmp, UnpackOptions{OverlayWhiteouts: true}); err != nil {
		return err
	}
	// The tar reader stops at the end marker; hash the padding after it too.
	if _, err := io.Copy(io.Discard, ctxio.NewReader(ctx, hr)); err != nil {
		return fmt.Errorf("read layer: %w", err)
	}
	if got := hex.EncodeToString(hr.Sum()); got != diffID.Hex {
		return fmt.Errorf("verify layer: content has diffID sha256:%s", got)
	}
	existed, err := s.publish(diffID.Hex, tmp, final)
	if err != nil {
		return fmt.Errorf("store layer: %w", err)
	}
	if existed {
		os.RemoveAll(tmp) // another extraction got there first
	}
	return nil
}

// Commit unmounts m and moves its upper directory into the store as the
// layer diffID, already in overlay lower format, so that a built layer is
// never extracted again; it returns the layer directory. diffID is the
// caller's digest of [WriteDiff]'s tar of [Mount.Changes], so both come
// first.
// If the store already has diffID, m's upper is simply discarded. m is
// released either way.
func (s *Store) Commit(m *Mount, diffID v1.Hash) (string, error) {
	final, err := s.layerPath(diffID)
	if err != nil {
		return "", fmt.Errorf("commit layer: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.released:
		return "", errors.New("commit layer: mount already released")
	case m.Upper == "":
		return "", errors.New("commit layer: read-only mount has no upper directory")
	case m.naive != nil && !m.naive.changed:
		return "", errors.New("commit layer: changes not computed")
	}
	if err := unmount(m.Dir, false); err != nil {
		return "", fmt.Errorf("commit layer: %w", err)
	}
	if _, err := s.publish(diffID.Hex, m.Upper, final); err != nil {
		return "", fmt.Errorf("commit layer: %w", err)
	}
	if err := removeMountDir(m.path); err != nil {
		return "", fmt.Errorf("commit layer: %w", err)
	}
	m.released = true
	return final, nil
}

// Sweep removes what dead processes left: it unmounts and deletes their
// mounts and deletes their unfinished layers, and drops short links whose
// layer is gone. Call it at start-up; the mounts of live processes,
// including this one, are left alone. Called in a mount namespace of its
// own, it still clears a mount a dead process left in another: the
// unmount reaches only this namespace's copy, but removing the mount point
// detaches it everywhere.
func (s *Store) Sweep() error {
	var errs []error
	mounts, err := os.ReadDir(s.path("mounts"))
	if err != nil {
		return fmt.Errorf("sweep mounts: %w", err)
	}
	for _, e := range mounts {
		dir := s.path("mounts", e.Name())
		owner, _ := os.ReadFile(filepath.Join(dir, "owner"))
		if s.alive(strings.TrimSpace(string(owner))) {
			continue
		}
		if err := unmount(filepath.Join(dir, "merged"), true); err != nil {
			errs = append(errs, fmt.Errorf("sweep mount %s: %w", e.Name(), err))
			continue
		}
		if err := removeMountDir(dir); err != nil {
			errs = append(errs, fmt.Errorf("sweep mount %s: %w", e.Name(), err))
		}
	}
	tmps, err := os.ReadDir(s.path("tmp"))
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("sweep temporary directories: %w", err))...)
	}
	for _, e := range tmps {
		owner, _, _ := strings.Cut(e.Name(), "-")
		if s.alive(owner) {
			continue
		}
		if err := removeMountDir(s.path("tmp", e.Name())); err != nil {
			errs = append(errs, fmt.Errorf("sweep temporary directory %s: %w", e.Name(), err))
		}
	}
	links, err := os.ReadDir(s.path("l"))
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("sweep short links: %w", err))...)
	}
	for _, e := range links {
		p := s.path("l", e.Name())
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("sweep short link %s: %w", e.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// tempDir makes a directory in tmp/ whose name starts with this process's
// identity, so that Sweep can tell whether its maker is still alive.
func (s *Store) tempDir() (string, error) {
	dir, err := os.MkdirTemp(s.path("tmp"), s.owner+"-")
	if err != nil {
		return "", fmt.Errorf("make temporary directory: %w", err)
	}
	return dir, nil
}

// alive reports whether the process recorded as owner ("<pid>.<start
// time>") still runs. A zombie does not: it holds nothing any more, and a
// build killed after its parent (see package mountns) stays one until
// init reaps it. When in doubt it says yes.
func (s *Store) alive(owner string) bool {
	if owner == s.owner {
		return true
	}
	pidStr, _, ok := strings.Cut(owner, ".")
	pid, err := strconv.Atoi(pidStr)
	if !ok || err != nil || pid <= 0 {
		return false
	}
	cur, running, err := processOwner(pid)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	return cur == owner && running
}

// processOwner identifies a process by its pid and start time, which
// tells a pid's reuse apart, and reports whether it runs still rather than
// waits, dead, to be reaped (state Z or X).
func processOwner(pid int) (owner string, running bool, err error) {
	st, err := procstat.Read(strconv.Itoa(pid))
	if err != nil {
		return "", false, err
	}
	return strconv.Itoa(pid) + "." + st.StartTime, !st.Dead(), nil
}

func isExist(err error) bool {
	return errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY)
}
