package store

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/mybuild/mybuild/internal/ctxio"
)

var blobName = regexp.MustCompile(`^blobs/sha256/([0-9a-f]{64})$`)

// Load imports the images of an archive read from r, optionally gzipped:
// an OCI layout tar (oci-archive, also what `docker save` writes since
// Docker 25) when it has index.json, else a docker-archive (manifest.json).
// It returns the names loaded, and for images without a name their ID
// ("sha256:…", the config digest).
func (s *Store) Load(ctx context.Context, r io.Reader) ([]string, error) {
	dir, release, err := createTempDir(s.oci.tmp)
	if err != nil {
		return nil, fmt.Errorf("load archive: %w", err)
	}
	defer release()
	a := &archive{dir: dir, blobs: s.oci.blobs, links: map[string]string{}}
	if err := a.extract(ctx, r); err != nil {
		return nil, fmt.Errorf("load archive: %w", err)
	}
	if err := s.oci.blobs.sync(); err != nil {
		return nil, fmt.Errorf("load archive: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		// The blobs are in the store already: let the layout use them.
		if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o755); err != nil {
			return nil, fmt.Errorf("load archive: %w", err)
		}
		if err := os.Symlink(s.oci.blobs.dir, filepath.Join(dir, "blobs", "sha256")); err != nil {
			return nil, fmt.Errorf("load archive: %w", err)
		}
		return s.LoadLayout(ctx, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "manifest.json")); err == nil {
		return s.loadDocker(ctx, a)
	}
	return nil, errors.New("load archive: neither index.json nor manifest.json found")
}

// archive is an extracted image archive: blobs/sha256/* entries went
// straight into the store (verified), other files into dir. Links are
// resolved by name, never created on disk.
type archive struct {
	dir   string
	blobs blobDir
	links map[string]string // entry name → target entry name
}

func (a *archive) extract(ctx context.Context, r io.Reader) error {
	br := bufio.NewReader(ctxio.NewReader(ctx, r))
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return err
		}
		defer zr.Close()
		in = zr
	}
	tr := tar.NewReader(in)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		n, ok := cleanEntry(hdr.Name)
		if !ok {
			return fmt.Errorf("read tar: unsafe entry name %q", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if strings.HasPrefix(n+"/", "blobs/sha256/") {
				continue
			}
			if err := os.MkdirAll(filepath.Join(a.dir, n), 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if m := blobName.FindStringSubmatch(n); m != nil {
				h := v1.Hash{Algorithm: "sha256", Hex: m[1]}
				err := a.blobs.write(ctx, h, hdr.Size, func() (io.ReadCloser, error) { return io.NopCloser(tr), nil })
				if err != nil {
					return err
				}
				continue
			}
			if strings.HasPrefix(n, "blobs/sha256/") {
				return fmt.Errorf("read tar: unexpected entry %q", hdr.Name)
			}
			if err := a.writeFile(n, tr); err != nil {
				return err
			}
		case tar.TypeSymlink:
			t, ok := cleanEntry(path.Join(path.Dir(n), hdr.Linkname))
			if !ok || path.IsAbs(hdr.Linkname) {
				return fmt.Errorf("read tar: unsafe link %q -> %q", hdr.Name, hdr.Linkname)
			}
			a.links[n] = t
		case tar.TypeLink:
			t, ok := cleanEntry(hdr.Linkname)
			if !ok {
				return fmt.Errorf("read tar: unsafe link %q -> %q", hdr.Name, hdr.Linkname)
			}
			a.links[n] = t
		}
	}
}

// cleanEntry cleans a tar entry name; ok is false when it leaves the archive.
func cleanEntry(n string) (string, bool) {
	n = path.Clean(strings.TrimPrefix(n, "./"))
	if n == "." || path.IsAbs(n) || n == ".." || strings.HasPrefix(n, "../") {
		return "", false
	}
	return n, true
}

func (a *archive) writeFile(n string, r io.Reader) error {
	p := filepath.Join(a.dir, filepath.FromSlash(n))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// open opens entry n, following links.
func (a *archive) open(n string) (*os.File, error) {
	n, ok := cleanEntry(n)
	for hops := 0; ok && hops < 16; hops++ {
		t, isLink := a.links[n]
		if !isLink {
			if m := blobName.FindStringSubmatch(n); m != nil {
				return os.Open(a.blobs.path(v1.Hash{Algorithm: "sha256", Hex: m[1]}))
			}
			return os.Open(filepath.Join(a.dir, filepath.FromSlash(n)))
		}
		n = t
	}
	return nil, fmt.Errorf("open %q: bad name or too many links", n)
}

func (a *archive) readFile(n string) ([]byte, error) {
	f, err := a.open(n)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// loadDocker imports a docker-archive: each layer is stored (compressed
// with gzip if it is not) and checked against the config's diffIDs, the
// config is stored as it is (so the image ID stays the same) and an OCI
// manifest is made for them.
func (s *Store) loadDocker(ctx context.Context, a *archive) ([]string, error) {
	data, err := a.readFile("manifest.json")
	if err != nil {
		return nil, fmt.Errorf("load docker archive: %w", err)
	}
	var tm tarball.Manifest
	if err := json.Unmarshal(data, &tm); err != nil {
		return nil, fmt.Errorf("load docker archive: read manifest.json: %w", err)
	}
	layers := map[string]*storeLayer{} // by entry name
	type loaded struct {
		desc  v1.Descriptor
		names []string
		id    v1.Hash
	}
	var imgs []loaded
	for _, td := range tm {
		names, err := normalizeNames(td.RepoTags)
		if err != nil {
			return nil, fmt.Errorf("load docker archive: %w", err)
		}
		cfgRaw, err := a.readFile(td.Config)
		if err != nil {
			return nil, fmt.Errorf("load docker archive: %w", err)
		}
		cf, err := v1.ParseConfigFile(strings.NewReader(string(cfgRaw)))
		if err != nil {
			return nil, fmt.Errorf("load docker archive: read config %q: %w", td.Config, err)
		}
		if len(cf.RootFS.DiffIDs) != len(td.Layers) {
			return nil, fmt.Errorf("load docker archive: config %q lists %d layers, manifest.json %d", td.Config, len(cf.RootFS.DiffIDs), len(td.Layers))
		}
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
		for i, ln := range td.Layers {
			sl, ok := layers[ln]
			if !ok {
				f, err := a.open(ln)
				if err != nil {
					return nil, fmt.Errorf("load docker archive: %w", err)
				}
				sl, err = s.importLayer(ctx, f)
				f.Close()
				if err != nil {
					return nil, fmt.Errorf("load docker archive: layer %q: %w", ln, err)
				}
				layers[ln] = sl
			}
			if sl.diffID != cf.RootFS.DiffIDs[i] {
				return nil, fmt.Errorf("load docker archive: layer %q has diffID %s, config says %s", ln, sl.diffID, cf.RootFS.DiffIDs[i])
			}
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: sl.mediaType, Size: sl.size, Digest: sl.digest})
		}
		id, err := s.oci.blobs.writeBytes(ctx, cfgRaw)
		if err != nil {
			return nil, fmt.Errorf("load docker archive: %w", err)
		}
		m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfgRaw)), Digest: id}
		raw, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("load docker archive: %w", err)
		}
		h, err := s.oci.blobs.writeBytes(ctx, raw)
		if err != nil {
			return nil, fmt.Errorf("load docker archive: %w", err)
		}
		d := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(raw)), Digest: h}
		if cf.OS != "" {
			d.Platform = cf.Platform()
		}
		imgs = append(imgs, loaded{desc: d, names: names, id: id})
	}
	if err := s.oci.blobs.sync(); err != nil {
		return nil, fmt.Errorf("load docker archive: %w", err)
	}
	var out []string
	err = s.oci.update(ctx, func(idx *v1.IndexManifest) error {
		out = out[:0]
		for _, li := range imgs {
			applyNames(idx, li.desc, li.names, true, false)
			out = append(out, loadedNames(li.names, li.id)...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load docker archive: %w", err)
	}
	return out, nil
}

func loadedNames(names []string, id v1.Hash) []string {
	if len(names) == 0 {
		return []string{id.String()}
	}
	return names
}

// LoadLayout imports the images index.json of the OCI image layout in dir
// lists, under their names (io.containerd.image.name, else
// org.opencontainers.image.ref.name, normalised); one without a name is
// stored untagged. A name on an image index stands for the index's image for
// linux on this machine's architecture. It returns the names loaded, and for
// images without a name their ID.
func (s *Store) LoadLayout(ctx context.Context, dir string) ([]string, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("load layout: %w", err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("load layout: %w", err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("load layout: %w", err)
	}
	descs := im.Manifests
	type loaded struct {
		desc v1.Descriptor
		name string
		id   v1.Hash
	}
	var imgs []loaded
	for _, d := range descs {
		var n string
		if ln := layoutName(d); ln != "" {
			if n, err = NormalizeName(ln); err != nil {
				return nil, fmt.Errorf("load layout: %w", err)
			}
		}
		img, err := pickImage(ii, d)
		if err != nil {
			return nil, fmt.Errorf("load layout: %w", err)
		}
		sd, err := writeImage(ctx, s.oci.blobs, img)
		if err != nil {
			return nil, fmt.Errorf("load layout: %w", err)
		}
		id, err := img.ConfigName()
		if err != nil {
			return nil, fmt.Errorf("load layout: %w", err)
		}
		imgs = append(imgs, loaded{desc: sd, name: n, id: id})
	}
	var out []string
	err = s.oci.update(ctx, func(idx *v1.IndexManifest) error {
		out = out[:0]
		for _, li := range imgs {
			var names []string
			if li.name != "" {
				names = []string{li.name}
			}
			applyNames(idx, li.desc, names, true, false)
			out = append(out, loadedNames(names, li.id)...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load layout: %w", err)
	}
	return out, nil
}

// layoutName is the name a layout gives a descriptor.
func layoutName(d v1.Descriptor) string {
	if n := d.Annotations[containerdNameAnnotation]; n != "" {
		return n
	}
	return d.Annotations[refNameAnnotation]
}

// pickImage returns the image d stands for: itself, or from an index the
// image for linux/GOARCH (attestation manifests aside), or its only image.
func pickImage(ii v1.ImageIndex, d v1.Descriptor) (v1.Image, error) {
	switch {
	case d.MediaType.IsImage():
		return ii.Image(d.Digest)
	case !d.MediaType.IsIndex():
		return nil, fmt.Errorf("manifest %s: unsupported media type %q", d.Digest, d.MediaType)
	}
	child, err := ii.ImageIndex(d.Digest)
	if err != nil {
		return nil, err
	}
	cm, err := child.IndexManifest()
	if err != nil {
		return nil, err
	}
	var images []v1.Descriptor
	for _, c := range cm.Manifests {
		if c.MediaType.IsImage() && c.Annotations["vnd.docker.reference.type"] != "attestation-manifest" {
			images = append(images, c)
		}
	}
	for _, c := range images {
		if c.Platform != nil && c.Platform.OS == "linux" && c.Platform.Architecture == runtime.GOARCH {
			return child.Image(c.Digest)
		}
	}
	if len(images) == 1 {
		return child.Image(images[0].Digest)
	}
	return nil, fmt.Errorf("index %s: no image for linux/%s", d.Digest, runtime.GOARCH)
}
