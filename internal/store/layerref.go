package store

import (
	"context"
	"encoding/hex"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Layer returns the gzip layer blob digest of the store, whose diffID and
// size the caller knows (a step cache records them), without reading it. It
// returns ErrNotFound (wrapped) when the blob is not there with that size,
// e.g. collected since. The blob is then kept by this Store's GC.
func (s *Store) Layer(digest, diffID v1.Hash, size int64) (v1.Layer, error) {
	if _, err := hex.DecodeString(digest.Hex); err != nil || digest.Algorithm != "sha256" || len(digest.Hex) != 64 {
		return nil, fmt.Errorf("open layer %s: invalid digest", digest)
	}
	if !s.oci.blobs.has(digest, size) {
		return nil, fmt.Errorf("open layer %s: %w", digest, ErrNotFound)
	}
	return &storeLayer{
		path:      s.oci.blobs.path(digest),
		digest:    digest,
		diffID:    diffID,
		size:      size,
		mediaType: types.OCILayer,
	}, nil
}

// PutLayer stores the compressed blob of l unless the store has it,
// verifying its digest and size while copying.
func (s *Store) PutLayer(ctx context.Context, l v1.Layer) error {
	d, err := l.Digest()
	if err != nil {
		return fmt.Errorf("store layer: %w", err)
	}
	size, err := l.Size()
	if err != nil {
		return fmt.Errorf("store layer %s: %w", d, err)
	}
	if err := s.oci.blobs.write(ctx, d, size, l.Compressed); err != nil {
		return fmt.Errorf("store layer %s: %w", d, err)
	}
	return nil
}
