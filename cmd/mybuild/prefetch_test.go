package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/mybuild/mybuild/internal/store"
	"github.com/mybuild/mybuild/snapshot"
)

// TestLayerPrefetch: storing a pulled image through layerPrefetch leaves
// its layers extracted, each checked against its diffID; a layer whose
// content does not match its diffID is not extracted, and the pull still
// succeeds (the build would extract the layer itself, and fail there).
func TestLayerPrefetch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("extracting layers with their owners needs root")
	}
	ctx := context.Background()
	var snapDir string
	newStores := func(t *testing.T) (*store.Store, *snapshot.Store) {
		dir := t.TempDir()
		snapDir = filepath.Join(dir, "snapshots")
		st, err := store.Open(filepath.Join(dir, "store"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		snaps, err := snapshot.New(filepath.Join(dir, "snapshots"), snapshot.Options{Driver: "naive"})
		if err != nil {
			t.Fatal(err)
		}
		return st, snaps
	}
	var layers []v1.Layer
	for range 3 {
		l, err := random.Layer(200_000, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("extracted while stored", func(t *testing.T) {
		st, snaps := newStores(t)
		pf := newLayerPrefetch(ctx, snaps, slog.New(slog.DiscardHandler))
		if _, err := st.Put(ctx, pf.wrap(img), []string{"x:1"}); err != nil {
			t.Fatal(err)
		}
		pf.wait()
		for i, l := range layers {
			d, _ := l.DiffID()
			if _, ok := snaps.Lookup(d); !ok {
				t.Errorf("layer %d (%s) not extracted during the pull", i, d)
			}
		}
	})

	t.Run("wrong diffID", func(t *testing.T) {
		st, snaps := newStores(t)
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		bad := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
		cf.RootFS.DiffIDs[1] = bad
		lying, err := mutate.ConfigFile(img, cf)
		if err != nil {
			t.Fatal(err)
		}
		pf := newLayerPrefetch(ctx, snaps, slog.New(slog.DiscardHandler))
		if _, err := st.Put(ctx, pf.wrap(lying), []string{"x:1"}); err != nil {
			t.Fatalf("the pull failed with its extraction: %v", err)
		}
		pf.wait()
		if _, ok := snaps.Lookup(bad); ok {
			t.Error("a layer was stored under a diffID its content does not have")
		}
		d0, _ := layers[0].DiffID()
		if _, ok := snaps.Lookup(d0); !ok {
			t.Error("the other layers were not extracted")
		}
		if left, err := os.ReadDir(filepath.Join(snapDir, "tmp")); err != nil {
			t.Error(err)
		} else if len(left) != 0 {
			t.Errorf("the failed extraction left %d temporary entries", len(left))
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		st, snaps := newStores(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		pf := newLayerPrefetch(cctx, snaps, slog.New(slog.DiscardHandler))
		if _, err := st.Put(ctx, pf.wrap(img), nil); err != nil {
			t.Fatalf("the pull failed with its cancelled extraction: %v", err)
		}
		pf.wait()
		for _, l := range layers {
			d, _ := l.DiffID()
			if _, ok := snaps.Lookup(d); ok {
				t.Errorf("layer %s extracted after cancellation", d)
			}
		}
	})
}

// TestChunkPipe: data and the writer's end reach the reader in order; a
// reader that has gone makes writes fail instead of block.
func TestChunkPipe(t *testing.T) {
	c := newChunkPipe(2)
	go func() {
		for _, s := range []string{"ab", "cde", "f"} {
			if _, err := c.Write([]byte(s)); err != nil {
				t.Error(err)
			}
		}
		c.CloseWrite(nil)
	}()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "abcdef" {
		t.Errorf("read %q, %v; want abcdef, nil", b, err)
	}

	c = newChunkPipe(1)
	boom := errors.New("boom")
	go func() {
		c.Write([]byte("x"))
		c.CloseWrite(boom)
	}()
	if b, err := io.ReadAll(c); !errors.Is(err, boom) || string(b) != "x" {
		t.Errorf("read %q, %v; want x, boom", b, err)
	}

	c = newChunkPipe(1)
	c.CloseRead()
	failed := 0
	for range 3 { // more writes than the queue holds: none may block
		if _, err := c.Write([]byte("y")); err != nil {
			failed++
		}
	}
	if failed < 2 { // one write at most can land in the queue
		t.Errorf("%d of 3 writes after the reader went failed, want at least 2", failed)
	}
}
