package parser

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// addPlanSeeds adds the golden Dockerfiles of testdata/plan to f's corpus.
func addPlanSeeds(f *testing.F) {
	files, err := filepath.Glob("../testdata/plan/*.Dockerfile")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// FuzzParse checks that Parse never panics, that every instruction it
// returns is located within the file, and that every error is an *Error
// naming the file and a line of it (or none).
func FuzzParse(f *testing.F) {
	addPlanSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Count(data, []byte("\n")) + 1
		df, err := Parse(bytes.NewReader(data), "Dockerfile")
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *parser.Error: %v", err, err)
			}
			if pe.Loc.File != "Dockerfile" || pe.Loc.Line < 0 || pe.Loc.Line > lines || pe.Loc.EndLine > lines {
				t.Fatalf("error location %+v outside a file of %d lines: %v", pe.Loc, lines, err)
			}
			return
		}
		check := func(what string, l Location) {
			t.Helper()
			if l.File != "Dockerfile" || l.Line < 1 || l.Line > lines || l.EndLine < l.Line || l.EndLine > lines {
				t.Fatalf("%s: location %+v outside a file of %d lines", what, l, lines)
			}
		}
		for _, a := range df.MetaArgs {
			check("meta ARG", a.Location())
		}
		for _, s := range df.Stages {
			check("FROM", s.Loc)
			for _, c := range s.Commands {
				check(c.Keyword(), c.Location())
				if c.Keyword() == "" || c.Keyword() != strings.ToUpper(c.Keyword()) {
					t.Fatalf("keyword %q is not an upper-case instruction name", c.Keyword())
				}
			}
		}
	})
}

// FuzzExpand checks that the Expander never panics, whatever the word, the
// environment and the escape token, and that a word with nothing to
// expand or unquote (and valid UTF-8) is left as it is.
func FuzzExpand(f *testing.F) {
	for _, s := range []struct{ word, env string }{
		{"$HOME/bin", "HOME=/root"},
		{"${A:-default}", "B=1"},
		{"${A:+alt}", "A=1"},
		{"${A#*.}", "A=file.tar.gz"},
		{"${A%%.*}", "A=file.tar.gz"},
		{"${A/x/y}", "A=xxx"},
		{`"quoted $A" 'single $A'`, "A=1"},
		{`a\ b\$c`, ""},
		{"${A:?must be set}", ""},
		{"${", ""},
		{"plain-word", ""},
		{"/usr/local/bin", "PATH=/bin"},
	} {
		f.Add(s.word, s.env, false)
		f.Add(s.word, s.env, true)
	}
	f.Fuzz(func(t *testing.T, word, env string, backtick bool) {
		esc := '\\'
		if backtick {
			esc = '`'
		}
		e := NewExpander(esc)
		envs := strings.Split(env, "\n")
		got, _, err := e.Expand(word, envs)
		_, _ = e.ExpandWords(word, envs)
		_, _, _ = e.ExpandHeredoc(word, envs)
		// BuildKit's lexer reads runes: invalid UTF-8 comes out as U+FFFD,
		// in BuildKit as here.
		if strings.ContainsAny(word, "$'\"\\`") || !utf8.ValidString(word) {
			return
		}
		if err != nil {
			t.Fatalf("Expand(%q): %v", word, err)
		}
		if got != word {
			t.Fatalf("Expand(%q) = %q, want the word unchanged", word, got)
		}
	})
}
