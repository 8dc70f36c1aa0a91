package parser

import (
	"bytes"
	"strings"
	"unicode"

	"github.com/moby/buildkit/frontend/dockerfile/linter"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

// directives are the parser directives at the top of a Dockerfile.
type directives struct {
	syntax string
	check  string
	lint   *linter.Config // from check; never nil
}

// scanDirectives reads the parser directives the way BuildKit's parser does,
// but reports errors on the right line (BuildKit's are one line early) and
// keeps the values BuildKit's parse result drops.
func scanDirectives(data []byte, src *source) (*directives, error) {
	d := &directives{lint: &linter.Config{}}
	var p bkparser.DirectiveParser
	for i, line := range bytes.SplitAfter(data, []byte("\n")) {
		if i == 0 {
			line = bytes.TrimPrefix(line, []byte("\ufeff"))
		}
		line = bytes.TrimRight(line, "\r\n")
		line = bytes.TrimLeftFunc(line, unicode.IsSpace)
		dir, err := p.ParseLine(line)
		if err != nil {
			return nil, src.errorAt(i+1, i+1, err.Error())
		}
		if dir == nil {
			break
		}
		switch dir.Name {
		case "escape":
			if dir.Value != "`" && dir.Value != `\` {
				return nil, src.errorAt(i+1, i+1, "invalid escape token '"+dir.Value+"': must be ` or \\")
			}
		case "syntax":
			d.syntax = dir.Value
		case "check":
			d.check = dir.Value
			opts, _, _ := strings.Cut(dir.Value, " ")
			cfg, err := linter.ParseLintOptions(opts)
			if err != nil {
				return nil, src.errorAt(i+1, i+1, "parse check directive: "+err.Error())
			}
			d.lint = cfg
		}
	}
	return d, nil
}
