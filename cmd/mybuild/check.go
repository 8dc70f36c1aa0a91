package main

import (
	"fmt"

	"github.com/moby/patternmatcher"

	"github.com/mybuild/mybuild/internal/store"
	"github.com/mybuild/mybuild/parser"
)

// runCheck is `mybuild build --check`: it reports the lint warnings of df,
// one "Dockerfile:LINE: Rule: message" line each on standard output,
// without building. With `# check=error=true` a warning makes the exit
// status 1.
func runCheck(g *globals, df *parser.Dockerfile, ignore *patternmatcher.PatternMatcher, buildArgs map[string]string) error {
	o := parser.LintOptions{BuildArgs: buildArgs}
	// Base images already in the store tell UndefinedVar their
	// environment; --check pulls nothing.
	if st, err := g.openStore(); err == nil {
		o.BaseEnv = func(ref string) ([]string, bool) { return storedEnv(st, ref) }
	}
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

// storedEnv is the environment of an image of the store, if it is there.
func storedEnv(st *store.Store, ref string) ([]string, bool) {
	img, _, err := st.Image(ref)
	if err != nil {
		return nil, false
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, false
	}
	return cf.Config.Env, true
}
