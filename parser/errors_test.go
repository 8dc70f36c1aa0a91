package parser

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Error
	}{{
		name: "unknown instruction",
		in:   "FROM scratch\nRUN true\nFOOBAR x\n",
		want: Error{Loc: loc(3, 3), Msg: "unknown instruction: FOOBAR", Source: "FOOBAR x"},
	}, {
		name: "unknown instruction with suggestion",
		in:   "FROM scratch\nCOPPY a b\n",
		want: Error{Loc: loc(2, 2), Msg: "unknown instruction: COPPY (did you mean COPY?)", Source: "COPPY a b"},
	}, {
		name: "shell with malformed json",
		in:   "FROM scratch\nSHELL [\"/bin/sh\", -c]\n",
		want: Error{Loc: loc(2, 2), Msg: "SHELL requires the arguments to be in JSON form", Source: `SHELL ["/bin/sh", -c]`},
	}, {
		name: "copy without destination",
		in:   "FROM scratch\nCOPY onlyone\n",
		want: Error{Loc: loc(2, 2), Msg: "COPY requires at least two arguments, but only one was provided. Destination could not be determined", Source: "COPY onlyone"},
	}, {
		name: "unknown flag on a continued line",
		in:   "FROM scratch\nCOPY --chownn=1 \\\n  a b\n",
		want: Error{Loc: loc(2, 3), Msg: "unknown flag: --chownn (did you mean chown?)", Source: "COPY --chownn=1 \\\n  a b"},
	}, {
		name: "flag missing its value",
		in:   "FROM scratch\nRUN --network make\n",
		want: Error{Loc: loc(2, 2), Msg: "missing a value on flag: --network", Source: "RUN --network make"},
	}, {
		name: "invalid network",
		in:   "FROM scratch\nRUN --network=bridge make\n",
		want: Error{Loc: loc(2, 2), Msg: `invalid network mode "bridge"`, Source: "RUN --network=bridge make"},
	}, {
		name: "heredoc as destination",
		in:   "FROM scratch\nCOPY a <<EOF\nx\nEOF\n",
		want: Error{Loc: loc(2, 4), Msg: "COPY cannot accept a heredoc as a destination", Source: "COPY a <<EOF\nx\nEOF"},
	}, {
		name: "unterminated heredoc",
		in:   "FROM scratch\nRUN <<EOF\necho hi\n",
		want: Error{Loc: loc(2, 3), Msg: "unterminated heredoc", Source: "RUN <<EOF\necho hi"},
	}, {
		name: "exec form with a number",
		in:   "FROM scratch\nCMD [\"a\", 1]\n",
		want: Error{Loc: loc(2, 2), Msg: "when using JSON array syntax, arrays must be comprised of strings only", Source: `CMD ["a", 1]`},
	}, {
		name: "bad stage name",
		in:   "FROM scratch AS 1st\n",
		want: Error{Loc: loc(1, 1), Msg: `invalid name for build stage: "1st", name can't start with a number or contain symbols`, Source: "FROM scratch AS 1st"},
	}, {
		name: "from with two arguments",
		in:   "FROM a b\n",
		want: Error{Loc: loc(1, 1), Msg: "FROM requires either one or three arguments", Source: "FROM a b"},
	}, {
		name: "env without value",
		in:   "FROM scratch\nENV A\n",
		want: Error{Loc: loc(2, 2), Msg: "ENV must have two arguments", Source: "ENV A"},
	}, {
		name: "healthcheck bad interval",
		in:   "FROM scratch\nHEALTHCHECK --interval=soon CMD true\n",
		want: Error{Loc: loc(2, 2), Msg: `time: invalid duration "soon"`, Source: "HEALTHCHECK --interval=soon CMD true"},
	}, {
		name: "onbuild onbuild",
		in:   "FROM scratch\nONBUILD ONBUILD RUN x\n",
		want: Error{Loc: loc(2, 2), Msg: "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", Source: "ONBUILD ONBUILD RUN x"},
	}, {
		name: "instruction before from",
		in:   "ARG A\nENV B=1\nFROM scratch\n",
		want: Error{Loc: loc(2, 2), Msg: "ENV before the first FROM: only ARG may precede FROM", Source: "ENV B=1"},
	}, {
		name: "empty file",
		in:   "",
		want: Error{Loc: Location{File: "Dockerfile"}, Msg: "file with no instructions"},
	}, {
		name: "only comments",
		in:   "# nothing\n\n# here\n",
		want: Error{Loc: Location{File: "Dockerfile"}, Msg: "file with no instructions"},
	}, {
		name: "no FROM",
		in:   "ARG A=1\n",
		want: Error{Loc: Location{File: "Dockerfile"}, Msg: "no build stage: the dockerfile has no FROM instruction"},
	}, {
		name: "repeated directive",
		in:   "# escape=`\n# escape=\\\nFROM scratch\n",
		want: Error{Loc: loc(2, 2), Msg: "only one escape parser directive can be used", Source: `# escape=\`},
	}, {
		name: "invalid escape token",
		in:   "# escape=x\nFROM scratch\n",
		want: Error{Loc: loc(1, 1), Msg: "invalid escape token 'x': must be ` or \\", Source: "# escape=x"},
	}, {
		name: "invalid check directive",
		in:   "# syntax=docker/dockerfile:1\n# check=skip\nFROM scratch\n",
		want: Error{Loc: loc(2, 2), Msg: `parse check directive: invalid check option "skip"`, Source: "# check=skip"},
	}, {
		name: "crlf line endings",
		in:   "FROM scratch\r\nBOGUS\r\n",
		want: Error{Loc: loc(2, 2), Msg: "unknown instruction: BOGUS", Source: "BOGUS"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			df, err := Parse(strings.NewReader(tt.in), "Dockerfile")
			if err == nil {
				t.Fatalf("Parse succeeded with %d stages, want error %q", len(df.Stages), tt.want.Msg)
			}
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("error %T %v is not a *Error", err, err)
			}
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{Loc: loc(3, 3), Msg: "unknown instruction: FOO"}, "Dockerfile:3: unknown instruction: FOO"},
		{Error{Loc: Location{File: "build/app.Dockerfile", Line: 12, EndLine: 14}, Msg: "m"}, "build/app.Dockerfile:12: m"},
		{Error{Loc: Location{File: "-"}, Msg: "file with no instructions"}, "-: file with no instructions"},
		{Error{Loc: Location{Line: 2}, Msg: "m"}, "line 2: m"},
		{Error{Msg: "m"}, "m"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestParseFileName(t *testing.T) {
	_, err := Parse(strings.NewReader("FROM scratch\nXYZZY\n"), "-")
	if got, want := err.Error(), "-:2: unknown instruction: XYZZY"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestParseReadError(t *testing.T) {
	_, err := Parse(failingReader{}, "Dockerfile")
	var e *Error
	if !errors.As(err, &e) || e.Error() != "Dockerfile: read dockerfile: disk on fire" {
		t.Errorf("error = %v, want *Error reading the file", err)
	}
}

func TestParseLongLine(t *testing.T) {
	in := "FROM scratch\nRUN true\nRUN " + strings.Repeat("x", 70000) + "\n"
	_, err := Parse(strings.NewReader(in), "Dockerfile")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want *Error", err)
	}
	want := "Dockerfile:3: dockerfile line greater than max allowed size of 65535"
	if e.Error() != want || e.Loc.EndLine != 3 || !strings.HasPrefix(e.Source, "RUN xxx") {
		t.Errorf("error = %q at %+v, want %q at line 3", e.Error(), e.Loc, want)
	}
}
