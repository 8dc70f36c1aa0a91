package registry

import (
	"context"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func backoffFor(d time.Duration, steps int) remote.Backoff {
	return remote.Backoff{Duration: d, Factor: 2, Steps: steps}
}

func writeIndex(ctx context.Context, r name.Reference, idx v1.ImageIndex) error {
	return remote.WriteIndex(r, idx, remote.WithContext(ctx))
}
