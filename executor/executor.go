package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/mybuild/mybuild/executor/copier"
	"github.com/mybuild/mybuild/internal/progress"
	"github.com/mybuild/mybuild/planner"
	"github.com/mybuild/mybuild/snapshot"
)

// historyComment is what BuildKit writes as the comment of each history entry.
const historyComment = "buildkit.dockerfile.v0"

// state is a stage's result so far: its layers, their extracted
// directories (bottom first, "" where not extracted yet), history and config.
type state struct {
	layers  []v1.Layer
	dirs    []string
	history []v1.History
	config  v1.ConfigFile
}

func (s *state) clone() *state {
	c := &state{
		layers:  append([]v1.Layer(nil), s.layers...),
		dirs:    append([]string(nil), s.dirs...),
		history: append([]v1.History(nil), s.history...),
		config:  *s.config.DeepCopy(),
	}
	return c
}

// build is one run of Config.Build.
type build struct {
	cfg     *Config
	mu      sync.Mutex     // guards results
	results map[int]*state // finished stages, by index; read-only once set
	started time.Time
	nextID  atomic.Int64
	cache   buildCache
	fetches fetcher     // ADD <url> downloads
	mounts  mountsState // RUN --mount's directory (mounts.go)
	// context is Config.Context, or ContextDir opened by Build (nil
	// without a context); named holds the --build-context directories,
	// opened by Build (contexts.go).
	context *copier.Root
	named   map[string]*copier.Root
}

// Build executes plan and returns the target stage's image. The image's
// layers are in the store already; the image itself is not (the caller
// decides where it goes).
func (c *Config) Build(ctx context.Context, plan *planner.Plan) (v1.Image, error) {
	if c.Store == nil || c.Snapshots == nil {
		return nil, errors.New("executor: Store and Snapshots are required")
	}
	b := &build{cfg: c, results: make(map[int]*state), started: time.Now().UTC()}
	if c.MountsDir != "" {
		release, err := b.holdMountsDir(ctx, c.MountsDir)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	b.fetches.tempDir = c.Store.TempDir
	closeContexts, err := b.openContexts()
	if err != nil {
		return nil, err
	}
	defer closeContexts()
	defer b.releaseMounts()
	defer b.fetches.cleanup()
	if err := b.runStages(ctx, plan.Stages); err != nil {
		return nil, err
	}
	target, _ := b.result(plan.Target.Index)
	return b.image(target, c.Labels)
}

// runStages runs the stages, each as soon as the stages it needs are done,
// at most Jobs at a time. The first failure cancels the others and is the
// error returned.
func (b *build) runStages(ctx context.Context, stages []*planner.Stage) error {
	jobs := b.cfg.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	done := make(map[int]chan struct{}, len(stages))
	for _, st := range stages {
		done[st.Index] = make(chan struct{})
	}
	slots := make(chan struct{}, jobs)
	var (
		mu       sync.Mutex
		firstErr error // the first stage's own failure, not a dependent's
	)
	fail := func(err error) error {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, st := range stages {
		g.Go(func() error {
			defer close(done[st.Index]) // after fail(), so dependents see the error first
			for _, d := range st.Deps {
				select {
				case <-done[d]:
				case <-gctx.Done():
					return gctx.Err()
				}
				if _, ok := b.result(d); !ok {
					return errDepFailed
				}
			}
			select {
			case slots <- struct{}{}:
			case <-gctx.Done():
				return gctx.Err()
			}
			defer func() { <-slots }()
			s, err := b.runStage(gctx, st)
			if err != nil {
				if gctx.Err() != nil && ctx.Err() == nil && errors.Is(err, context.Canceled) {
					return err // cancelled because another stage failed
				}
				return fail(err)
			}
			b.mu.Lock()
			b.results[st.Index] = s
			b.mu.Unlock()
			return nil
		})
	}
	err := g.Wait()
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case firstErr != nil:
		return firstErr
	}
	return err
}

// errDepFailed stops a stage whose dependency failed.
var errDepFailed = errors.New("a stage this one needs failed")

// result is a finished stage's state. Callers must not change it: clone it.
func (b *build) result(index int) (*state, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.results[index]
	return s, ok
}

func (b *build) emit(ev progress.Event) {
	if b.cfg.Progress == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	b.cfg.Progress(ev)
}

func (b *build) logger() *slog.Logger {
	if b.cfg.Logger != nil {
		return b.cfg.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// now is the time written into history entries and the image config.
func (b *build) now() time.Time {
	if b.cfg.SourceDateEpoch != nil {
		return b.cfg.SourceDateEpoch.UTC()
	}
	return b.started
}

// dirTime is the modification time of directories a step creates: fixed,
// so that unchanged inputs give the same layer.
func (b *build) dirTime() time.Time {
	if b.cfg.SourceDateEpoch != nil {
		return *b.cfg.SourceDateEpoch
	}
	return time.Unix(0, 0)
}

// stepName is the progress label BuildKit prints: "[builder 2/5] COPY . /app".
func stepName(st *planner.Stage, k, n int, text string) string {
	prefix := ""
	if st.Name != "" {
		prefix = st.Name + " "
	}
	return fmt.Sprintf("[%s%d/%d] %s", prefix, k, n, text)
}

func (b *build) runStage(ctx context.Context, st *planner.Stage) (*state, error) {
	n := 1
	for _, step := range st.Steps {
		if step.Kind != planner.StepMeta {
			n++
		}
	}
	s, err := b.baseState(ctx, st, stepName(st, 1, n, fromText(st)))
	if err != nil {
		return nil, err
	}
	key, err := b.stageKey(ctx, st)
	if err != nil {
		return nil, &StepError{Loc: st.Loc, Instruction: fromText(st), Err: err}
	}
	k := 1
	for i, step := range st.Steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if step.Kind == planner.StepMeta {
			if key, err = b.metaStep(ctx, st, i, s, step, key); err != nil {
				return nil, &StepError{Loc: step.Loc, Instruction: step.Instruction, Err: err}
			}
			s.config.Config = step.Config
			s.config.Author = step.Author
			continue
		}
		k++
		id := int(b.nextID.Add(1))
		name := stepName(st, k, n, step.Instruction)
		t0 := time.Now()
		sk, err := b.key(ctx, st, i, step, key)
		var hit bool
		if err == nil {
			hit, err = b.fromCache(st, s, step, sk)
		}
		if err != nil {
			b.emit(progress.Event{ID: id, Name: name, Status: progress.Failed, Message: err.Error()})
			return nil, &StepError{Loc: step.Loc, Instruction: step.Instruction, Err: err}
		}
		key = chainKey(step, key, sk.key)
		if hit {
			b.remember(sk)
			b.emit(progress.Event{ID: id, Name: name, Status: progress.Cached, Duration: time.Since(t0)})
			s.config.Config = step.Config
			s.config.Author = step.Author
			continue
		}
		b.emit(progress.Event{ID: id, Name: name, Status: progress.Started})
		b.explainMiss(st, sk, id, name)
		empty, err := b.runFSStep(ctx, s, step, id, name)
		if err != nil {
			b.emit(progress.Event{ID: id, Name: name, Status: progress.Failed, Message: err.Error(), Duration: time.Since(t0)})
			return nil, &StepError{Loc: step.Loc, Instruction: step.Instruction, Err: err}
		}
		b.emit(progress.Event{ID: id, Name: name, Status: progress.Done, Duration: time.Since(t0)})
		created := b.record(s, sk, empty, b.now())
		if !empty || !step.NoHistory {
			s.history = append(s.history, b.cachedHistory(step, empty, created))
		}
		s.config.Config = step.Config
		s.config.Author = step.Author
	}
	b.setFinalKey(st.Index, key)
	return s, nil
}

func fromText(st *planner.Stage) string {
	switch st.BaseKind {
	case planner.BaseImageRef:
		return "FROM " + st.BaseImage.Ref
	case planner.BaseStage:
		return fmt.Sprintf("FROM stage %d", st.BaseStage)
	case planner.BaseContext:
		return "FROM " + st.BaseContext
	}
	return "FROM scratch"
}

func (b *build) historyEntry(step *planner.Step, empty bool) v1.History {
	return v1.History{
		Created:    v1.Time{Time: b.now()},
		CreatedBy:  step.CreatedBy,
		Comment:    step.Comment,
		EmptyLayer: empty,
	}
}

// baseState is the state a stage starts from.
func (b *build) baseState(ctx context.Context, st *planner.Stage, name string) (*state, error) {
	id := int(b.nextID.Add(1))
	b.emit(progress.Event{ID: id, Name: name, Status: progress.Started})
	t0 := time.Now()
	var s *state
	var err error
	switch st.BaseKind {
	case planner.BaseScratch:
		s = &state{}
	case planner.BaseContext:
		s, err = b.contextState(ctx, st)
	case planner.BaseStage:
		prev, ok := b.result(st.BaseStage)
		if !ok {
			err = fmt.Errorf("stage %d has not been built", st.BaseStage)
			break
		}
		s = prev.clone()
	case planner.BaseImageRef:
		s, err = b.imageState(st.BaseImage)
	}
	if err != nil {
		b.emit(progress.Event{ID: id, Name: name, Status: progress.Failed, Message: err.Error()})
		return nil, &StepError{Loc: st.Loc, Instruction: fromText(st), Err: err}
	}
	s.config = *st.Config.DeepCopy()
	b.emit(progress.Event{ID: id, Name: name, Status: progress.Done, Duration: time.Since(t0)})
	return s, nil
}

// imageState loads an image of the store as a starting state.
func (b *build) imageState(bi *planner.BaseImage) (*state, error) {
	img, _, err := b.cfg.Store.Image(bi.Digest.String())
	if err != nil {
		return nil, fmt.Errorf("load base image %q: %w", bi.Ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("read layers of %q: %w", bi.Ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config of %q: %w", bi.Ref, err)
	}
	if len(cf.RootFS.DiffIDs) != len(layers) {
		return nil, fmt.Errorf("image %q has %d layers but %d diff_ids", bi.Ref, len(layers), len(cf.RootFS.DiffIDs))
	}
	for i, l := range layers {
		// The config's diff_ids, not a decompression of every layer:
		// extraction checks the content against them anyway.
		layers[i] = knownDiffID{Layer: l, diffID: cf.RootFS.DiffIDs[i]}
	}
	s := &state{layers: layers, dirs: make([]string, len(layers)), config: *cf.DeepCopy()}
	s.history = append(s.history, cf.History...)
	if len(s.history) == 0 {
		// An image without history: one entry per layer keeps them paired.
		for range layers {
			s.history = append(s.history, v1.History{Created: cf.Created})
		}
	}
	return s, nil
}

// lowers extracts what is not extracted yet and returns the layer
// directories top-most first, as overlay's lowerdir lists them.
func (b *build) lowers(ctx context.Context, s *state) ([]string, error) {
	out := make([]string, 0, len(s.layers))
	for i := len(s.layers) - 1; i >= 0; i-- {
		if s.dirs[i] == "" {
			l := s.layers[i]
			diffID, err := l.DiffID()
			if err != nil {
				return nil, fmt.Errorf("read layer diffID: %w", err)
			}
			dir, err := b.cfg.Snapshots.Extract(ctx, diffID, uncompressed(l))
			if err != nil {
				return nil, err // snapshot names the layer
			}
			s.dirs[i] = dir
		}
		out = append(out, s.dirs[i])
	}
	return out, nil
}

// errEmptyDiff stops a layer write whose diff has no entries.
var errEmptyDiff = errors.New("empty diff")

// runFSStep runs a step that may change the filesystem on a snapshot mount
// of s, and appends the resulting layer to s. It reports whether the step
// changed nothing (no layer, an empty_layer history entry).
func (b *build) runFSStep(ctx context.Context, s *state, step *planner.Step, id int, name string) (bool, error) {
	var lowers []string // --link: the layer is made on an empty root
	if !linked(step) {
		var err error
		if lowers, err = b.lowers(ctx, s); err != nil {
			return false, err
		}
	}
	m, err := b.cfg.Snapshots.Mount(ctx, lowers)
	if err != nil {
		return false, err
	}
	committed := false
	defer func() {
		if !committed {
			if err := m.Release(); err != nil {
				b.logger().Warn("release mount", "err", err)
			}
		}
	}()
	switch step.Kind {
	case planner.StepCopy:
		err = b.copyStep(ctx, m.Dir, step)
	case planner.StepWorkdir:
		err = b.workdirStep(m.Dir, step)
	case planner.StepRun:
		err = b.runStep(ctx, m.Dir, step, id, name)
	default:
		err = fmt.Errorf("unknown step kind %d", step.Kind)
	}
	if err != nil {
		return false, err
	}
	upper, err := m.Changes(ctx)
	if err != nil {
		return false, err
	}
	empty, err := snapshot.IsEmpty(upper)
	if err != nil {
		return false, fmt.Errorf("read upper dir: %w", err)
	}
	if empty {
		return true, nil
	}
	layer, err := b.cfg.Store.WriteLayer(ctx, func(w io.Writer) error {
		n, err := snapshot.WriteDiff(ctx, w, upper, snapshot.DiffOptions{SourceDateEpoch: b.cfg.SourceDateEpoch, Lowers: lowers})
		if err == nil && n == 0 {
			return errEmptyDiff // the store then keeps nothing
		}
		return err
	})
	if errors.Is(err, errEmptyDiff) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("write layer: %w", err)
	}
	diffID, err := layer.DiffID()
	if err != nil {
		return false, err
	}
	dir, err := b.cfg.Snapshots.Commit(m, diffID)
	if err != nil {
		return false, fmt.Errorf("commit snapshot: %w", err)
	}
	committed = true
	s.layers = append(s.layers, layer)
	s.dirs = append(s.dirs, dir)
	return false, nil
}
