package planner

import (
	"fmt"

	"github.com/mybuild/mybuild/parser"
)

// planner holds the state of one New or BaseRefs call.
type planner struct {
	df   *parser.Dockerfile
	opts Options
	exp  *parser.Expander
	plat platform
	// global are the args usable in FROM: platform args, then meta ARGs.
	global envList
	// declared are the arg names an ARG declared (meta or in a planned stage).
	declared map[string]bool
	stages   []*stageState
	byName   map[string]*stageState
	target   *stageState
	// lenient is set by BaseRefs: an image missing from opts.Bases is no
	// error.
	lenient bool
	// refs are the images the needed stages use, each once (seen).
	refs []BaseRef
	seen map[string]bool
}

// New plans the build of df: the stages opts.Target needs, in dependency
// order, each instruction expanded and its effect on the image config and
// history computed the way BuildKit's Dockerfile frontend does. Every base
// image the plan uses must be in opts.Bases (see BaseRefs). Errors are
// *parser.Error values naming the Dockerfile line.
func New(df *parser.Dockerfile, opts Options) (*Plan, error) {
	p, err := newPlanner(df, opts, false)
	if err != nil {
		return nil, err
	}
	if err := p.resolve(); err != nil {
		return nil, err
	}
	plan := &Plan{}
	for _, s := range p.stages {
		if !s.reachable {
			continue
		}
		st, err := p.dispatchStage(s)
		if err != nil {
			return nil, err
		}
		plan.Stages = append(plan.Stages, st)
	}
	plan.Target = p.target.out
	if w := p.unusedArgsWarning(); w != "" {
		plan.Warnings = append(plan.Warnings, w)
	}
	return plan, nil
}

// BaseRefs lists the image references (FROM <image>, COPY --from=<image>,
// RUN --mount=from=<image>) that the stages needed for opts.Target use,
// after global ARG expansion, in Dockerfile order. "scratch" and stage
// names are not images.
//
// ONBUILD triggers of a base image can need further images or stages; they
// are only known once that image is in opts.Bases. A caller resolves the
// returned references into opts.Bases and calls BaseRefs again until it
// returns nothing new.
func BaseRefs(df *parser.Dockerfile, opts Options) ([]BaseRef, error) {
	p, err := newPlanner(df, opts, true)
	if err != nil {
		return nil, err
	}
	if err := p.resolve(); err != nil {
		return nil, err
	}
	return p.refs, nil
}

func newPlanner(df *parser.Dockerfile, opts Options, lenient bool) (*planner, error) {
	p := &planner{
		df:       df,
		opts:     opts,
		declared: map[string]bool{},
		byName:   map[string]*stageState{},
		lenient:  lenient,
		seen:     map[string]bool{},
	}
	if len(df.Stages) == 0 {
		return nil, &parser.Error{Loc: parser.Location{File: df.File}, Msg: "dockerfile contains no stages to build"}
	}
	esc := df.Escape
	if esc == 0 {
		esc = '\\'
	}
	p.exp = parser.NewExpander(esc)
	plat, err := parsePlatform(opts.Platform)
	if err != nil {
		return nil, &parser.Error{Loc: parser.Location{File: df.File}, Msg: err.Error()}
	}
	p.plat = plat
	target := opts.Target
	if target == "" {
		target = df.Stages[len(df.Stages)-1].Name
	}
	p.global = defaultArgs(plat, opts.BuildArgs, target)
	if err := p.globalArgs(); err != nil {
		return nil, err
	}
	return p, nil
}

// resolve sets up the stages, finds the target, builds the dependency
// graph and resolves the bases and ONBUILD triggers of the stages the
// target needs.
func (p *planner) resolve() error {
	if err := p.setupStages(); err != nil {
		return err
	}
	if err := p.resolveTarget(); err != nil {
		return err
	}
	if err := p.buildGraph(); err != nil {
		return err
	}
	return p.resolveReachable()
}

// errAt builds a *parser.Error located at instruction ins.
func (p *planner) errAt(ins parser.Instruction, format string, args ...any) *parser.Error {
	return &parser.Error{Loc: ins.Location(), Msg: fmt.Sprintf(format, args...), Source: ins.Original()}
}

// errAtStage builds a *parser.Error located at a stage's FROM line.
func (p *planner) errAtStage(s *stageState, format string, args ...any) *parser.Error {
	return &parser.Error{Loc: s.src.Loc, Msg: fmt.Sprintf(format, args...), Source: s.fromText()}
}
