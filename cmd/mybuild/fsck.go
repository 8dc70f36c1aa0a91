package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"

	"github.com/mybuild/mybuild/cache"
	"github.com/mybuild/mybuild/executor"
	"github.com/mybuild/mybuild/internal/store"
	"github.com/mybuild/mybuild/snapshot"
)

// fsckFinding is one line of `mybuild fsck`, whichever part found it.
type fsckFinding struct {
	Kind        string   `json:"kind"`
	Object      string   `json:"object"`
	Detail      string   `json:"detail"`
	Images      []string `json:"images,omitempty"`
	Reclaimable bool     `json:"reclaimable,omitempty"`
	Size        int64    `json:"size,omitempty"`
	// Leftover marks what a dead build left and the next build sweeps:
	// no problem.
	Leftover bool `json:"leftover,omitempty"`
	Repaired bool `json:"repaired"`
}

// fsckResult is the whole of `mybuild fsck --json`.
type fsckResult struct {
	Findings []fsckFinding `json:"findings"`
	Problems int           `json:"problems"`
	Repaired int           `json:"repaired"` // problems repaired
	// Leftovers counts the findings left by dead builds (removed, with
	// --repair), which are no problem.
	Leftovers   int   `json:"leftovers"`
	Reclaimable int64 `json:"reclaimable"`
}

// cmdFsck verifies the store, the step cache and the snapshots.
func cmdFsck(ctx context.Context, g *globals, args []string) error {
	fs := pflag.NewFlagSet("fsck", pflag.ContinueOnError)
	repair := fs.Bool("repair", false, "remove what dead builds left, corrupt blobs no image uses, broken index entries and dangling cache records")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	ok, err := parseFlags(g, fs, "fsck [OPTIONS]",
		"Verify the store: every blob's digest, every image's manifest, config and\nlayers, every cached step result's layer, and no mounts left on the host.\nWhat dead builds left (temp files, snapshot and RUN --mount directories) is\nlisted as leftovers, which are no problem: the next build sweeps them, and\n--repair removes them. Exits 1 when it finds a problem (with --repair: one\nit could not repair).", args)
	if !ok || err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return errors.New("fsck takes no arguments (see 'mybuild fsck --help')")
	}
	res, err := fsck(ctx, g, *repair)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("write findings: %w", err)
		}
	} else {
		printFsck(g, res)
	}
	if res.Problems > res.Repaired {
		return &exitError{code: 1}
	}
	return nil
}

func printFsck(g *globals, res *fsckResult) {
	unused, swept := 0, 0
	for _, f := range res.Findings {
		line := f.Kind + " " + f.Object + ": " + f.Detail
		if len(f.Images) > 0 {
			line += fmt.Sprintf(" (images: %s)", joinNames(f.Images))
		}
		switch {
		case f.Reclaimable:
			unused++
			line += fmt.Sprintf(" (%s reclaimable)", humanSize(f.Size))
		case f.Repaired:
			line += ": repaired"
			if f.Leftover {
				swept++
			}
		case f.Leftover:
			line += " (leftover: the next build sweeps it)"
		}
		fmt.Fprintln(g.stdout, line)
	}
	summary := "fsck: no problems"
	if res.Problems > 0 {
		summary = fmt.Sprintf("fsck: %d problems, %d repaired", res.Problems, res.Repaired)
	}
	switch {
	case res.Leftovers > 0 && swept == res.Leftovers:
		summary += fmt.Sprintf("; %d leftovers of dead builds removed", res.Leftovers)
	case res.Leftovers > 0:
		summary += fmt.Sprintf("; %d leftovers of dead builds, which the next build sweeps", res.Leftovers)
	}
	if unused > 0 {
		summary += fmt.Sprintf("; %d unused snapshot layers (%s reclaimable)", unused, humanSize(res.Reclaimable))
	}
	fmt.Fprintln(g.stdout, summary)
}

func joinNames(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}

// fsck runs the checks of the image store, the step cache, RUN --mount's
// directory and the snapshot store, in that order: repairing the store can
// leave cache records dangling, and the layers in use are known once both
// are read. What dead builds left is counted apart from the problems.
func fsck(ctx context.Context, g *globals, repair bool) (*fsckResult, error) {
	res := &fsckResult{Findings: []fsckFinding{}}
	add := func(f fsckFinding) {
		switch {
		case f.Reclaimable:
			res.Reclaimable += f.Size
		case f.Leftover:
			res.Leftovers++
		default:
			res.Problems++
			if f.Repaired {
				res.Repaired++
			}
		}
		res.Findings = append(res.Findings, f)
	}
	cs, err := cache.Open(cacheDir(g))
	if err != nil {
		return nil, err
	}
	recs, err := cs.Records(ctx)
	if err != nil {
		return nil, err
	}
	cached := map[v1.Hash]bool{}
	for _, e := range recs {
		if e.Record.Layer != nil {
			cached[e.Record.Layer.Digest] = true
		}
	}

	usedDiffIDs := map[v1.Hash]bool{}
	err = withStore(g, func(st *store.Store) error {
		rep, err := st.Fsck(ctx, store.FsckOptions{Repair: repair, Cached: func(h v1.Hash) bool { return cached[h] }})
		if errors.Is(err, store.ErrBusy) {
			return errors.New("repair store: another mybuild is using it; run fsck --repair when no build is running")
		}
		if err != nil {
			return err
		}
		for _, f := range rep.Findings {
			add(fsckFinding{Kind: f.Kind, Object: f.Object, Detail: f.Detail, Images: f.Images, Leftover: f.Leftover, Repaired: f.Repaired})
		}
		for d := range rep.DiffIDs {
			usedDiffIDs[d] = true
		}
		// Cache records whose layer blob is gone (or was just removed as corrupt).
		for _, e := range recs {
			l := e.Record.Layer
			if l == nil {
				continue
			}
			if _, err := st.Layer(l.Digest, l.DiffID, l.Size); !errors.Is(err, store.ErrNotFound) {
				usedDiffIDs[l.DiffID] = true
				continue
			}
			f := fsckFinding{Kind: "dangling-cache-record", Object: string(e.Key),
				Detail: fmt.Sprintf("layer %s is not in the store; the step will run again", l.Digest)}
			if repair {
				if err := cs.Remove(e.Key); err != nil {
					return err
				}
				f.Repaired = true
			}
			add(f)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	// RUN --mount's throwaway directories: only when no build is running
	// can they be told from a live build's.
	left, _, err := executor.MountsLeftovers(ctx, mountsDir(g), repair)
	if err != nil {
		return nil, err
	}
	for _, p := range left {
		add(fsckFinding{Kind: "leftover-temp", Object: filepath.Join("mounts", p), Detail: "left by a build that died",
			Leftover: true, Repaired: repair})
	}

	snapRoot := filepath.Join(g.root, "snapshots")
	if _, err := os.Stat(snapRoot); errors.Is(err, os.ErrNotExist) {
		return res, nil // no build ever ran here
	}
	// The driver does not matter to Check; naming one skips the probe mount.
	snaps, err := snapshot.New(snapRoot, snapshot.Options{Driver: snapshot.DriverNaive})
	if err != nil {
		return nil, err
	}
	fs, err := snaps.Check(ctx, snapshot.CheckOptions{Repair: repair, Used: func(d v1.Hash) bool { return usedDiffIDs[d] }})
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		add(fsckFinding{Kind: f.Kind, Object: filepath.Join("snapshots", f.Path), Detail: f.Detail,
			Reclaimable: f.Reclaimable, Size: f.Size, Leftover: f.Leftover, Repaired: f.Repaired})
	}
	return res, nil
}
