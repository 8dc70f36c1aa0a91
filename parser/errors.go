package parser

import (
	"errors"
	"strings"

	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Error is a parse error located in a Dockerfile. Every error returned by
// [Parse] and [ParseTriggers] is an *Error.
type Error struct {
	Loc    Location
	Msg    string
	Source string // the offending lines as written, "\n"-separated; "" when none applies
}

// Error formats the error as "FILE:LINE: MSG", or "FILE: MSG" when the error
// concerns no particular line (an empty Dockerfile).
func (e *Error) Error() string {
	switch {
	case e.Loc.Line <= 0 && e.Loc.File == "":
		return e.Msg
	case e.Loc.Line <= 0:
		return e.Loc.File + ": " + e.Msg
	case e.Loc.File == "":
		return "line " + itoa(e.Loc.Line) + ": " + e.Msg
	}
	return e.Loc.String() + ": " + e.Msg
}

// source keeps the Dockerfile's lines so that errors can quote them.
type source struct {
	file  string
	lines []string
}

func newSource(file string, data []byte) *source {
	text := strings.TrimPrefix(string(data), "\ufeff")
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return &source{file: file, lines: lines}
}

// text returns the lines from start to end (1-based, inclusive) as written.
func (s *source) text(start, end int) string {
	if start <= 0 || start > len(s.lines) {
		return ""
	}
	end = max(end, start)
	end = min(end, len(s.lines))
	return strings.Join(s.lines[start-1:end], "\n")
}

// errorAt builds an *Error for the lines start..end.
func (s *source) errorAt(start, end int, msg string) *Error {
	end = max(end, start)
	return &Error{
		Loc:    Location{File: s.file, Line: start, EndLine: end},
		Msg:    msg,
		Source: s.text(start, end),
	}
}

// wrap turns an error from BuildKit into an *Error, using the location
// BuildKit attached to it, or the lines start..end when it attached none.
func (s *source) wrap(err error, start, end int) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if l, ok := bkLocation(err); ok {
		start, end = l.Line, l.EndLine
	}
	return s.errorAt(start, end, err.Error())
}

// bkLocation extracts the innermost location BuildKit attached to err with
// parser.WithLocation.
func bkLocation(err error) (Location, bool) {
	var le *bkparser.LocationError
	if !errors.As(err, &le) || len(le.Locations) == 0 {
		return Location{}, false
	}
	return rangesLocation(le.Locations[0])
}

// rangesLocation converts BuildKit ranges into the lines they span.
func rangesLocation(ranges []bkparser.Range) (Location, bool) {
	if len(ranges) == 0 {
		return Location{}, false
	}
	l := Location{Line: ranges[0].Start.Line, EndLine: ranges[0].End.Line}
	for _, r := range ranges {
		l.Line = min(l.Line, r.Start.Line)
		l.EndLine = max(l.EndLine, r.End.Line)
	}
	return l, true
}
