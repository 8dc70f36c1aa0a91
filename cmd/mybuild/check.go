package main

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/patternmatcher"

	"github.com/mybuild/mybuild/internal/registry"
	"github.com/mybuild/mybuild/internal/store"
	"github.com/mybuild/mybuild/parser"
)

// runCheck is `mybuild build --check`: it reports the lint warnings of df,
// one "Dockerfile:LINE: Rule: message" line each on standard output,
// without building. With `# check=error=true` a warning makes the exit
// status 1.
func runCheck(ctx context.Context, g *globals, bo *buildOptions, df *parser.Dockerfile, ignore *patternmatcher.PatternMatcher, buildArgs map[string]string) error {
	o := parser.LintOptions{BuildArgs: buildArgs}
	ro, err := bo.registry.options()
	if err != nil {
		return err
	}
	st, err := g.openStore()
	if err != nil {
		st = nil // a store that cannot be opened only means no local images
	}
	o.BaseEnv = func(ref string) ([]string, bool) { return baseEnv(ctx, g, st, ref, bo.pull, ro) }
	if ignore != nil && !ignore.Exclusions() {
		o.Ignored = func(p string) bool {
			ok, err := ignore.MatchesOrParentMatches(p)
			return err == nil && ok
		}
	}
	ws := parser.Lint(df, o)
	for _, w := range ws {
		fmt.Fprintf(g.stdout, "%s: %s: %s\n", w.Loc, w.Rule, w.Message)
	}
	switch n := len(ws); {
	case n == 0:
		fmt.Fprintln(g.stderr, "Check complete, no warnings found.")
		return nil
	case n == 1:
		fmt.Fprintln(g.stderr, "Check complete, 1 warning has been found!")
	default:
		fmt.Fprintf(g.stderr, "Check complete, %d warnings have been found!\n", n)
	}
	if df.CheckIsError() {
		fmt.Fprintln(g.stderr, "error: lint violations found and '# check=error=true' is set")
		return &exitError{code: 1}
	}
	return nil
}

// baseEnv is the environment of the base image ref, for UndefinedVar: from
// the store, else (unless --pull=never) from the registry's manifest and
// config alone, as BuildKit resolves a base image's config for --check
// without fetching its layers. An image it cannot resolve gets a warning on
// standard error, and UndefinedVar is then not reported in its stages.
func baseEnv(ctx context.Context, g *globals, st *store.Store, ref string, policy pullPolicy, ro registry.Options) ([]string, bool) {
	if st != nil && policy != pullAlways {
		img, _, err := st.Image(ref)
		if err == nil {
			if cf, err := img.ConfigFile(); err == nil {
				return cf.Config.Env, true
			}
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) || policy == pullNever {
			fmt.Fprintf(g.stderr, "warning: base image %q not resolved (%v); UndefinedVar not checked in its stages\n", ref, err)
			return nil, false
		}
	}
	img, err := registry.Pull(ctx, ref, ro)
	if err == nil {
		var cf *v1.ConfigFile
		if cf, err = img.ConfigFile(); err == nil {
			return cf.Config.Env, true
		}
	}
	fmt.Fprintf(g.stderr, "warning: base image %q not resolved: %v; UndefinedVar not checked in its stages\n", ref, err)
	return nil, false
}
