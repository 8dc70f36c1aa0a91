package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/pgzip"
)

// BenchmarkExtract extracts a gzip layer into a fresh store per iteration,
// the way a cold build extracts its base image (pgzip, diffID check,
// overlay whiteouts). Timings of file creation depend on the filesystem:
// MYBUILD_BENCH_DIR names a directory to extract under (a fresh journaled
// ext4 gives steady numbers; the default is the test's temp directory).
// The "generated" layer is made here; "layer" extracts the gzip blob that
// MYBUILD_BENCH_LAYER names, such as a base image's layer from a store's
// oci/blobs/sha256/.
func BenchmarkExtract(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (owners of the extracted files)")
	}
	b.Run("generated", func(b *testing.B) {
		blob, diffID, size := generatedLayer(b)
		benchExtract(b, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil }, diffID, size)
	})
	b.Run("layer", func(b *testing.B) {
		p := os.Getenv("MYBUILD_BENCH_LAYER")
		if p == "" {
			b.Skip("MYBUILD_BENCH_LAYER not set")
		}
		diffID, size := gzipDiffID(b, p)
		benchExtract(b, func() (io.ReadCloser, error) { return os.Open(p) }, diffID, size)
	})
}

// benchExtract extracts the gzip blob that open opens, gunzipping it as
// executor's uncompressed does.
func benchExtract(b *testing.B, open func() (io.ReadCloser, error), diffID v1.Hash, size int64) {
	base := os.Getenv("MYBUILD_BENCH_DIR")
	if base == "" {
		base = b.TempDir()
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		root := filepath.Join(base, fmt.Sprintf("bench-store-%d", i))
		s, err := New(root, Options{Driver: DriverNaive})
		if err != nil {
			b.Fatal(err)
		}
		blob, err := open()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		_, err = s.Extract(context.Background(), diffID, func() (io.ReadCloser, error) {
			return pgzip.NewReader(blob)
		})
		b.StopTimer()
		blob.Close()
		if err != nil {
			b.Fatal(err)
		}
		// Remove and flush outside the timing, so that one iteration's
		// writeback does not slow the next.
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		if err := syncDir(base); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// generatedLayer returns a gzip layer shaped like a distribution's base
// image, its diffID and its uncompressed size: 16,000 entries in 800
// directories (small files, most under 16 KiB, and some symlinks and hard
// links) and four files of 24 MiB, 200 MB in all. The content is text-like,
// so that it compresses about as well as binaries and docs do.
func generatedLayer(b *testing.B) ([]byte, v1.Hash, int64) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := make([][]byte, 4096)
	for i := range words {
		w := make([]byte, 2+rng.IntN(10))
		for j := range w {
			w[j] = byte('a' + rng.IntN(26))
		}
		words[i] = append(w, ' ')
	}
	content := func(n int) []byte {
		out := make([]byte, 0, n+16)
		for len(out) < n {
			out = append(out, words[rng.IntN(len(words))]...)
		}
		return out[:n]
	}
	var gz bytes.Buffer
	zw := pgzip.NewWriter(&gz)
	h := sha256.New()
	size := &countWriter{}
	tw := tar.NewWriter(io.MultiWriter(zw, h, size))
	mtime := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	write := func(hdr *tar.Header, body []byte) {
		hdr.ModTime, hdr.Format = mtime, tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			b.Fatal(err)
		}
	}
	write(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	for d := range 800 {
		dir := fmt.Sprintf("usr/share/pkg%03d/sub%d/", d/4, d%4)
		if d%4 == 0 {
			write(&tar.Header{Name: dir[:len(dir)-len("sub0/")], Typeflag: tar.TypeDir, Mode: 0o755}, nil)
		}
		write(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}, nil)
		for f := range 20 {
			name := fmt.Sprintf("%sfile%02d", dir, f)
			switch {
			case f == 18:
				write(&tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: "file00"}, nil)
			case f == 19 && d%8 == 0:
				write(&tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: dir + "file01"}, nil)
			default:
				n := int(rng.ExpFloat64() * 6000)
				mode := int64(0o644)
				if f%5 == 0 {
					mode = 0o755
				}
				write(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(n)}, content(n))
			}
		}
	}
	write(&tar.Header{Name: "usr/lib/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	for i := range 4 {
		body := content(24 << 20)
		write(&tar.Header{Name: fmt.Sprintf("usr/lib/big%d.so", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}, body)
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	return gz.Bytes(), v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, size.n
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// gzipDiffID returns the diffID and uncompressed size of the gzip blob at p.
func gzipDiffID(b *testing.B, p string) (v1.Hash, int64) {
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	zr, err := pgzip.NewReader(f)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, zr)
	if err != nil {
		b.Fatal(err)
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, n
}
