package executor

import (
	"fmt"
	"io"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"
)

// image assembles the OCI image of s.
func (b *build) image(s *state, labels map[string]string) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	layers := make([]v1.Layer, len(s.layers))
	diffIDs := make([]v1.Hash, len(s.layers))
	for i, l := range s.layers {
		layers[i] = ociLayer{l}
		d, err := l.DiffID()
		if err != nil {
			return nil, err
		}
		diffIDs[i] = d
	}
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, fmt.Errorf("append layers: %w", err)
	}
	cf := s.config.DeepCopy()
	if cf.OS == "" {
		cf.OS = "linux"
	}
	if cf.Architecture == "" {
		cf.Architecture = runtime.GOARCH
	}
	cf.Created = v1.Time{Time: b.now()}
	if n := len(s.history); n > 0 && b.cfg.SourceDateEpoch == nil {
		cf.Created = s.history[n-1].Created // as BuildKit: a cached rebuild is the same image
	}
	cf.RootFS = v1.RootFS{Type: "layers", DiffIDs: diffIDs}
	cf.History = s.history
	if len(labels) > 0 {
		if cf.Config.Labels == nil {
			cf.Config.Labels = map[string]string{}
		}
		for k, v := range labels {
			cf.Config.Labels[k] = v
		}
	}
	return mutate.ConfigFile(img, cf)
}

// uncompressed opens a layer's tar, gunzipping gzip layers with pgzip,
// which decompresses ahead of the reader on another core, so unpacking
// a large base layer does not wait on the inflater.
func uncompressed(l v1.Layer) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		mt, err := l.MediaType()
		if err != nil || (mt != types.OCILayer && mt != types.DockerLayer) {
			return l.Uncompressed()
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		zr, err := pgzip.NewReader(rc)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("read gzip layer: %w", err)
		}
		return gunzipReader{zr, rc}, nil
	}
}

// gunzipReader closes both the inflater and the blob under it.
type gunzipReader struct {
	*pgzip.Reader
	blob io.Closer
}

// Close implements io.Closer.
func (r gunzipReader) Close() error {
	err := r.Reader.Close()
	if cerr := r.blob.Close(); err == nil {
		err = cerr
	}
	return err
}

// knownDiffID is a layer whose diffID comes from its image's config.
type knownDiffID struct {
	v1.Layer
	diffID v1.Hash
}

// DiffID implements v1.Layer.
func (l knownDiffID) DiffID() (v1.Hash, error) { return l.diffID, nil }

// ociLayer presents a Docker-media-typed layer (from a base image) with the
// equivalent OCI media type: the bytes, and so the digests, are the same.
type ociLayer struct{ v1.Layer }

// MediaType implements v1.Layer.
func (l ociLayer) MediaType() (types.MediaType, error) {
	mt, err := l.Layer.MediaType()
	if err != nil {
		return "", err
	}
	switch mt {
	case types.DockerLayer:
		return types.OCILayer, nil
	case types.DockerUncompressedLayer:
		return types.OCIUncompressedLayer, nil
	}
	if strings.HasPrefix(string(mt), "application/vnd.docker.image.rootfs.foreign") {
		return types.OCIRestrictedLayer, nil
	}
	return mt, nil
}
