package parser

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseTriggers(t *testing.T) {
	at := Location{File: "Dockerfile", Line: 4, EndLine: 4}
	b := func(name, text string) Base { return Base{Loc: at, Text: text, Name: name} }
	triggers := []string{
		"COPY . /app",
		"RUN make install",
		"ENV PATH=/app/bin:$PATH",
		"RUN <<EOF\nmake\nEOF",
		"copy --chown=app <<-x /x\n\ty\n\tx",
	}
	want := []Instruction{
		&Copy{Base: b("COPY", "COPY . /app"), SourcesAndDest: SourcesAndDest{Sources: []string{"."}, Dest: "/app"}},
		&Run{Base: b("RUN", "RUN make install"), Cmdline: Cmdline{Args: []string{"make install"}, PrependShell: true}},
		&Env{Base: b("ENV", "ENV PATH=/app/bin:$PATH"), Env: []KeyValue{{"PATH", "/app/bin:$PATH"}}},
		&Run{Base: b("RUN", "RUN <<EOF"), Cmdline: Cmdline{Args: []string{"<<EOF"}, PrependShell: true,
			Heredocs: []Heredoc{{Name: "EOF", Data: "make\n", Expand: true}}}},
		&Copy{Base: b("COPY", "copy --chown=app <<-x /x"), SourcesAndDest: SourcesAndDest{Dest: "/x", Chown: "app",
			Heredocs: []Heredoc{{Name: "x", Data: "y\n", Chomp: true, Expand: true}}}},
	}
	got, err := ParseTriggers(triggers, at)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("triggers (-want +got):\n%s", diff)
	}

	// An expression of ONBUILD round-trips through ParseTriggers.
	df := mustParse(t, "FROM scratch\nONBUILD RUN <<EOF\nmake\nEOF\n")
	expr := df.Stages[0].Commands[0].(*Onbuild).Expression
	got, err = ParseTriggers([]string{expr}, at)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[3:4], got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}

	if got, err := ParseTriggers(nil, at); err != nil || len(got) != 0 {
		t.Errorf("ParseTriggers(nil) = %v, %v; want nothing", got, err)
	}
}

func TestParseTriggersErrors(t *testing.T) {
	at := Location{File: "Dockerfile", Line: 7, EndLine: 8}
	tests := []struct {
		trigger, msg string
	}{
		{"ONBUILD RUN x", "ONBUILD trigger \"ONBUILD RUN x\": chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"},
		{"onbuild RUN x", "ONBUILD trigger \"onbuild RUN x\": chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"},
		{"FROM alpine", `ONBUILD trigger "FROM alpine": FROM isn't allowed as an ONBUILD trigger`},
		{"maintainer me", `ONBUILD trigger "maintainer me": MAINTAINER isn't allowed as an ONBUILD trigger`},
		{"COPY x", `ONBUILD trigger "COPY x": COPY requires at least two arguments, but only one was provided. Destination could not be determined`},
		{"XYZZY x", `ONBUILD trigger "XYZZY x": unknown instruction: XYZZY`},
		{"RUN a\nRUN b", `ONBUILD trigger "RUN a\nRUN b": a trigger must be a single instruction`},
		{"", `ONBUILD trigger "": file with no instructions`},
	}
	for _, tt := range tests {
		_, err := ParseTriggers([]string{"RUN ok", tt.trigger}, at)
		var got *Error
		if !errors.As(err, &got) {
			t.Errorf("ParseTriggers(%q) error = %v, want *Error", tt.trigger, err)
			continue
		}
		want := Error{Loc: at, Msg: tt.msg, Source: tt.trigger}
		if diff := cmp.Diff(want, *got); diff != "" {
			t.Errorf("ParseTriggers(%q) (-want +got):\n%s", tt.trigger, diff)
		}
	}
}
