// Package planner turns a parsed Dockerfile into a build plan: the stages
// the target needs, in dependency order, and for each stage its base and
// its steps with every word expanded, the image config after each step and
// the history entry BuildKit would write for it.
//
// The planner is pure: the Dockerfile, the resolved base images, the build
// args and the platform go in (see [Options]); a [Plan] comes out. It does
// no I/O. Its reference is BuildKit's Dockerfile frontend
// (dockerfile2llb): ARG scoping, the automatic platform args, which
// instructions expand variables, WORKDIR and COPY destination resolution,
// ONBUILD triggers and the created_by strings follow it. Errors are
// *parser.Error values that name the Dockerfile line.
//
// [BaseRefs] tells the caller which images to resolve before calling [New].
package planner
