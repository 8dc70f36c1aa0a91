package store

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Format is a way of exporting images.
type Format int

// The export formats.
const (
	// FormatDockerArchive is the tar `docker save` writes: manifest.json,
	// the configs and the layers (here gzip-compressed, as `docker load`
	// accepts).
	FormatDockerArchive Format = iota
	// FormatOCIArchive is a tar of an OCI image layout, as BuildKit's
	// `--output type=oci` writes it.
	FormatOCIArchive
	// FormatOCILayout is an OCI image layout directory.
	FormatOCILayout
)

var formatNames = []string{"docker-archive", "oci-archive", "oci-layout"}

// String returns the format's name, as ParseFormat accepts it.
func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat parses "docker-archive", "oci-archive" or "oci-layout".
func ParseFormat(s string) (Format, error) {
	for i, n := range formatNames {
		if s == n {
			return Format(i), nil
		}
	}
	return 0, fmt.Errorf("parse format %q: want docker-archive, oci-archive or oci-layout", s)
}

// namedImage is an image with the names it is exported under.
type namedImage struct {
	img   v1.Image
	names []string // normalised
}

// Save writes the images refs name (see Image) to w as an archive of the
// given format. A name is saved under that name; a digest or ID untagged.
func (s *Store) Save(ctx context.Context, refs []string, format Format, w io.Writer) error {
	idx, err := s.oci.readIndex()
	if err != nil {
		return err
	}
	var imgs []namedImage
	pos := map[v1.Hash]int{}
	for _, ref := range refs {
		m, err := s.oci.resolve(idx, ref)
		if err != nil {
			return err
		}
		i, ok := pos[m.desc.Digest]
		if !ok {
			img, err := layoutImage(s.oci.dir, m.desc.Digest)
			if err != nil {
				return fmt.Errorf("save image %q: %w", ref, err)
			}
			i = len(imgs)
			pos[m.desc.Digest] = i
			imgs = append(imgs, namedImage{img: img})
		}
		if m.byName != "" {
			imgs[i].names = append(imgs[i].names, m.byName)
		}
	}
	return writeArchive(ctx, w, imgs, format)
}

// WriteArchive writes img to w under names as an archive of the given
// format (FormatDockerArchive or FormatOCIArchive).
func WriteArchive(ctx context.Context, w io.Writer, img v1.Image, names []string, format Format) error {
	norm, err := normalizeNames(names)
	if err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return writeArchive(ctx, w, []namedImage{{img: img, names: norm}}, format)
}

func writeArchive(ctx context.Context, w io.Writer, imgs []namedImage, format Format) error {
	switch format {
	case FormatDockerArchive:
		refs := map[name.Reference]v1.Image{}
		for _, ni := range imgs {
			for _, n := range ni.names {
				t, err := name.NewTag(n)
				if err != nil {
					return fmt.Errorf("write docker archive: %w", err)
				}
				refs[t] = ni.img
			}
			if len(ni.names) == 0 {
				// A digest reference saves the image without RepoTags.
				h, err := ni.img.Digest()
				if err != nil {
					return fmt.Errorf("write docker archive: %w", err)
				}
				d, err := name.NewDigest("untagged@" + h.String())
				if err != nil {
					return fmt.Errorf("write docker archive: %w", err)
				}
				refs[d] = ni.img
			}
		}
		if err := tarball.MultiRefWrite(refs, ctxWriter{ctx, w}); err != nil {
			return fmt.Errorf("write docker archive: %w", err)
		}
		return nil
	case FormatOCIArchive:
		if err := writeOCIArchive(ctx, w, imgs); err != nil {
			return fmt.Errorf("write oci archive: %w", err)
		}
		return nil
	}
	return fmt.Errorf("write archive: format %s is not an archive", format)
}

// writeOCIArchive streams an OCI layout holding imgs as a tar: oci-layout,
// the blobs, then index.json naming each manifest with both the
// org.opencontainers.image.ref.name and io.containerd.image.name
// annotations.
func writeOCIArchive(ctx context.Context, w io.Writer, imgs []namedImage) error {
	tw := tar.NewWriter(ctxWriter{ctx, w})
	file := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644,
			ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
		})
	}
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeDir, Name: name, Mode: 0o755,
			ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
		})
	}
	small := func(name string, data []byte) error {
		if err := file(name, int64(len(data))); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := small("oci-layout", []byte(ociLayoutFile)); err != nil {
		return err
	}
	if err := dir("blobs/"); err != nil {
		return err
	}
	if err := dir("blobs/sha256/"); err != nil {
		return err
	}
	seen := map[v1.Hash]bool{}
	blob := func(b blobRef) error {
		d := b.desc
		if seen[d.Digest] {
			return nil
		}
		seen[d.Digest] = true
		rc, err := b.open()
		if err != nil {
			return fmt.Errorf("read blob %s: %w", d.Digest, err)
		}
		defer rc.Close()
		if err := file("blobs/sha256/"+d.Digest.Hex, d.Size); err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(rc, d.Size))
		if err == nil {
			err = checkBlob(d.Digest, d.Size, h, n)
		}
		if err != nil {
			return fmt.Errorf("copy blob %s: %w", d.Digest, err)
		}
		return nil
	}
	idx := newIndex()
	for _, ni := range imgs {
		blobs, desc, err := imageBlobs(ni.img)
		if err != nil {
			return err
		}
		for _, b := range blobs {
			if err := blob(b); err != nil {
				return err
			}
		}
		applyNames(idx, desc, ni.names, false, true)
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := small("index.json", data); err != nil {
		return err
	}
	return tw.Close()
}

// blobRef is a blob of an image and how to read it.
type blobRef struct {
	desc v1.Descriptor
	open func() (io.ReadCloser, error)
}

// imageBlobs lists img's blobs in the order they are to be written: config,
// layers, and last its OCI manifest (see ociManifest), whose descriptor,
// with the platform of the config, it also returns.
func imageBlobs(img v1.Image) ([]blobRef, v1.Descriptor, error) {
	raw, m, err := ociManifest(img)
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	blobs := []blobRef{{m.Config, func() (io.ReadCloser, error) {
		cfg, err := img.RawConfigFile()
		return io.NopCloser(bytes.NewReader(cfg)), err
	}}}
	for _, ld := range m.Layers {
		if skipBlob(ld) {
			continue
		}
		blobs = append(blobs, blobRef{ld, func() (io.ReadCloser, error) {
			l, err := img.LayerByDigest(ld.Digest)
			if err != nil {
				return nil, err
			}
			return l.Compressed()
		}})
	}
	sum := sha256.Sum256(raw)
	d := v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(raw)), Digest: sha256Hash(sum[:])}
	blobs = append(blobs, blobRef{d, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}})
	if cf, err := img.ConfigFile(); err == nil && cf.OS != "" {
		d.Platform = cf.Platform()
	}
	return blobs, d, nil
}

// WriteLayout adds img under names to the OCI image layout in dir,
// creating it if needed. Each file appears atomically (temp file in dir,
// fsync, rename) and index.json is updated under a flock of dir, so
// concurrent writers do not lose names. A name moves from the manifest that
// had it; a manifest left without names is dropped from index.json (its
// blobs stay).
func WriteLayout(ctx context.Context, dir string, img v1.Image, names []string) error {
	return writeLayout(ctx, dir, img, names, "")
}

// WriteLayout is the package's WriteLayout for an image whose blobs are in
// the store: they are hard-linked into dir where the file systems allow
// (blob files are never written to in place), copied elsewhere.
func (s *Store) WriteLayout(ctx context.Context, dir string, img v1.Image, names []string) error {
	return writeLayout(ctx, dir, img, names, s.oci.blobs.dir)
}

func writeLayout(ctx context.Context, dir string, img v1.Image, names []string, linkFrom string) error {
	norm, err := normalizeNames(names)
	if err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	l := layoutDir{dir: dir, tmp: dir, lock: dir,
		blobs: blobDir{dir: filepath.Join(dir, "blobs", "sha256"), tmp: dir, linkFrom: linkFrom}}
	if err := os.MkdirAll(l.blobs.dir, 0o755); err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	if err := sweepDir(dir, tempPrefix); err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	if err := l.init(); err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	d, err := writeImage(ctx, l.blobs, img)
	if err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	err = l.update(ctx, func(idx *v1.IndexManifest) error {
		applyNames(idx, d, norm, false, true)
		return nil
	})
	if err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	return nil
}
