package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations naming a manifest in index.json.
const (
	refNameAnnotation        = "org.opencontainers.image.ref.name"
	containerdNameAnnotation = "io.containerd.image.name"
)

const ociLayoutFile = `{"imageLayoutVersion":"1.0.0"}`

// errNoChange tells layoutDir.update to leave index.json as it is.
var errNoChange = errors.New("no change")

// layoutDir is an OCI image layout that is changed atomically.
type layoutDir struct {
	dir   string  // the layout: oci-layout, index.json, blobs/
	tmp   string  // temp files, same filesystem as dir
	lock  string  // file or directory flocked around index.json updates
	blobs blobDir // dir/blobs/sha256
}

// init creates oci-layout and an empty index.json if they are missing.
func (l layoutDir) init() error {
	if err := createFileAtomic(l.tmp, filepath.Join(l.dir, "oci-layout"), []byte(ociLayoutFile)); err != nil {
		return err
	}
	empty, err := json.Marshal(newIndex())
	if err != nil {
		return err
	}
	return createFileAtomic(l.tmp, filepath.Join(l.dir, "index.json"), empty)
}

func newIndex() *v1.IndexManifest {
	return &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
}

// readIndex reads index.json; rename makes every version it sees complete.
func (l layoutDir) readIndex() (*v1.IndexManifest, error) {
	f, err := os.Open(filepath.Join(l.dir, "index.json"))
	if errors.Is(err, os.ErrNotExist) {
		return newIndex(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	defer f.Close()
	idx, err := v1.ParseIndexManifest(f)
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	if idx.Manifests == nil {
		idx.Manifests = []v1.Descriptor{}
	}
	return idx, nil
}

// update runs fn on index.json under the lock and writes the result back
// atomically, unless fn returns errNoChange.
func (l layoutDir) update(ctx context.Context, fn func(*v1.IndexManifest) error) error {
	lf, err := os.Open(l.lock)
	if err != nil {
		return fmt.Errorf("lock index: %w", err)
	}
	defer lf.Close() // releases the lock
	if err := flockCtx(ctx, lf); err != nil {
		return fmt.Errorf("lock index: %w", err)
	}
	idx, err := l.readIndex()
	if err != nil {
		return err
	}
	if err := fn(idx); err != nil {
		if errors.Is(err, errNoChange) {
			return nil
		}
		return err
	}
	if idx.MediaType == "" {
		idx.MediaType = types.OCIImageIndex
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	if err := writeFileAtomic(l.tmp, filepath.Join(l.dir, "index.json"), data); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

// manifest reads and parses the manifest blob h.
func (l layoutDir) manifest(h v1.Hash) (*v1.Manifest, error) {
	f, err := os.Open(l.blobs.path(h))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", h, err)
	}
	defer f.Close()
	m, err := v1.ParseManifest(f)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s: %w", h, err)
	}
	return m, nil
}

// NormalizeName validates an image name and returns its short, normalised
// form "repo:tag": "busybox" → "busybox:latest", "docker.io/library/x:1" →
// "x:1", "localhost:5000/a/b" → "localhost:5000/a/b:latest". Digest
// references are rejected: a name is always a tag.
func NormalizeName(s string) (string, error) {
	t, err := name.NewTag(s)
	if err != nil {
		return "", fmt.Errorf("parse name %q: %w", s, err)
	}
	repo := t.Context().Name()
	if t.RegistryStr() == name.DefaultRegistry {
		repo = strings.TrimPrefix(t.RepositoryStr(), "library/")
	}
	return repo + ":" + t.TagStr(), nil
}

// normalizeNames normalises and de-duplicates names.
func normalizeNames(names []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		nn, err := NormalizeName(n)
		if err != nil {
			return nil, err
		}
		if !seen[nn] {
			seen[nn] = true
			out = append(out, nn)
		}
	}
	return out, nil
}

// qualifiedName is the fully qualified form of a normalised name, as
// containerd and docker write it: "docker.io/library/busybox:latest".
func qualifiedName(n string) string {
	t, err := name.NewTag(n)
	if err != nil {
		return n
	}
	reg := t.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + t.RepositoryStr() + ":" + t.TagStr()
}

// refName returns the name a descriptor carries, or "".
func refName(d v1.Descriptor) string { return d.Annotations[refNameAnnotation] }

// named returns d for an index entry: without annotations, or with n.
func named(d v1.Descriptor, n string, qualified bool) v1.Descriptor {
	d.Annotations = nil
	if n != "" {
		d.Annotations = map[string]string{refNameAnnotation: n}
		if qualified {
			d.Annotations[containerdNameAnnotation] = qualifiedName(n)
		}
	}
	return d
}

// namesOf lists the names of manifest h.
func namesOf(idx *v1.IndexManifest, h v1.Hash) []string {
	var names []string
	for _, d := range idx.Manifests {
		if d.Digest == h && refName(d) != "" {
			names = append(names, refName(d))
		}
	}
	return names
}

// removeIf deletes the entries for which drop returns true.
func removeIf(idx *v1.IndexManifest, drop func(v1.Descriptor) bool) {
	out := idx.Manifests[:0]
	for _, d := range idx.Manifests {
		if !drop(d) {
			out = append(out, d)
		}
	}
	idx.Manifests = out
}

// present reports whether manifest h has an entry.
func present(idx *v1.IndexManifest, h v1.Hash) bool {
	for _, d := range idx.Manifests {
		if d.Digest == h {
			return true
		}
	}
	return false
}

// setName points name n at manifest d. The image that had the name keeps an
// unnamed entry when it has no other name, if keepDangling.
func setName(idx *v1.IndexManifest, n string, d v1.Descriptor, keepDangling, qualified bool) {
	var old *v1.Descriptor
	for i := range idx.Manifests {
		if refName(idx.Manifests[i]) == n {
			o := idx.Manifests[i]
			old = &o
		}
	}
	removeIf(idx, func(e v1.Descriptor) bool {
		return refName(e) == n || (e.Digest == d.Digest && refName(e) == "")
	})
	if old != nil && old.Digest != d.Digest && keepDangling && !present(idx, old.Digest) {
		idx.Manifests = append(idx.Manifests, named(*old, "", false))
	}
	idx.Manifests = append(idx.Manifests, named(d, n, qualified))
}

// ensureEntry gives manifest d an unnamed entry unless it has an entry.
func ensureEntry(idx *v1.IndexManifest, d v1.Descriptor) {
	if !present(idx, d.Digest) {
		idx.Manifests = append(idx.Manifests, named(d, "", false))
	}
}

// match is how resolve found an image.
type match struct {
	desc   v1.Descriptor // index entry, annotations stripped
	byName string        // the normalised name when found by name
}

// resolve finds the image ref means: a name, a full digest ("sha256:…",
// also "repo@sha256:…"), or a hex prefix of at least four digits of a
// manifest digest or an image ID (config digest).
func (l layoutDir) resolve(idx *v1.IndexManifest, ref string) (match, error) {
	display := ref
	if n, err := NormalizeName(ref); err == nil {
		for _, d := range idx.Manifests {
			if refName(d) == n {
				return match{desc: named(d, "", false), byName: n}, nil
			}
		}
		if !strings.HasPrefix(ref, "sha256:") {
			display = n
		}
	}
	notFound := fmt.Errorf("%w: %q", ErrNotFound, display)
	hexPart := ref
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		hexPart = ref[i+1:]
	}
	hexPart = strings.TrimPrefix(hexPart, "sha256:")
	if len(hexPart) < 4 || len(hexPart) > 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		return match{}, notFound
	}
	var found []v1.Descriptor
	add := func(d v1.Descriptor) {
		for _, f := range found {
			if f.Digest == d.Digest {
				return
			}
		}
		found = append(found, named(d, "", false))
	}
	for _, d := range idx.Manifests {
		if strings.HasPrefix(d.Digest.Hex, hexPart) {
			add(d)
			continue
		}
		m, err := l.manifest(d.Digest)
		if err != nil {
			continue // a broken entry is not what the user means
		}
		if strings.HasPrefix(m.Config.Digest.Hex, hexPart) {
			add(d)
		}
	}
	switch len(found) {
	case 0:
		return match{}, notFound
	case 1:
		return match{desc: found[0]}, nil
	}
	return match{}, fmt.Errorf("resolve image %q: ambiguous: matches %d images", ref, len(found))
}
