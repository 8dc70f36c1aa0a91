package parser

// The functions below are the package's API; their bodies live in parse.go,
// errors.go and expand.go.
//
//	func Parse(r io.Reader, file string) (*Dockerfile, error)
//	    Parses a whole Dockerfile. Errors are *Error values.
//	func ParseTriggers(triggers []string, loc Location) ([]Instruction, error)
//	    Parses the ONBUILD trigger expressions of a base image, giving each
//	    instruction loc (the FROM line that inherits them).
//	type Error struct { Loc Location; Msg string; Source string }
//	    Error() == "Dockerfile:12: unknown instruction: FOO"; Source is the
//	    offending line as written, for display under the message.
//	func NewExpander(escape rune) *Expander
//	func (e *Expander) Expand(word string, env []string) (string, map[string]struct{}, error)
//	    Expands one word with BuildKit's shell.Lex (${VAR:-x}, ${VAR:+x}, \$, ...)
//	    against env (KEY=VALUE list, later entries win), reporting the
//	    variable names the word referenced.
//	func (e *Expander) ExpandWords(word string, env []string) ([]string, error)
//	    Like Expand but splits into words the way EXPOSE/VOLUME do.
