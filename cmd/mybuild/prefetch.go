package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"

	"github.com/mybuild/mybuild/snapshot"
)

// layerPrefetch unpacks the layers of a base image while the pull
// downloads them, instead of after: the blob stream the store writes is
// also fed to [snapshot.Store.Extract], so a cold build pays the larger of
// download and extraction rather than their sum. Each layer is extracted in
// its own directory, so layers go in any order. It is only an early start:
// an extraction that fails or falls behind is dropped without failing the
// pull (the step that needs the layer extracts it from the stored blob,
// and Extract checks every extraction against the config's diffID).
type layerPrefetch struct {
	ctx   context.Context
	snaps *snapshot.Store
	log   *slog.Logger
	wg    sync.WaitGroup
}

func newLayerPrefetch(ctx context.Context, snaps *snapshot.Store, log *slog.Logger) *layerPrefetch {
	return &layerPrefetch{ctx: ctx, snaps: snaps, log: log}
}

// wait returns once every extraction started has ended.
func (p *layerPrefetch) wait() {
	if p != nil {
		p.wg.Wait()
	}
}

// wrap returns img with layers whose blob reads also feed an extraction.
// A nil p, or an image whose config cannot be read, is returned as is.
func (p *layerPrefetch) wrap(img v1.Image) v1.Image {
	if p == nil {
		return img
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return img
	}
	m, err := img.Manifest()
	if err != nil || len(m.Layers) != len(cf.RootFS.DiffIDs) {
		return img
	}
	diffIDs := make(map[v1.Hash]v1.Hash, len(m.Layers))
	for i, l := range m.Layers {
		diffIDs[l.Digest] = cf.RootFS.DiffIDs[i]
	}
	return &prefetchImage{Image: img, p: p, diffIDs: diffIDs, started: map[v1.Hash]bool{}}
}

type prefetchImage struct {
	v1.Image
	p       *layerPrefetch
	diffIDs map[v1.Hash]v1.Hash // layer digest → diffID

	mu      sync.Mutex
	started map[v1.Hash]bool // layers whose blob stream has fed an extraction
}

// Layers returns the image's layers, prefetched.
func (pi *prefetchImage) Layers() ([]v1.Layer, error) {
	ls, err := pi.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = &prefetchLayer{Layer: l, img: pi}
	}
	return out, nil
}

// LayerByDigest returns the layer with digest h, prefetched.
func (pi *prefetchImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	l, err := pi.Image.LayerByDigest(h)
	if err != nil {
		return nil, err
	}
	return &prefetchLayer{Layer: l, img: pi}, nil
}

type prefetchLayer struct {
	v1.Layer
	img *prefetchImage
}

// Compressed returns the blob; the first time, for a gzip or uncompressed
// layer not extracted yet, through a reader that also feeds an extraction.
func (l *prefetchLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	d, err := l.Digest()
	if err != nil {
		return rc, nil
	}
	diffID, ok := l.img.diffIDs[d]
	if !ok {
		return rc, nil
	}
	mt, err := l.MediaType()
	if err != nil {
		return rc, nil
	}
	gzipped := mt == types.OCILayer || mt == types.DockerLayer
	if !gzipped && mt != types.OCIUncompressedLayer && mt != types.DockerUncompressedLayer {
		return rc, nil
	}
	pi := l.img
	pi.mu.Lock()
	first := !pi.started[d]
	pi.started[d] = true
	pi.mu.Unlock()
	if !first {
		return rc, nil // a retry of the download: the extraction saw the first
	}
	if _, done := pi.p.snaps.Lookup(diffID); done {
		return rc, nil
	}
	cp := newChunkPipe(64)
	pi.p.start(diffID, gzipped, cp)
	return &teeBlob{rc: rc, pw: cp}, nil
}

// start extracts the layer diffID from the blob stream pr in the
// background. pr is always closed when it ends, so the download never
// waits on an extraction that is gone.
func (p *layerPrefetch) start(diffID v1.Hash, gzipped bool, pr *chunkPipe) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_, err := p.snaps.Extract(p.ctx, diffID, func() (io.ReadCloser, error) {
			if !gzipped {
				return pr, nil
			}
			zr, err := pgzip.NewReader(pr)
			if err != nil {
				return nil, err
			}
			return zr, nil
		})
		pr.CloseRead()
		if err != nil {
			p.log.Debug("layer not extracted during the pull; the build extracts it", "diffID", diffID, "err", err)
		}
	}()
}

var errPrefetchEnded = errors.New("extraction during the pull ended")

// chunkPipe is a pipe with a bounded queue of copied chunks between its
// writer (the download) and its reader (the extraction), so that neither
// waits on the other for each 32 KiB as it does with io.Pipe; a full queue
// makes the writer wait.
type chunkPipe struct {
	ch      chan []byte
	done    chan struct{} // closed by CloseRead
	once    sync.Once
	werr    error // set before ch is closed
	cur     []byte
	readErr error
}

func newChunkPipe(n int) *chunkPipe {
	return &chunkPipe{ch: make(chan []byte, n), done: make(chan struct{})}
}

// Write queues a copy of b; it fails once the reader has gone.
func (c *chunkPipe) Write(b []byte) (int, error) {
	select {
	case c.ch <- append([]byte(nil), b...):
		return len(b), nil
	case <-c.done:
		return 0, errPrefetchEnded
	}
}

// CloseWrite ends the stream: the reader gets err, or io.EOF for nil.
func (c *chunkPipe) CloseWrite(err error) {
	if err == nil {
		err = io.EOF
	}
	c.werr = err
	close(c.ch)
}

// CloseRead tells the writer the reader has gone.
func (c *chunkPipe) CloseRead() { c.once.Do(func() { close(c.done) }) }

// Read returns queued data, then the writer's end.
func (c *chunkPipe) Read(b []byte) (int, error) {
	for len(c.cur) == 0 {
		if c.readErr != nil {
			return 0, c.readErr
		}
		chunk, ok := <-c.ch
		if !ok {
			c.readErr = c.werr
			return 0, c.readErr
		}
		c.cur = chunk
	}
	n := copy(b, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}

// Close implements io.Closer for the reader side.
func (c *chunkPipe) Close() error {
	c.CloseRead()
	return nil
}

// teeBlob reads a blob and writes what it reads to pw, until pw refuses
// (the extraction ended) after which it only reads. The end of the blob,
// or closing it, ends pw's stream; a read error aborts it. A stream cut
// short by an early close cannot pass for the layer: Extract hashes all
// it unpacks against the diffID.
type teeBlob struct {
	rc     io.ReadCloser
	pw     *chunkPipe
	broken bool
	ended  bool
}

func (t *teeBlob) Read(b []byte) (int, error) {
	n, err := t.rc.Read(b)
	if n > 0 && !t.broken {
		if _, werr := t.pw.Write(b[:n]); werr != nil {
			t.broken = true
		}
	}
	if err != nil && !t.ended {
		t.ended = true
		if errors.Is(err, io.EOF) {
			t.pw.CloseWrite(nil)
		} else {
			t.pw.CloseWrite(err)
		}
	}
	return n, err
}

func (t *teeBlob) Close() error {
	if !t.ended {
		t.ended = true
		t.pw.CloseWrite(nil)
	}
	return t.rc.Close()
}
