package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/mybuild/mybuild/cache"
	"github.com/mybuild/mybuild/executor/copier"
	"github.com/mybuild/mybuild/executor/users"
	"github.com/mybuild/mybuild/planner"
)

// copyStep runs COPY or ADD into the mounted root.
func (b *build) copyStep(ctx context.Context, root string, step *planner.Step) error {
	c := step.Copy
	var local []string
	for _, s := range c.Sources {
		if !c.Add || !isURL(s) {
			local = append(local, s)
		}
	}
	o := copier.Options{
		Sources:  local,
		DestRoot: root,
		Dest:     c.Dest,
		Chmod:    c.Chmod,
		Add:      c.Add,
		Unpack:   c.Unpack,
		Excludes: c.Excludes,
		Parents:  c.Parents,
		DirTime:  b.dirTime(),
	}
	for _, h := range c.Heredocs {
		o.Heredocs = append(o.Heredocs, copier.Inline{Name: h.Name, Data: h.Data})
	}
	if c.Chown != "" {
		owner, err := users.LookupChown(root, c.Chown)
		if err != nil {
			return err
		}
		o.Owner = &copier.Owner{UID: owner.UID, GID: owner.GID}
	}
	if len(local) < len(c.Sources) {
		if err := b.copyURLs(ctx, c, o); err != nil {
			return err
		}
		if len(local)+len(c.Heredocs) == 0 {
			return nil
		}
	}
	switch {
	case c.From.Context:
		o.SrcRoot, o.Root = b.cfg.ContextDir, b.context
		o.Ignore = b.cfg.Ignore
	case c.From.Named != "":
		root, err := b.namedRoot(c.From.Named)
		if err != nil {
			return err
		}
		o.Root = root // owned by root in the image, as the build context
	default:
		src, release, err := b.sourceRoot(ctx, c.From)
		if err != nil {
			return err
		}
		defer release()
		o.SrcRoot = src
		o.KeepOwners = true // COPY --from keeps the source's owners, as BuildKit does
	}
	return copier.Copy(ctx, o)
}

// sourceRoot mounts, read-only, the filesystem of a stage or image that a
// COPY --from reads.
func (b *build) sourceRoot(ctx context.Context, from planner.CopySource) (string, func(), error) {
	if from.Named != "" {
		dir, err := b.namedDir(from.Named)
		return dir, func() {}, err
	}
	var s *state
	if from.Scratch {
		s = &state{}
	} else if from.Image != nil {
		var err error
		if s, err = b.imageState(from.Image); err != nil {
			return "", nil, err
		}
	} else {
		var ok bool
		if s, ok = b.result(from.Stage); !ok {
			return "", nil, fmt.Errorf("stage %d has not been built", from.Stage)
		}
		s = s.clone() // lowers() fills in extracted dirs; other stages may read it at once
	}
	lowers, err := b.lowers(ctx, s)
	if err != nil {
		return "", nil, err
	}
	m, err := b.cfg.Snapshots.MountReadOnly(ctx, lowers)
	if err != nil {
		return "", nil, err
	}
	return m.Dir, func() {
		if err := m.Release(); err != nil {
			b.logger().Warn("release mount", "err", err)
		}
	}, nil
}

// workdirStep creates the WORKDIR directory, owned by the stage's USER as
// BuildKit does, when it does not exist yet.
func (b *build) workdirStep(root string, step *planner.Step) error {
	dir := path.Clean("/" + step.Workdir)
	uid, gid := 0, 0
	if u := step.Config.User; u != "" {
		owner, err := users.Lookup(root, u)
		if err != nil {
			return err
		}
		uid, gid = owner.UID, owner.GID
	}
	// Walk down from the root, creating what is missing; each component is
	// resolved inside root so a symlink in the image cannot lead out.
	var created []string
	var parent string
	var parentInfo os.FileInfo
	cur := "/"
	for _, part := range strings.Split(strings.TrimPrefix(dir, "/"), "/") {
		if part == "" {
			continue
		}
		prev := cur
		cur = path.Join(cur, part)
		p, err := securejoin.SecureJoin(root, cur)
		if err != nil {
			return fmt.Errorf("resolve %s: %w", cur, err)
		}
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return fmt.Errorf("mkdir %s: not a directory", cur)
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("stat %s: %w", cur, err)
		}
		if parentInfo == nil {
			if parent, err = securejoin.SecureJoin(root, prev); err != nil {
				return fmt.Errorf("resolve %s: %w", prev, err)
			}
			if parentInfo, err = os.Stat(parent); err != nil {
				return fmt.Errorf("stat %s: %w", prev, err)
			}
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", cur, err)
		}
		if err := os.Chmod(p, 0o755); err != nil { // not subject to umask
			return fmt.Errorf("chmod %s: %w", cur, err)
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", cur, err)
		}
		created = append(created, p)
	}
	// Fixed times, deepest first, and the existing parent's time put back:
	// the layer of an unchanged WORKDIR is then the same on every build.
	t := b.dirTime()
	for i := len(created) - 1; i >= 0; i-- {
		if err := os.Chtimes(created[i], t, t); err != nil {
			return fmt.Errorf("set directory times: %w", err)
		}
	}
	if parentInfo != nil && parent != filepath.Clean(root) {
		mt := parentInfo.ModTime()
		if err := os.Chtimes(parent, mt, mt); err != nil {
			return fmt.Errorf("set directory times: %w", err)
		}
	}
	return nil
}

// inputLinked is the cache input that stands for the parent of a COPY
// --link step: there is none, the layer is made on an empty root.
const inputLinked = "linked (no parent)"

// linked reports whether step is a COPY or ADD --link, whose layer is made
// by copying into an empty root and so does not depend on the layers below.
// Like BuildKit, which only merges the layer when the copy has no
// --chmod, a --link with --chmod is an ordinary copy.
func linked(step *planner.Step) bool {
	return step.Kind == planner.StepCopy && step.Copy != nil && step.Copy.Link && step.Copy.Chmod == ""
}

// chainKey is the key the steps after step build on. A linked step's own
// key leaves the parent out, so that its result is found whatever is below
// it; the steps after it still depend on both.
func chainKey(step *planner.Step, parent, own cache.Key) cache.Key {
	if !linked(step) {
		return own
	}
	return cache.NewKey([]cache.Input{
		{Name: cache.InputParent, Digest: string(parent)},
		{Name: inputLinked, Digest: string(own)},
	})
}
