package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// The test binary doubles as a second process putting images into a store.
const helperEnv = "STORE_TEST_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		// spec is ROOT,PREFIX,COUNT, or ROOT,hang to block in WriteLayer.
		parts := strings.Split(spec, ",")
		var err error
		if parts[1] == "hang" {
			err = hang(parts[0])
		} else {
			n, _ := strconv.Atoi(parts[2])
			err = putMany(parts[0], parts[1], n)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func putMany(root, prefix string, n int) error {
	s, err := Open(root)
	if err != nil {
		return err
	}
	defer s.Close()
	for i := range n {
		img, err := random.Image(256, 2)
		if err != nil {
			return err
		}
		if _, err := s.Put(context.Background(), img, []string{fmt.Sprintf("%s-%d", prefix, i)}); err != nil {
			return err
		}
	}
	return nil
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ociImage is a random image with OCI media types, a platform and history.
func ociImage(t *testing.T, layers int) v1.Image {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	var adds []mutate.Addendum
	for i := range layers {
		l, err := random.Layer(2048, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: fmt.Sprintf("RUN step %d", i)}})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: time.Now().Truncate(time.Second)}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustID(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	h, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestNormalizeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"busybox", "busybox:latest"},
		{"busybox:1.36", "busybox:1.36"},
		{"docker.io/library/busybox", "busybox:latest"},
		{"index.docker.io/foo/bar:v1", "foo/bar:v1"},
		{"localhost:5000/a/b", "localhost:5000/a/b:latest"},
		{"localhost:5000/a/b:v2", "localhost:5000/a/b:v2"},
		{"ghcr.io/x/y", "ghcr.io/x/y:latest"},
		{"Upper", ""},
		{"a@sha256:0123", ""},
		{"", ""},
	} {
		got, err := NormalizeName(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("NormalizeName(%q) = %q, want an error", tc.in, got)
			} else if !strings.Contains(err.Error(), strconv.Quote(tc.in)) {
				t.Errorf("NormalizeName(%q) error %q does not quote the name", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestPut(t *testing.T) {
	dockerImg, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		img        v1.Image
		names      []string
		keepDigest bool
	}{
		{"oci", ociImage(t, 3), []string{"busybox"}, true},
		{"docker media types", dockerImg, []string{"localhost:5000/a/b", "x:1"}, false},
		{"no layers", ociImage(t, 0), []string{"empty"}, true},
		{"untagged", ociImage(t, 1), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			ctx := context.Background()
			h, err := s.Put(ctx, tc.img, tc.names)
			if err != nil {
				t.Fatal(err)
			}
			if tc.keepDigest && h != mustDigest(t, tc.img) {
				t.Errorf("Put digest %s, image digest %s", h, mustDigest(t, tc.img))
			}
			ref := h.String()
			if len(tc.names) > 0 {
				ref = tc.names[0]
			}
			got, gh, err := s.Image(ref)
			if err != nil {
				t.Fatal(err)
			}
			if gh != h || mustDigest(t, got) != h {
				t.Errorf("Image(%q) digest %s / %s, want %s", ref, gh, mustDigest(t, got), h)
			}
			if err := validate.Image(got); err != nil {
				t.Errorf("validate stored image: %v", err)
			}
			if mt, _ := got.MediaType(); mt != types.OCIManifestSchema1 {
				t.Errorf("stored media type %s", mt)
			}
			if mustID(t, got) != mustID(t, tc.img) {
				t.Errorf("image ID changed: %s → %s", mustID(t, tc.img), mustID(t, got))
			}
			// A second Put is a no-op.
			h2, err := s.Put(ctx, tc.img, tc.names)
			if err != nil || h2 != h {
				t.Errorf("second Put = %s, %v", h2, err)
			}
			ents, err := s.List()
			if err != nil {
				t.Fatal(err)
			}
			want := max(len(tc.names), 1)
			if len(ents) != want {
				t.Errorf("List has %d entries, want %d: %+v", len(ents), want, ents)
			}
		})
	}
}

func TestNameMovesAndDangling(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, b := ociImage(t, 1), ociImage(t, 1)
	ha, err := s.Put(ctx, a, []string{"app", "app:v1"})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := s.Put(ctx, b, []string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	c := ociImage(t, 1)
	hc, err := s.Put(ctx, c, []string{"app:v1"})
	if err != nil {
		t.Fatal(err)
	}
	// a lost both names: it stays, untagged.
	want := map[string]v1.Hash{"app:latest": hb, "app:v1": hc, "": ha}
	got := map[string]v1.Hash{}
	for _, e := range entries(t, s) {
		got[e.Name] = e.Digest
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("entries (-want +got):\n%s", d)
	}
	// Giving the dangling image a name removes its unnamed entry.
	if err := s.Tag(ctx, ha.Hex[:8], "again"); err != nil {
		t.Fatal(err)
	}
	got = map[string]v1.Hash{}
	for _, e := range entries(t, s) {
		got[e.Name] = e.Digest
	}
	want = map[string]v1.Hash{"app:latest": hb, "app:v1": hc, "again:latest": ha}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("after tag (-want +got):\n%s", d)
	}
}

func entries(t *testing.T, s *Store) []Entry {
	t.Helper()
	ents, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	return ents
}

func TestImageLookup(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	img := ociImage(t, 2)
	h, err := s.Put(ctx, img, []string{"busybox", "localhost:5000/a/b:v1"})
	if err != nil {
		t.Fatal(err)
	}
	id := mustID(t, img)
	for _, tc := range []struct {
		ref     string
		want    v1.Hash
		missing bool
	}{
		{ref: "busybox", want: h},
		{ref: "busybox:latest", want: h},
		{ref: "docker.io/library/busybox:latest", want: h},
		{ref: "localhost:5000/a/b:v1", want: h},
		{ref: h.String(), want: h},
		{ref: h.Hex, want: h},
		{ref: h.Hex[:4], want: h},
		{ref: "sha256:" + h.Hex[:12], want: h},
		{ref: "busybox@" + h.String(), want: h},
		{ref: id.String(), want: h},
		{ref: id.Hex[:12], want: h},
		{ref: "nope", missing: true},
		{ref: "localhost:5000/a/b", missing: true},
		{ref: h.Hex[:3], missing: true},
		{ref: "sha256:" + strings.Repeat("0", 64), missing: true},
	} {
		_, got, err := s.Image(tc.ref)
		if tc.missing {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("Image(%q) error = %v, want ErrNotFound", tc.ref, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Image(%q) = %s, %v; want %s", tc.ref, got, err, tc.want)
		}
	}
	_, _, err = s.Image("foo")
	if err == nil || err.Error() != `no such image: "foo:latest"` {
		t.Errorf("Image(foo) error = %v", err)
	}
}

func TestAmbiguousPrefix(t *testing.T) {
	s := newStore(t)
	hash := func(hex string) v1.Hash {
		return v1.Hash{Algorithm: "sha256", Hex: hex + strings.Repeat("0", 64-len(hex))}
	}
	idx := newIndex()
	idx.Manifests = []v1.Descriptor{
		named(v1.Descriptor{Digest: hash("aaaa1")}, "x:1", false),
		named(v1.Descriptor{Digest: hash("aaaa1")}, "x:2", false),
		named(v1.Descriptor{Digest: hash("aaaa2")}, "", false),
	}
	for _, tc := range []struct {
		ref, want string // want "" means an error
	}{
		{"aaaa", ""},
		{"aaaa1", hash("aaaa1").Hex},
		{"sha256:aaaa2", hash("aaaa2").Hex},
	} {
		m, err := s.oci.resolve(idx, tc.ref)
		switch {
		case tc.want == "" && (err == nil || errors.Is(err, ErrNotFound)):
			t.Errorf("resolve(%q) = %v, %v; want an ambiguity error", tc.ref, m.desc.Digest, err)
		case tc.want != "" && (err != nil || m.desc.Digest.Hex != tc.want):
			t.Errorf("resolve(%q) = %v, %v; want %s", tc.ref, m.desc.Digest, err, tc.want)
		}
	}
}

func TestTagRemove(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	img := ociImage(t, 1)
	h, err := s.Put(ctx, img, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, "a", "b:2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, "missing", "c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Tag(missing) = %v", err)
	}
	if err := s.Tag(ctx, "a", "Bad"); err == nil || !strings.Contains(err.Error(), `"Bad"`) {
		t.Errorf("Tag(a, Bad) = %v", err)
	}
	// By ID with two names: refused.
	if _, err := s.Remove(ctx, mustID(t, img).Hex[:12]); err == nil {
		t.Error("Remove by ID of an image with two names succeeded")
	}
	r, err := s.Remove(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(Removed{Untagged: []string{"a:latest"}}, r); d != "" {
		t.Errorf("Remove(a) (-want +got):\n%s", d)
	}
	if _, _, err := s.Image("a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Image(a) after Remove = %v", err)
	}
	r, err = s.Remove(ctx, h.Hex[:6])
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(Removed{Untagged: []string{"b:2"}, Deleted: h}, r); d != "" {
		t.Errorf("Remove(prefix) (-want +got):\n%s", d)
	}
	if n := len(entries(t, s)); n != 0 {
		t.Errorf("%d entries left", n)
	}
	if _, err := s.Remove(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove again = %v", err)
	}
	// An untagged image is removed by ID.
	h2, err := s.Put(ctx, ociImage(t, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.Remove(ctx, h2.String()); err != nil || r.Deleted != h2 {
		t.Errorf("Remove(untagged) = %+v, %v", r, err)
	}
}
