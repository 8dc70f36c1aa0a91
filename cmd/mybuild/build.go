package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/patternmatcher"
	"github.com/spf13/pflag"

	"github.com/mybuild/mybuild/executor"
	"github.com/mybuild/mybuild/executor/copier"
	"github.com/mybuild/mybuild/executor/sandbox"
	"github.com/mybuild/mybuild/internal/atomicfile"
	"github.com/mybuild/mybuild/internal/remotecontext"
	"github.com/mybuild/mybuild/internal/store"
	"github.com/mybuild/mybuild/parser"
	"github.com/mybuild/mybuild/planner"
	"github.com/mybuild/mybuild/snapshot"
)

// buildOptions are the flags of `mybuild build`.
type buildOptions struct {
	file      string
	tags      []string
	buildArgs []string
	target    string
	labels    []string
	output    string
	iidfile   string
	noCache   bool
	progress  string
	root      string

	pull         pullPolicy    // --pull: when FROM images are pulled
	push         bool          // --push: push every -t after storing
	registry     registryFlags // --platform, --insecure-registry
	metadataFile string        // --metadata-file

	snapshotter string     // --snapshotter: auto, overlay or naive
	network     string     // --network: host or none, for RUN steps
	runtime     string     // --runtime: builtin, runc, crun or a path
	allow       []string   // --allow: entitlements (security.insecure)
	jobs        int        // --jobs: stages at once
	limits      limitFlags // --memory, --cpus, --cpu-quota, --cpu-period, --pids-limit
	mounts      mountFlags // --secret, --ssh

	noCacheFilter []string // --no-cache-filter: stages whose steps always run
	cacheFrom     []string // --cache-from: where step results are imported from
	cacheTo       []string // --cache-to: where step results are exported to

	buildContexts []string // --build-context NAME=DIR|docker-image://REF|oci-layout://DIR[:TAG]|URL
	check         bool     // --check: run the lint rules instead of building
	quiet         bool     // -q: no build output, only the image ID (and errors)
	addHosts      []string // --add-host HOST:IP

	prefetch *layerPrefetch // unpacks base layers while they are pulled; nil: after
}

func buildFlags(o *buildOptions) *pflag.FlagSet {
	fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.StringVarP(&o.file, "file", "f", "", "Dockerfile to build (default CONTEXT/Dockerfile; \"-\" reads it from standard input)")
	fs.StringArrayVarP(&o.tags, "tag", "t", nil, "name and optionally a tag (name:tag) for the image; repeatable")
	fs.StringArrayVar(&o.buildArgs, "build-arg", nil, "set a build-time variable (KEY=VALUE, or KEY to take it from the environment); repeatable")
	fs.StringVar(&o.target, "target", "", "build this stage (by name) instead of the last one")
	fs.StringArrayVar(&o.labels, "label", nil, "set a label on the image (KEY=VALUE); repeatable")
	fs.StringVarP(&o.output, "output", "o", "", "where the image goes instead of the local store: type=oci,dest=DIR | type=oci-archive,dest=FILE.tar | type=docker-archive,dest=FILE.tar | type=registry[,name=REF] (push only, to REF or every -t name) | type=local,dest=DIR or DIR (the image's files) | type=tar,dest=FILE|- or - (the files as one tar)")
	fs.StringVar(&o.iidfile, "iidfile", "", "write the image ID (config digest) to this file")
	fs.BoolVar(&o.noCache, "no-cache", false, "do not use cached step results: every step runs (results are still recorded)")
	fs.StringArrayVar(&o.noCacheFilter, "no-cache-filter", nil, "do not use cached step results for this stage (name, or index when unnamed); repeatable")
	fs.StringArrayVar(&o.cacheFrom, "cache-from", nil, "import cached step results: type=local,src=DIR | type=registry,ref=REF (or just REF); repeatable")
	fs.StringArrayVar(&o.cacheTo, "cache-to", nil, "export the build's cached step results: type=local,dest=DIR | type=registry,ref=REF, with mode=min (target stage, the default) or mode=max (every stage); repeatable")
	fs.StringVar(&o.progress, "progress", "auto", "progress output: auto (live view on a terminal, plain otherwise), plain, json")
	fs.StringVar(&o.root, "root", "", "image store directory (overrides $MYBUILD_ROOT)")
	fs.IntVar(&o.jobs, "jobs", 0, "how many independent stages may run at once (default: one per CPU)")
	fs.StringVar(&o.network, "network", "host", "network of RUN steps: host (the host's network) or none (only loopback); RUN --network overrides it")
	fs.StringVar(&o.runtime, "runtime", "builtin", "what runs RUN steps' sandboxes: builtin, or an OCI runtime (runc, crun, or a path to one) given the same OCI spec")
	fs.StringArrayVar(&o.allow, "allow", nil, "allow an entitlement: security.insecure (lets RUN --security=insecure run without seccomp, with every capability and device); repeatable")
	fs.StringVar(&o.snapshotter, "snapshotter", snapshot.DriverAuto, "how step filesystems are made: auto (overlay if it can be mounted, else naive), overlay, naive (copies and compares; slower, needs no overlayfs)")
	fs.Var(&o.pull, "pull", "when to pull FROM images: missing (not in the local store), always, never; --pull alone means always")
	fs.Lookup("pull").NoOptDefVal = string(pullAlways)
	fs.BoolVar(&o.push, "push", false, "push the image to the registry of every -t name after storing it (needs -t)")
	o.registry.add(fs, true)
	o.limits.add(fs)
	o.mounts.add(fs)
	fs.StringVar(&o.metadataFile, "metadata-file", "", "write the image's digest, config digest and names to this file as JSON (as buildx does)")
	fs.StringArrayVar(&o.buildContexts, "build-context", nil, "a named context for FROM and COPY --from: NAME=DIR, NAME=docker-image://REF, NAME=oci-layout://DIR[:TAG|@DIGEST], NAME=GITURL[#REF[:SUBDIR]] or NAME=https://URL (the file, named \"context\"); repeatable")
	fs.StringArrayVar(&o.addHosts, "add-host", nil, "add HOST:IP (or HOST=IP) to the /etc/hosts of RUN steps; repeatable")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "print nothing but the image ID (and errors), as docker build -q")
	fs.BoolVar(&o.check, "check", false, "check the Dockerfile against the lint rules and report, without building (exit 1 when a rule fires and '# check=error=true')")
	return fs
}

func cmdBuild(ctx context.Context, g *globals, args []string) error {
	var o buildOptions
	fs := buildFlags(&o)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(g.stdout, "Usage: mybuild build [OPTIONS] CONTEXT\n\nBuild an image from a Dockerfile and a context: a directory, a Git repository\n(https://HOST/PATH.git, git://, ssh://, git@HOST:PATH, with #REF[:SUBDIR]),\nan http(s) URL of a tar archive or of a Dockerfile, or - (standard input:\na tar archive, or a Dockerfile with an empty context).\n\nOptions:\n%s", fs.FlagUsages())
			return nil
		}
		return fmt.Errorf("%w (see 'mybuild build --help')", err)
	}
	if o.root != "" {
		g.root = o.root
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("build needs exactly one CONTEXT (directory or URL) argument, got %d (see 'mybuild build --help')", fs.NArg())
	}
	return runBuild(ctx, g, &o, fs.Arg(0))
}

func runBuild(ctx context.Context, g *globals, o *buildOptions, contextArg string) error {
	if o.quiet {
		// Progress, pulls and notices all go to g.stderr; errors are
		// returned, and main prints them.
		quiet := *g
		quiet.stderr = io.Discard
		g = &quiet
	}
	mc, err := resolveContext(contextArg)
	if err != nil {
		return err
	}
	buildArgs, err := parseBuildArgs(o.buildArgs)
	if err != nil {
		return err
	}
	labels, err := parseKeyValues("--label", o.labels)
	if err != nil {
		return err
	}
	out, err := parseOutput(o.output)
	if err != nil {
		return err
	}
	for _, t := range o.tags {
		if _, err := store.NormalizeName(t); err != nil {
			return fmt.Errorf("invalid tag %q: %w", t, err)
		}
	}
	pushTo, err := pushTargets(o, out) // fail before building, not after
	if err != nil {
		return err
	}
	if o.network != "host" && o.network != "none" {
		return fmt.Errorf("invalid --network %q: want host or none", o.network)
	}
	limits, err := o.limits.limits()
	if err != nil {
		return err
	}
	runner, err := parseRuntime(o.runtime, g.root)
	if err != nil {
		return err
	}
	allowInsecure, err := parseAllow(o.allow)
	if err != nil {
		return err
	}
	extraHosts, err := parseAddHosts(o.addHosts)
	if err != nil {
		return err
	}
	sde, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	mode, err := progressMode(o.progress, g.stderr)
	if err != nil {
		return err
	}

	var st *store.Store // opened early for a remote context
	if mc.remote() {
		if st, err = g.openStore(); err != nil {
			return fmt.Errorf("open image store: %w", err)
		}
		if err := mc.fetch(ctx, g, st, keepGitDir(buildArgs)); err != nil {
			return err
		}
		defer mc.release()
	}
	contextDir := mc.dir
	// The context is opened once, before anything of it is read: the
	// Dockerfile, .dockerignore and every COPY read the directory opened
	// here, even if its path is swapped for a symbolic link meanwhile.
	ctxRoot, err := copier.OpenRoot(contextDir)
	if err != nil {
		return fmt.Errorf("build context: %w", err)
	}
	defer ctxRoot.Close()
	dfName, dfPath, err := mc.dockerfilePath(o.file)
	if err != nil {
		return err
	}
	dfDir, err := dockerfileDir(ctxRoot, contextDir, dfName, dfPath)
	if err == nil {
		defer closeRoot(dfDir)
	}
	var df *parser.Dockerfile
	if err == nil {
		df, err = readDockerfile(g, dfName, dfDir, filepath.Base(dfPath))
	}
	if err != nil {
		if mc.remote() {
			return fmt.Errorf("build context %q: %w", remotecontext.Redact(contextArg), err)
		}
		return err
	}
	var ignore *patternmatcher.PatternMatcher
	if !mc.remote() { // BuildKit applies no .dockerignore to a remote context
		if ignore, err = copier.LoadIgnore(ctxRoot, dfDir, filepath.Base(dfPath)); err != nil {
			return fmt.Errorf("read .dockerignore: %w", err)
		}
	}
	if o.check {
		return runCheck(ctx, g, o, df, ignore, buildArgs)
	}
	contexts, err := parseBuildContexts(o.buildContexts)
	if err != nil {
		return err
	}
	if err := out.check(); err != nil {
		return err
	}

	if st == nil {
		if st, err = g.openStore(); err != nil {
			return fmt.Errorf("open image store: %w", err)
		}
	}
	snaps, err := snapshot.New(filepath.Join(g.root, "snapshots"), snapshot.Options{Driver: o.snapshotter})
	if err != nil {
		return err
	}
	if n := snaps.Notice(); n != "" {
		fmt.Fprintf(g.stderr, "notice: %s\n", n)
	}
	if err := snaps.Sweep(); err != nil {
		fmt.Fprintf(g.stderr, "warning: sweep stale mounts: %v\n", err)
	}
	if err := st.Sweep(ctx); err != nil {
		fmt.Fprintf(g.stderr, "warning: sweep stale temp files: %v\n", err)
	}
	if err := sandbox.SweepCgroups(); err != nil {
		fmt.Fprintf(g.stderr, "warning: sweep stale cgroups: %v\n", err)
	}
	// Base layers unpack while they download. What is still unpacking
	// when the build ends, for whatever reason, is stopped and waited for.
	pctx, stopPrefetch := context.WithCancel(ctx)
	o.prefetch = newLayerPrefetch(pctx, snaps, slog.New(slog.DiscardHandler))
	defer func() {
		stopPrefetch()
		o.prefetch.wait()
	}()
	releaseContexts, err := contexts.fetch(ctx, g, st)
	if err != nil {
		return err
	}
	defer releaseContexts()

	popts := planner.Options{BuildArgs: buildArgs, Target: o.target, Bases: map[string]*planner.BaseImage{},
		LocalContexts: contexts.localNames(), ImageContexts: contexts.imageNames()}
	// ONBUILD triggers of a base image can name further images, so resolve
	// until a round brings nothing new.
	for {
		refs, err := planner.BaseRefs(df, popts)
		if err != nil {
			return err
		}
		added := false
		for _, r := range refs {
			if _, ok := popts.Bases[r.Ref]; ok {
				continue
			}
			bi, named, err := contexts.image(ctx, g, st, r.Ref, o, mode)
			if !named {
				bi, err = resolveBase(ctx, g, st, r.Ref, o, mode)
			}
			if err != nil {
				return &parser.Error{Loc: r.Loc, Msg: err.Error()}
			}
			popts.Bases[r.Ref] = bi
			added = true
		}
		if !added {
			break
		}
	}
	plan, err := planner.New(df, popts)
	if err != nil {
		return err
	}
	for _, w := range plan.Warnings {
		fmt.Fprintln(g.stderr, w)
	}

	r := newRenderer(mode, g.stderr)
	defer r.close()
	secrets, err := parseSecrets(o.mounts.secrets, os.Getenv)
	if err != nil {
		return err
	}
	sshSrcs, err := parseSSH(o.mounts.ssh, os.Getenv)
	if err != nil {
		return err
	}
	sshSocks, stopAgents, err := sshSockets(sshSrcs, st)
	if err != nil {
		return err
	}
	defer stopAgents()
	ex := &executor.Config{
		MountsDir:       mountsDir(g),
		Secrets:         secrets,
		ExtraHosts:      extraHosts,
		SSH:             sshSocks,
		Store:           st,
		Snapshots:       snaps,
		ContextDir:      contextDir,
		Context:         ctxRoot,
		FetchedContext:  mc.remote(),
		Ignore:          ignore,
		Progress:        r.event,
		SourceDateEpoch: sde,
		Labels:          labels,
		Network:         o.network,
		Jobs:            o.jobs,
		Limits:          limits,
		Runtime:         runner,
		AllowInsecure:   allowInsecure,
		Logger:          slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	sc, err := openStepCache(ctx, g, o, st)
	if err != nil {
		return err
	}
	ex.Cache = sc.config
	ex.Contexts = contexts.dirs
	img, err := ex.Build(ctx, plan)
	if err != nil {
		return err
	}
	r.close()
	if err := sc.export(ctx, g, o, st, plan.Target.Index); err != nil {
		return err
	}

	id, err := img.ConfigName()
	if err != nil {
		return err
	}
	pushImg, dgst := img, v1.Hash{}
	if out.kind == "" {
		if dgst, err = st.Put(ctx, img, o.tags); err != nil {
			return fmt.Errorf("write image to the store: %w", err)
		}
		fmt.Fprintf(g.stderr, "writing image %s (manifest %s) done\n", id, dgst)
		for _, t := range o.tags {
			n, _ := store.NormalizeName(t)
			fmt.Fprintf(g.stderr, "naming to %s done\n", n)
		}
		// Push what the store holds, so the digest is the stored one.
		if pushImg, _, err = st.Image(dgst.String()); err != nil {
			return err
		}
	} else if err := out.write(ctx, st, img, o.tags, g.stdout); err != nil {
		return err
	} else if dgst, err = img.Digest(); err != nil {
		return err
	}
	if len(pushTo) > 0 {
		if dgst, err = pushTags(ctx, g, pushImg, pushTo, &o.registry, mode); err != nil {
			return err
		}
	}
	if o.iidfile != "" {
		if err := writeFileAtomic(o.iidfile, []byte(id.String())); err != nil {
			return fmt.Errorf("write --iidfile: %w", err)
		}
	}
	if o.metadataFile != "" {
		names := o.tags
		if len(pushTo) > 0 {
			names = pushTo
		}
		if err := writeMetadata(o.metadataFile, dgst, id, names); err != nil {
			return err
		}
	}
	if !out.toStdout() {
		fmt.Fprintln(g.stdout, id.String())
	}
	return nil
}

// resolveBase finds a base image in the local store, or pulls it, as
// --pull says.
func resolveBase(ctx context.Context, g *globals, st *store.Store, ref string, o *buildOptions, mode string) (*planner.BaseImage, error) {
	ro, err := o.registry.options()
	if err != nil {
		return nil, err
	}
	img, dgst, err := baseImage(ctx, g, st, ref, o.pull, ro, mode, o.prefetch)
	if err != nil {
		return nil, err
	}
	return baseInfo(ref, img, dgst)
}

// parseAddHosts decodes --add-host values, HOST:IP or HOST=IP (the first
// separator splits, so IPv6 addresses work with either), as docker does.
func parseAddHosts(list []string) ([]executor.HostEntry, error) {
	var out []executor.HostEntry
	for _, v := range list {
		i := strings.IndexAny(v, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("invalid --add-host %q: want HOST:IP", v)
		}
		name, ip := v[:i], v[i+1:]
		if ip == "host-gateway" {
			return nil, fmt.Errorf("invalid --add-host %q: host-gateway is not supported (RUN steps share the host's network)", v)
		}
		if net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("invalid --add-host %q: %q is not an IP address", v, ip)
		}
		if strings.ContainsAny(name, " \t\n#") {
			return nil, fmt.Errorf("invalid --add-host %q: bad host name %q", v, name)
		}
		out = append(out, executor.HostEntry{Name: name, IP: ip})
	}
	return out, nil
}

// parseBuildArgs turns --build-arg values into a map; "KEY" alone takes the
// value from the environment and is dropped when unset, as docker does.
func parseBuildArgs(list []string) (map[string]string, error) {
	m := map[string]string{}
	for _, a := range list {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return nil, fmt.Errorf("invalid --build-arg %q: want KEY=VALUE", a)
		}
		if !ok {
			env, set := os.LookupEnv(k)
			if !set {
				continue
			}
			v = env
		}
		m[k] = v
	}
	return m, nil
}

func parseKeyValues(flag string, list []string) (map[string]string, error) {
	m := map[string]string{}
	for _, a := range list {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid %s %q: want KEY=VALUE", flag, a)
		}
		m[k] = v
	}
	return m, nil
}

// sourceDateEpoch reads $SOURCE_DATE_EPOCH (seconds since the epoch).
func sourceDateEpoch() (*time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("invalid SOURCE_DATE_EPOCH %q: want a number of seconds", v)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

// writeFileAtomic writes data to path atomically (mode 0644).
func writeFileAtomic(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o644)
}
