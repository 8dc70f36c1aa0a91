package store

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/pgzip"

	"github.com/mybuild/mybuild/internal/ctxio"
)

// Compression settings. The block size fixes where pgzip splits the stream,
// so the same tar always gives the same gzip bytes whatever the number of
// CPUs; memory is bounded by about blockSize × blocks.
const (
	gzipLevel     = pgzip.DefaultCompression
	gzipBlockSize = 1 << 20
	gzipMaxBlocks = 8
)

// WriteLayer stores the uncompressed layer tar that write produces. In one
// streaming pass the tar is hashed (diffID) and gzip-compressed into a temp
// file while the compressed bytes are hashed and counted; the file is then
// fsynced and renamed into the blob store. The gzip header has no name and
// no time, so the same tar gives the same layer digest. The returned layer
// knows its digests, size and media type (OCI gzip layer) without reading
// the data again.
func (s *Store) WriteLayer(ctx context.Context, write func(io.Writer) error) (v1.Layer, error) {
	return s.writeLayer(ctx, write)
}

func (s *Store) writeLayer(ctx context.Context, write func(io.Writer) error) (*storeLayer, error) {
	f, err := createTemp(s.oci.tmp)
	if err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	diffID, digest := sha256.New(), sha256.New()
	var size countWriter
	zw, err := pgzip.NewWriterLevel(io.MultiWriter(f, digest, &size), gzipLevel)
	if err == nil {
		err = zw.SetConcurrency(gzipBlockSize, min(runtime.GOMAXPROCS(0), gzipMaxBlocks))
	}
	if err != nil {
		discard(f)
		return nil, fmt.Errorf("write layer: %w", err)
	}
	zw.ModTime = time.Unix(0, 0) // written as 0: "no time"
	zw.OS = 255                  // unknown
	err = write(ctxWriter{ctx, io.MultiWriter(diffID, zw)})
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		discard(f)
		return nil, fmt.Errorf("write layer: %w", err)
	}
	l := &storeLayer{
		digest:    sha256Hash(digest.Sum(nil)),
		diffID:    sha256Hash(diffID.Sum(nil)),
		size:      size.n,
		mediaType: types.OCILayer,
	}
	return s.commitLayer(f, l)
}

// importGzipLayer stores an already gzip-compressed layer as it is, hashing
// its decompressed form on the side for the diffID.
func (s *Store) importGzipLayer(ctx context.Context, r io.Reader) (*storeLayer, error) {
	f, err := createTemp(s.oci.tmp)
	if err != nil {
		return nil, fmt.Errorf("import layer: %w", err)
	}
	pr, pw := io.Pipe()
	diffIDc := make(chan []byte, 1)
	go func() {
		h := sha256.New()
		zr, err := gzip.NewReader(pr)
		if err == nil {
			_, err = io.Copy(h, zr)
		}
		if err != nil {
			pr.CloseWithError(fmt.Errorf("decompress: %w", err))
			diffIDc <- nil
			return
		}
		io.Copy(io.Discard, pr) // trailing bytes after the gzip stream
		diffIDc <- h.Sum(nil)
	}()
	digest := sha256.New()
	var size countWriter
	_, err = io.Copy(io.MultiWriter(f, digest, &size, pw), ctxio.NewReader(ctx, r))
	pw.CloseWithError(err)
	sum := <-diffIDc
	if err == nil && sum == nil {
		err = fmt.Errorf("decompress: not a gzip stream")
	}
	if err != nil {
		discard(f)
		return nil, fmt.Errorf("import layer: %w", err)
	}
	l := &storeLayer{
		digest:    sha256Hash(digest.Sum(nil)),
		diffID:    sha256Hash(sum),
		size:      size.n,
		mediaType: types.OCILayer,
	}
	return s.commitLayer(f, l)
}

// commitLayer renames the temp file f into place as layer l's blob.
func (s *Store) commitLayer(f *os.File, l *storeLayer) (*storeLayer, error) {
	l.path = s.oci.blobs.path(l.digest)
	if s.oci.blobs.has(l.digest, l.size) {
		discard(f)
		return l, nil
	}
	if err := s.oci.blobs.commit(f, l.digest); err != nil {
		return nil, fmt.Errorf("write layer %s: %w", l.digest, err)
	}
	if err := s.oci.blobs.sync(); err != nil {
		return nil, fmt.Errorf("write layer %s: %w", l.digest, err)
	}
	return l, nil
}

// importLayer stores a layer tar from an archive, compressed with gzip or not.
func (s *Store) importLayer(ctx context.Context, r io.Reader) (*storeLayer, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		return s.importGzipLayer(ctx, br)
	}
	return s.writeLayer(ctx, func(w io.Writer) error {
		_, err := io.Copy(w, br)
		return err
	})
}

func sha256Hash(sum []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum)}
}

// storeLayer is a gzip layer blob in the store whose digests are known.
type storeLayer struct {
	path           string
	digest, diffID v1.Hash
	size           int64
	mediaType      types.MediaType
}

var _ v1.Layer = (*storeLayer)(nil)

// Digest returns the sha256 of the compressed blob.
func (l *storeLayer) Digest() (v1.Hash, error) { return l.digest, nil }

// DiffID returns the sha256 of the uncompressed tar.
func (l *storeLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Size returns the size of the compressed blob.
func (l *storeLayer) Size() (int64, error) { return l.size, nil }

// MediaType returns the layer's media type.
func (l *storeLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

// Compressed opens the blob.
func (l *storeLayer) Compressed() (io.ReadCloser, error) { return os.Open(l.path) }

// Uncompressed opens the blob and decompresses it.
func (l *storeLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	zr, err := pgzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("decompress layer %s: %w", l.digest, err)
	}
	return &gunzipCloser{zr, f}, nil
}

type gunzipCloser struct {
	*pgzip.Reader
	f *os.File
}

func (g *gunzipCloser) Close() error {
	err := g.Reader.Close()
	if ferr := g.f.Close(); err == nil {
		err = ferr
	}
	return err
}
