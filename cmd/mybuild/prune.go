package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"

	"github.com/mybuild/mybuild/cache"
	"github.com/mybuild/mybuild/executor"
	"github.com/mybuild/mybuild/internal/store"
)

// cacheDir is where the step cache lives under the store root.
func cacheDir(g *globals) string { return filepath.Join(g.root, "cache") }

// cmdPrune removes step cache results, then the blobs nothing uses any more.
func cmdPrune(ctx context.Context, g *globals, args []string) error {
	fs := pflag.NewFlagSet("prune", pflag.ContinueOnError)
	all := fs.Bool("all", false, "remove every cached step result, and the RUN cache mounts")
	mounts := fs.Bool("mounts", false, "remove the RUN --mount=type=cache directories no build is using")
	keep := fs.String("keep-storage", "", "remove least recently used results until their layers take at most this much (e.g. 10GB, 512MB)")
	var filters []string
	fs.StringArrayVar(&filters, "filter", nil, "remove the results not used for a while: until=DURATION (e.g. until=24h); repeatable")
	ok, err := parseFlags(g, fs, "prune [OPTIONS]",
		"Remove cached step results, least recently used first, then the layers no\nimage and no remaining result uses (unless another mybuild is using the store).\nWithout options only results whose layers are gone are removed.", args)
	if !ok || err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return errors.New("prune takes no arguments (see 'mybuild prune --help')")
	}
	o := cache.PruneOptions{All: *all}
	if *keep != "" {
		if o.KeepBytes, err = parseSize(*keep); err != nil {
			return fmt.Errorf("parse --keep-storage: %w", err)
		}
	}
	for _, f := range filters {
		v, ok := strings.CutPrefix(f, "until=")
		if !ok {
			return fmt.Errorf("parse --filter %q: want until=DURATION", f)
		}
		if o.UnusedFor, err = time.ParseDuration(v); err != nil || o.UnusedFor <= 0 {
			return fmt.Errorf("parse --filter %q: want a positive duration such as 24h", f)
		}
	}
	var mountsFreed int64
	if *all || *mounts {
		if mountsFreed, err = executor.PruneCacheMounts(mountsDir(g)); err != nil {
			return err
		}
	}
	cs, err := cache.Open(cacheDir(g))
	if err != nil {
		return err
	}
	return withStore(g, func(st *store.Store) error {
		o.Dangling = func(l *cache.Layer) bool {
			_, err := st.Layer(l.Digest, l.DiffID, l.Size)
			return errors.Is(err, store.ErrNotFound)
		}
		removed, kept, err := cs.Prune(ctx, o)
		if err != nil {
			return err
		}
		used := map[v1.Hash]bool{}
		for _, e := range kept {
			if e.Record.Layer != nil {
				used[e.Record.Layer.Digest] = true
			}
		}
		blobs, err := st.GCKeep(ctx, func(h v1.Hash) bool { return used[h] })
		if errors.Is(err, store.ErrBusy) {
			fmt.Fprintln(g.stderr, "notice: another mybuild is using the store: layers are kept until the next prune")
		} else if err != nil {
			return err
		}
		var freed int64
		gone := map[v1.Hash]bool{}
		for _, h := range blobs {
			gone[h] = true
		}
		for _, e := range removed {
			if l := e.Record.Layer; l != nil && gone[l.Digest] {
				freed += l.Size
				gone[l.Digest] = false
			}
		}
		freed += mountsFreed
		fmt.Fprintf(g.stdout, "Deleted %d cached step results and %d blobs\nTotal reclaimed space: %s\n", len(removed), len(blobs), humanSize(freed))
		return nil
	})
}

// parseSize reads a size such as "10GB", "512m" or "1048576" (binary
// units, as docker's --keep-storage).
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	mult := int64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("kmgtp", t[n-1]); i >= 0 {
			mult = int64(1) << (10 * (i + 1))
			t = t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return int64(f * float64(mult)), nil
}

// cachedLayers reports the layers the step cache refers to, which GC keeps.
// Without a readable cache it keeps nothing more.
func cachedLayers(ctx context.Context, g *globals) func(v1.Hash) bool {
	used := map[v1.Hash]bool{}
	if cs, err := cache.Open(cacheDir(g)); err == nil {
		ents, _ := cs.Records(ctx)
		for _, e := range ents {
			if e.Record.Layer != nil {
				used[e.Record.Layer.Digest] = true
			}
		}
	}
	return func(h v1.Hash) bool { return used[h] }
}
