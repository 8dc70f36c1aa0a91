package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
)

// The snapshotters a [Store] can use, for [Options].Driver.
const (
	// DriverAuto uses overlayfs if a test mount succeeds, else the naive
	// snapshotter; [Store.Notice] then says why.
	DriverAuto = "auto"
	// DriverOverlay stacks layers with overlayfs mounts.
	DriverOverlay = "overlay"
	// DriverNaive copies the layers into a plain directory and finds a
	// step's changes by walking and comparing it with the layers.
	DriverNaive = "naive"
)

// Options configures a [Store]. The zero value picks the snapshotter
// automatically.
type Options struct {
	// Driver is DriverAuto (also when empty), DriverOverlay or DriverNaive.
	Driver string
}

// Driver returns the snapshotter the store uses: DriverOverlay or
// DriverNaive.
func (s *Store) Driver() string {
	if s.naive {
		return DriverNaive
	}
	return DriverOverlay
}

// Notice returns, when DriverAuto fell back to the naive snapshotter, a
// sentence for the user saying so and why, such as "overlayfs unavailable
// (create overlay: operation not permitted): using the naive snapshotter";
// otherwise "".
func (s *Store) Notice() string {
	return s.notice
}

// chooseDriver sets the store's snapshotter from driver, probing overlayfs
// for DriverAuto.
func (s *Store) chooseDriver(driver string) error {
	switch driver {
	case DriverOverlay:
	case DriverNaive:
		s.naive = true
	case "", DriverAuto:
		if err := s.probeOverlay(); err != nil {
			s.naive = true
			s.notice = fmt.Sprintf("overlayfs unavailable (%v): using the naive snapshotter", err)
		}
	default:
		return fmt.Errorf("unknown snapshotter %q (want %s, %s or %s)", driver, DriverAuto, DriverOverlay, DriverNaive)
	}
	return nil
}

// probeOverlay mounts a writable overlay of an empty lower in tmp/ and
// removes it again.
func (s *Store) probeOverlay() (err error) {
	dir, err := s.tempDir()
	if err != nil {
		return err
	}
	defer func() {
		if rerr := removeMountDir(dir); rerr != nil && err == nil {
			err = rerr
		}
	}()
	for _, d := range []string{"merged", "upper", "work"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return fmt.Errorf("make probe directory: %w", err)
		}
	}
	if err := s.mountOverlay([]string{s.path(emptyDirs[0])}, dir, true); err != nil {
		return err
	}
	return unmount(filepath.Join(dir, "merged"), true)
}
