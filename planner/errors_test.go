package planner

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mybuild/mybuild/parser"
)

func parse(t *testing.T, text string) *parser.Dockerfile {
	t.Helper()
	df, err := parser.Parse(strings.NewReader(text), "Dockerfile")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return df
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		opts   Options
		line   int
		msg    string // the whole message, or
		prefix string // its beginning
	}{
		{
			name: "cycle",
			text: "FROM alpine:3.20 AS a\nCOPY --from=b /x /x\nFROM alpine:3.20 AS b\nCOPY --from=a /y /y\n",
			line: 2,
			msg:  "circular dependency detected on stage: a",
		},
		{
			name: "copy from itself",
			text: "FROM alpine:3.20\nRUN true\nCOPY --from=0 / /\n",
			line: 3,
			msg:  "circular dependency detected on stage: stage-0",
		},
		{
			name: "cycle through a mount",
			text: "FROM alpine:3.20 AS a\nRUN --mount=from=b,target=/b true\nFROM alpine:3.20 AS b\nCOPY --from=a /y /y\n",
			line: 2,
			msg:  "circular dependency detected on stage: a",
		},
		{
			name: "copy from a later stage",
			text: "FROM alpine:3.20 AS a\nCOPY --from=b /x /x\nFROM alpine:3.20 AS b\nRUN true\n",
			opts: Options{Target: "a"},
			line: 2,
			msg:  `cannot copy from stage "b", it needs to be defined before current stage "a"`,
		},
		{
			name: "mount from a later stage",
			text: "FROM alpine:3.20 AS a\nRUN --mount=from=b,target=/b true\nFROM alpine:3.20 AS b\n",
			opts: Options{Target: "A"},
			line: 2,
			msg:  `cannot mount from stage "b" to "/b", stage needs to be defined before current command`,
		},
		{
			name: "unknown stage in COPY --from",
			text: "FROM alpine:3.20\n\nCOPY --from=nosuch /x /x\n",
			line: 3,
			msg:  `base image "nosuch" not resolved`,
		},
		{
			name: "invalid stage index",
			text: "FROM alpine:3.20\nCOPY --from=3 /x /x\n",
			line: 2,
			msg:  "invalid stage index 3",
		},
		{
			name: "variable in --from",
			text: "FROM alpine:3.20\nCOPY --from=$SRC /x /x\n",
			line: 2,
			msg:  "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
		},
		{
			name: "unknown target",
			text: "FROM alpine:3.20 AS build\n",
			opts: Options{Target: "nope"},
			line: 0,
			msg:  `target stage "nope" could not be found`,
		},
		{
			name: "duplicate stage names",
			text: "FROM alpine:3.20 AS app\nRUN true\nFROM busybox AS APP\n",
			line: 3,
			msg:  `duplicate stage name "app", stage names should be unique (first defined on line 1)`,
		},
		{
			name: "base image not resolved",
			text: "ARG TAG=1\nFROM example/missing:$TAG\n",
			line: 2,
			msg:  `base image "example/missing:1" not resolved`,
		},
		{
			name: "blank base name",
			text: "ARG IMG\nFROM $IMG\n",
			line: 2,
			msg:  "base name ($IMG) should not be blank",
		},
		{
			name:   "bad expansion",
			text:   "FROM alpine:3.20\nENV A=1\nENV B=${NOPE:?required}\n",
			line:   3,
			prefix: "expand ",
		},
		{
			name:   "bad expansion in a global arg",
			text:   "ARG A=${NOPE:?required}\nFROM alpine:3.20\n",
			line:   1,
			prefix: "expand ",
		},
		{
			name: "invalid stop signal",
			text: "FROM alpine:3.20\nSTOPSIGNAL SIGFOO\n",
			line: 2,
			msg:  "invalid signal: SIGFOO",
		},
		{
			name: "empty volume",
			text: "FROM alpine:3.20\nVOLUME [\"$NOPE\"]\n",
			line: 2,
			msg:  "VOLUME specified can not be an empty string",
		},
		{
			name: "invalid chmod",
			text: "FROM alpine:3.20\nCOPY --chmod=17777 a /a\n",
			line: 2,
			msg:  "invalid chmod parameter: '17777'. it should be octal string and between 0 and 07777",
		},
		{
			name: "URL in COPY",
			text: "FROM alpine:3.20\nCOPY https://example.com/x /x\n",
			line: 2,
			msg:  "source can't be a URL for COPY",
		},
		{
			name: "checksum of a local file",
			text: "FROM alpine:3.20\nADD --checksum=sha256:abc a /a\n",
			line: 2,
			msg:  "checksum requires HTTP(S) or Git sources",
		},
		{
			name: "chown by name with link",
			text: "FROM alpine:3.20\nCOPY --link --chown=app a /a\n",
			line: 2,
			msg:  "--chown=app: user and group names can't be resolved when used with --link, use numeric uid[:gid] instead",
		},
		{
			name:   "invalid port",
			text:   "FROM alpine:3.20\nEXPOSE 80/xyz\n",
			line:   2,
			prefix: `invalid port: "80/xyz"`,
		},
		{
			name: "bad trigger in a base image",
			text: "FROM alpine:3.20\nRUN true\nFROM example/bad-onbuild\n",
			line: 3,
			msg:  `ONBUILD trigger "FROM alpine": FROM isn't allowed as an ONBUILD trigger`,
		},
		{
			name: "invalid platform",
			text: "FROM alpine:3.20\n",
			opts: Options{Platform: "linux/amd64/v1/x"},
			line: 0,
			msg:  `invalid platform "linux/amd64/v1/x"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Bases = fakeBases()
			opts.Bases["example/bad-onbuild"] = &BaseImage{Ref: "example/bad-onbuild", Config: v1.ConfigFile{
				OS: "linux", Architecture: "amd64",
				Config: v1.Config{OnBuild: []string{"FROM alpine"}},
			}}
			_, err := New(parse(t, tt.text), opts)
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			var pe *parser.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v, want *parser.Error", err, err)
			}
			if pe.Loc.Line != tt.line || pe.Loc.File != "Dockerfile" {
				t.Errorf("location %s:%d, want Dockerfile:%d (%v)", pe.Loc.File, pe.Loc.Line, tt.line, err)
			}
			if tt.msg != "" && pe.Msg != tt.msg {
				t.Errorf("message %q, want %q", pe.Msg, tt.msg)
			}
			if tt.prefix != "" && !strings.HasPrefix(pe.Msg, tt.prefix) {
				t.Errorf("message %q, want it to start with %q", pe.Msg, tt.prefix)
			}
			if tt.line > 0 && pe.Source == "" {
				t.Errorf("error has no source line")
			}
		})
	}
}

// TestBaseRefsRounds shows how a caller learns every image it needs: a
// base image's trigger can only be read once that image is resolved.
func TestBaseRefsRounds(t *testing.T) {
	df := parse(t, `FROM busybox AS assets
FROM alpine:3.20 AS unused
FROM example/onbuild-from:1
COPY --from=node:20 /x /x
`)
	all := fakeBases()
	opts := Options{Bases: map[string]*BaseImage{}}
	var rounds [][]string
	for range 5 {
		refs, err := BaseRefs(df, opts)
		if err != nil {
			t.Fatal(err)
		}
		var names, missing []string
		for _, r := range refs {
			names = append(names, r.Ref)
			if opts.Bases[r.Ref] == nil {
				missing = append(missing, r.Ref)
			}
		}
		rounds = append(rounds, names)
		if len(missing) == 0 {
			break
		}
		for _, m := range missing {
			opts.Bases[m] = all[m]
		}
	}
	want := [][]string{
		{"example/onbuild-from:1", "node:20"},
		{"example/onbuild-from:1", "node:20", "busybox"},
		{"example/onbuild-from:1", "node:20", "busybox"},
	}
	if diff := cmp.Diff(want, rounds); diff != "" {
		t.Errorf("rounds (-want +got):\n%s", diff)
	}
	if _, err := New(df, opts); err != nil {
		t.Fatalf("New with every ref resolved: %v", err)
	}
}

// TestHandBuilt plans a Dockerfile built by hand, without the parser's
// help: a stage named in another case, and Step configs that do not alias.
func TestHandBuilt(t *testing.T) {
	loc := func(n int) parser.Location { return parser.Location{File: "Dockerfile", Line: n, EndLine: n} }
	base := func(n int, kw, text string) parser.Base {
		return parser.Base{Loc: loc(n), Name: kw, Text: text}
	}
	df := &parser.Dockerfile{File: "Dockerfile", Escape: '\\', Stages: []*parser.Stage{
		{Loc: loc(1), Index: 0, Name: "base", BaseName: "scratch", Commands: []parser.Instruction{
			&parser.Label{Base: base(2, "LABEL", "LABEL a=1"), Labels: []parser.KeyValue{{Key: "a", Value: "1"}}},
			&parser.Label{Base: base(3, "LABEL", "LABEL b=2"), Labels: []parser.KeyValue{{Key: "b", Value: "2"}}},
		}},
		{Loc: loc(4), Index: 1, BaseName: "base", Commands: []parser.Instruction{
			&parser.Copy{Base: base(5, "COPY", "COPY --from=BASE / /"), From: "BASE", SourcesAndDest: parser.SourcesAndDest{Sources: []string{"/"}, Dest: "/"}},
		}},
	}}
	plan, err := New(df, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Stages) != 2 || plan.Target.BaseKind != BaseStage || plan.Target.BaseStage != 0 {
		t.Fatalf("unexpected plan: %+v", plan.Stages)
	}
	s0 := plan.Stages[0]
	if got := s0.Steps[0].Config.Labels; !cmp.Equal(got, map[string]string{"a": "1"}) {
		t.Errorf("labels after the first LABEL = %v (configs alias?)", got)
	}
	if got := plan.Target.Config.Config.Labels; !cmp.Equal(got, map[string]string{"a": "1", "b": "2"}) {
		t.Errorf("labels of the child stage = %v", got)
	}
	if got := plan.Target.Steps[0].Copy.From; got.Stage != 0 || got.Context || got.Scratch || got.Image != nil {
		t.Errorf("COPY --from=BASE source = %+v", got)
	}
}
