package planner

import (
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mybuild/mybuild/parser"
)

// Options is everything besides the Dockerfile that decides a plan. The zero
// value plans the last stage with no build args and no base images known.
type Options struct {
	// BuildArgs are --build-arg values. cmd/ resolves `--build-arg K`
	// without a value from its environment (and leaves K out when unset).
	BuildArgs map[string]string
	// Target is the --target stage name (case-insensitive) or "" for the last stage.
	Target string
	// Bases maps a base image reference, exactly as it reads after ARG
	// expansion in FROM (or as written in COPY --from, RUN
	// --mount=from=), to its resolved image. Use BaseRefs to
	// learn which references a plan needs.
	Bases map[string]*BaseImage
	// Platform is the build platform, "linux/amd64" style, used for the
	// automatic platform ARGs (TARGETPLATFORM, BUILDPLATFORM, ...).
	Platform string
	// LocalContexts are the names of the --build-context directories.
	// FROM and COPY --from a name among them read that directory; as in
	// BuildKit, it replaces a stage of the same name.
	LocalContexts []string
	// ImageContexts are the names of the --build-context images
	// (docker-image://, oci-layout://): FROM and COPY --from such a name
	// use the image, which cmd/ resolves into Bases under that name, in
	// place of a stage of the same name.
	ImageContexts []string
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
	Loc parser.Location // the FROM, or the instruction reading from the image
	// Platform is the FROM --platform value, expanded; "" for the build's
	// platform.
	Platform string
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
	BaseContext                  // FROM a --build-context directory: its files, no config
)

// Stage is one planned stage.
type Stage struct {
	Index int    // position in the Dockerfile
	Name  string // lower-cased stage name, "" if unnamed
	Loc   parser.Location
	// Platform is the FROM --platform value, expanded; "" when not given.
	Platform string
	// Base is where the stage starts.
	BaseKind  BaseKind
	BaseImage *BaseImage // BaseImageRef
	BaseStage int        // BaseStage: index of that stage
	// BaseContext is the name of the --build-context directory (BaseContext).
	BaseContext string
	// Config is the image config the stage starts from, as BuildKit sets it
	// up: the base image's (only the fields BuildKit's image type has, no
	// created time), the base stage's final one, or for scratch one with
	// Os/Architecture/Variant of the platform, RootFS type "layers" and
	// WorkingDir "/". PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	// is added to Env when the base has no PATH; OnBuild is cleared (the
	// base's triggers are the stage's first steps). For a BaseStage,
	// History and RootFS are left empty: the built base stage has them.
	Config v1.ConfigFile
	Steps  []*Step
	// Deps are the indexes of stages this one needs (FROM stage, COPY
	// --from, RUN --mount=from=), ascending.
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

// String returns the kind's name: "meta", "copy", "run" or "workdir".
func (k StepKind) String() string {
	switch k {
	case StepMeta:
		return "meta"
	case StepCopy:
		return "copy"
	case StepRun:
		return "run"
	case StepWorkdir:
		return "workdir"
	}
	return "StepKind(" + strconv.Itoa(int(k)) + ")"
}

// Step is one instruction of a stage, expanded and ready to execute.
type Step struct {
	Kind StepKind
	// Loc is the instruction's location; for an ONBUILD trigger, the FROM
	// of the stage that runs it.
	Loc parser.Location
	// Instruction is the source text (for progress: "[2/5] COPY . /app");
	// "ONBUILD " precedes the text of a trigger.
	Instruction string
	// OnBuild is set on the steps that are ONBUILD triggers of the base.
	OnBuild bool
	// CreatedBy is the history entry's created_by, as BuildKit writes it.
	CreatedBy string
	// Comment is the history comment ("buildkit.dockerfile.v0").
	Comment string
	// NoHistory is set when the step adds no history entry (ONBUILD:
	// BuildKit records none).
	NoHistory bool
	// Config is the image config after this step. For StepMeta it is the only effect.
	Config v1.Config
	// Author is the config file's author after this step (MAINTAINER sets it).
	Author string
	// Env is the environment the step starts with, as BuildKit's build
	// state has it: the config Env and the values of the ARGs in scope,
	// each key at the place it was last set (so an ARG after an ENV of the
	// same name wins here, though not in Config.Env). It is what a RUN
	// sees and what the step's words were expanded with.
	Env []string
	// UsedArgs are the build args (KEY=VALUE) in scope for this step, the
	// cache key's input (RUN sees all of them). As in BuildKit's RUN
	// history, a value comes from Env when the key is set there, so an
	// ARG declared without a value reads "KEY=".
	UsedArgs []string

	Copy    *CopyStep // StepCopy
	Run     *RunStep  // StepRun
	Workdir string    // StepWorkdir: the absolute directory to create
}

// CopySource says where COPY/ADD (or a RUN mount) reads from.
type CopySource struct {
	Context bool       // the build context
	Stage   int        // COPY --from=<stage>: its index (when !Context && !Scratch && Image == nil)
	Image   *BaseImage // COPY --from=<image>
	Scratch bool       // COPY --from=scratch, or a cache mount without from=: an empty tree
	// Named is the --build-context directory read, by name ("" for none).
	Named string `json:",omitempty"`
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
	Chmod      string // expanded --chmod, octal or symbolic
	Link       bool
	Parents    bool
	Excludes   []string // --exclude patterns, as written (BuildKit does not expand them)
	Checksum   string   // ADD --checksum, expanded
	Unpack     *bool
	KeepGitDir *bool
}

// RunStep is a RUN, expanded (the RUN issue executes it).
type RunStep struct {
	// Args is the full argv (SHELL prepended for shell form). A RUN that is
	// only a heredoc runs the heredoc's text as the command; with a "#!"
	// first line it runs "/dev/pipes/NAME" instead (see Script).
	Args     []string
	Heredocs []parser.Heredoc
	// Script, when set, is a heredoc the executor must provide as the
	// read-only file /dev/pipes/<Script.Name> (mode 0755) that Args runs.
	Script *parser.Heredoc
	// Mounts are the raw --mount values as written; MountSpecs the same
	// mounts decoded, with their values expanded, and their sources.
	Mounts     []string
	MountSpecs []RunMount
	Devices    []string // raw --device values
	Network    string
	Security   string
	User       string // the USER in effect
	Workdir    string // the WORKDIR in effect ("/" by default)
	// ProxyEnv are the proxy variables (HTTP_PROXY and http_proxy, ...)
	// taken from build args, which BuildKit adds to a RUN's environment
	// without making them part of the cache key or the history.
	ProxyEnv []string
}

// RunMount is one RUN --mount.
type RunMount struct {
	Spec *parser.Mount
	// From is what the mount shows: the stage or image named by from=;
	// without from=, the build context (bind) or an empty tree (cache).
	From CopySource
}
