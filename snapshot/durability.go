package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Layer directories are not fsynced: a syncfs after unpacking a base image
// of a few hundred megabytes cost seconds per cold build, and the page cache
// survives anything but a kernel crash or power loss. Instead, before a
// layer directory is published, a marker <root>/unsynced/<hex> holding the
// kernel's boot ID is written and fsynced. A layer whose marker names
// another boot may have lost data in a crash, so Lookup drops it and the
// next Extract makes it again from its blob (the image store's blobs are
// fsynced). A layer without a marker was synced when it was made.

var (
	bootIDOnce sync.Once
	bootID     []byte
)

// currentBootID is the kernel's random boot ID, or nil when unknown (then
// every layer is synced instead).
func currentBootID() []byte {
	bootIDOnce.Do(func() {
		b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			bootID = bytes.TrimSpace(b)
		}
	})
	return bootID
}

// markUnsynced records that the layer hex is about to be published without
// a sync, in this boot; where the boot ID is unknown it syncs dir instead.
func (s *Store) markUnsynced(hex, dir string) error {
	id := currentBootID()
	if id == nil {
		return syncDir(dir)
	}
	markers := s.path("unsynced")
	if err := os.MkdirAll(markers, 0o700); err != nil {
		return err
	}
	p := filepath.Join(markers, hex)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(id); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(markers)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fromEarlierBoot reports whether the layer hex was published unsynced in
// an earlier boot, so that its content cannot be trusted.
func (s *Store) fromEarlierBoot(hex string) bool {
	b, err := os.ReadFile(filepath.Join(s.path("unsynced"), hex))
	if err != nil {
		return false // no marker: synced when made
	}
	id := currentBootID()
	return id == nil || !bytes.Equal(bytes.TrimSpace(b), id)
}

// lockLayers takes the store-wide lock under which layers are published
// and untrusted ones dropped, across processes; unlock releases it.
func (s *Store) lockLayers() (unlock func(), err error) {
	f, err := os.OpenFile(s.path("unsynced.lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock layers: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock layers: %w", err)
	}
	return func() { f.Close() }, nil
}

// publish moves the finished layer directory src to final (the layer hex),
// marked unsynced in this boot, and reports whether another process or
// goroutine had published it first (src is then left to the caller). An
// untrusted layer from an earlier boot at final is dropped first. Under
// the layers lock, so that no drop removes a fresh marker or layer, and no
// fresh marker is given to a stale layer.
func (s *Store) publish(hex, src, final string) (existed bool, err error) {
	unlock, err := s.lockLayers()
	if err != nil {
		return false, err
	}
	defer unlock()
	if _, err := os.Lstat(final); err == nil {
		if !s.fromEarlierBoot(hex) {
			return true, nil
		}
		if err := s.dropLayerLocked(hex, final); err != nil {
			return false, err
		}
	}
	if err := s.markUnsynced(hex, src); err != nil {
		return false, fmt.Errorf("sync layer: %w", err)
	}
	if err := os.Rename(src, final); err != nil {
		return false, err
	}
	return false, nil
}

// dropIfStale removes the layer hex at dir if it is still from an earlier
// boot once the layers lock is held.
func (s *Store) dropIfStale(hex, dir string) error {
	unlock, err := s.lockLayers()
	if err != nil {
		return err
	}
	defer unlock()
	if !s.fromEarlierBoot(hex) {
		return nil // made again meanwhile, by another build
	}
	return s.dropLayerLocked(hex, dir)
}

// dropLayerLocked removes a layer directory that cannot be trusted, and
// then its marker; the caller holds the layers lock.
func (s *Store) dropLayerLocked(hex, dir string) error {
	old := dir + ".stale"
	if err := os.Rename(dir, old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("drop layer %s: %w", hex, err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("drop layer %s: %w", hex, err)
	}
	if err := os.Remove(filepath.Join(s.path("unsynced"), hex)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("drop layer %s: %w", hex, err)
	}
	return nil
}
