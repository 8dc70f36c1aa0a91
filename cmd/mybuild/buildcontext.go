package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/mybuild/mybuild/internal/remotecontext"
	"github.com/mybuild/mybuild/internal/store"
	"github.com/mybuild/mybuild/planner"
)

// namedContexts are the --build-context values of a build.
type namedContexts struct {
	dirs   map[string]string // NAME=DIR: the absolute directory
	images map[string]string // NAME=docker-image://REF: the reference
	// layouts are NAME=oci-layout://DIR[:TAG|@DIGEST] values.
	layouts map[string]layoutRef
	// remotes are the Git and http(s) URLs, which fetch turns into dirs.
	remotes map[string]string
}

// layoutRef is an image in an OCI layout directory: by tag (the
// org.opencontainers.image.ref.name annotation) or by manifest digest.
type layoutRef struct {
	dir, tag, digest string
}

// parseBuildContexts parses --build-context NAME=VALUE flags, as buildx
// does: VALUE is a directory, docker-image://REF,
// oci-layout://DIR[:TAG|@sha256:DIGEST], a Git URL (git@HOST:PATH or a
// git://, ssh:// or http(s)://….git URL) or another http(s) URL.
func parseBuildContexts(list []string) (*namedContexts, error) {
	n := &namedContexts{dirs: map[string]string{}, images: map[string]string{}, layouts: map[string]layoutRef{}, remotes: map[string]string{}}
	for _, a := range list {
		name, v, ok := strings.Cut(a, "=")
		if !ok || name == "" || v == "" {
			return nil, fmt.Errorf("invalid --build-context %q: want NAME=DIR, NAME=docker-image://REF, NAME=oci-layout://DIR[:TAG] or NAME=URL", a)
		}
		if n.has(name) {
			return nil, fmt.Errorf("invalid --build-context %q: %s given twice", a, name)
		}
		switch {
		case strings.HasPrefix(v, "docker-image://"):
			ref := strings.TrimPrefix(v, "docker-image://")
			if ref == "" {
				return nil, fmt.Errorf("invalid --build-context %q: no image reference", a)
			}
			n.images[name] = ref
		case strings.HasPrefix(v, "oci-layout://"):
			lr, err := parseLayoutRef(strings.TrimPrefix(v, "oci-layout://"))
			if err != nil {
				return nil, fmt.Errorf("invalid --build-context %q: %w", a, err)
			}
			n.layouts[name] = lr
		case strings.Contains(v, "://") || strings.HasPrefix(v, "git@"):
			// As in BuildKit, the scp-like Git form needs its "git@" here.
			switch remotecontext.Detect(v) {
			case remotecontext.Git:
				if _, err := remotecontext.ParseGit(v); err != nil {
					return nil, fmt.Errorf("invalid --build-context %q: %w", name+"="+remotecontext.Redact(v), err)
				}
			case remotecontext.Local:
				return nil, fmt.Errorf("invalid --build-context %q: unsupported source (want a directory, docker-image://, oci-layout://, a Git URL or an http(s) URL)", name+"="+remotecontext.Redact(v))
			}
			n.remotes[name] = v
		default:
			dir, err := filepath.Abs(v)
			if err != nil {
				return nil, fmt.Errorf("invalid --build-context %q: %w", a, err)
			}
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("invalid --build-context %q: %s is not a directory", a, v)
			}
			n.dirs[name] = dir
		}
	}
	return n, nil
}

func (n *namedContexts) has(name string) bool {
	_, d := n.dirs[name]
	_, i := n.images[name]
	_, l := n.layouts[name]
	_, r := n.remotes[name]
	return d || i || l || r
}

// localNames are the names of the directory contexts (fetched ones
// included), for the planner.
func (n *namedContexts) localNames() []string {
	names := make([]string, 0, len(n.dirs)+len(n.remotes))
	for k := range n.dirs {
		names = append(names, k)
	}
	for k := range n.remotes {
		if _, ok := n.dirs[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// imageNames are the names of the image contexts, for the planner.
func (n *namedContexts) imageNames() []string {
	names := make([]string, 0, len(n.images)+len(n.layouts))
	for k := range n.images {
		names = append(names, k)
	}
	for k := range n.layouts {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func parseLayoutRef(s string) (layoutRef, error) {
	var lr layoutRef
	if dir, d, ok := strings.Cut(s, "@"); ok {
		if _, err := v1.NewHash(d); err != nil {
			return lr, fmt.Errorf("invalid digest %q: %w", d, err)
		}
		lr.dir, lr.digest = dir, d
	} else {
		lr.dir = s
		if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
			lr.dir, lr.tag = s[:i], s[i+1:]
		}
	}
	if lr.dir == "" {
		return lr, errors.New("no layout directory")
	}
	return lr, nil
}

// image resolves name when it is an image context: the image is pulled
// (or found in the store) or imported from its OCI layout into the store.
// It reports false when name is not an image context.
func (n *namedContexts) image(ctx context.Context, g *globals, st *store.Store, name string, o *buildOptions, mode string) (*planner.BaseImage, bool, error) {
	if ref, ok := n.images[name]; ok {
		bi, err := resolveBase(ctx, g, st, ref, o, mode)
		if err != nil {
			return nil, true, fmt.Errorf("build context %s: %w", name, err)
		}
		bi.Ref = name
		return bi, true, nil
	}
	lr, ok := n.layouts[name]
	if !ok {
		return nil, false, nil
	}
	img, err := lr.image()
	if err != nil {
		return nil, true, fmt.Errorf("build context %s: %w", name, err)
	}
	dgst, err := st.Put(ctx, img, nil)
	if err != nil {
		return nil, true, fmt.Errorf("build context %s: %w", name, err)
	}
	bi, err := baseInfo(name, img, dgst)
	return bi, true, err
}

// image finds the image of lr in its layout: by digest, by tag ("latest"
// when none is given and the layout holds more than one image), or the
// layout's only image.
func (lr layoutRef) image() (v1.Image, error) {
	p, err := layout.FromPath(lr.dir)
	if err != nil {
		return nil, fmt.Errorf("read OCI layout %s: %w", lr.dir, unwrapPath(err))
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("read OCI layout %s: %w", lr.dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read OCI layout %s: %w", lr.dir, err)
	}
	tag := lr.tag
	if tag == "" && lr.digest == "" && len(im.Manifests) == 1 {
		return p.Image(im.Manifests[0].Digest)
	}
	if tag == "" {
		tag = "latest"
	}
	for _, d := range im.Manifests {
		name := d.Annotations["org.opencontainers.image.ref.name"]
		switch {
		case lr.digest != "" && d.Digest.String() == lr.digest,
			lr.digest == "" && (name == tag || strings.HasSuffix(name, ":"+tag)):
			if !d.MediaType.IsImage() {
				return nil, fmt.Errorf("OCI layout %s: %s is not a single-platform image", lr.dir, d.Digest)
			}
			return p.Image(d.Digest)
		}
	}
	want := tag
	if lr.digest != "" {
		want = lr.digest
	}
	return nil, fmt.Errorf("OCI layout %s has no image %s", lr.dir, want)
}
