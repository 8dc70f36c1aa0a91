package parser

import (
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/linter"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// LintOptions is what Lint needs besides the Dockerfile. The zero value
// lints the Dockerfile alone.
type LintOptions struct {
	// BuildArgs are the --build-arg values.
	BuildArgs map[string]string
	// Platform is the target platform, "linux/amd64" style ("" for
	// linux/amd64), the value of the automatic platform args.
	Platform string
	// BaseEnv returns the environment of a base image, named as FROM
	// names it after expansion. When it is nil or does not know the
	// image, UndefinedVar is not reported in the stages built on it.
	BaseEnv func(ref string) ([]string, bool)
	// Ignored reports whether a build context path is excluded by
	// .dockerignore (CopyIgnoredFile); nil when nothing is.
	Ignored func(path string) bool
}

// Lint runs BuildKit's lint rules (those `docker build --check` reports)
// on df: the warnings the parser found and those that need the whole
// Dockerfile, honouring `# check=skip=...`. The warnings are in line
// order.
func Lint(df *Dockerfile, o LintOptions) []Warning {
	l := newLintState(df, o)
	l.stageNames()
	l.casing()
	l.metaArgs()
	for _, st := range df.Stages {
		l.stage(st)
	}
	out := append(slices.Clone(df.Warnings), l.warnings...)
	slices.SortStableFunc(out, func(a, b Warning) int { return a.Loc.Line - b.Loc.Line })
	return out
}

// CheckIsError reports whether the Dockerfile's `# check=` directive says
// error=true: a lint warning then fails the build.
func (df *Dockerfile) CheckIsError() bool {
	return lintConfig(df).ReturnAsError
}

func lintConfig(df *Dockerfile) *linter.Config {
	opts, _, _ := strings.Cut(df.Check, " ")
	cfg, err := linter.ParseLintOptions(opts)
	if err != nil || cfg == nil {
		return &linter.Config{} // Parse has refused a bad directive already
	}
	return cfg
}

// lintState is one Lint call.
type lintState struct {
	df       *Dockerfile
	o        LintOptions
	lint     *linter.Linter
	lex      *shell.Lex
	warnings []Warning
	// global is the environment of FROM: automatic platform args and meta
	// ARGs; globalKeys are every name FROM may use.
	global     []string
	globalKeys []string
	stages     map[string]*lintStage // by lower-cased name
}

// lintStage is what UndefinedVar and JSONArgsRecommended need to know of a
// stage once linted.
type lintStage struct {
	env      []string // KEY=VALUE, ENV and ARG values
	args     map[string]bool
	known    bool // the base's environment is known
	shellSet bool
}

func newLintState(df *Dockerfile, o LintOptions) *lintState {
	cfg := *lintConfig(df)
	l := &lintState{df: df, o: o, stages: map[string]*lintStage{}}
	cfg.Warn = func(rule, _, url, msg string, ranges []bkparser.Range) {
		loc, _ := rangesLocation(ranges)
		loc.File = df.File
		l.warnings = append(l.warnings, Warning{Loc: loc, Message: msg, Rule: rule, URL: url})
	}
	l.lint = linter.New(&cfg)
	esc := df.Escape
	if esc == 0 {
		esc = '\\'
	}
	l.lex = shell.NewLex(esc)
	plat := o.Platform
	if plat == "" {
		plat = "linux/amd64"
	}
	osName, arch, _ := strings.Cut(plat, "/")
	arch, variant, _ := strings.Cut(arch, "/")
	for _, p := range []string{"BUILD", "TARGET"} {
		l.global = append(l.global, p+"PLATFORM="+plat, p+"OS="+osName, p+"ARCH="+arch, p+"VARIANT="+variant)
		l.globalKeys = append(l.globalKeys, p+"PLATFORM", p+"OS", p+"ARCH", p+"VARIANT")
	}
	return l
}

func lintRanges(loc Location) []bkparser.Range {
	end := loc.EndLine
	if end < loc.Line {
		end = loc.Line
	}
	return []bkparser.Range{{Start: bkparser.Position{Line: loc.Line}, End: bkparser.Position{Line: end}}}
}

// run reports a warning of rule at loc.
func (l *lintState) run(rule linter.LinterRuleI, loc Location, msg string) {
	l.lint.Run(rule, lintRanges(loc), msg)
}

var reservedStageNames = map[string]bool{"context": true, "scratch": true}

// stageNames is ReservedStageName and DuplicateStageName.
func (l *lintState) stageNames() {
	seen := map[string]bool{}
	for _, st := range l.df.Stages {
		if st.Name == "" {
			continue
		}
		if reservedStageNames[st.Name] {
			l.run(&linter.RuleReservedStageName, st.Loc, linter.RuleReservedStageName.Format(st.Name))
		}
		if seen[st.Name] {
			l.run(&linter.RuleDuplicateStageName, st.Loc, linter.RuleDuplicateStageName.Format(st.Name))
		}
		seen[st.Name] = true
	}
}

// keyword is an instruction's name as written.
func keyword(original string) string {
	if f := strings.Fields(original); len(f) > 0 {
		return f[0]
	}
	return ""
}

// casing is ConsistentInstructionCasing: every instruction of the stages
// in the casing most of them use.
func (l *lintState) casing() {
	type kw struct {
		name string
		loc  Location
	}
	var all []kw
	for _, st := range l.df.Stages {
		all = append(all, kw{keyword(st.Original), st.Loc})
		for _, c := range st.Commands {
			all = append(all, kw{keyword(c.Original()), c.Location()})
		}
	}
	lower, upper := 0, 0
	for _, k := range all {
		switch k.name {
		case strings.ToLower(k.name):
			lower++
		case strings.ToUpper(k.name):
			upper++
		}
	}
	majorityLower := lower > upper
	for _, k := range all {
		want := ""
		if majorityLower && strings.ToLower(k.name) != k.name {
			want = "lowercase"
		} else if !majorityLower && strings.ToUpper(k.name) != k.name {
			want = "uppercase"
		}
		if want != "" {
			l.run(&linter.RuleConsistentInstructionCasing, k.loc, linter.RuleConsistentInstructionCasing.Format(k.name, want))
		}
	}
}

// metaArgs adds the ARGs before the first FROM to the FROM environment
// (build args win, defaults expanded with what precedes them) and checks
// their names.
func (l *lintState) metaArgs() {
	for _, a := range l.df.MetaArgs {
		for _, d := range a.Args {
			l.secretKey("ARG", d.Key, a.Loc)
			l.globalKeys = append(l.globalKeys, d.Key)
			if v, ok := l.o.BuildArgs[d.Key]; ok {
				l.global = append(l.global, d.Key+"="+v)
			} else if d.Default != nil {
				res, err := l.lex.ProcessWordWithMatches(*d.Default, shell.EnvsFromSlice(l.global))
				if err == nil {
					l.global = append(l.global, d.Key+"="+res.Result)
				}
			}
		}
	}
}

// defaultsEnv is the FROM environment with the meta ARG defaults only, as
// InvalidDefaultArgInFrom wants it.
func (l *lintState) defaultsEnv() []string {
	env := slices.Clone(l.global[:8])
	for _, a := range l.df.MetaArgs {
		for _, d := range a.Args {
			if d.Default != nil {
				if res, err := l.lex.ProcessWordWithMatches(*d.Default, shell.EnvsFromSlice(env)); err == nil {
					env = append(env, d.Key+"="+res.Result)
				}
			}
		}
	}
	return env
}

var secretsDeny = regexp.MustCompile(`(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)`)
var secretsAllow = regexp.MustCompile(`(?i)(?:_|^)(?:public|file|version)(?:_|$)`)

// secretKey is SecretsUsedInArgOrEnv.
func (l *lintState) secretKey(ins, key string, loc Location) {
	if secretsDeny.MatchString(key) && !secretsAllow.MatchString(key) {
		l.run(&linter.RuleSecretsUsedInArgOrEnv, loc, linter.RuleSecretsUsedInArgOrEnv.Format(ins, key))
	}
}

// referenceRe is a loose form of a normalized image reference.
var referenceRe = regexp.MustCompile(`^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@[a-z0-9]+:[a-f0-9]{32,})?$`)

// from lints a FROM and returns what the stage starts with.
func (l *lintState) from(st *Stage) *lintStage {
	env := shell.EnvsFromSlice(l.global)
	res, err := l.lex.ProcessWordWithMatches(st.BaseName, env)
	if err != nil {
		return &lintStage{args: map[string]bool{}}
	}
	l.undefinedInFrom(res.Unmatched, st.Loc)
	if def, err := l.lex.ProcessWordWithMatches(st.BaseName, shell.EnvsFromSlice(l.defaultsEnv())); err == nil {
		if !referenceRe.MatchString(def.Result) {
			l.run(&linter.RuleInvalidDefaultArgInFrom, st.Loc, linter.RuleInvalidDefaultArgInFrom.Format(st.BaseName))
		}
	}
	if st.Platform != "" {
		if p, err := l.lex.ProcessWordWithMatches(st.Platform, env); err == nil {
			l.undefinedInFrom(p.Unmatched, st.Loc)
			l.platform(st, p)
		}
	}
	base := res.Result
	if b, ok := l.stages[strings.ToLower(base)]; ok {
		return &lintStage{env: slices.Clone(b.env), args: cloneSet(b.args), known: b.known, shellSet: b.shellSet}
	}
	ls := &lintStage{args: map[string]bool{}, known: true}
	if !strings.EqualFold(base, "scratch") {
		var benv []string
		if l.o.BaseEnv != nil {
			benv, ls.known = l.o.BaseEnv(base)
		} else {
			ls.known = false
		}
		ls.env = slices.Clone(benv)
	}
	if !slices.ContainsFunc(ls.env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		ls.env = append(ls.env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return ls
}

func cloneSet(m map[string]bool) map[string]bool {
	c := make(map[string]bool, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// undefinedInFrom is UndefinedArgInFrom.
func (l *lintState) undefinedInFrom(unmatched map[string]struct{}, loc Location) {
	for _, arg := range sortedKeys(unmatched) {
		if slices.Contains(l.globalKeys, arg) {
			continue
		}
		s, _ := suggestName(arg, l.globalKeys, true)
		l.run(&linter.RuleUndefinedArgInFrom, loc, linter.RuleUndefinedArgInFrom.Format(arg, s))
	}
}

// platform is RedundantTargetPlatform and FromPlatformFlagConstDisallowed.
func (l *lintState) platform(st *Stage, p shell.ProcessWordResult) {
	if len(p.Matched) == 1 && len(p.Unmatched) == 0 {
		if _, ok := p.Matched["TARGETPLATFORM"]; ok {
			if v, _ := shell.EnvsFromSlice(l.global).Get("TARGETPLATFORM"); v == p.Result {
				l.run(&linter.RuleRedundantTargetPlatform, st.Loc, linter.RuleRedundantTargetPlatform.Format(st.Platform))
			}
		}
		return
	}
	if len(p.Matched) > 0 || len(p.Unmatched) > 0 {
		return
	}
	osName, rest, _ := strings.Cut(p.Result, "/")
	arch, _, _ := strings.Cut(rest, "/")
	if osName == "" || strings.Contains(st.Name, osName) || (arch != "" && strings.Contains(st.Name, arch)) {
		return
	}
	l.run(&linter.RuleFromPlatformFlagConstDisallowed, st.Loc, linter.RuleFromPlatformFlagConstDisallowed.Format(p.Result))
}

func sortedKeys(m map[string]struct{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// stage lints the instructions of st.
func (l *lintState) stage(st *Stage) {
	ls := l.from(st)
	workdirSet := false
	used := map[string]*Location{} // CMD, ENTRYPOINT, HEALTHCHECK: the last one
	for _, c := range st.Commands {
		loc := c.Location()
		words := func(ws ...string) {
			for _, w := range ws {
				l.undefinedVars(ls, w, loc)
			}
		}
		switch ins := c.(type) {
		case *Env:
			for _, kv := range ins.Env {
				words(kv.Key, kv.Value)
				l.secretKey("ENV", kv.Key, loc)
				ls.env = append(ls.env, kv.Key+"="+kv.Value)
			}
		case *Arg:
			for _, d := range ins.Args {
				l.secretKey("ARG", d.Key, loc)
				if d.Default != nil {
					words(*d.Default)
				}
				ls.args[d.Key] = true
				if d.Default != nil {
					ls.env = append(ls.env, d.Key+"="+*d.Default)
				}
			}
		case *Label:
			for _, kv := range ins.Labels {
				words(kv.Key, kv.Value)
			}
		case *Workdir:
			words(ins.Path)
			if !workdirSet && !path.IsAbs(ins.Path) && !strings.HasPrefix(ins.Path, "$") {
				l.run(&linter.RuleWorkdirRelativePath, loc, linter.RuleWorkdirRelativePath.Format(ins.Path))
			}
			workdirSet = true
		case *User:
			words(ins.User)
		case *Expose:
			words(ins.Ports...)
		case *Volume:
			words(ins.Volumes...)
		case *StopSignal:
			words(ins.Signal)
		case *Copy:
			words(append(slices.Clone(ins.Sources), ins.Dest, ins.Chown, ins.Chmod)...)
			if ins.From == "" {
				l.ignoredSources("Copy", ins.Sources, loc)
			}
		case *Add:
			words(append(slices.Clone(ins.Sources), ins.Dest, ins.Chown, ins.Chmod, ins.Checksum)...)
			l.ignoredSources("Add", ins.Sources, loc)
		case *Shell:
			ls.shellSet = true
		case *Cmd:
			l.usedOnce(used, "CMD", loc)
			if ins.PrependShell && !ls.shellSet {
				l.run(&linter.RuleJSONArgsRecommended, loc, linter.RuleJSONArgsRecommended.Format("CMD"))
			}
		case *Entrypoint:
			l.usedOnce(used, "ENTRYPOINT", loc)
			if ins.PrependShell && !ls.shellSet {
				l.run(&linter.RuleJSONArgsRecommended, loc, linter.RuleJSONArgsRecommended.Format("ENTRYPOINT"))
			}
		case *Healthcheck:
			l.usedOnce(used, "HEALTHCHECK", loc)
		}
	}
	if st.Name != "" {
		l.stages[st.Name] = ls
	}
}

// usedOnce is MultipleInstructionsDisallowed, reported at the earlier
// instruction: the one that has no effect.
func (l *lintState) usedOnce(used map[string]*Location, name string, loc Location) {
	if prev := used[name]; prev != nil {
		l.run(&linter.RuleMultipleInstructionsDisallowed, *prev, linter.RuleMultipleInstructionsDisallowed.Format(name))
	}
	used[name] = &loc
}

// undefinedVars is UndefinedVar for one word of an instruction.
func (l *lintState) undefinedVars(ls *lintStage, word string, loc Location) {
	if !ls.known || !strings.Contains(word, "$") {
		return
	}
	res, err := l.lex.ProcessWordWithMatches(word, shell.EnvsFromSlice(ls.env))
	if err != nil {
		return
	}
	var keys []string
	for _, e := range ls.env {
		k, _, _ := strings.Cut(e, "=")
		keys = append(keys, k)
	}
	for _, v := range sortedKeys(res.Unmatched) {
		if ls.args[v] {
			continue
		}
		s, _ := suggestName(v, keys, true)
		l.run(&linter.RuleUndefinedVar, loc, linter.RuleUndefinedVar.Format(v, s))
	}
}

// ignoredSources is CopyIgnoredFile for the build context sources of a
// COPY or ADD.
func (l *lintState) ignoredSources(cmd string, srcs []string, loc Location) {
	if l.o.Ignored == nil {
		return
	}
	for _, s := range srcs {
		if strings.Contains(s, "$") || strings.Contains(s, "://") || strings.HasPrefix(s, "git@") {
			continue
		}
		s = path.Clean(strings.TrimPrefix(s, "/"))
		if s == "." || s == "" {
			continue
		}
		if l.o.Ignored(s) {
			l.run(&linter.RuleCopyIgnoredFile, loc, linter.RuleCopyIgnoredFile.Format(cmd, s))
		}
	}
}

// suggestName is the option closest to val, within an edit distance of 2,
// as BuildKit suggests a name ("" when none is close, or val is one).
func suggestName(val string, options []string, _ bool) (string, bool) {
	match, best := "", 3
	for _, opt := range options {
		if opt == val {
			return "", false
		}
		if d := levenshtein(val, opt); d < best {
			match, best = opt, d
		}
	}
	return match, match != ""
}

// levenshtein is the edit distance of a and b, by runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
