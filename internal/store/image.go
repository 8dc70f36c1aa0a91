package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// blobJobs bounds how many blobs of one image are copied at once.
const blobJobs = 4

// Entry is one line of List: a name of a stored image, or an untagged image.
type Entry struct {
	Name    string    // normalised "repo:tag"; "" for an untagged image
	Digest  v1.Hash   // manifest digest
	ID      v1.Hash   // config digest, the image ID
	Created time.Time // from the config
	Size    int64     // bytes of manifest, config and (compressed) layers
}

// Put stores img under names (normalised; see NormalizeName) and returns
// its manifest digest. Blobs already present are not copied again; every
// blob is verified against its digest. Each name moves to img from the
// image that had it; an image left without names stays listed as untagged.
// With no names, img is stored untagged unless it already has an entry.
func (s *Store) Put(ctx context.Context, img v1.Image, names []string) (v1.Hash, error) {
	norm, err := normalizeNames(names)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("put image: %w", err)
	}
	d, err := writeImage(ctx, s.oci.blobs, img)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("put image: %w", err)
	}
	err = s.oci.update(ctx, func(idx *v1.IndexManifest) error {
		applyNames(idx, d, norm, true, false)
		return nil
	})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("put image %s: %w", d.Digest, err)
	}
	return d.Digest, nil
}

// applyNames gives manifest d the names, or an unnamed entry if none.
func applyNames(idx *v1.IndexManifest, d v1.Descriptor, names []string, keepDangling, qualified bool) {
	if len(names) == 0 {
		ensureEntry(idx, d)
	}
	for _, n := range names {
		setName(idx, n, d, keepDangling, qualified)
	}
}

// ociManifest returns img's manifest as an OCI manifest: as it is when it
// is one, converted when it is a Docker schema 2 manifest.
func ociManifest(img v1.Image) ([]byte, *v1.Manifest, error) {
	mt, err := img.MediaType()
	if err != nil {
		return nil, nil, fmt.Errorf("read media type: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest: %w", err)
	}
	switch mt {
	case types.OCIManifestSchema1:
		return raw, m, nil
	case types.DockerManifestSchema2:
	default:
		return nil, nil, fmt.Errorf("read manifest: unsupported media type %q", mt)
	}
	m.MediaType = types.OCIManifestSchema1
	m.Config.MediaType = types.OCIConfigJSON
	for i := range m.Layers {
		m.Layers[i].MediaType = ociLayerType(m.Layers[i].MediaType)
	}
	raw, err = json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("convert manifest: %w", err)
	}
	return raw, m, nil
}

func ociLayerType(mt types.MediaType) types.MediaType {
	switch mt {
	case types.DockerLayer:
		return types.OCILayer
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer
	case types.DockerForeignLayer:
		return types.OCIRestrictedLayer
	}
	return mt
}

// skipBlob reports whether a layer is not copied: a non-distributable
// layer that names where to download it.
func skipBlob(d v1.Descriptor) bool {
	return !d.MediaType.IsDistributable() && len(d.URLs) > 0
}

// writeImage writes img's config and layers (in parallel), then its OCI
// manifest into b, and returns the manifest's descriptor.
func writeImage(ctx context.Context, b blobDir, img v1.Image) (v1.Descriptor, error) {
	blobs, d, err := imageBlobs(img)
	if err != nil {
		return v1.Descriptor{}, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(blobJobs)
	for _, br := range blobs[:len(blobs)-1] {
		g.Go(func() error { return b.write(gctx, br.desc.Digest, br.desc.Size, br.open) })
	}
	if err := g.Wait(); err != nil {
		return v1.Descriptor{}, err
	}
	if err := b.sync(); err != nil {
		return v1.Descriptor{}, fmt.Errorf("write blobs: %w", err)
	}
	last := blobs[len(blobs)-1]
	if err := b.write(ctx, last.desc.Digest, last.desc.Size, last.open); err != nil {
		return v1.Descriptor{}, err
	}
	return d, b.sync()
}

// Image returns the image ref names: a name ("busybox" means
// "busybox:latest"), a manifest digest "sha256:…", an image ID (config
// digest), or an unambiguous hex prefix of at least four digits of either.
// It also returns the manifest digest. Errors wrap ErrNotFound when nothing
// matches.
func (s *Store) Image(ref string) (v1.Image, v1.Hash, error) {
	idx, err := s.oci.readIndex()
	if err != nil {
		return nil, v1.Hash{}, err
	}
	m, err := s.oci.resolve(idx, ref)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	img, err := layoutImage(s.oci.dir, m.desc.Digest)
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("read image %q: %w", ref, err)
	}
	return img, m.desc.Digest, nil
}

// List returns one entry per name, and one per untagged image, newest
// first (then by name).
func (s *Store) List() ([]Entry, error) {
	idx, err := s.oci.readIndex()
	if err != nil {
		return nil, err
	}
	type info struct {
		id      v1.Hash
		created time.Time
		size    int64
	}
	infos := map[v1.Hash]info{}
	var out []Entry
	for _, d := range idx.Manifests {
		in, ok := infos[d.Digest]
		if !ok {
			m, err := s.oci.manifest(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("list images: %w", err)
			}
			in = info{id: m.Config.Digest, size: d.Size + m.Config.Size}
			for _, l := range m.Layers {
				in.size += l.Size
			}
			cf, err := s.configFile(m.Config.Digest)
			if err != nil {
				return nil, fmt.Errorf("list images: %w", err)
			}
			in.created = cf.Created.Time
			infos[d.Digest] = in
		}
		out = append(out, Entry{Name: refName(d), Digest: d.Digest, ID: in.id, Created: in.created, Size: in.size})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// layoutImage reads manifest h of the layout in dir.
func layoutImage(dir string, h v1.Hash) (v1.Image, error) {
	return layout.Path(dir).Image(h)
}

func (s *Store) configFile(h v1.Hash) (*v1.ConfigFile, error) {
	b, err := layout.Path(s.oci.dir).Bytes(h)
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", h, err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", h, err)
	}
	return cf, nil
}

// Tag gives the image src names (see Image) the name dst, moving dst from
// the image that had it.
func (s *Store) Tag(ctx context.Context, src, dst string) error {
	n, err := NormalizeName(dst)
	if err != nil {
		return fmt.Errorf("tag image: %w", err)
	}
	return s.oci.update(ctx, func(idx *v1.IndexManifest) error {
		m, err := s.oci.resolve(idx, src)
		if err != nil {
			return err
		}
		setName(idx, n, m.desc, true, false)
		return nil
	})
}

// Removed says what Remove did.
type Removed struct {
	Untagged []string // names removed
	Deleted  v1.Hash  // manifest digest of the image removed; zero if it keeps a name
}

// Remove removes ref (see Image). A name is untagged, and the image is
// removed with its last name. A digest or ID removes the image when it has
// at most one name, like docker; an image with several names must be
// untagged by name first. Blobs are left to GC.
func (s *Store) Remove(ctx context.Context, ref string) (Removed, error) {
	var r Removed
	err := s.oci.update(ctx, func(idx *v1.IndexManifest) error {
		m, err := s.oci.resolve(idx, ref)
		if err != nil {
			return err
		}
		h := m.desc.Digest
		if m.byName != "" {
			r.Untagged = []string{m.byName}
			removeIf(idx, func(d v1.Descriptor) bool { return refName(d) == m.byName })
			if len(namesOf(idx, h)) > 0 {
				return nil
			}
		} else {
			r.Untagged = namesOf(idx, h)
			if len(r.Untagged) > 1 {
				return fmt.Errorf("remove image %q: it has %d names (%s); remove them by name", ref, len(r.Untagged), strings.Join(r.Untagged, ", "))
			}
		}
		removeIf(idx, func(d v1.Descriptor) bool { return d.Digest == h })
		r.Deleted = h
		return nil
	})
	if err != nil {
		return Removed{}, err
	}
	return r, nil
}
