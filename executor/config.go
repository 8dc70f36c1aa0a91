package executor

import (
	"log/slog"
	"time"

	"github.com/moby/patternmatcher"

	"github.com/mybuild/mybuild/executor/copier"
	"github.com/mybuild/mybuild/executor/sandbox"
	"github.com/mybuild/mybuild/internal/progress"
	"github.com/mybuild/mybuild/internal/store"
	"github.com/mybuild/mybuild/snapshot"
)

// Config configures a build. Store and Snapshots are required; every other
// zero value works (no context, no ignore file, progress discarded, build
// time from the clock, no extra labels).
type Config struct {
	Store     *store.Store
	Snapshots *snapshot.Store
	// ContextDir is the build context directory.
	ContextDir string
	// Context is ContextDir opened once (copier.OpenRoot) by the caller,
	// before it read anything of it (the Dockerfile, .dockerignore): COPY,
	// ADD and cache keys read it, so that a path to the context swapped
	// for a symbolic link meanwhile changes nothing. Nil: Build opens
	// ContextDir when it starts.
	Context *copier.Root
	// Ignore holds the context's .dockerignore patterns (nil: none).
	Ignore *patternmatcher.PatternMatcher
	// FetchedContext says that ContextDir was fetched for this build alone
	// (a Git or http(s) context): no stat cache is kept for a directory
	// that is never seen again.
	FetchedContext bool
	// Progress receives step events.
	Progress progress.Sink
	// SourceDateEpoch, when set, is the time of every history entry, of the
	// image, and the upper bound of every file time in the layers built.
	SourceDateEpoch *time.Time
	// Labels are --label values, added to the target image's config.
	Labels map[string]string
	// Network is the default network mode of RUN steps: "host" (or
	// empty) or "none"; RUN --network overrides it.
	Network string
	// Limits are the resource limits (--memory, --cpus, --pids-limit) of
	// each RUN step's processes; the zero value sets none.
	Limits sandbox.Limits
	// Runtime executes RUN steps' sandboxes (nil: the built-in one).
	Runtime sandbox.Runtime
	// AllowInsecure is the security.insecure entitlement (--allow
	// security.insecure): without it, RUN --security=insecure fails.
	AllowInsecure bool
	// ExtraHosts are --add-host entries, added to the /etc/hosts of every
	// RUN step (and, as in BuildKit, part of its cache key).
	ExtraHosts []HostEntry
	// Jobs is how many stages may run at once (0: one per CPU).
	Jobs int
	// Logger receives diagnostics (nil: discarded).
	Logger *slog.Logger
	// Cache is the step cache (zero: none, every step runs).
	Cache CacheConfig
	// Contexts are the --build-context directories, by name (the
	// planner's Options.LocalContexts).
	Contexts map[string]string
	// MountsDir keeps what RUN --mount needs beyond a step: the cache
	// mounts (under CacheMountsDir), which outlive the build, and
	// throwaway copies. Builds share it; one that starts while no other
	// uses it removes what dead ones left (see [MountsLeftovers]).
	// Empty: a temporary directory, removed after the build.
	MountsDir string
	// Secrets are what RUN --mount=type=secret can show, by id.
	Secrets map[string]Secret
	// SSH are the agent sockets RUN --mount=type=ssh forwards, by id
	// ("default" unless the mount names one).
	SSH map[string]string
}
