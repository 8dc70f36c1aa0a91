package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/mybuild/mybuild/internal/ctxio"
)

// Kinds of [Finding].
const (
	// KindBadIndex: index.json cannot be read. Not repaired.
	KindBadIndex = "bad-index"
	// KindMissingManifest: an index entry names a manifest that is missing
	// or unreadable. Repair removes the entry.
	KindMissingManifest = "missing-manifest"
	// KindMissingBlob: a manifest's config or layer blob is missing, so the
	// image cannot be used. Repair removes the image's index entries.
	KindMissingBlob = "missing-blob"
	// KindCorruptBlob: a blob's content does not match its digest. Repair
	// removes it when no image uses it; Images lists those that do.
	KindCorruptBlob = "corrupt-blob"
	// KindStrayFile: a file in the blob directory that is not a blob.
	// Repair removes it.
	KindStrayFile = "stray-file"
	// KindTempFile: a temp file no process holds, left by a killed one:
	// a leftover, which the next [Store.Sweep] removes. Repair removes it.
	KindTempFile = "temp-file"
)

// FsckOptions says what [Store.Fsck] repairs. The zero value only checks.
type FsckOptions struct {
	// Repair removes what can be removed without losing a usable image.
	// It needs the store to itself: with another Store open, Fsck returns
	// ErrBusy.
	Repair bool
	// Cached, when set, reports the blobs a step cache refers to. A
	// corrupt one is removed by Repair all the same (the cache entry then
	// points at nothing, which the cache's owner checks); the others are
	// not reported as unreferenced.
	Cached func(v1.Hash) bool
}

// Finding is one problem, or leftover, Fsck found.
type Finding struct {
	Kind   string
	Object string // a digest, or a path relative to the store root
	Detail string
	// Images lists the images the problem makes unusable: names, or
	// "<none>@sha256:…" for an unnamed one.
	Images []string
	// Leftover is set for what a process that died left and the next
	// Sweep removes: no problem for the store.
	Leftover bool
	Repaired bool
}

func (f Finding) String() string {
	s := f.Kind + " " + f.Object + ": " + f.Detail
	if f.Repaired {
		s += " (repaired)"
	}
	return s
}

// FsckReport is what Fsck found.
type FsckReport struct {
	Findings []Finding
	// DiffIDs are the layers, by diffID, of the images in the store.
	DiffIDs map[v1.Hash]bool
}

// Fsck verifies the store: index.json parses, every manifest it lists is
// there with its config and layers, every blob's content has the digest it
// is named by, and no temp file is left by a process that died. With
// o.Repair it also removes what it safely can (see the Kind constants).
// Temp files younger than a minute are only reported when no other Store
// is open, since their writer may not have locked them yet.
func (s *Store) Fsck(ctx context.Context, o FsckOptions) (*FsckReport, error) {
	if s.openLock == nil {
		return nil, errors.New("check store: store closed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	idle := unix.Flock(int(s.openLock.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
	if !idle {
		// A failed conversion may have dropped the shared lock.
		if err := flock(s.openLock, unix.LOCK_SH); err != nil {
			return nil, fmt.Errorf("check store: relock: %w", err)
		}
		if o.Repair {
			return nil, fmt.Errorf("repair store: %w", ErrBusy)
		}
	} else {
		defer flock(s.openLock, unix.LOCK_SH)
	}

	c := &checker{s: s, o: o, idle: idle, users: map[v1.Hash][]string{}, rep: &FsckReport{DiffIDs: map[v1.Hash]bool{}}}
	indexOK, err := c.checkIndex(ctx)
	if err != nil {
		return c.rep, fmt.Errorf("check store: %w", err)
	}
	if err := c.checkBlobs(ctx, indexOK); err != nil {
		return c.rep, fmt.Errorf("check store: %w", err)
	}
	if err := c.checkTemp(); err != nil {
		return c.rep, fmt.Errorf("check store: %w", err)
	}
	return c.rep, nil
}

type checker struct {
	s     *Store
	o     FsckOptions
	idle  bool
	users map[v1.Hash][]string // blob → images using it
	rep   *FsckReport
}

// add records f and returns it, to be updated before the next add.
func (c *checker) add(f Finding) *Finding {
	c.rep.Findings = append(c.rep.Findings, f)
	return &c.rep.Findings[len(c.rep.Findings)-1]
}

// addIndex records f and returns its index in c.rep.Findings.
func (c *checker) addIndex(f Finding) int {
	c.add(f)
	return len(c.rep.Findings) - 1
}

// checkIndex checks the manifests index.json lists and what they refer to,
// and drops the broken entries when repairing. It reports whether the
// index could be read.
func (c *checker) checkIndex(ctx context.Context) (bool, error) {
	idx, err := c.s.oci.readIndex()
	if err != nil {
		c.add(Finding{Kind: KindBadIndex, Object: "oci/index.json", Detail: err.Error() + "; restore it from a backup or start a new store"})
		return false, nil
	}
	type entry struct {
		d      v1.Descriptor
		images []string
	}
	var order []v1.Hash
	entries := map[v1.Hash]*entry{}
	for _, d := range idx.Manifests {
		e := entries[d.Digest]
		if e == nil {
			e = &entry{d: d}
			entries[d.Digest] = e
			order = append(order, d.Digest)
		}
		e.images = append(e.images, imageName(d))
	}
	drop := map[v1.Hash]bool{}
	var dropped []int // findings repaired by dropping index entries
	for _, h := range order {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		e := entries[h]
		if !validDigest(h) {
			dropped = append(dropped, c.addIndex(Finding{Kind: KindMissingManifest, Object: h.String(), Detail: "index entry has an invalid digest", Images: e.images}))
			drop[h] = true
			continue
		}
		m, err := c.s.oci.manifest(h)
		if err != nil {
			detail := "manifest is unreadable"
			if errors.Is(err, os.ErrNotExist) {
				detail = "manifest is missing"
			}
			dropped = append(dropped, c.addIndex(Finding{Kind: KindMissingManifest, Object: h.String(), Detail: detail, Images: e.images}))
			drop[h] = true
			continue
		}
		refs := append([]v1.Descriptor{{Digest: h}, m.Config}, m.Layers...)
		var missing []string
		for i, r := range refs {
			c.users[r.Digest] = appendNew(c.users[r.Digest], e.images...)
			if skipBlob(r) {
				continue
			}
			if !validDigest(r.Digest) {
				missing = append(missing, "invalid digest "+r.Digest.String())
				continue
			}
			if fi, err := os.Stat(c.s.oci.blobs.path(r.Digest)); err != nil || !fi.Mode().IsRegular() {
				what := "layer"
				if i == 1 {
					what = "config"
				}
				missing = append(missing, what+" "+r.Digest.String())
			}
		}
		if len(missing) > 0 {
			dropped = append(dropped, c.addIndex(Finding{Kind: KindMissingBlob, Object: h.String(),
				Detail: fmt.Sprintf("missing %s; the image must be pulled or built again", joinList(missing)), Images: e.images}))
			drop[h] = true
			continue
		}
		if cf, err := c.s.configFile(m.Config.Digest); err == nil {
			for _, d := range cf.RootFS.DiffIDs {
				c.rep.DiffIDs[d] = true
			}
		}
	}
	if !c.o.Repair || len(drop) == 0 {
		return true, nil
	}
	err = c.s.oci.update(ctx, func(idx *v1.IndexManifest) error {
		removeIf(idx, func(d v1.Descriptor) bool { return drop[d.Digest] })
		return nil
	})
	if err != nil {
		return true, fmt.Errorf("remove broken index entries: %w", err)
	}
	for _, i := range dropped {
		c.rep.Findings[i].Repaired = true
	}
	return true, nil
}

// checkBlobs hashes every blob. Without a readable index nothing is known
// to be unused, so nothing is removed.
func (c *checker) checkBlobs(ctx context.Context, indexOK bool) error {
	ents, err := os.ReadDir(c.s.oci.blobs.dir)
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(c.s.oci.blobs.dir, e.Name())
		rel := filepath.Join("oci", "blobs", "sha256", e.Name())
		h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		if !validDigest(h) || !e.Type().IsRegular() {
			f := c.add(Finding{Kind: KindStrayFile, Object: rel, Detail: "not a blob"})
			if c.o.Repair && indexOK {
				if err := os.RemoveAll(p); err != nil {
					return fmt.Errorf("remove stray file %s: %w", rel, err)
				}
				f.Repaired = true
			}
			continue
		}
		got, err := hashFile(ctx, p)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile by another process
		}
		if err != nil {
			return fmt.Errorf("verify blob %s: %w", h, err)
		}
		if got == h.Hex {
			continue
		}
		users := c.users[h]
		f := c.add(Finding{Kind: KindCorruptBlob, Object: h.String(), Detail: "content has digest sha256:" + got, Images: users})
		switch {
		case len(users) > 0:
			f.Detail += "; remove the images using it (mybuild rmi), run mybuild fsck --repair, then pull or build them again"
		case c.o.Cached != nil && c.o.Cached(h):
			f.Detail += "; only the step cache uses it"
		}
		if c.o.Repair && indexOK && len(users) == 0 {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove corrupt blob %s: %w", h, err)
			}
			f.Repaired = true
		}
	}
	return nil
}

// checkTemp finds the temp files and directories in <root>/tmp that no
// process holds a lock on.
func (c *checker) checkTemp() error {
	ents, err := os.ReadDir(c.s.oci.tmp)
	if err != nil {
		return fmt.Errorf("list temp files: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(c.s.oci.tmp, e.Name())
		info, err := e.Info()
		if err != nil {
			continue // gone
		}
		if !c.idle && time.Since(info.ModTime()) < staleAfter {
			continue // its writer may be about to lock it
		}
		fd, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(fd.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			fd.Close() // in use
			continue
		}
		rel := filepath.Join("tmp", e.Name())
		f := c.add(Finding{Kind: KindTempFile, Object: rel, Detail: fmt.Sprintf("left by a process that died (%s)", humanBytes(info.Size())), Leftover: true})
		if c.o.Repair {
			err = os.RemoveAll(p)
		}
		fd.Close()
		if err != nil {
			return fmt.Errorf("remove temp file %s: %w", rel, err)
		}
		f.Repaired = c.o.Repair
	}
	return nil
}

// hashFile returns the hex sha256 of the file at p, read as a stream.
func hashFile(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxio.NewReader(ctx, f)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func validDigest(h v1.Hash) bool {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return false
	}
	for _, c := range h.Hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// imageName is how a finding names the image of index entry d.
func imageName(d v1.Descriptor) string {
	if n := refName(d); n != "" {
		return n
	}
	return "<none>@" + d.Digest.String()
}

func appendNew(list []string, add ...string) []string {
	for _, a := range add {
		if !slices.Contains(list, a) {
			list = append(list, a)
		}
	}
	return list
}

func joinList(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	s := items[0]
	for _, it := range items[1 : len(items)-1] {
		s += ", " + it
	}
	return s + " and " + items[len(items)-1]
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
