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

	"github.com/mybuild/mybuild/executor/copier"
	"github.com/mybuild/mybuild/executor/users"
	"github.com/mybuild/mybuild/planner"
)

// copyStep runs COPY or ADD into the mounted root.
func (b *build) copyStep(ctx context.Context, root string, step *planner.Step) error {
	c := step.Copy
	o := copier.Options{
		Sources:  c.Sources,
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
	switch {
	case c.From.Context:
		o.SrcRoot = b.cfg.ContextDir
		o.Ignore = b.cfg.Ignore
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
