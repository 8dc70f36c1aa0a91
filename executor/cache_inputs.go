package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mybuild/mybuild/cache"
	"github.com/mybuild/mybuild/executor/copier"
	"github.com/mybuild/mybuild/planner"
)

// instruction is the canonical encoding of a step's expanded instruction:
// everything that decides its effect but its sources' content, its
// environment and its location.
type instruction struct {
	Kind      planner.StepKind
	OnBuild   bool
	CreatedBy string
	Comment   string
	NoHistory bool
	Config    v1.Config
	Author    string
	Workdir   string
	Copy      *planner.CopyStep `json:",omitempty"` // From.Image enters as the source input
	Run       *planner.RunStep  `json:",omitempty"` // without ProxyEnv, as in BuildKit
	Network   string            // a RUN's effective network
	// ExtraHosts are a RUN's --add-host entries, in BuildKit's exec key.
	ExtraHosts []HostEntry `json:",omitempty"`
}

// key computes the key of step (the index-th of stage st) over parent.
func (b *build) key(ctx context.Context, st *planner.Stage, index int, step *planner.Step, parent cache.Key) (stepKey, error) {
	sk := stepKey{pos: fmt.Sprintf("%s\x00%s\x00%d\x00%s\x00%d", b.cfg.ContextDir, step.Loc.File, st.Index, st.Name, index)}
	name := cache.InputParent
	if index == 0 {
		switch st.BaseKind {
		case planner.BaseImageRef:
			name = cache.InputBaseImage
		case planner.BaseStage:
			name = cache.InputBaseStage
		default:
			name = "stage base"
		}
	}
	if linked(step) {
		// COPY --link: the layer does not depend on what is below it.
		name, parent = inputLinked, ""
	}
	sk.inputs = append(sk.inputs, cache.Input{Name: name, Digest: string(parent)})
	ins := instruction{
		Kind: step.Kind, OnBuild: step.OnBuild, CreatedBy: step.CreatedBy, Comment: step.Comment,
		NoHistory: step.NoHistory, Config: step.Config, Author: step.Author, Workdir: step.Workdir,
	}
	if step.Copy != nil {
		c := *step.Copy
		c.From.Image = nil
		ins.Copy = &c
	}
	if step.Run != nil {
		r := *step.Run
		r.ProxyEnv = nil
		ins.Run = &r
		if ins.Network = r.Network; r.Network == "" || r.Network == "default" {
			ins.Network = b.cfg.Network
		}
		ins.ExtraHosts = b.cfg.ExtraHosts
	}
	if step.Kind != planner.StepMeta {
		// The config before and after a step that changes files is the
		// parent's: leaving it out names the base, not the instruction,
		// when the base image changed.
		ins.Config, ins.Author = v1.Config{}, ""
	}
	d, err := cache.DigestJSON(ins)
	if err != nil {
		return sk, fmt.Errorf("compute cache key: %w", err)
	}
	// The instruction comes last, so that Explain names a build arg or a
	// file rather than the created_by text that shows them.
	if step.Kind == planner.StepRun {
		sk.inputs = append(sk.inputs, runInputs(step)...)
		in, err := b.mountInputs(ctx, step.Run)
		if err != nil {
			return sk, err
		}
		sk.inputs = append(sk.inputs, in...)
	}
	if step.Kind == planner.StepCopy {
		in, err := b.copyInputs(ctx, step.Copy)
		if err != nil {
			return sk, err
		}
		sk.inputs = append(sk.inputs, in...)
	}
	sk.inputs = append(sk.inputs, cache.Input{Name: cache.InputInstruction, Digest: d})
	sk.key = cache.NewKey(sk.inputs)
	return sk, nil
}

// runInputs are the build args and the environment a RUN sees.
func runInputs(step *planner.Step) []cache.Input {
	var in []cache.Input
	args := map[string]bool{}
	for _, a := range step.UsedArgs {
		k, _, _ := strings.Cut(a, "=")
		args[k] = true
		in = append(in, cache.Input{Name: cache.ArgPrefix + k, Digest: cache.Digest([]byte(a))})
	}
	for _, e := range step.Env {
		k, _, _ := strings.Cut(e, "=")
		if args[k] {
			k = "(arg) " + k
		}
		in = append(in, cache.Input{Name: cache.EnvPrefix + k, Digest: cache.Digest([]byte(e))})
	}
	return in
}

// mountInputs are what the bind mounts of a RUN show: the context
// content below their source, or the stage or image they come from; and
// the from= of a cache mount. Cache and tmpfs mounts are scratch space,
// and secrets and ssh enter the key by id only (in the instruction), as
// in BuildKit: their content never does.
func (b *build) mountInputs(ctx context.Context, r *planner.RunStep) ([]cache.Input, error) {
	var in []cache.Input
	for _, m := range r.MountSpecs {
		if m.Spec == nil {
			continue
		}
		bind := m.Spec.Type == "" || m.Spec.Type == "bind"
		seeded := m.Spec.Type == "cache" && !m.From.Scratch && !m.From.Context
		if !bind && !seeded {
			continue
		}
		src := m.Spec.Source
		if src == "" {
			src = "."
		}
		c := &planner.CopyStep{From: m.From, Sources: []string{src}}
		got, err := b.copyInputs(ctx, c)
		if err != nil {
			return nil, err
		}
		for i := range got {
			got[i].Name = "mount " + m.Spec.Target + ": " + got[i].Name
		}
		in = append(in, got...)
	}
	return in, nil
}

// copyInputs are what a COPY or ADD reads: the digests of the context
// entries it selects, or the stage or image it copies from.
func (b *build) copyInputs(ctx context.Context, c *planner.CopyStep) ([]cache.Input, error) {
	switch {
	case c.From.Context:
	case c.From.Named != "":
		return b.namedInputs(ctx, c)
	case c.From.Scratch:
		return []cache.Input{{Name: cache.InputSource, Digest: "scratch"}}, nil
	case c.From.Image != nil:
		return []cache.Input{{Name: cache.InputSource, Digest: c.From.Image.Digest.String()}}, nil
	default:
		return []cache.Input{{Name: cache.InputSource, Digest: string(b.finalKey(c.From.Stage))}}, nil
	}
	in, local, err := b.urlInputs(ctx, c)
	if err != nil || len(local) == 0 {
		return in, err
	}
	if b.cfg.ContextDir == "" {
		return nil, errors.New("hash sources: no build context")
	}
	stat := b.cacheState().stat
	o := copier.Options{SrcRoot: b.cfg.ContextDir, Root: b.context, Sources: local, Add: c.Add, Unpack: c.Unpack,
		Excludes: c.Excludes, Parents: c.Parents, Ignore: b.cfg.Ignore, Chmod: c.Chmod}
	sel, err := selectInputs(ctx, o, stat)
	if err != nil {
		return nil, err
	}
	in = append(in, sel...)
	if stat != nil {
		if err := stat.Save(); err != nil {
			b.logger().Warn("save stat cache", "err", err)
		}
	}
	return in, nil
}

// selectInputs digests every entry the copier would select with o, one
// input per entry (stat, when set, saves re-reading unchanged files).
func selectInputs(ctx context.Context, o copier.Options, stat *cache.StatCache) ([]cache.Input, error) {
	var in []cache.Input
	links := map[[2]uint64]string{} // hard links within a source, by dev/inode
	lastSource := -1
	err := copier.Select(ctx, o, func(e copier.Entry) error {
		if e.Source != lastSource {
			clear(links)
			lastSource = e.Source
		}
		desc, err := describe(ctx, stat, e, links)
		if err != nil {
			return err
		}
		in = append(in, cache.Input{Name: cache.FilePrefix + displayRel(e.Rel), Digest: cache.Digest([]byte(desc))})
		return nil
	})
	return in, err
}

func displayRel(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

// describe encodes what of a context entry a copy keeps: source index,
// type, mode, size, content digest, link target and hard link, never owner
// or times.
func describe(ctx context.Context, stat *cache.StatCache, e copier.Entry, links map[[2]uint64]string) (string, error) {
	fi := e.Info
	var sb strings.Builder
	sb.WriteString(strconv.Itoa(e.Source))
	sb.WriteString(" " + strconv.FormatUint(uint64(fi.Mode()), 8))
	switch {
	case fi.Mode().IsRegular():
		if id, n, ok := inode(fi); ok && n > 1 {
			if first, seen := links[id]; seen {
				sb.WriteString(" link " + first)
				return sb.String(), nil
			}
			links[id] = e.Rel
		}
		open := func() (io.ReadCloser, error) { return e.Open() }
		d, err := stat.FileDigest(ctx, e.Host, fi, open)
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", displayRel(e.Rel), unwrapPath(err))
		}
		sb.WriteString(" " + strconv.FormatInt(fi.Size(), 10) + " " + d)
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := e.Readlink()
		if err != nil {
			return "", fmt.Errorf("read link %s: %w", displayRel(e.Rel), unwrapPath(err))
		}
		sb.WriteString(" -> " + t)
	case fi.Mode()&(fs.ModeDevice|fs.ModeCharDevice) != 0:
		if r, ok := rdev(fi); ok {
			sb.WriteString(" dev " + strconv.FormatUint(r, 10))
		}
	}
	return sb.String(), nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
