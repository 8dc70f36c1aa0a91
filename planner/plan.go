package planner

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mybuild/mybuild/parser"
)

// Options is everything besides the Dockerfile that decides a plan. The zero
// value plans the last stage with no build args and no base images known.
type Options struct {
	// BuildArgs are --build-arg values. A nil value pointer means `--build-arg K`
	// without a value, i.e. take it from the environment (already resolved by cmd/).
	BuildArgs map[string]string
	// Target is the --target stage name (case-insensitive) or "" for the last stage.
	Target string
	// Bases maps a base image reference, exactly as it reads after ARG
	// expansion in FROM or COPY --from, to its resolved image. Use BaseRefs to
	// learn which references a plan needs.
	Bases map[string]*BaseImage
	// Platform is the build platform, "linux/amd64" style, used for the
	// automatic platform ARGs (TARGETPLATFORM, BUILDPLATFORM, ...).
	Platform string
}

// BaseImage is a resolved base image.
type BaseImage struct {
	Ref    string        // the reference as written in the Dockerfile (expanded)
	Digest v1.Hash       // manifest digest
	Config v1.ConfigFile // its config (Env, OnBuild, ... are inherited)
}

// BaseRef is an image reference the Dockerfile needs resolved before planning.
type BaseRef struct {
	Ref string
	Loc parser.Location
}

// Plan is a build plan: the stages the target needs, in an order where every
// stage comes after the stages it depends on.
type Plan struct {
	Stages []*Stage
	// Target is the stage whose result is the image (always the last of Stages).
	Target *Stage
	// Warnings are non-fatal findings, e.g. build args no stage consumed.
	Warnings []string
}

// BaseKind says what a stage starts from.
type BaseKind int

// Kinds of stage bases.
const (
	BaseScratch  BaseKind = iota // FROM scratch
	BaseImageRef                 // FROM an image
	BaseStage                    // FROM an earlier stage
)

// Stage is one planned stage.
type Stage struct {
	Index int    // position in the Dockerfile
	Name  string // lower-cased stage name, "" if unnamed
	Loc   parser.Location
	// Base is where the stage starts.
	BaseKind  BaseKind
	BaseImage *BaseImage // BaseImageRef
	BaseStage int        // BaseStage: index of that stage
	// Config is the image config the stage starts from (the base image's, or
	// the base stage's final one; empty with Os/Architecture set for scratch).
	Config v1.ConfigFile
	Steps  []*Step
	// Deps are the indexes of stages this one needs (FROM stage, COPY --from).
	Deps []int
}

// StepKind tells the executor what a step does.
type StepKind int

// Kinds of steps.
const (
	StepMeta    StepKind = iota // config change only (ENV, LABEL, CMD, ...): no layer
	StepCopy                    // COPY or ADD
	StepRun                     // RUN
	StepWorkdir                 // WORKDIR: creates the directory (a layer if it did not exist)
)

// Step is one instruction of a stage, expanded and ready to execute.
type Step struct {
	Kind StepKind
	Loc  parser.Location
	// Instruction is the source text (for progress: "[2/5] COPY . /app").
	Instruction string
	// CreatedBy is the history entry's created_by, as BuildKit writes it.
	CreatedBy string
	// Comment is the history comment ("buildkit.dockerfile.v0").
	Comment string
	// Config is the image config after this step. For StepMeta it is the only effect.
	Config v1.Config
	// Env is the environment a RUN sees (config Env plus the build args in
	// scope, as Docker exposes them); also the expansion environment.
	Env []string
	// UsedArgs are the build args (KEY=VALUE) in scope for this step, the
	// cache key's input (RUN sees all of them).
	UsedArgs []string

	Copy    *CopyStep // StepCopy
	Run     *RunStep  // StepRun
	Workdir string    // StepWorkdir: the absolute directory to create
}

// CopySource says where COPY/ADD reads from.
type CopySource struct {
	Context bool       // the build context
	Stage   int        // COPY --from=<stage>: its index (when !Context && Image == nil)
	Image   *BaseImage // COPY --from=<image>
}

// CopyStep is a COPY or ADD, expanded.
type CopyStep struct {
	Add      bool // ADD semantics (archives unpacked, URLs)
	From     CopySource
	Sources  []string // expanded source paths/patterns, relative to the source root
	Heredocs []parser.Heredoc
	// Dest is the destination, made absolute against WORKDIR; a trailing "/"
	// is kept because it means "a directory".
	Dest       string
	Chown      string // expanded --chown (user[:group], names or ids); "" = 0:0
	Chmod      string // --chmod, octal or symbolic
	Link       bool
	Parents    bool
	Excludes   []string
	Checksum   string
	Unpack     *bool
	KeepGitDir *bool
}

// RunStep is a RUN, expanded (the RUN issue executes it).
type RunStep struct {
	Args     []string // full argv (SHELL prepended for shell form)
	Heredocs []parser.Heredoc
	Mounts   []string
	Network  string
	Security string
	User     string // the USER in effect
	Workdir  string // the WORKDIR in effect ("/" by default)
}
