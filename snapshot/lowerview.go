package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lowerDir is a directory as the lower layers show it. WriteDiff uses it
// for an opaque upper directory: instead of an opaque marker it writes one
// whiteout per entry the lowers had there, the way BuildKit's overlay
// differ writes a deleted-then-recreated directory.
type lowerDir struct {
	layers []string        // the lowers (top-most first) that contribute entries
	names  map[string]bool // the names visible in the merged lowers
}

// lowerView returns the merged view of the directory rel in layers (top-most
// first), honouring whiteouts and opaque directories among them. A path
// that is not a directory there gives an empty view.
func lowerView(layers []string, rel string) (*lowerDir, error) {
	v := &lowerDir{names: map[string]bool{}}
	seen := map[string]bool{} // names decided by a higher layer
	for _, l := range layers {
		p := filepath.Join(l, rel)
		var st unix.Stat_t
		err := unix.Lstat(p, &st)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stat lower of %q: %w", rel, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			break // a whiteout or a non-directory hides whatever is below
		}
		v.layers = append(v.layers, l)
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("read lower of %q: %w", rel, err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read lower of %q: %w", rel, err)
		}
		for _, n := range names {
			if seen[n] {
				continue
			}
			seen[n] = true
			var cst unix.Stat_t
			if err := unix.Lstat(filepath.Join(p, n), &cst); err != nil {
				return nil, fmt.Errorf("stat lower of %q: %w", joinRel(rel, n), err)
			}
			if cst.Mode&unix.S_IFMT == unix.S_IFCHR && cst.Rdev == 0 {
				continue // deleted in this layer
			}
			v.names[n] = true
		}
		if isOpaqueDir(p) {
			break
		}
	}
	return v, nil
}

// child is the view of v's entry base, whose path (relative to the
// layers) is rel.
func (v *lowerDir) child(rel, base string) (*lowerDir, error) {
	if !v.names[base] {
		return &lowerDir{names: map[string]bool{}}, nil
	}
	return lowerView(v.layers, rel)
}

// isOpaqueDir reports whether the directory p carries overlay's opaque mark.
func isOpaqueDir(p string) bool {
	buf := make([]byte, 8)
	for _, attr := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		n, err := unix.Lgetxattr(p, attr, buf)
		if err == nil && string(buf[:n]) == "y" {
			return true
		}
	}
	return false
}
