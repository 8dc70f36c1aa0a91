package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

func TestHashingReader(t *testing.T) {
	data := make([]byte, 3*hashChunkSize*hashChunks+12345)
	for i := range data {
		data[i] = byte(rand.N(256))
	}
	small := data[:100000] // one chunk per byte: the buffers go round fast enough
	sources := map[string]struct {
		r    io.Reader
		data []byte
	}{
		"whole":      {bytes.NewReader(data), data},
		"one byte":   {iotest.OneByteReader(bytes.NewReader(small)), small},
		"half":       {iotest.HalfReader(bytes.NewReader(data)), data},
		"data + EOF": {iotest.DataErrReader(bytes.NewReader(data)), data},
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			hr := newHashingReader(src.r, sha256.New())
			if err := iotest.TestReader(hr, src.data); err != nil {
				t.Fatal(err)
			}
			want := sha256.Sum256(src.data)
			if got := hr.Sum(); !bytes.Equal(got, want[:]) {
				t.Errorf("hash %x, want %x", got, want)
			}
		})
	}
}

func TestHashingReaderErrors(t *testing.T) {
	boom := errors.New("boom")
	src := io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom))
	hr := newHashingReader(src, sha256.New())
	b, err := io.ReadAll(hr)
	if string(b) != "abc" || !errors.Is(err, boom) {
		t.Fatalf("got %q, %v; want abc and boom", b, err)
	}
	if _, err := hr.Read(make([]byte, 1)); !errors.Is(err, boom) {
		t.Errorf("read after the error: %v", err)
	}
	hr.Close()

	// Closed half-way: the hasher stops, and reading on fails.
	hr = newHashingReader(bytes.NewReader(make([]byte, 4*hashChunkSize)), sha256.New())
	if _, err := hr.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	hr.Close()
	hr.Close()
	if _, err := io.ReadAll(hr); err == nil {
		t.Error("read after close succeeded")
	}
}

// TestExtractReadError: a layer whose stream fails (or whose context is
// cancelled) half-way is not stored, and nothing is left in tmp/.
func TestExtractReadError(t *testing.T) {
	s := newStore(t)
	var ents []ent
	for i := range 50 {
		ents = append(ents, ent{Name: "d/f" + strings.Repeat("x", i), Body: strings.Repeat("y", 100<<10)})
	}
	b := buildTar(t, ents...)
	boom := errors.New("boom")
	cut := func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(b[:len(b)/2]), iotest.ErrReader(boom))), nil
	}
	if _, err := s.Extract(context.Background(), diffIDOf(b), cut); !errors.Is(err, boom) {
		t.Errorf("failing stream: got %v, want boom", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancelling := func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(bytes.NewReader(b[:len(b)/2]), readerFunc(func([]byte) (int, error) {
			cancel()
			return 0, io.EOF
		}), bytes.NewReader(b[len(b)/2:]))), nil
	}
	if _, err := s.Extract(ctx, diffIDOf(b), cancelling); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v, want context.Canceled", err)
	}
	if _, ok := s.Lookup(diffIDOf(b)); ok {
		t.Error("incomplete layer stored")
	}
	left, err := os.ReadDir(s.path("tmp"))
	must(t, err)
	if len(left) != 0 {
		t.Errorf("temporary directories left: %v", left)
	}
	extract(t, s, b) // and the whole stream still works
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
