package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/mybuild/mybuild/internal/remotecontext"
	"github.com/mybuild/mybuild/internal/store"
)

// mainContext is the CONTEXT of a build: a local directory, or a Git
// repository or http(s) URL fetched into a temp directory of the store.
type mainContext struct {
	arg        string             // as given
	kind       remotecontext.Kind // Local for a directory (or "-")
	stdin      bool               // "-": the context (a tar) or the Dockerfile is on standard input
	dir        string             // the context directory on the host
	dockerfile string             // host path of the Dockerfile a plain-text URL is
	release    func()             // removes what fetch brought; never nil
}

// resolveContext says what CONTEXT is. A local directory wins over a URL
// form it happens to match (git's scp-like HOST:PATH), as in buildx.
func resolveContext(arg string) (*mainContext, error) {
	c := &mainContext{arg: arg, release: func() {}}
	if arg == "-" {
		c.stdin = true
		return c, nil
	}
	if fi, err := os.Stat(arg); err == nil && fi.IsDir() {
		dir, err := filepath.Abs(arg)
		if err != nil {
			return nil, fmt.Errorf("context %q: %w", arg, err)
		}
		c.dir = dir
		return c, nil
	}
	c.kind = remotecontext.Detect(arg)
	switch c.kind {
	case remotecontext.Local:
		return nil, fmt.Errorf("context directory %q does not exist or is not a directory", arg)
	case remotecontext.Git:
		if _, err := remotecontext.ParseGit(arg); err != nil {
			return nil, fmt.Errorf("build context %q: %w", remotecontext.Redact(arg), err)
		}
	}
	return c, nil
}

// remote reports whether the context is fetched for this build (a URL or
// standard input) rather than a directory of the host.
func (c *mainContext) remote() bool { return c.stdin || c.kind != remotecontext.Local }

// fetch brings a remote context into a temp directory of st, which release
// removes; on failure nothing is left.
func (c *mainContext) fetch(ctx context.Context, g *globals, st *store.Store, keepGit bool) error {
	what := "build context " + strconv.Quote(remotecontext.Redact(c.arg))
	get := func(dir string) (*remotecontext.Context, error) {
		return remotecontext.Fetch(ctx, c.arg, dir, remotecontext.Options{KeepGitDir: keepGit})
	}
	if c.stdin {
		what = "build context from standard input"
		get = func(dir string) (*remotecontext.Context, error) {
			return remotecontext.FromReader(ctx, g.stdin, dir, remotecontext.Options{})
		}
	}
	fc, release, err := fetchRemote(g, st, what, get)
	if err != nil {
		return err
	}
	c.dir, c.dockerfile, c.release = fc.Dir, fc.Dockerfile, release
	return nil
}

// dockerfilePath is where the Dockerfile is read from (path "" is
// standard input) and the name messages give it. For a remote context, -f
// names a file inside it unless absolute (buildx reads that one locally),
// and a plain-text URL is the Dockerfile whatever -f says, as in docker.
func (c *mainContext) dockerfilePath(file string) (name, path string, err error) {
	switch {
	case file == "-" && c.stdin:
		return "", "", errors.New("-f - and the context - cannot both be standard input")
	case file == "-":
		return "-", "", nil
	case c.dockerfile != "":
		return "Dockerfile", c.dockerfile, nil
	case file == "":
		return "Dockerfile", filepath.Join(c.dir, "Dockerfile"), nil
	case !c.remote() || filepath.IsAbs(file):
		return file, file, nil
	}
	p, err := securejoin.SecureJoin(c.dir, file)
	if err != nil {
		return "", "", fmt.Errorf("dockerfile %q: %w", file, err)
	}
	return file, p, nil
}

// keepGitDir reads the build arg BUILDKIT_CONTEXT_KEEP_GIT_DIR, which keeps
// the .git directory of Git contexts.
func keepGitDir(buildArgs map[string]string) bool {
	v, _ := strconv.ParseBool(buildArgs["BUILDKIT_CONTEXT_KEEP_GIT_DIR"])
	return v
}

// fetchRemote brings a context into a new temp directory of st with get;
// what names the context in messages. release removes the directory.
func fetchRemote(g *globals, st *store.Store, what string, get func(dir string) (*remotecontext.Context, error)) (*remotecontext.Context, func(), error) {
	dir, release, err := st.TempDir()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	fmt.Fprintf(g.stderr, "fetching %s\n", what)
	fc, err := get(dir)
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if fc.Commit != "" {
		fmt.Fprintf(g.stderr, "fetched %s (commit %s)\n", what, fc.Commit)
	} else {
		fmt.Fprintf(g.stderr, "fetched %s\n", what)
	}
	return fc, release, nil
}

// fetch brings the Git and http(s) --build-context values into temp
// directories of st, making them directory contexts. release removes them
// all, also after an error. As in BuildKit, BUILDKIT_CONTEXT_KEEP_GIT_DIR
// is for the main context only (a URL's keep-git-dir query still works).
func (n *namedContexts) fetch(ctx context.Context, g *globals, st *store.Store) (release func(), err error) {
	var releases []func()
	release = func() {
		for _, r := range releases {
			r()
		}
	}
	for _, name := range slices.Sorted(maps.Keys(n.remotes)) {
		s := n.remotes[name]
		what := fmt.Sprintf("build context %s %q", name, remotecontext.Redact(s))
		fc, rel, err := fetchRemote(g, st, what, func(dir string) (*remotecontext.Context, error) {
			return remotecontext.Fetch(ctx, s, dir, remotecontext.Options{Named: true})
		})
		if err != nil {
			release()
			return func() {}, err
		}
		releases = append(releases, rel)
		n.dirs[name] = fc.Dir
	}
	return release, nil
}
