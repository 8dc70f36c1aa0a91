package parser

import "time"

// Location is where an instruction stands in its Dockerfile.
type Location struct {
	File    string // the Dockerfile's name as the user gave it ("Dockerfile", "-" for stdin)
	Line    int    // first line, 1-based
	EndLine int    // last line (continuations, heredocs)
}

// String formats the location as "FILE:LINE".
func (l Location) String() string { return formatLocation(l) }

// Dockerfile is a parsed Dockerfile.
type Dockerfile struct {
	File     string // name used in messages
	Escape   rune   // escape token from the `# escape=` directive, '\\' by default
	Syntax   string // `# syntax=` directive, accepted and ignored
	Check    string // raw `# check=` directive
	MetaArgs []*Arg // ARG instructions before the first FROM
	Stages   []*Stage
	Warnings []Warning
}

// Warning is a non-fatal finding of the parser (deprecated syntax, empty continuation lines, ...).
type Warning struct {
	Loc     Location
	Message string
	Rule    string // BuildKit's lint rule name (e.g. "NoEmptyContinuation"), or this package's "InvalidJSONArgs"
	URL     string // documentation of the rule, "" when none
}

// Stage is one FROM and the instructions up to the next FROM.
type Stage struct {
	Loc      Location
	Index    int    // 0-based position in the Dockerfile
	Name     string // the `AS name`, lower-cased; "" when unnamed
	BaseName string // the image or stage named in FROM, not yet expanded
	Platform string // FROM --platform, not yet expanded
	Original string // the FROM instruction as written, e.g. `FROM golang:1.26 AS build`
	Commands []Instruction
}

// Instruction is one typed Dockerfile instruction. Implemented by the pointer
// types below.
type Instruction interface {
	// Location reports where the instruction is in the Dockerfile.
	Location() Location
	// Original is the instruction's source text as written (continuations joined),
	// e.g. `COPY --chown=app a.txt /x`.
	Original() string
	// Keyword is the upper-case instruction name, e.g. "COPY".
	Keyword() string
}

// Base carries what every instruction has. Embedded in each instruction type.
type Base struct {
	Loc  Location
	Text string // Original()
	Name string // Keyword()
}

// Location implements Instruction.
func (b *Base) Location() Location { return b.Loc }

// Original implements Instruction.
func (b *Base) Original() string { return b.Text }

// Keyword implements Instruction.
func (b *Base) Keyword() string { return b.Name }

// KeyValue is one KEY=VALUE pair of ENV or LABEL.
type KeyValue struct {
	Key   string
	Value string
}

// Heredoc is an inline file of RUN, COPY or ADD (`<<EOF ... EOF`).
type Heredoc struct {
	Name   string // the word after <<, e.g. "EOF"
	Data   string // the lines as written, each with its newline; leading tabs already removed when Chomp
	Chomp  bool   // <<- form: leading tabs removed
	Expand bool   // false when the delimiter was quoted (<<"EOF"): no variable expansion
}

// Cmdline is a command line that is either exec (JSON) form or shell form.
type Cmdline struct {
	Args         []string // exec form: the argv; shell form: one element, the command text
	PrependShell bool     // shell form: run as SHELL + Args[0]
	Heredocs     []Heredoc
}

// Arg is an ARG instruction (possibly several names: `ARG A=1 B`).
type Arg struct {
	Base
	Args []ArgDef
}

// ArgDef is one name of an ARG instruction with its optional default.
type ArgDef struct {
	Key     string
	Default *string // nil when no default was given
}

// Run is a RUN instruction.
type Run struct {
	Base
	Cmdline
	Mounts   []string // raw --mount values, parsed by later stages (see ParseMount)
	Devices  []string // raw --device values
	Network  string   // --network value, "" when not given
	Security string   // --security value
}

// SourcesAndDest is the shared shape of COPY and ADD.
type SourcesAndDest struct {
	Sources  []string // as written, not yet expanded
	Dest     string
	Heredocs []Heredoc // inline sources (`COPY <<EOF /x`)
	Chown    string
	Chmod    string
	Link     bool
	Excludes []string
}

// Copy is a COPY instruction.
type Copy struct {
	Base
	SourcesAndDest
	From    string // --from value, "" for the build context
	Parents bool
}

// Add is an ADD instruction.
type Add struct {
	Base
	SourcesAndDest
	Checksum   string
	KeepGitDir *bool
	Unpack     *bool
}

// Env is an ENV instruction.
type Env struct {
	Base
	Env []KeyValue
}

// Label is a LABEL instruction.
type Label struct {
	Base
	Labels []KeyValue
}

// Expose is an EXPOSE instruction.
type Expose struct {
	Base
	Ports []string
}

// Volume is a VOLUME instruction.
type Volume struct {
	Base
	Volumes []string
}

// User is a USER instruction.
type User struct {
	Base
	User string
}

// Workdir is a WORKDIR instruction.
type Workdir struct {
	Base
	Path string
}

// Cmd is a CMD instruction.
type Cmd struct {
	Base
	Cmdline
}

// Entrypoint is an ENTRYPOINT instruction.
type Entrypoint struct {
	Base
	Cmdline
}

// Shell is a SHELL instruction.
type Shell struct {
	Base
	Shell []string
}

// StopSignal is a STOPSIGNAL instruction.
type StopSignal struct {
	Base
	Signal string
}

// Healthcheck is a HEALTHCHECK instruction. Test is {"NONE"} for HEALTHCHECK NONE,
// {"CMD", args...} or {"CMD-SHELL", command} otherwise.
type Healthcheck struct {
	Base
	Test          []string
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
}

// Onbuild is an ONBUILD instruction; Expression is the trigger's text, e.g. "RUN make".
type Onbuild struct {
	Base
	Expression string
}

// Maintainer is the deprecated MAINTAINER instruction.
type Maintainer struct {
	Base
	Maintainer string
}

func formatLocation(l Location) string {
	return l.File + ":" + itoa(l.Line)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
