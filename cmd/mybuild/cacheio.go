package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"

	"github.com/mybuild/mybuild/cache"
	"github.com/mybuild/mybuild/executor"
	"github.com/mybuild/mybuild/internal/registry"
	"github.com/mybuild/mybuild/internal/store"
)

// cacheRefName names the cache artifact in a local cache directory (an
// OCI layout).
const cacheRefName = "cache"

// cacheLocation is a --cache-from or --cache-to value.
type cacheLocation struct {
	kind string // local or registry
	dir  string // local: src= or dest=
	ref  string // registry: ref=
	mode string // --cache-to: min (the target stage) or max (every stage)
}

// parseCacheLocation reads "type=local,dest=DIR", "type=registry,ref=REF"
// and, like buildx for --cache-from, a bare REF. dirKey is "src" or "dest".
func parseCacheLocation(flag, s, dirKey string) (cacheLocation, error) {
	l := cacheLocation{mode: "min"}
	if !strings.Contains(s, "=") {
		return cacheLocation{kind: "registry", ref: s, mode: "min"}, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return l, fmt.Errorf("invalid %s %q: %q is not KEY=VALUE", flag, s, part)
		}
		switch k = strings.TrimSpace(k); {
		case k == "type":
			l.kind = v
		case k == dirKey:
			l.dir = v
		case k == "ref":
			l.ref = v
		case k == "mode" && dirKey == "dest":
			if v != "min" && v != "max" {
				return l, fmt.Errorf("invalid %s %q: mode must be min or max", flag, s)
			}
			l.mode = v
		default:
			return l, fmt.Errorf("invalid %s %q: unknown key %q", flag, s, k)
		}
	}
	switch {
	case l.kind == "local" && l.dir == "":
		return l, fmt.Errorf("invalid %s %q: type=local needs %s=DIR", flag, s, dirKey)
	case l.kind == "registry" && l.ref == "":
		return l, fmt.Errorf("invalid %s %q: type=registry needs ref=REF", flag, s)
	case l.kind != "local" && l.kind != "registry":
		return l, fmt.Errorf("invalid %s %q: unsupported type %q (want local or registry)", flag, s, l.kind)
	}
	return l, nil
}

// stepCache is the step cache of one build: its configuration for the
// executor, and the keys the build used, for --cache-to.
type stepCache struct {
	cs     *cache.Store
	config executor.CacheConfig
	to     []cacheLocation

	mu   sync.Mutex
	used map[int][]cache.Key // by stage index
}

// openStepCache opens the step cache of the store for a build and imports
// the --cache-from sources into it.
func openStepCache(ctx context.Context, g *globals, o *buildOptions, st *store.Store) (*stepCache, error) {
	cs, err := cache.Open(cacheDir(g))
	if err != nil {
		return nil, err
	}
	sc := &stepCache{cs: cs, used: map[int][]cache.Key{}}
	sc.config = executor.CacheConfig{Store: cs, Disabled: o.noCache, DisabledStages: o.noCacheFilter, Used: sc.use}
	for _, s := range o.cacheTo {
		l, err := parseCacheLocation("--cache-to", s, "dest")
		if err != nil {
			return nil, err
		}
		sc.to = append(sc.to, l)
	}
	var from []cacheLocation
	for _, s := range o.cacheFrom {
		l, err := parseCacheLocation("--cache-from", s, "src")
		if err != nil {
			return nil, err
		}
		from = append(from, l)
	}
	for _, l := range from {
		img, err := l.read(ctx, o)
		if err != nil {
			// As buildx: a cache that cannot be read is a warning.
			fmt.Fprintf(g.stderr, "warning: import cache from %s: %v\n", l, err)
			continue
		}
		n, err := cs.Import(ctx, img, st)
		if err != nil {
			fmt.Fprintf(g.stderr, "warning: import cache from %s: %v\n", l, err)
			continue
		}
		fmt.Fprintf(g.stderr, "imported %d cached step results from %s\n", n, l)
	}
	return sc, nil
}

func (sc *stepCache) use(stage int, k cache.Key) {
	sc.mu.Lock()
	sc.used[stage] = append(sc.used[stage], k)
	sc.mu.Unlock()
}

// export writes the results the build used to every --cache-to: those of
// the target stage (mode=min) or of every stage (mode=max).
func (sc *stepCache) export(ctx context.Context, g *globals, o *buildOptions, st *store.Store, target int) error {
	for _, l := range sc.to {
		var keys []cache.Key
		sc.mu.Lock()
		for stage, ks := range sc.used {
			if l.mode == "max" || stage == target {
				keys = append(keys, ks...)
			}
		}
		sc.mu.Unlock()
		img, err := sc.cs.Artifact(keys, st)
		if err != nil {
			return err
		}
		if err := l.write(ctx, o, img); err != nil {
			return fmt.Errorf("export cache to %s: %w", l, err)
		}
		fmt.Fprintf(g.stderr, "exported cached step results to %s\n", l)
	}
	return nil
}

func (l cacheLocation) String() string {
	if l.kind == "local" {
		return l.dir
	}
	return l.ref
}

// read returns the cache artifact at l.
func (l cacheLocation) read(ctx context.Context, o *buildOptions) (v1.Image, error) {
	if l.kind == "registry" {
		ro, err := o.registry.options()
		if err != nil {
			return nil, err
		}
		return registry.Pull(ctx, l.ref, ro)
	}
	p, err := layout.FromPath(l.dir)
	if err != nil {
		return nil, err
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, err
	}
	for i := len(im.Manifests) - 1; i >= 0; i-- {
		if d := im.Manifests[i]; d.Annotations[refNameKey] == cacheRefName {
			return ii.Image(d.Digest)
		}
	}
	return nil, errors.New("no cache in the directory")
}

const refNameKey = "org.opencontainers.image.ref.name"

// write stores the cache artifact img at l.
func (l cacheLocation) write(ctx context.Context, o *buildOptions, img v1.Image) error {
	if l.kind == "registry" {
		ro, err := o.registry.options()
		if err != nil {
			return err
		}
		_, err = registry.Push(ctx, img, l.ref, ro)
		return err
	}
	p, err := layout.FromPath(l.dir)
	if err != nil {
		if err := os.MkdirAll(l.dir, 0o755); err != nil {
			return err
		}
		if p, err = layout.Write(l.dir, empty.Index); err != nil {
			return err
		}
	}
	ann := map[string]string{refNameKey: cacheRefName}
	return p.ReplaceImage(img, match.Annotation(refNameKey, cacheRefName), layout.WithAnnotations(ann))
}
