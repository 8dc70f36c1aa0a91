package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func diffIDs(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.RootFS.DiffIDs
}

// storeImage is an image made the way builds make them: layers from
// WriteLayer on an OCI base.
func storeImage(t *testing.T, s *Store, layers int) v1.Image {
	t.Helper()
	img := ociImage(t, 0)
	for i := range layers {
		l, err := s.WriteLayer(context.Background(), tarOf(uint64(i)+100, 3000))
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: fmt.Sprint("RUN ", i)}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, format := range []Format{FormatOCIArchive, FormatDockerArchive} {
		for _, kind := range []string{"random", "built"} {
			t.Run(format.String()+"/"+kind, func(t *testing.T) {
				ctx := context.Background()
				src := newStore(t)
				img := ociImage(t, 2)
				if kind == "built" {
					img = storeImage(t, src, 2)
				}
				h, err := src.Put(ctx, img, []string{"busybox", "localhost:5000/a/b:v1"})
				if err != nil {
					t.Fatal(err)
				}
				untagged := ociImage(t, 1)
				uh, err := src.Put(ctx, untagged, nil)
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				if err := src.Save(ctx, []string{"busybox", "localhost:5000/a/b:v1", uh.Hex[:8]}, format, &buf); err != nil {
					t.Fatal(err)
				}
				dst := newStore(t)
				names, err := dst.Load(ctx, bytes.NewReader(buf.Bytes()))
				if err != nil {
					t.Fatal(err)
				}
				want := []string{"busybox:latest", "localhost:5000/a/b:v1", mustID(t, untagged).String()}
				if d := cmp.Diff(want, names, sortStrings); d != "" {
					t.Errorf("loaded names (-want +got):\n%s", d)
				}
				got, gh, err := dst.Image("localhost:5000/a/b:v1")
				if err != nil {
					t.Fatal(err)
				}
				if err := validate.Image(got); err != nil {
					t.Errorf("validate loaded image: %v", err)
				}
				if mustID(t, got) != mustID(t, img) {
					t.Errorf("image ID %s, want %s", mustID(t, got), mustID(t, img))
				}
				if d := cmp.Diff(diffIDs(t, img), diffIDs(t, got)); d != "" {
					t.Errorf("diffIDs (-want +got):\n%s", d)
				}
				// OCI archives keep the manifest; docker archives keep the
				// gzip blobs, so the rebuilt manifest is the same too.
				if gh != h {
					t.Errorf("manifest digest %s, want %s", gh, h)
				}
				if _, _, err := dst.Image(mustID(t, untagged).String()); err != nil {
					t.Errorf("untagged image not loaded: %v", err)
				}
			})
		}
	}
}

var sortStrings = cmp.Transformer("sort", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

func TestLoadDockerArchiveFromTarball(t *testing.T) {
	// go-containerregistry's writer, docker media types.
	img, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("docker.io/library/app:1")
	var buf bytes.Buffer
	if err := tarball.Write(tag, img, &buf); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer // docker load takes gzipped archives too
	zw := gzip.NewWriter(&gz)
	zw.Write(buf.Bytes())
	zw.Close()
	s := newStore(t)
	names, err := s.Load(context.Background(), &gz)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"app:1"}, names); d != "" {
		t.Errorf("names (-want +got):\n%s", d)
	}
	got, _, err := s.Image("app:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Error(err)
	}
	if mustID(t, got) != mustID(t, img) {
		t.Errorf("image ID changed")
	}
}

// TestLoadClassicDockerArchive loads the layout old `docker save` wrote:
// uncompressed <id>/layer.tar files, a symlink for a repeated layer.
func TestLoadClassicDockerArchive(t *testing.T) {
	var l1, l2 bytes.Buffer
	tarOf(1, 500)(&l1)
	tarOf(2, 700)(&l2)
	d1, d2 := sha256Of(l1.Bytes()), sha256Of(l2.Bytes())
	cf := &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{d1, d2, d1}}}
	cfg, _ := json.Marshal(cf)
	id := sha256Of(cfg)
	manifest, _ := json.Marshal(tarball.Manifest{{
		Config:   id.Hex + ".json",
		RepoTags: []string{"old:v1"},
		Layers:   []string{"l1/layer.tar", "l2/layer.tar", "l3/layer.tar"},
	}})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(n string, b []byte) {
		tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Size: int64(len(b)), Mode: 0o644})
		tw.Write(b)
	}
	tw.WriteHeader(&tar.Header{Name: "l1/", Typeflag: tar.TypeDir, Mode: 0o755})
	add("l1/layer.tar", l1.Bytes())
	add("l2/layer.tar", l2.Bytes())
	tw.WriteHeader(&tar.Header{Name: "l3/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../l1/layer.tar"})
	add(id.Hex+".json", cfg)
	add("manifest.json", manifest)
	tw.Close()

	s := newStore(t)
	names, err := s.Load(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"old:v1"}, names); d != "" {
		t.Errorf("names (-want +got):\n%s", d)
	}
	img, _, err := s.Image("old:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Error(err)
	}
	if mustID(t, img) != id {
		t.Errorf("ID %s, want %s", mustID(t, img), id)
	}
}

func sha256Of(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h
}

func TestLoadRejects(t *testing.T) {
	tarWith := func(names ...string) *bytes.Buffer {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, n := range names {
			tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
			tw.Write([]byte("x"))
		}
		tw.Close()
		return &buf
	}
	for _, tc := range []struct {
		name string
		r    io.Reader
		want string
	}{
		{"not a tar", strings.NewReader(strings.Repeat("garbage", 200)), "read tar"},
		{"escape", tarWith("../evil"), "unsafe entry"},
		{"absolute", tarWith("/etc/evil"), "unsafe entry"},
		{"bad blob", tarWith("blobs/sha256/" + strings.Repeat("a", 64)), "mismatch"},
		{"empty", tarWith("hello"), "neither index.json nor manifest.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			_, err := s.Load(context.Background(), tc.r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load error = %v, want %q", err, tc.want)
			}
			left, _ := os.ReadDir(s.oci.tmp)
			if len(left) != 0 {
				t.Errorf("%d temp entries left", len(left))
			}
		})
	}
}

func TestWriteLayoutAndLoadLayout(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "out")
	a, b := ociImage(t, 2), ociImage(t, 1)
	dockerImg, _ := random.Image(512, 1)
	if err := WriteLayout(ctx, dir, a, []string{"app", "app:v1"}); err != nil {
		t.Fatal(err)
	}
	// Concurrent writers into the same layout keep all names.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if err := WriteLayout(ctx, dir, ociImage(t, 1), []string{fmt.Sprintf("c%d", i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := WriteLayout(ctx, dir, b, []string{"app"}); err != nil { // moves app
		t.Fatal(err)
	}
	if err := WriteLayout(ctx, dir, dockerImg, []string{"docker"}); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(ii); err != nil {
		t.Errorf("validate layout: %v", err)
	}
	s := newStore(t)
	names, err := s.LoadLayout(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"app:latest", "app:v1", "c0:latest", "c1:latest", "c2:latest", "c3:latest", "docker:latest"}
	if d := cmp.Diff(want, names, sortStrings); d != "" {
		t.Errorf("names (-want +got):\n%s", d)
	}
	for ref, img := range map[string]v1.Image{"app": b, "app:v1": a} {
		_, h, err := s.Image(ref)
		if err != nil || h != mustDigest(t, img) {
			t.Errorf("Image(%q) = %s, %v; want %s", ref, h, err, mustDigest(t, img))
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	if len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// TestLoadLayoutIndex loads a layout like BuildKit writes one: a named
// image index holding the image and an attestation manifest.
func TestLoadLayoutIndex(t *testing.T) {
	ctx := context.Background()
	img := ociImage(t, 1)
	other := ociImage(t, 1)
	att := ociImage(t, 0)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}},
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
		mutate.IndexAddendum{Add: att, Descriptor: v1.Descriptor{
			Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"},
		}},
	)
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		containerdNameAnnotation: "docker.io/library/multi:latest",
		refNameAnnotation:        "latest",
	})); err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	names, err := s.LoadLayout(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"multi:latest"}, names); d != "" {
		t.Errorf("names (-want +got):\n%s", d)
	}
	if _, h, err := s.Image("multi"); err != nil || h != mustDigest(t, img) {
		t.Errorf("Image(multi) = %s, %v; want %s", h, err, mustDigest(t, img))
	}
}

func TestWriteArchive(t *testing.T) {
	ctx := context.Background()
	img := ociImage(t, 2)
	for _, f := range []Format{FormatOCIArchive, FormatDockerArchive} {
		var buf bytes.Buffer
		if err := WriteArchive(ctx, &buf, img, []string{"out:1"}, f); err != nil {
			t.Fatal(err)
		}
		s := newStore(t)
		names, err := s.Load(ctx, &buf)
		if err != nil || len(names) != 1 || names[0] != "out:1" {
			t.Errorf("%s: Load = %v, %v", f, names, err)
		}
	}
	if err := WriteArchive(ctx, io.Discard, img, []string{"Bad"}, FormatOCIArchive); err == nil {
		t.Error("WriteArchive with a bad name succeeded")
	}
	if err := WriteArchive(ctx, io.Discard, img, nil, FormatOCILayout); err == nil {
		t.Error("WriteArchive as a layout succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := WriteArchive(cctx, io.Discard, img, nil, FormatOCIArchive); err == nil {
		t.Error("WriteArchive with a cancelled context succeeded")
	}
}

func TestParseFormat(t *testing.T) {
	for _, f := range []Format{FormatDockerArchive, FormatOCIArchive, FormatOCILayout} {
		got, err := ParseFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f, got, err)
		}
	}
	if _, err := ParseFormat("tar"); err == nil {
		t.Error(`ParseFormat("tar") succeeded`)
	}
}
