package registry

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push uploads img to ref and returns its manifest digest. Blobs the
// registry already has are not uploaded again (remote.Write checks each
// with HEAD, and mounts blobs that came from another repository of the same
// registry); the others go up o.Jobs at a time, reported to o.OnTransfer.
func Push(ctx context.Context, img v1.Image, ref string, o Options) (v1.Hash, error) {
	r, err := ParseReference(ref, o)
	if err != nil {
		return v1.Hash{}, err
	}
	reg := r.Context().RegistryStr()
	opts := append(o.remoteOptions(r.Context().Registry), remote.WithContext(ctx))
	if err := remote.Write(r, watchImage(img, o.OnTransfer, true), opts...); err != nil {
		return v1.Hash{}, classify("push", ref, reg, err)
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, classify("push", ref, reg, err)
	}
	return d, nil
}
