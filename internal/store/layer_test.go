package store

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// tarOf writes a tar with one file of n pseudo-random (seeded) bytes.
func tarOf(seed uint64, n int) func(io.Writer) error {
	return func(w io.Writer) error {
		tw := tar.NewWriter(w)
		if err := tw.WriteHeader(&tar.Header{Name: "data", Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		r := rand.New(rand.NewPCG(seed, seed))
		buf := make([]byte, 64<<10)
		for left := n; left > 0; {
			k := min(left, len(buf))
			for i := range k {
				buf[i] = byte(r.Uint32() % 16) // compressible, not trivially
			}
			if _, err := tw.Write(buf[:k]); err != nil {
				return err
			}
			left -= k
		}
		return tw.Close()
	}
}

func TestWriteLayer(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty file", 0},
		{"small", 1000},
		{"several gzip blocks", 5 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tarBuf bytes.Buffer
			if err := tarOf(7, tc.size)(&tarBuf); err != nil {
				t.Fatal(err)
			}
			l, err := s.WriteLayer(ctx, tarOf(7, tc.size))
			if err != nil {
				t.Fatal(err)
			}
			if mt, _ := l.MediaType(); mt != types.OCILayer {
				t.Errorf("media type %s", mt)
			}
			sum := sha256.Sum256(tarBuf.Bytes())
			if d, _ := l.DiffID(); d != sha256Hash(sum[:]) {
				t.Errorf("diffID %s, want %s", d, sha256Hash(sum[:]))
			}
			rc, _ := l.Compressed()
			blob, _ := io.ReadAll(rc)
			rc.Close()
			bsum := sha256.Sum256(blob)
			if d, _ := l.Digest(); d != sha256Hash(bsum[:]) {
				t.Errorf("digest %s, want %s", d, sha256Hash(bsum[:]))
			}
			if n, _ := l.Size(); n != int64(len(blob)) {
				t.Errorf("size %d, blob %d", n, len(blob))
			}
			// Fixed header: no mtime, no name, OS unknown.
			if !bytes.Equal(blob[3:10], []byte{0, 0, 0, 0, 0, 0, 255}) {
				t.Errorf("gzip header % x", blob[:10])
			}
			rc, _ = l.Uncompressed()
			un, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(un, tarBuf.Bytes()) {
				t.Errorf("Uncompressed differs from the tar (err %v)", err)
			}
			// Deterministic: the same tar again, even written in other
			// chunk sizes, gives the same blob.
			l2, err := s.WriteLayer(ctx, func(w io.Writer) error {
				b := tarBuf.Bytes()
				for len(b) > 0 {
					k := min(len(b), 777)
					if _, err := w.Write(b[:k]); err != nil {
						return err
					}
					b = b[k:]
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			d1, _ := l.Digest()
			d2, _ := l2.Digest()
			if d1 != d2 {
				t.Errorf("same tar, digests %s and %s", d1, d2)
			}
			img, err := mutate.AppendLayers(empty.Image, l)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate.Image(img); err != nil {
				t.Errorf("validate: %v", err)
			}
		})
	}
}

func TestWriteLayerErrors(t *testing.T) {
	s := newStore(t)
	boom := errors.New("boom")
	if _, err := s.WriteLayer(context.Background(), func(w io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("WriteLayer error = %v, want boom", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.WriteLayer(ctx, tarOf(1, 1<<20)); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteLayer with cancelled ctx = %v", err)
	}
	left, _ := os.ReadDir(s.oci.tmp)
	if len(left) != 0 {
		t.Errorf("%d temp files left", len(left))
	}
}

// TestWriteLayerMemory checks that memory does not grow with layer size.
func TestWriteLayerMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 128 MiB")
	}
	s := newStore(t)
	const size = 128 << 20
	done := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var m runtime.MemStats
		var high uint64
		for {
			runtime.ReadMemStats(&m)
			high = max(high, m.HeapInuse)
			select {
			case <-done:
				peak <- high
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := s.WriteLayer(context.Background(), tarOf(3, size))
	close(done)
	p := <-peak
	if err != nil {
		t.Fatal(err)
	}
	grew := int64(p) - int64(before.HeapInuse)
	t.Logf("heap grew by %d MiB writing a %d MiB layer", grew>>20, size>>20)
	if grew > 48<<20 {
		t.Errorf("heap grew by %d MiB writing a %d MiB layer", grew>>20, size>>20)
	}
}

// TestWriteLayoutLinksStoreBlobs checks that the store's WriteLayout
// hard-links the blobs it holds instead of copying them.
func TestWriteLayoutLinksStoreBlobs(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, img, []string{"x:1"}); err != nil {
		t.Fatal(err)
	}
	stored, _, err := s.Image("x:1")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "layout")
	if err := s.WriteLayout(ctx, out, stored, []string{"x:1"}); err != nil {
		t.Fatal(err)
	}
	ls, err := stored.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		d, _ := l.Digest()
		a, err := os.Stat(filepath.Join(s.Root(), "oci", "blobs", "sha256", d.Hex))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.Stat(filepath.Join(out, "blobs", "sha256", d.Hex))
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(a, b) {
			t.Errorf("layer %s was copied, not linked", d)
		}
	}
	if err := validate.Image(layoutImageMust(t, out)); err != nil {
		t.Errorf("validate.Image of the linked layout: %v", err)
	}
}

func layoutImageMust(t *testing.T, dir string) v1.Image {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("index: %v, %v", m, err)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
