package parser

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDirectives(t *testing.T) {
	type result struct {
		Escape   rune
		Syntax   string
		Check    string
		Commands []Instruction
	}
	tests := []struct {
		name string
		in   string
		want result
	}{{
		name: "defaults",
		in:   "FROM scratch\nRUN a \\\n b\n",
		want: result{Escape: '\\', Commands: []Instruction{&Run{Base: base("RUN", 2, 3, "RUN a  b"),
			Cmdline: Cmdline{Args: []string{"a  b"}, PrependShell: true}}}},
	}, {
		name: "backtick escape changes continuation",
		in:   "# escape=`\nFROM scratch\nRUN dir c:\\ `\n  /s\nWORKDIR c:\\app\\\n",
		want: result{Escape: '`', Commands: []Instruction{
			&Run{Base: base("RUN", 3, 4, `RUN dir c:\   /s`), Cmdline: Cmdline{Args: []string{`dir c:\   /s`}, PrependShell: true}},
			&Workdir{Base: base("WORKDIR", 5, 5, `WORKDIR c:\app\`), Path: `c:\app\`},
		}},
	}, {
		name: "all three directives, any case and spacing",
		in:   "\ufeff# Syntax = docker/dockerfile:1.7\n#CHECK=skip=all;error=true\n# escape=\\\nFROM scratch\n",
		want: result{Escape: '\\', Syntax: "docker/dockerfile:1.7", Check: "skip=all;error=true"},
	}, {
		name: "directive after a comment is a comment",
		in:   "# hello\n# escape=`\nFROM scratch\nRUN a \\\n b\n",
		want: result{Escape: '\\', Commands: []Instruction{&Run{Base: base("RUN", 4, 5, "RUN a  b"),
			Cmdline: Cmdline{Args: []string{"a  b"}, PrependShell: true}}}},
	}, {
		name: "unknown directive ends directives",
		in:   "# foo=bar\n# syntax=x\nFROM scratch\n",
		want: result{Escape: '\\'},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			df := mustParse(t, tt.in)
			got := result{Escape: df.Escape, Syntax: df.Syntax, Check: df.Check, Commands: df.Stages[0].Commands}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
