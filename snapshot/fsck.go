package snapshot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Kinds of [Finding].
const (
	// KindLeftoverMount: a mount directory of a process that died. It is
	// a leftover, which the next build's [Store.Sweep] removes, unless it
	// is still mounted here (left by a build that mounted outside a mount
	// namespace of its own). Repair unmounts and removes it.
	KindLeftoverMount = "leftover-mount"
	// KindStrayMount: a filesystem mounted under the store root that no
	// live mount of the store accounts for. Repair unmounts it.
	KindStrayMount = "stray-mount"
	// KindLeftoverTemp: a half-made layer or mount of a process that died:
	// a leftover, unless something is still mounted in it. Repair removes
	// it.
	KindLeftoverTemp = "leftover-temp"
	// KindDanglingLink: a short link in l/ whose layer is gone. Repair
	// removes it.
	KindDanglingLink = "dangling-link"
	// KindStrayLayer: an entry of layers/ not named by a diffID. Repair
	// removes it.
	KindStrayLayer = "stray-layer"
	// KindUnusedLayer: a layer nothing uses any more. Not a problem: it
	// is reported as reclaimable and left alone.
	KindUnusedLayer = "unused-layer"
)

// CheckOptions says what [Store.Check] repairs and which layers are used.
// The zero value only checks, and reports no layer as unused.
type CheckOptions struct {
	// Repair removes what dead processes left (as [Store.Sweep] does)
	// and unmounts stray mounts.
	Repair bool
	// Used, when set, reports whether an image or a cached result still
	// uses the layer diffID; the layers it says no to are reported as
	// reclaimable.
	Used func(diffID v1.Hash) bool
}

// Finding is one thing Check found.
type Finding struct {
	Kind   string
	Path   string // relative to the store root
	Detail string
	// Reclaimable is set for a finding that is no problem, only space
	// that could be freed: Size bytes.
	Reclaimable bool
	Size        int64
	// Leftover is set for what a process that died left and the next
	// [Store.Sweep] removes: no problem for the store either.
	Leftover bool
	Repaired bool
}

func (f Finding) String() string {
	s := f.Kind + " " + f.Path + ": " + f.Detail
	if f.Repaired {
		s += " (repaired)"
	}
	return s
}

// Check looks for what dead processes left in the store (mounts, still
// mounted or not, half-made layers, dangling short links), filesystems
// mounted under the root that no live mount explains, stray entries in
// layers/, and, with o.Used, layers nothing uses. With o.Repair it removes
// the leftovers; what live processes (this one included) own is left
// alone, so Check is safe while builds run.
func (s *Store) Check(ctx context.Context, o CheckOptions) ([]Finding, error) {
	var out []Finding
	mounted, err := mountsUnder(s.root)
	if err != nil {
		return nil, fmt.Errorf("check snapshots: %w", err)
	}
	explained := map[string]bool{}

	mounts, err := os.ReadDir(s.path("mounts"))
	if err != nil {
		return nil, fmt.Errorf("check snapshots: %w", err)
	}
	for _, e := range mounts {
		dir := s.path("mounts", e.Name())
		owner, _ := os.ReadFile(filepath.Join(dir, "owner"))
		live := s.alive(strings.TrimSpace(string(owner)))
		for _, mp := range mounted {
			if mp == dir || strings.HasPrefix(mp, dir+"/") {
				explained[mp] = true
			}
		}
		if live {
			continue
		}
		f := Finding{Kind: KindLeftoverMount, Path: filepath.Join("mounts", e.Name()), Detail: "left by a process that died", Leftover: true}
		if isMounted(mounted, filepath.Join(dir, "merged")) {
			f.Detail += ", still mounted"
			f.Leftover = false
		}
		if o.Repair {
			if err := unmount(filepath.Join(dir, "merged"), true); err != nil {
				return out, fmt.Errorf("repair mount %s: %w", e.Name(), err)
			}
			if err := removeMountDir(dir); err != nil {
				return out, fmt.Errorf("repair mount %s: %w", e.Name(), err)
			}
			f.Repaired = true
		}
		out = append(out, f)
	}

	tmps, err := os.ReadDir(s.path("tmp"))
	if err != nil {
		return out, fmt.Errorf("check snapshots: %w", err)
	}
	for _, e := range tmps {
		dir := s.path("tmp", e.Name())
		owner, _, _ := strings.Cut(e.Name(), "-")
		if s.alive(owner) {
			for _, mp := range mounted {
				if mp == dir || strings.HasPrefix(mp, dir+"/") {
					explained[mp] = true // the driver probe of a live process
				}
			}
			continue
		}
		f := Finding{Kind: KindLeftoverTemp, Path: filepath.Join("tmp", e.Name()), Detail: "left by a process that died", Leftover: true}
		if isMounted(mounted, filepath.Join(dir, "merged")) {
			f.Detail += ", still mounted"
			f.Leftover = false
		}
		if o.Repair {
			unmount(filepath.Join(dir, "merged"), true) // a probe's mount, if any
			if err := removeMountDir(dir); err != nil {
				return out, fmt.Errorf("repair temporary directory %s: %w", e.Name(), err)
			}
			f.Repaired = true
		}
		out = append(out, f)
	}

	for _, mp := range mounted {
		if explained[mp] || !stillMounted(mp) {
			continue
		}
		rel, _ := filepath.Rel(s.root, mp)
		f := Finding{Kind: KindStrayMount, Path: rel, Detail: "mounted, but no live build owns it"}
		if o.Repair {
			if err := unmount(mp, true); err != nil {
				return out, fmt.Errorf("repair mount %s: %w", rel, err)
			}
			f.Repaired = true
		}
		out = append(out, f)
	}

	links, err := os.ReadDir(s.path("l"))
	if err != nil {
		return out, fmt.Errorf("check snapshots: %w", err)
	}
	for _, e := range links {
		p := s.path("l", e.Name())
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		target, _ := os.Readlink(p)
		f := Finding{Kind: KindDanglingLink, Path: filepath.Join("l", e.Name()), Detail: "points at " + target + ", which is gone"}
		if o.Repair {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return out, fmt.Errorf("repair short link %s: %w", e.Name(), err)
			}
			f.Repaired = true
		}
		out = append(out, f)
	}

	layers, err := os.ReadDir(s.path("layers"))
	if err != nil {
		return out, fmt.Errorf("check snapshots: %w", err)
	}
	for _, e := range layers {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		diffID := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		p := s.path("layers", e.Name())
		rel := filepath.Join("layers", e.Name())
		if _, err := s.layerPath(diffID); err != nil || !e.IsDir() {
			f := Finding{Kind: KindStrayLayer, Path: rel, Detail: "not a layer"}
			if o.Repair {
				if err := os.RemoveAll(p); err != nil {
					return out, fmt.Errorf("repair layer %s: %w", e.Name(), err)
				}
				f.Repaired = true
			}
			out = append(out, f)
			continue
		}
		if o.Used == nil || o.Used(diffID) {
			continue
		}
		size := diskUsage(p)
		out = append(out, Finding{Kind: KindUnusedLayer, Path: rel, Reclaimable: true, Size: size,
			Detail: "no image or cached result uses it"})
	}
	return out, nil
}

// diskUsage adds up the sizes of the regular files under dir.
func diskUsage(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// mountsUnder lists the mount points under dir (dir excluded), in
// /proc/self/mountinfo order.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	return out, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, …) of a
// mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isMounted(mounted []string, p string) bool {
	for _, mp := range mounted {
		if mp == p {
			return true
		}
	}
	return false
}

// stillMounted reports whether p is still a mount point: an earlier repair
// in the same Check may have unmounted it, or what was below it.
func stillMounted(p string) bool {
	ms, err := mountsUnder(filepath.Dir(p))
	if err != nil {
		return true
	}
	return isMounted(ms, p)
}
