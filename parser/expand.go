package parser

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Expander substitutes variables in Dockerfile words exactly as BuildKit
// does: $VAR, ${VAR}, ${VAR:-default}, ${VAR:+alt}, ${VAR#pattern}, quotes
// and the escape token. It is safe for concurrent use.
type Expander struct {
	escape rune
}

// NewExpander returns an Expander for a Dockerfile whose escape token is
// escape ('\\' or '`', see [Dockerfile.Escape]; 0 means '\\').
func NewExpander(escape rune) *Expander {
	if escape == 0 {
		escape = '\\'
	}
	return &Expander{escape: escape}
}

// Expand expands one word against env (a KEY=VALUE list, later entries win),
// removing quotes and escapes the way BuildKit does for instruction
// arguments. It also reports the names of the variables the word referenced,
// set or not.
func (e *Expander) Expand(word string, env []string) (string, map[string]struct{}, error) {
	lex := shell.NewLex(e.escape)
	return process(lex, word, env)
}

// ExpandWords expands word against env and splits the result into words the
// way EXPOSE and VOLUME do (quoted spaces stay within a word).
func (e *Expander) ExpandWords(word string, env []string) ([]string, error) {
	lex := shell.NewLex(e.escape)
	words, err := lex.ProcessWords(word, shell.EnvsFromSlice(env))
	if err != nil {
		return nil, expandError(word, err)
	}
	return words, nil
}

// ExpandHeredoc expands the content of a COPY or ADD heredoc whose Expand is
// set: variables are substituted but quotes are kept, and the escape token
// is always a backslash, as in BuildKit.
func (e *Expander) ExpandHeredoc(data string, env []string) (string, map[string]struct{}, error) {
	lex := shell.NewLex('\\')
	lex.SkipProcessQuotes = true
	return process(lex, data, env)
}

func process(lex *shell.Lex, word string, env []string) (string, map[string]struct{}, error) {
	res, err := lex.ProcessWordWithMatches(word, shell.EnvsFromSlice(env))
	if err != nil {
		return "", nil, expandError(word, err)
	}
	used := make(map[string]struct{}, len(res.Matched)+len(res.Unmatched))
	for k := range res.Matched {
		used[k] = struct{}{}
	}
	for k := range res.Unmatched {
		used[k] = struct{}{}
	}
	return res.Result, used, nil
}

// expandError drops BuildKit's "failed to process" wrapping, keeping the
// cause.
func expandError(word string, err error) error {
	cause := err
	for e := err; e != nil; e = errors.Unwrap(e) {
		if !strings.HasPrefix(e.Error(), "failed to process ") {
			cause = e
			break
		}
	}
	return fmt.Errorf("expand %q: %w", word, cause)
}
