package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mybuild/mybuild/cache"
	"github.com/mybuild/mybuild/executor/copier"
	"github.com/mybuild/mybuild/planner"
	"github.com/mybuild/mybuild/snapshot"
)

// openContexts opens the build context (unless Config.Context is it) and
// the --build-context directories, once for the whole build: every copy
// and cache key reads them through these descriptors. close closes what it
// opened.
func (b *build) openContexts() (close func(), err error) {
	var opened []*copier.Root
	close = func() {
		for _, r := range opened {
			r.Close()
		}
	}
	b.context = b.cfg.Context
	if b.context == nil && b.cfg.ContextDir != "" {
		if b.context, err = copier.OpenRoot(b.cfg.ContextDir); err != nil {
			return nil, fmt.Errorf("open build context: %w", err)
		}
		opened = append(opened, b.context)
	}
	b.named = make(map[string]*copier.Root, len(b.cfg.Contexts))
	for name, dir := range b.cfg.Contexts {
		r, err := copier.OpenRoot(dir)
		if err != nil {
			close()
			return nil, fmt.Errorf("open build context %q: %w", name, err)
		}
		opened = append(opened, r)
		b.named[name] = r
	}
	return close, nil
}

// namedRoot is a --build-context directory, as openContexts opened it.
func (b *build) namedRoot(name string) (*copier.Root, error) {
	if _, err := b.namedDir(name); err != nil {
		return nil, err
	}
	return b.named[name], nil
}

// namedDir is the host directory of a --build-context.
func (b *build) namedDir(name string) (string, error) {
	dir, ok := b.cfg.Contexts[name]
	if !ok {
		return "", fmt.Errorf("build context %q not given (--build-context %s=DIR)", name, name)
	}
	return dir, nil
}

// namedInputs are the cache inputs of a copy from a --build-context
// directory: the digests of the entries it selects.
func (b *build) namedInputs(ctx context.Context, c *planner.CopyStep) ([]cache.Input, error) {
	root, err := b.namedRoot(c.From.Named)
	if err != nil {
		return nil, err
	}
	in := []cache.Input{{Name: cache.InputSource, Digest: "build context " + c.From.Named}}
	o := copier.Options{Root: root, Sources: c.Sources, Excludes: c.Excludes, Parents: c.Parents, Chmod: c.Chmod}
	sel, err := selectInputs(ctx, o, nil)
	if err != nil {
		return nil, err
	}
	return append(in, sel...), nil
}

// contextDigest is one digest of all the files of a --build-context
// directory, the base of a stage FROM it.
func (b *build) contextDigest(ctx context.Context, name string) (string, error) {
	in, err := b.namedInputs(ctx, &planner.CopyStep{From: planner.CopySource{Named: name}, Sources: []string{"."}})
	if err != nil {
		return "", err
	}
	sort.SliceStable(in, func(i, j int) bool { return in[i].Name < in[j].Name })
	var sb strings.Builder
	for _, i := range in {
		sb.WriteString(i.Name + "\x00" + i.Digest + "\n")
	}
	return cache.Digest([]byte(sb.String())), nil
}

// contextState is the state of a stage FROM a --build-context directory:
// one layer holding the directory's files, owned by root.
func (b *build) contextState(ctx context.Context, st *planner.Stage) (*state, error) {
	root, err := b.namedRoot(st.BaseContext)
	if err != nil {
		return nil, err
	}
	m, err := b.cfg.Snapshots.Mount(ctx, nil)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			if err := m.Release(); err != nil {
				b.logger().Warn("release mount", "err", err)
			}
		}
	}()
	o := copier.Options{Root: root, Sources: []string{"."}, DestRoot: m.Dir, Dest: "/", DirTime: b.dirTime()}
	if err := copier.Copy(ctx, o); err != nil {
		return nil, err
	}
	upper, err := m.Changes(ctx)
	if err != nil {
		return nil, err
	}
	s := &state{}
	layer, err := b.cfg.Store.WriteLayer(ctx, func(w io.Writer) error {
		n, err := snapshot.WriteDiff(ctx, w, upper, snapshot.DiffOptions{SourceDateEpoch: b.cfg.SourceDateEpoch})
		if err == nil && n == 0 {
			return errEmptyDiff
		}
		return err
	})
	if errors.Is(err, errEmptyDiff) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	diffID, err := layer.DiffID()
	if err != nil {
		return nil, err
	}
	d, err := b.cfg.Snapshots.Commit(m, diffID)
	if err != nil {
		return nil, fmt.Errorf("commit snapshot: %w", err)
	}
	committed = true
	s.layers, s.dirs = []v1.Layer{layer}, []string{d}
	s.history = []v1.History{{Created: v1.Time{Time: b.now()}, CreatedBy: "FROM " + st.BaseContext, Comment: historyComment}}
	return s, nil
}
