// Package ctxio makes long reads stop when their context is cancelled.
package ctxio

import (
	"context"
	"io"
)

// NewReader returns a reader of r that fails with ctx's error, between
// reads, once ctx is done: a copy of a large file or stream then stops
// within one read of a cancellation.
func NewReader(ctx context.Context, r io.Reader) io.Reader {
	return reader{ctx, r}
}

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
