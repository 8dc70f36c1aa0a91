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
// first, each holding rel's parent as a directory), honouring whiteouts and
// opaque directories among them. A path that is not a directory there gives
// an empty view.
func lowerView(layers []string, rel string) (*lowerDir, error) {
	sub, err := dirLayers(layers, rel)
	if err != nil {
		return nil, err
	}
	v := &lowerDir{layers: sub, names: map[string]bool{}}
	seen := map[string]bool{} // names decided by a higher layer
	for _, l := range sub {
		p := filepath.Join(l, rel)
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
			if isWhiteout(&cst) {
				continue // deleted in this layer
			}
			v.names[n] = true
		}
	}
	return v, nil
}

// dirLayers returns those of layers (top-most first, each holding rel's
// parent as a directory) whose directory rel makes the merged view of rel:
// from the top-most that has rel down to one where rel is opaque, or to
// the layer above one that has something else there (a whiteout or a
// file), which hides the layers below. None if the lowers show no
// directory rel. It costs at most one lstat per layer, so a directory the
// lowers lack gives its contents nothing to look up.
func dirLayers(layers []string, rel string) ([]string, error) {
	var out []string
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
		if !isDir(&st) {
			break // a whiteout or a non-directory hides whatever is below
		}
		out = append(out, l)
		if isOpaqueDir(p) {
			break
		}
	}
	return out, nil
}

// lowerEntry finds the entry rel in the top-most of layers (top-most
// first, each holding rel's parent as a directory) that has it, fills st
// with its stat and returns its path; "" if the lowers show no entry rel
// (none has it, or the top-most that has it has a whiteout).
func lowerEntry(layers []string, rel string, st *unix.Stat_t) (string, error) {
	for _, l := range layers {
		p := filepath.Join(l, rel)
		err := unix.Lstat(p, st)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("stat lower of %q: %w", rel, err)
		}
		if isWhiteout(st) {
			return "", nil
		}
		return p, nil
	}
	return "", nil
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
