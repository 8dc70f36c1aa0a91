package executor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mybuild/mybuild/cache"
	"github.com/mybuild/mybuild/internal/progress"
	"github.com/mybuild/mybuild/internal/store"
	"github.com/mybuild/mybuild/planner"
)

// CacheConfig configures the step cache of a build. The zero value builds
// without one: every step runs.
type CacheConfig struct {
	// Store keeps the step results; nil disables the cache.
	Store *cache.Store
	// Disabled is --no-cache: every step runs; the results are still
	// recorded for later builds.
	Disabled bool
	// DisabledStages is --no-cache-filter: the stages (by name, or by
	// index for unnamed ones) whose steps always run.
	DisabledStages []string
	// Used, when set, is told the key of every step of the build (hit or
	// not), with the index of its stage: what --cache-to exports.
	Used func(stage int, key cache.Key)
}

// buildCache is the cache state of one build.
type buildCache struct {
	once  sync.Once
	stat  *cache.StatCache
	mu    sync.Mutex
	final map[int]cache.Key // each built stage's last key
}

// stepKey is a step's key and the inputs it was made of.
type stepKey struct {
	key    cache.Key
	inputs []cache.Input
	pos    string // the step's position, for explained misses
}

func (b *build) cacheOn() bool { return b.cfg.Cache.Store != nil }

func (b *build) cacheState() *buildCache {
	c := &b.cache
	c.once.Do(func() {
		c.final = map[int]cache.Key{}
		if b.cacheOn() && b.cfg.ContextDir != "" && !b.cfg.FetchedContext {
			c.stat = b.cfg.Cache.Store.StatCache(b.cfg.ContextDir)
		}
	})
	return c
}

// stageKey is the key a stage starts from: its base, the build settings
// that shape every layer, and the stage's starting config.
func (b *build) stageKey(ctx context.Context, st *planner.Stage) (cache.Key, error) {
	var in []cache.Input
	switch st.BaseKind {
	case planner.BaseScratch:
		in = append(in, cache.Input{Name: cache.InputBaseImage, Digest: "scratch"})
	case planner.BaseImageRef:
		in = append(in, cache.Input{Name: cache.InputBaseImage, Digest: st.BaseImage.Digest.String()})
	case planner.BaseStage:
		in = append(in, cache.Input{Name: cache.InputBaseStage, Digest: string(b.finalKey(st.BaseStage))})
	case planner.BaseContext:
		d, err := b.contextDigest(ctx, st.BaseContext)
		if err != nil {
			return "", err
		}
		in = append(in, cache.Input{Name: "build context " + st.BaseContext, Digest: d})
	}
	settings := struct {
		Platform        string
		SourceDateEpoch *time.Time
		Config          v1.ConfigFile
	}{st.Platform, b.cfg.SourceDateEpoch, st.Config}
	d, err := cache.DigestJSON(settings)
	if err != nil {
		return "", fmt.Errorf("compute cache key: %w", err)
	}
	in = append(in, cache.Input{Name: "stage settings", Digest: d})
	return cache.NewKey(in), nil
}

func (b *build) finalKey(stage int) cache.Key {
	c := b.cacheState()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.final[stage]
}

func (b *build) setFinalKey(stage int, k cache.Key) {
	c := b.cacheState()
	c.mu.Lock()
	c.final[stage] = k
	c.mu.Unlock()
}

// fromCache applies the stored result of sk to s when there is one and
// the stage may use it. It reports whether it did.
func (b *build) fromCache(st *planner.Stage, s *state, step *planner.Step, sk stepKey) (bool, error) {
	if b.cfg.Cache.Used != nil {
		b.cfg.Cache.Used(st.Index, sk.key)
	}
	if !b.cacheOn() || b.cacheDisabled(st) {
		return false, nil
	}
	rec, err := b.cfg.Cache.Store.Get(sk.key)
	if err != nil {
		return false, nil
	}
	if rec.Layer == nil {
		if !step.NoHistory {
			s.history = append(s.history, b.cachedHistory(step, true, rec.Created))
		}
		return true, nil
	}
	layer, err := b.cfg.Store.Layer(rec.Layer.Digest, rec.Layer.DiffID, rec.Layer.Size)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // collected since: run the step again
	}
	if err != nil {
		return false, err
	}
	dir, _ := b.cfg.Snapshots.Lookup(rec.Layer.DiffID) // "": extracted when needed
	s.layers = append(s.layers, layer)
	s.dirs = append(s.dirs, dir)
	s.history = append(s.history, b.cachedHistory(step, false, rec.Created))
	return true, nil
}

func (b *build) cachedHistory(step *planner.Step, empty bool, created time.Time) v1.History {
	h := b.historyEntry(step, empty)
	if !created.IsZero() {
		h.Created = v1.Time{Time: created.UTC()}
	}
	return h
}

func (b *build) cacheDisabled(st *planner.Stage) bool {
	if b.cfg.Cache.Disabled {
		return true
	}
	name := st.Name
	if name == "" {
		name = strconv.Itoa(st.Index)
	}
	return slices.ContainsFunc(b.cfg.Cache.DisabledStages, func(s string) bool {
		return strings.EqualFold(s, name) || s == strconv.Itoa(st.Index)
	})
}

// explainMiss tells, as a log line of the step, why it runs.
func (b *build) explainMiss(st *planner.Stage, sk stepKey, id int, name string) {
	if !b.cacheOn() {
		return
	}
	why := ""
	switch {
	case b.cfg.Cache.Disabled:
		why = "cache disabled (--no-cache)"
	case b.cacheDisabled(st):
		why = "cache disabled for this stage (--no-cache-filter)"
	default:
		why = cache.Explain(b.cfg.Cache.Store.Last(sk.pos), sk.inputs)
	}
	b.emit(progress.Event{ID: id, Name: name, Status: progress.Log, Message: "cache miss: " + why})
}

// record stores the result of a step that ran: the layer it added to s
// (none when empty) and its history entry's time, which it returns (that
// of another build that recorded the same result first).
func (b *build) record(s *state, sk stepKey, empty bool, created time.Time) time.Time {
	if !b.cacheOn() {
		return created
	}
	rec := cache.Record{Created: created}
	if !empty {
		l := s.layers[len(s.layers)-1]
		var err error
		rec.Layer = &cache.Layer{}
		if rec.Layer.Digest, err = l.Digest(); err == nil {
			if rec.Layer.DiffID, err = l.DiffID(); err == nil {
				rec.Layer.Size, err = l.Size()
			}
		}
		if err != nil {
			b.logger().Warn("record step result", "err", err)
			return created
		}
	}
	got, err := b.cfg.Cache.Store.Put(sk.key, rec)
	if err != nil {
		b.logger().Warn("record step result", "err", err)
		return created
	}
	b.remember(sk)
	return got.Created
}

func (b *build) remember(sk stepKey) {
	if !b.cacheOn() {
		return
	}
	if err := b.cfg.Cache.Store.Remember(sk.pos, sk.key, sk.inputs); err != nil {
		b.logger().Warn("remember step inputs", "err", err)
	}
}

// metaStep applies a metadata step to s (its history entry, with the time
// recorded for its key when there is one) and returns its key.
func (b *build) metaStep(ctx context.Context, st *planner.Stage, index int, s *state, step *planner.Step, parent cache.Key) (cache.Key, error) {
	sk, err := b.key(ctx, st, index, step, parent)
	if err != nil {
		return "", err
	}
	if b.cfg.Cache.Used != nil {
		b.cfg.Cache.Used(st.Index, sk.key)
	}
	created := b.now()
	if b.cacheOn() {
		if rec, err := b.cfg.Cache.Store.Get(sk.key); err == nil && !b.cacheDisabled(st) {
			created = rec.Created
			b.remember(sk)
		} else {
			created = b.record(s, sk, true, created)
		}
	}
	if !step.NoHistory {
		s.history = append(s.history, b.cachedHistory(step, true, created))
	}
	return sk.key, nil
}
