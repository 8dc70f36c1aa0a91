package parser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Parse parses a whole Dockerfile read from r. file is the name used in
// locations and messages ("Dockerfile", "-" for stdin). Errors are *Error
// values.
func Parse(r io.Reader, file string) (*Dockerfile, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, &Error{Loc: Location{File: file}, Msg: "read dockerfile: " + err.Error()}
	}
	src := newSource(file, data)
	dirs, err := scanDirectives(data, src)
	if err != nil {
		return nil, err
	}
	res, err := bkparser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, parseError(err, res, src)
	}

	df := &Dockerfile{File: file, Escape: res.EscapeToken, Syntax: dirs.syntax, Check: dirs.check}
	cfg := *dirs.lint
	cfg.Warn = func(rule, _, url, msg string, ranges []bkparser.Range) {
		loc, _ := rangesLocation(ranges)
		loc.File = file
		df.Warnings = append(df.Warnings, Warning{Loc: loc, Message: msg, Rule: rule, URL: url})
	}
	lint := linter.New(&cfg)
	for _, w := range res.Warnings {
		if w.URL == linter.RuleNoEmptyContinuation.URL && w.Location != nil {
			ranges := nodeRanges(res.AST.Children, w.Location.Start.Line)
			lint.Run(&linter.RuleNoEmptyContinuation, ranges, linter.RuleNoEmptyContinuation.Format())
		}
	}

	var stage *Stage
	for _, n := range res.AST.Children {
		loc := Location{File: file, Line: n.StartLine, EndLine: n.EndLine}
		v, err := instructions.ParseInstructionWithLinter(n, lint)
		if err != nil {
			return nil, src.wrap(err, n.StartLine, n.EndLine)
		}
		if s, ok := v.(*instructions.Stage); ok {
			stage = &Stage{
				Loc:      loc,
				Index:    len(df.Stages),
				Name:     s.Name,
				BaseName: s.BaseName,
				Platform: s.Platform,
				Original: s.SourceCode,
			}
			df.Stages = append(df.Stages, stage)
			continue
		}
		inst, err := convert(n, v, loc)
		if err != nil {
			return nil, src.wrap(err, n.StartLine, n.EndLine)
		}
		lintInstruction(lint, n, v)
		if stage == nil {
			arg, ok := inst.(*Arg)
			if !ok {
				return nil, src.errorAt(n.StartLine, n.EndLine, inst.Keyword()+" before the first FROM: only ARG may precede FROM")
			}
			df.MetaArgs = append(df.MetaArgs, arg)
			continue
		}
		stage.Commands = append(stage.Commands, inst)
	}
	if len(df.Stages) == 0 {
		return nil, &Error{Loc: Location{File: file}, Msg: "no build stage: the dockerfile has no FROM instruction"}
	}
	slices.SortStableFunc(df.Warnings, func(a, b Warning) int { return a.Loc.Line - b.Loc.Line })
	return df, nil
}

// parseError converts an error of BuildKit's parser, correcting the
// locations it gets wrong.
func parseError(err error, res *bkparser.Result, src *source) *Error {
	msg := err.Error()
	l, _ := bkLocation(err)
	switch {
	case res == nil && msg == "file with no instructions":
		// BuildKit points at the last line; there is no line to show.
		return &Error{Loc: Location{File: src.file}, Msg: msg}
	case strings.HasPrefix(msg, "dockerfile line greater than max allowed size"):
		// BuildKit points at the last line it could read.
		return src.errorAt(l.Line+1, l.Line+1, msg)
	}
	return src.wrap(err, l.Line, l.EndLine)
}

// nodeRanges returns the lines of the instruction that holds line, or line
// alone.
func nodeRanges(nodes []*bkparser.Node, line int) []bkparser.Range {
	for _, n := range nodes {
		if n.StartLine <= line && line <= n.EndLine {
			return n.Location()
		}
	}
	return []bkparser.Range{{Start: bkparser.Position{Line: line}, End: bkparser.Position{Line: line}}}
}

// ruleInvalidJSONArgs is this package's rule for RUN, CMD or ENTRYPOINT
// arguments that look like exec form (`["...`) but are not valid JSON, which
// Docker then runs in shell form. `# check=skip=InvalidJSONArgs` silences it.
var ruleInvalidJSONArgs = linter.LinterRule[func(name, detail string) string]{
	Name:        "InvalidJSONArgs",
	Description: "Arguments that look like exec form must be valid JSON",
	Format: func(name, detail string) string {
		return name + " arguments look like exec form but are not valid JSON (" + detail + "); they run in shell form"
	},
}

// lintInstruction adds the warnings BuildKit gives while building rather
// than parsing, when they need nothing but the instruction.
func lintInstruction(lint *linter.Linter, n *bkparser.Node, v any) {
	lint = lint.WithMergedConfigFromComments(n.PrevComment)
	loc := n.Location()
	name := strings.ToUpper(n.Value)
	switch c := v.(type) {
	case *instructions.RunCommand, *instructions.CmdCommand, *instructions.EntrypointCommand:
		if n.Attributes["json"] || n.Next == nil {
			return
		}
		if detail, ok := invalidJSON(n.Next.Value); ok {
			lint.Run(&ruleInvalidJSONArgs, loc, ruleInvalidJSONArgs.Format(name, detail))
		}
	case *instructions.EnvCommand:
		legacyKeyValue(lint, loc, name, c.Env)
	case *instructions.LabelCommand:
		legacyKeyValue(lint, loc, name, c.Labels)
	}
}

// invalidJSON reports whether a shell-form command starts like a JSON array
// of strings, and why it does not parse.
func invalidJSON(args string) (string, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(args), "[")
	if !ok || !strings.HasPrefix(strings.TrimSpace(rest), `"`) {
		return "", false
	}
	var v []string
	err := json.Unmarshal([]byte(args), &v)
	if err == nil {
		return "", false
	}
	return err.Error(), true
}

// legacyKeyValue warns about `ENV key value`, the form without "=".
func legacyKeyValue(lint *linter.Linter, loc []bkparser.Range, name string, kvs instructions.KeyValuePairs) {
	for _, kv := range kvs {
		if kv.NoDelim {
			lint.Run(&linter.RuleLegacyKeyValueFormat, loc, linter.RuleLegacyKeyValueFormat.Format(name))
			return
		}
	}
}

// ParseTriggers parses the ONBUILD trigger expressions of a base image (e.g.
// "COPY . /app"), giving each instruction loc, the FROM that inherits them.
// Like Docker, it refuses ONBUILD, FROM and MAINTAINER as triggers. Errors
// are *Error values.
func ParseTriggers(triggers []string, loc Location) ([]Instruction, error) {
	out := make([]Instruction, 0, len(triggers))
	for _, t := range triggers {
		fail := func(msg string) error {
			return &Error{Loc: loc, Msg: fmt.Sprintf("ONBUILD trigger %q: %s", t, msg), Source: t}
		}
		res, err := bkparser.Parse(strings.NewReader(t))
		if err != nil {
			return nil, fail(err.Error())
		}
		if len(res.AST.Children) != 1 {
			return nil, fail("a trigger must be a single instruction")
		}
		n := res.AST.Children[0]
		switch name := strings.ToUpper(n.Value); name {
		case "ONBUILD":
			return nil, fail("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
		case "FROM", "MAINTAINER":
			return nil, fail(name + " isn't allowed as an ONBUILD trigger")
		}
		n.StartLine, n.EndLine = loc.Line, loc.EndLine
		v, err := instructions.ParseInstructionWithLinter(n, linter.New(&linter.Config{}))
		if err != nil {
			return nil, fail(err.Error())
		}
		inst, err := convert(n, v, loc)
		if err != nil {
			return nil, fail(err.Error())
		}
		out = append(out, inst)
	}
	return out, nil
}
