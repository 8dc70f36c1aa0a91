package cache

import (
	"context"
	"errors"
	"os"
	"time"
)

// PruneOptions says which results Prune removes. The zero value removes
// only those whose layer is gone (when Dangling is set).
type PruneOptions struct {
	// All removes every result.
	All bool
	// UnusedFor, when positive, removes the results not used for that long.
	UnusedFor time.Duration
	// KeepBytes, when positive, then removes the least recently used
	// results until the layers of those left total at most that size.
	KeepBytes int64
	// Dangling, when set, reports a layer that is no longer stored: its
	// results are removed.
	Dangling func(*Layer) bool
	// Now is the time UnusedFor counts back from (zero: the clock).
	Now time.Time
}

// Prune removes results as o says, least recently used first, and returns
// the removed ones and those kept.
func (s *Store) Prune(ctx context.Context, o PruneOptions) (removed, kept []Entry, err error) {
	ents, err := s.Records(ctx)
	if err != nil {
		return nil, nil, err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	var total int64
	sizes := map[string]int64{} // layer digest → size, each counted once
	for _, e := range ents {
		if l := e.Record.Layer; l != nil {
			if _, ok := sizes[l.Digest.String()]; !ok {
				sizes[l.Digest.String()] = l.Size
				total += l.Size
			}
		}
	}
	users := map[string]int{}
	for _, e := range ents {
		if l := e.Record.Layer; l != nil {
			users[l.Digest.String()]++
		}
	}
	for _, e := range ents { // least recently used first
		l := e.Record.Layer
		drop := o.All ||
			(o.UnusedFor > 0 && now.Sub(e.LastUsed) > o.UnusedFor) ||
			(o.KeepBytes > 0 && total > o.KeepBytes) ||
			(l != nil && o.Dangling != nil && o.Dangling(l))
		if !drop {
			kept = append(kept, e)
			continue
		}
		if err := ctx.Err(); err != nil {
			return removed, kept, err
		}
		if err := s.Remove(e.Key); err != nil {
			return removed, kept, err
		}
		removed = append(removed, e)
		if l != nil {
			if users[l.Digest.String()]--; users[l.Digest.String()] == 0 {
				total -= l.Size
			}
		}
	}
	s.pruneLast()
	return removed, kept, nil
}

// pruneLast deletes the remembered positions whose inputs are gone.
func (s *Store) pruneLast() {
	ents, err := os.ReadDir(s.path("last"))
	if err != nil {
		return
	}
	for _, e := range ents {
		p := s.path("last", e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if k := Key(b); !k.valid() {
			os.Remove(p)
		} else if _, err := os.Stat(s.path("inputs", k.Hex()+".json")); errors.Is(err, os.ErrNotExist) {
			os.Remove(p)
		}
	}
}
