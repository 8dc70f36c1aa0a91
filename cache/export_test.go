package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// memLayers is an in-memory image store for layers.
type memLayers map[v1.Hash]v1.Layer

func (m memLayers) Layer(digest, _ v1.Hash, _ int64) (v1.Layer, error) {
	if l, ok := m[digest]; ok {
		return l, nil
	}
	return nil, errors.New("no such layer")
}

func (m memLayers) PutLayer(_ context.Context, l v1.Layer) error {
	d, err := l.Digest()
	if err != nil {
		return err
	}
	m[d] = l
	return nil
}

func TestArtifactRoundTrip(t *testing.T) {
	ctx := context.Background()
	src, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	layers := memLayers{}
	var keys []Key
	for i := range 3 {
		l, err := random.Layer(64, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		layers.PutLayer(ctx, l)
		d, _ := l.Digest()
		diffID, _ := l.DiffID()
		size, _ := l.Size()
		k := NewKey([]Input{{"i", fmt.Sprint(i)}})
		if _, err := src.Put(k, Record{Layer: &Layer{Digest: d, DiffID: diffID, Size: size}, Created: time.Unix(int64(i), 0).UTC()}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	meta := NewKey([]Input{{"meta", ""}})
	src.Put(meta, Record{Created: time.Unix(9, 0).UTC()})
	keys = append(keys, meta, NewKey([]Input{{"unknown", ""}}))

	img, err := src.Artifact(keys, layers)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img, validate.Fast); err != nil {
		t.Fatalf("artifact is not a valid image: %v", err)
	}
	dst, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sink := memLayers{}
	n, err := dst.Import(ctx, img, sink)
	if err != nil || n != 4 {
		t.Fatalf("Import = %d, %v; want 4 records", n, err)
	}
	for _, k := range keys[:4] {
		want, _ := src.Get(k)
		got, err := dst.Get(k)
		if err != nil || !got.Created.Equal(want.Created) || !sameLayer(got.Layer, want.Layer) {
			t.Errorf("imported %s = %+v, %v; want %+v", k, got, err, want)
		}
	}
	// A second import has nothing new to do.
	if n, err := dst.Import(ctx, img, sink); err != nil || n != 0 {
		t.Errorf("second Import = %d, %v; want 0", n, err)
	}

	// A record lying about its layer's diffID is refused.
	bad, _ := Open(t.TempDir())
	l := layers[mustDigest(t, keys[0], src)]
	d, _ := l.Digest()
	size, _ := l.Size()
	k := NewKey([]Input{{"bad", ""}})
	bad.Put(k, Record{Layer: &Layer{Digest: d, DiffID: d, Size: size}})
	img, err = bad.Artifact([]Key{k}, layers)
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := Open(t.TempDir())
	if _, err := fresh.Import(ctx, img, memLayers{}); err == nil || !strings.Contains(err.Error(), "diffID") {
		t.Errorf("Import of a lying record: %v, want a diffID error", err)
	}
}

func mustDigest(t *testing.T, k Key, s *Store) v1.Hash {
	t.Helper()
	r, err := s.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	return r.Layer.Digest
}

func TestImportRejectsImages(t *testing.T) {
	s, _ := Open(t.TempDir())
	img, err := random.Image(10, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(context.Background(), img, memLayers{}); !errors.Is(err, ErrNotCache) {
		t.Errorf("Import of an image: %v, want ErrNotCache", err)
	}
}
