package registry

import (
	"errors"
	"io"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Transfer reports how the transfer of one layer blob goes.
type Transfer struct {
	Digest   v1.Hash // the blob
	Size     int64   // its size in bytes, as the manifest says (-1: unknown)
	Complete int64   // bytes transferred so far
	Done     bool    // the blob was transferred to its end (and verified, for a pull)
	Err      error   // the transfer failed; Complete is how far it got
}

// watchImage returns img with layers whose compressed reads report to fn.
// For a push (forPush), layers of a remote image are left as they are, so
// the push can still mount them from their repository instead of uploading.
func watchImage(img v1.Image, fn func(Transfer), forPush bool) v1.Image {
	if fn == nil {
		return img
	}
	return &watchedImage{Image: img, fn: fn, forPush: forPush}
}

type watchedImage struct {
	v1.Image
	fn      func(Transfer)
	forPush bool
}

// Layers returns the image's layers, watched.
func (w *watchedImage) Layers() ([]v1.Layer, error) {
	ls, err := w.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = w.watch(l)
	}
	return out, nil
}

// LayerByDigest returns the layer with digest h, watched.
func (w *watchedImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := w.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return w.watch(l), nil
}

func (w *watchedImage) watch(l v1.Layer) v1.Layer {
	if _, ok := l.(*remote.MountableLayer); ok && w.forPush {
		return l
	}
	return &watchedLayer{Layer: l, fn: w.fn}
}

type watchedLayer struct {
	v1.Layer
	fn func(Transfer)
}

// Compressed returns the layer blob through a reader that reports its
// progress.
func (l *watchedLayer) Compressed() (io.ReadCloser, error) {
	d, err := l.Digest()
	if err != nil {
		return nil, err
	}
	size, err := l.Size()
	if err != nil {
		size = -1
	}
	rc, err := l.Layer.Compressed()
	if err != nil {
		l.fn(Transfer{Digest: d, Size: size, Err: err})
		return nil, err
	}
	l.fn(Transfer{Digest: d, Size: size})
	return &countingReader{rc: rc, t: Transfer{Digest: d, Size: size}, fn: l.fn}, nil
}

// countingReader counts the bytes read through it and reports them.
type countingReader struct {
	rc       io.ReadCloser
	t        Transfer
	fn       func(Transfer)
	n        atomic.Int64
	finished atomic.Bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	t := c.t
	t.Complete = c.n.Add(int64(n))
	switch {
	case errors.Is(err, io.EOF):
		if c.finished.CompareAndSwap(false, true) {
			t.Done = true
			c.fn(t)
		}
		return n, err
	case err != nil:
		if c.finished.CompareAndSwap(false, true) {
			t.Err = err
			c.fn(t)
		}
		return n, err
	}
	if n > 0 {
		c.fn(t)
	}
	return n, nil
}

// Close closes the blob; a blob closed before its end counts as done when
// all of it was read (an uploader may stop at the size it knows).
func (c *countingReader) Close() error {
	err := c.rc.Close()
	if c.finished.CompareAndSwap(false, true) {
		t := c.t
		t.Complete = c.n.Load()
		switch {
		case t.Size >= 0 && t.Complete == t.Size:
			t.Done = true
		default:
			t.Err = errors.New("transfer interrupted")
		}
		c.fn(t)
	}
	return err
}
