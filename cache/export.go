package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/mybuild/mybuild/internal/ctxio"
)

// ConfigMediaType is the media type of the config of a cache artifact: the
// JSON of the exported records, by key.
const ConfigMediaType types.MediaType = "application/vnd.mybuild.cache.config.v1+json"

// ErrNotCache is returned (wrapped) by Import for an image that is not a
// cache artifact.
var ErrNotCache = errors.New("not a mybuild cache artifact")

// artifactConfig is the config blob of a cache artifact.
type artifactConfig struct {
	Records map[Key]Record `json:"records"`
}

// LayerSource opens stored layers (the image store does).
type LayerSource interface {
	Layer(digest, diffID v1.Hash, size int64) (v1.Layer, error)
}

// LayerSink stores layers and opens them again (the image store does).
type LayerSink interface {
	LayerSource
	PutLayer(ctx context.Context, l v1.Layer) error
}

// Artifact returns the results of keys as an OCI artifact: an image
// manifest whose config (ConfigMediaType) lists the records and whose
// layers are their layers, from layers. Keys without a stored result, or
// whose layer is gone, are left out.
func (s *Store) Artifact(keys []Key, layers LayerSource) (v1.Image, error) {
	a := &artifact{cfg: artifactConfig{Records: map[Key]Record{}}, layers: map[v1.Hash]v1.Layer{}}
	var descs []v1.Descriptor
	for _, k := range keys {
		r, err := s.Get(k)
		if err != nil {
			continue
		}
		if l := r.Layer; l != nil {
			if _, ok := a.layers[l.Digest]; !ok {
				layer, err := layers.Layer(l.Digest, l.DiffID, l.Size)
				if err != nil {
					continue
				}
				a.layers[l.Digest] = layer
				descs = append(descs, v1.Descriptor{MediaType: types.OCILayer, Digest: l.Digest, Size: l.Size})
			}
		}
		a.cfg.Records[k] = r
	}
	sort.Slice(descs, func(i, j int) bool { return descs[i].Digest.String() < descs[j].Digest.String() })
	var err error
	if a.rawCfg, err = json.Marshal(a.cfg); err != nil {
		return nil, fmt.Errorf("export cache: %w", err)
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: ConfigMediaType, Digest: hashOf(a.rawCfg), Size: int64(len(a.rawCfg))},
		Layers:        descs,
	}
	if m.Layers == nil {
		m.Layers = []v1.Descriptor{}
	}
	if a.rawManifest, err = json.Marshal(m); err != nil {
		return nil, fmt.Errorf("export cache: %w", err)
	}
	return partial.CompressedToImage(a)
}

func hashOf(b []byte) v1.Hash {
	h, _ := v1.NewHash(Digest(b))
	return h
}

// artifact is the partial.CompressedImageCore of a cache artifact.
type artifact struct {
	cfg         artifactConfig
	rawCfg      []byte
	rawManifest []byte
	layers      map[v1.Hash]v1.Layer
}

func (a *artifact) RawConfigFile() ([]byte, error)      { return a.rawCfg, nil }
func (a *artifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *artifact) RawManifest() ([]byte, error)        { return a.rawManifest, nil }

func (a *artifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == hashOf(a.rawCfg) {
		return partial.ConfigLayer(a)
	}
	if l, ok := a.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("export cache: no blob %s", h)
}

// Import stores the results of a cache artifact (see Artifact): its
// layers go to sink, its records into s. Results s has already are left
// as they are; the layer of a new one is checked against the diffID its
// record claims before the record is stored. It returns how many records
// it imported.
func (s *Store) Import(ctx context.Context, img v1.Image, sink LayerSink) (int, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, fmt.Errorf("import cache: %w", err)
	}
	if m.Config.MediaType != ConfigMediaType {
		return 0, fmt.Errorf("import cache: %w (config type %q)", ErrNotCache, m.Config.MediaType)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return 0, fmt.Errorf("import cache: %w", err)
	}
	var cfg artifactConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return 0, fmt.Errorf("import cache: %w: %w", ErrNotCache, err)
	}
	keys := make([]Key, 0, len(cfg.Records))
	for k := range cfg.Records {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	stored := map[v1.Hash]bool{}
	n := 0
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		r := cfg.Records[k]
		if !k.valid() {
			continue
		}
		if old, err := s.Get(k); err == nil && sameLayer(old.Layer, r.Layer) {
			if l := old.Layer; l == nil {
				continue
			} else if _, err := sink.Layer(l.Digest, l.DiffID, l.Size); err == nil {
				continue
			}
		}
		if l := r.Layer; l != nil && !stored[l.Digest] {
			layer, err := img.LayerByDigest(l.Digest)
			if err != nil {
				return n, fmt.Errorf("import cache: layer %s: %w", l.Digest, err)
			}
			if err := sink.PutLayer(ctx, layer); err != nil {
				return n, fmt.Errorf("import cache: %w", err)
			}
			if err := checkDiffID(ctx, sink, l); err != nil {
				return n, fmt.Errorf("import cache: %w", err)
			}
			stored[l.Digest] = true
		}
		if _, err := s.Put(k, r); err != nil {
			return n, fmt.Errorf("import cache: %w", err)
		}
		n++
	}
	return n, nil
}

// checkDiffID reads the stored layer l and compares the digest of its
// uncompressed content with the diffID the record claims.
func checkDiffID(ctx context.Context, src LayerSource, l *Layer) error {
	layer, err := src.Layer(l.Digest, l.DiffID, l.Size)
	if err != nil {
		return err
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		return fmt.Errorf("read layer %s: %w", l.Digest, err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxio.NewReader(ctx, rc)); err != nil {
		return fmt.Errorf("read layer %s: %w", l.Digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != l.DiffID.String() {
		return fmt.Errorf("layer %s: diffID %s, record says %s", l.Digest, got, l.DiffID)
	}
	return nil
}
