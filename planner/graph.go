package planner

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mybuild/mybuild/parser"
)

// stageState is a stage of the Dockerfile while it is planned.
type stageState struct {
	src      *parser.Stage
	index    int
	name     string // lower-cased, "" when unnamed
	baseName string // FROM, expanded with the global args
	platform string // FROM --platform, expanded
	base     *stageState
	scratch  bool
	named    string // FROM a --build-context directory
	image    *BaseImage
	cmds     []*command

	// deps are the stages the commands read from (COPY --from,
	// RUN --mount=from=), each once, with the first command naming it.
	deps []stageDep

	reachable  bool
	triggered  bool // ONBUILD triggers of the base collected
	dispatched bool
	out        *Stage
	final      *runState // the state after the last step
}

type stageDep struct {
	stage *stageState
	cmd   *command
}

// label names the stage in messages: its name, or "stage-N".
func (s *stageState) label() string {
	if s.name != "" {
		return s.name
	}
	return fmt.Sprintf("stage-%d", s.index)
}

// fromText is the FROM line for error messages.
func (s *stageState) fromText() string {
	if s.src.Original != "" {
		return s.src.Original
	}
	t := "FROM "
	if s.src.Platform != "" {
		t += "--platform=" + s.src.Platform + " "
	}
	t += s.src.BaseName
	if s.src.Name != "" {
		t += " AS " + s.src.Name
	}
	return t
}

// command is an instruction of a stage with the sources it reads from.
type command struct {
	ins     parser.Instruction
	onbuild bool      // an ONBUILD trigger of the stage's base
	from    *source   // COPY --from
	mounts  []*source // RUN: per --mount, nil when it names no from=
}

type sourceKind int

const (
	srcStage sourceKind = iota
	srcImage
	srcScratch
	srcNamed // a --build-context directory
)

// source is what COPY --from or RUN --mount=from= names.
type source struct {
	kind  sourceKind
	name  string // as written
	stage *stageState
	image *BaseImage
}

// setupStages expands every FROM with the global args and links stages to
// the earlier stages they are based on.
func (p *planner) setupStages() error {
	first := map[string]*parser.Stage{}
	for i, st := range p.df.Stages {
		s := &stageState{src: st, index: i, name: strings.ToLower(st.Name)}
		if s.name != "" {
			if prev, ok := first[s.name]; ok {
				return p.errAtStage(s, "duplicate stage name %q, stage names should be unique (first defined on line %d)", s.name, prev.Loc.Line)
			}
			first[s.name] = st
		}
		name, err := p.expand(st.BaseName, p.global.slice())
		if err != nil {
			return p.errAtStage(s, "%s", errMsg(err))
		}
		if name == "" {
			return p.errAtStage(s, "base name (%s) should not be blank", st.BaseName)
		}
		s.baseName = name
		if st.Platform != "" {
			v, err := p.expand(st.Platform, p.global.slice())
			if err != nil {
				return p.errAtStage(s, "expand platform %s: %s", st.Platform, errMsg(err))
			}
			if v == "" {
				return p.errAtStage(s, "empty platform value from expression %s", st.Platform)
			}
			if _, err := parsePlatform(v); err != nil {
				return p.errAtStage(s, "parse platform %s: %s", st.Platform, err)
			}
			s.platform = v
		}
		// FROM sees only the stages defined before it.
		if p.localContext(name) {
			s.named = name
		} else if slices.Contains(p.opts.ImageContexts, name) {
			// an image, resolved below
		} else if b, ok := p.byName[strings.ToLower(name)]; ok {
			s.base = b
		} else if strings.EqualFold(name, "scratch") {
			s.scratch = true
		}
		if s.name != "" {
			p.byName[s.name] = s
		}
		for _, ins := range st.Commands {
			s.cmds = append(s.cmds, &command{ins: ins})
		}
		p.stages = append(p.stages, s)
	}
	return nil
}

// resolveTarget finds the --target stage, or the last one.
func (p *planner) resolveTarget() error {
	if p.opts.Target == "" {
		p.target = p.stages[len(p.stages)-1]
		return nil
	}
	s, ok := p.byName[strings.ToLower(p.opts.Target)]
	if !ok {
		return &parser.Error{Loc: parser.Location{File: p.df.File}, Msg: fmt.Sprintf("target stage %q could not be found", p.opts.Target)}
	}
	p.target = s
	return nil
}

// buildGraph finds the sources of every command and rejects cycles.
func (p *planner) buildGraph() error {
	for _, s := range p.stages {
		for _, c := range s.cmds {
			if err := p.linkSources(s, c); err != nil {
				return err
			}
		}
	}
	return p.checkCycles()
}

// linkSources resolves the stages or images command c reads from and
// records the stage dependencies of s.
func (p *planner) linkSources(s *stageState, c *command) error {
	switch ins := c.ins.(type) {
	case *parser.Copy:
		if ins.From == "" {
			return nil
		}
		v, err := p.expand(ins.From, nil)
		if err != nil {
			return p.errAt(ins, "%s", errMsg(err))
		}
		if v != ins.From {
			return p.errAt(ins, "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround")
		}
		src, err := p.lookupSource(ins.From, true)
		if err != nil {
			return p.errAt(ins, "%s", err)
		}
		c.from = src
		s.addDep(src, c)
	case *parser.Run:
		c.mounts = make([]*source, len(ins.Mounts))
		for i, m := range ins.Mounts {
			from, err := mountFrom(m)
			if err != nil {
				return p.errAt(ins, "%s", err)
			}
			if from == "" {
				continue
			}
			src, err := p.lookupSource(from, false)
			if err != nil {
				return p.errAt(ins, "%s", err)
			}
			c.mounts[i] = src
			s.addDep(src, c)
		}
	}
	return nil
}

func (s *stageState) addDep(src *source, c *command) {
	if src.kind != srcStage {
		return
	}
	for _, d := range s.deps {
		if d.stage == src.stage {
			return
		}
	}
	s.deps = append(s.deps, stageDep{stage: src.stage, cmd: c})
}

// lookupSource resolves a --from value: a stage index (COPY only), a stage
// name (any stage, earlier or not), "scratch", or else an image.
func (p *planner) lookupSource(name string, allowIndex bool) (*source, error) {
	if p.localContext(name) {
		return &source{kind: srcNamed, name: name}, nil
	}
	if slices.Contains(p.opts.ImageContexts, name) {
		return &source{kind: srcImage, name: name}, nil
	}
	if allowIndex {
		if i, err := strconv.Atoi(name); err == nil {
			if i < 0 || i >= len(p.stages) {
				return nil, fmt.Errorf("invalid stage index %d", i)
			}
			return &source{kind: srcStage, name: name, stage: p.stages[i]}, nil
		}
	}
	if s, ok := p.byName[strings.ToLower(name)]; ok {
		return &source{kind: srcStage, name: name, stage: s}, nil
	}
	if strings.EqualFold(name, "scratch") {
		return &source{kind: srcScratch, name: name}, nil
	}
	return &source{kind: srcImage, name: name}, nil
}

// checkCycles rejects stages that depend on themselves through COPY --from
// or RUN --mount=from=, naming the instruction that starts the cycle.
func (p *planner) checkCycles() error {
	visited := map[*stageState]bool{}
	onPath := map[*stageState]bool{}
	var visit func(s *stageState, path []*command) []*command
	visit = func(s *stageState, path []*command) []*command {
		if visited[s] {
			return nil
		}
		visited[s] = true
		onPath[s] = true
		for _, d := range s.deps {
			next := append(slices.Clip(path), d.cmd)
			if onPath[d.stage] {
				return next
			}
			if c := visit(d.stage, next); c != nil {
				return c
			}
		}
		onPath[s] = false
		return nil
	}
	for _, s := range p.stages {
		if path := visit(s, nil); path != nil {
			return p.errAt(path[0].ins, "circular dependency detected on stage: %s", s.label())
		}
	}
	return nil
}

// markReachable marks the stages the target needs.
func (p *planner) markReachable() {
	seen := map[*stageState]bool{}
	var mark func(s *stageState)
	mark = func(s *stageState) {
		if seen[s] {
			return
		}
		seen[s] = true
		s.reachable = true
		if s.base != nil {
			mark(s.base)
		}
		for _, d := range s.deps {
			mark(d.stage)
		}
	}
	mark(p.target)
}

// resolveReachable resolves the base images of the stages the target needs
// and turns the ONBUILD triggers of their bases into leading commands,
// repeating while triggers add dependencies.
func (p *planner) resolveReachable() error {
	for {
		p.markReachable()
		for _, s := range p.stages {
			if s.reachable {
				if err := p.resolveImages(s); err != nil {
					return err
				}
			}
		}
		more := false
		for _, s := range p.stages {
			if !s.reachable || s.triggered {
				continue
			}
			s.triggered = true
			added, err := p.addTriggers(s)
			if err != nil {
				return err
			}
			more = more || added
		}
		if !more {
			return nil
		}
	}
}

// resolveImages looks up the images stage s uses in opts.Bases.
func (p *planner) resolveImages(s *stageState) error {
	if s.base == nil && !s.scratch && s.named == "" && s.image == nil {
		img, err := p.lookupImage(s.baseName, s.src.Loc, s.platform)
		if err != nil {
			return p.errAtStage(s, "%s", err)
		}
		s.image = img
	}
	for _, c := range s.cmds {
		for _, src := range append([]*source{c.from}, c.mounts...) {
			if src == nil || src.kind != srcImage || src.image != nil {
				continue
			}
			img, err := p.lookupImage(src.name, c.ins.Location(), "")
			if err != nil {
				return p.errAt(c.ins, "%s", err)
			}
			src.image = img
		}
	}
	return nil
}

// lookupImage finds ref in opts.Bases, recording it for BaseRefs. In
// lenient mode a missing image is no error (and resolves to nil).
func (p *planner) lookupImage(ref string, loc parser.Location, plat string) (*BaseImage, error) {
	if !p.seen[ref] {
		p.seen[ref] = true
		p.refs = append(p.refs, BaseRef{Ref: ref, Loc: loc, Platform: plat})
	}
	img, ok := p.opts.Bases[ref]
	if !ok || img == nil {
		if p.lenient {
			return nil, nil
		}
		return nil, fmt.Errorf("base image %q not resolved", ref)
	}
	return img, nil
}

// addTriggers prepends to s the ONBUILD triggers of its base: those in the
// base image's config, and the ONBUILD instructions of a base stage. It
// reports whether the triggers read from other stages or images.
func (p *planner) addTriggers(s *stageState) (bool, error) {
	var triggers []string
	if s.image != nil {
		triggers = append(triggers, s.image.Config.Config.OnBuild...)
	}
	if s.base != nil {
		for _, c := range s.base.cmds {
			if ob, ok := c.ins.(*parser.Onbuild); ok {
				triggers = append(triggers, ob.Expression)
			}
		}
	}
	if len(triggers) == 0 {
		return false, nil
	}
	ins, err := parser.ParseTriggers(triggers, s.src.Loc)
	if err != nil {
		if pe, ok := err.(*parser.Error); ok {
			return false, pe
		}
		return false, p.errAtStage(s, "%s", err)
	}
	added := false
	cmds := make([]*command, 0, len(ins)+len(s.cmds))
	for _, in := range ins {
		c := &command{ins: in, onbuild: true}
		if err := p.linkSources(s, c); err != nil {
			return false, err
		}
		if c.from != nil {
			added = true
		}
		for _, m := range c.mounts {
			added = added || m != nil
		}
		cmds = append(cmds, c)
	}
	s.cmds = append(cmds, s.cmds...)
	return added, nil
}

// localContext reports whether name is a --build-context directory.
func (p *planner) localContext(name string) bool {
	return slices.Contains(p.opts.LocalContexts, name)
}
