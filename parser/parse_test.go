package parser

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustParse(t *testing.T, text string) *Dockerfile {
	t.Helper()
	df, err := Parse(strings.NewReader(text), "Dockerfile")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return df
}

func loc(line, end int) Location { return Location{File: "Dockerfile", Line: line, EndLine: end} }

func base(name string, line, end int, text string) Base {
	return Base{Loc: loc(line, end), Text: text, Name: name}
}

func ptr[T any](v T) *T { return &v }

// TestInstructions parses each instruction after a FROM on line 1 and
// compares the typed result.
func TestInstructions(t *testing.T) {
	tests := []struct {
		name string
		in   string // lines after "FROM scratch\n"
		want []Instruction
	}{{
		name: "run shell form",
		in:   "RUN echo $HOME && make",
		want: []Instruction{&Run{Base: base("RUN", 2, 2, "RUN echo $HOME && make"),
			Cmdline: Cmdline{Args: []string{"echo $HOME && make"}, PrependShell: true}}},
	}, {
		name: "run exec form",
		in:   `run ["make", "-j", "4"]`,
		want: []Instruction{&Run{Base: base("RUN", 2, 2, `run ["make", "-j", "4"]`),
			Cmdline: Cmdline{Args: []string{"make", "-j", "4"}}}},
	}, {
		name: "run continuation",
		in:   "RUN apt-get update \\\n    && apt-get install -y git",
		want: []Instruction{&Run{Base: base("RUN", 2, 3, "RUN apt-get update     && apt-get install -y git"),
			Cmdline: Cmdline{Args: []string{"apt-get update     && apt-get install -y git"}, PrependShell: true}}},
	}, {
		name: "run flags",
		in:   "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok --network=none --security=insecure --device=/dev/fuse make",
		want: []Instruction{&Run{
			Base:    base("RUN", 2, 2, "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok --network=none --security=insecure --device=/dev/fuse make"),
			Cmdline: Cmdline{Args: []string{"make"}, PrependShell: true},
			Mounts:  []string{"type=cache,target=/root/.cache", "type=secret,id=tok"},
			Devices: []string{"/dev/fuse"},
			Network: "none", Security: "insecure",
		}},
	}, {
		name: "run invalid json is shell form",
		in:   `RUN ["echo", hi]`,
		want: []Instruction{&Run{Base: base("RUN", 2, 2, `RUN ["echo", hi]`),
			Cmdline: Cmdline{Args: []string{`["echo", hi]`}, PrependShell: true}}},
	}, {
		name: "cmd exec and shell",
		in:   "CMD [\"nginx\", \"-g\", \"daemon off;\"]\nCMD nginx -g 'daemon off;'\nCMD []",
		want: []Instruction{
			&Cmd{Base: base("CMD", 2, 2, `CMD ["nginx", "-g", "daemon off;"]`),
				Cmdline: Cmdline{Args: []string{"nginx", "-g", "daemon off;"}}},
			&Cmd{Base: base("CMD", 3, 3, `CMD nginx -g 'daemon off;'`),
				Cmdline: Cmdline{Args: []string{`nginx -g 'daemon off;'`}, PrependShell: true}},
			&Cmd{Base: base("CMD", 4, 4, `CMD []`), Cmdline: Cmdline{Args: []string{}}},
		},
	}, {
		name: "entrypoint",
		in:   "ENTRYPOINT [\"/bin/app\", \"--serve\"]\nENTRYPOINT exec app\nENTRYPOINT []",
		want: []Instruction{
			&Entrypoint{Base: base("ENTRYPOINT", 2, 2, `ENTRYPOINT ["/bin/app", "--serve"]`),
				Cmdline: Cmdline{Args: []string{"/bin/app", "--serve"}}},
			&Entrypoint{Base: base("ENTRYPOINT", 3, 3, `ENTRYPOINT exec app`),
				Cmdline: Cmdline{Args: []string{"exec app"}, PrependShell: true}},
			&Entrypoint{Base: base("ENTRYPOINT", 4, 4, `ENTRYPOINT []`)},
		},
	}, {
		name: "copy plain",
		in:   "COPY a.txt b/ /dst/",
		want: []Instruction{&Copy{Base: base("COPY", 2, 2, "COPY a.txt b/ /dst/"),
			SourcesAndDest: SourcesAndDest{Sources: []string{"a.txt", "b/"}, Dest: "/dst/"}}},
	}, {
		name: "copy flags",
		in:   "COPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=tmp/ ./src $DEST",
		want: []Instruction{&Copy{
			Base: base("COPY", 2, 2, "COPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=tmp/ ./src $DEST"),
			SourcesAndDest: SourcesAndDest{Sources: []string{"./src"}, Dest: "$DEST",
				Chown: "app:app", Chmod: "0755", Link: true, Excludes: []string{"*.md", "tmp/"}},
			From: "build", Parents: true,
		}},
	}, {
		name: "copy json form and link=false",
		in:   `COPY --link=false ["a b.txt", "/dst dir/"]`,
		want: []Instruction{&Copy{Base: base("COPY", 2, 2, `COPY --link=false ["a b.txt", "/dst dir/"]`),
			SourcesAndDest: SourcesAndDest{Sources: []string{"a b.txt"}, Dest: "/dst dir/"}}},
	}, {
		name: "add flags",
		in:   "ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --chown=1:2 --chmod=644 --link --exclude=x https://example.com/a.tgz /opt/",
		want: []Instruction{&Add{
			Base: base("ADD", 2, 2, "ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --chown=1:2 --chmod=644 --link --exclude=x https://example.com/a.tgz /opt/"),
			SourcesAndDest: SourcesAndDest{Sources: []string{"https://example.com/a.tgz"}, Dest: "/opt/",
				Chown: "1:2", Chmod: "644", Link: true, Excludes: []string{"x"}},
			Checksum: "sha256:abc", KeepGitDir: ptr(true), Unpack: ptr(false),
		}},
	}, {
		name: "add plain leaves optional flags nil",
		in:   "ADD app.tar.gz /app",
		want: []Instruction{&Add{Base: base("ADD", 2, 2, "ADD app.tar.gz /app"),
			SourcesAndDest: SourcesAndDest{Sources: []string{"app.tar.gz"}, Dest: "/app"}}},
	}, {
		name: "env",
		in:   "ENV A=1 B=\"two words\" C=${A}x\nENV LEGACY value with spaces",
		want: []Instruction{
			&Env{Base: base("ENV", 2, 2, `ENV A=1 B="two words" C=${A}x`),
				Env: []KeyValue{{"A", "1"}, {"B", `"two words"`}, {"C", "${A}x"}}},
			&Env{Base: base("ENV", 3, 3, "ENV LEGACY value with spaces"),
				Env: []KeyValue{{"LEGACY", "value with spaces"}}},
		},
	}, {
		name: "label",
		in:   `LABEL org.opencontainers.image.title="my app" version=1.0`,
		want: []Instruction{&Label{Base: base("LABEL", 2, 2, `LABEL org.opencontainers.image.title="my app" version=1.0`),
			Labels: []KeyValue{{"org.opencontainers.image.title", `"my app"`}, {"version", "1.0"}}}},
	}, {
		name: "expose sorted as BuildKit does",
		in:   "EXPOSE 8080/tcp 53/udp $PORT",
		want: []Instruction{&Expose{Base: base("EXPOSE", 2, 2, "EXPOSE 8080/tcp 53/udp $PORT"),
			Ports: []string{"$PORT", "53/udp", "8080/tcp"}}},
	}, {
		name: "volume",
		in:   "VOLUME /data /logs\nVOLUME [\"/var/lib/db\"]",
		want: []Instruction{
			&Volume{Base: base("VOLUME", 2, 2, "VOLUME /data /logs"), Volumes: []string{"/data", "/logs"}},
			&Volume{Base: base("VOLUME", 3, 3, `VOLUME ["/var/lib/db"]`), Volumes: []string{"/var/lib/db"}},
		},
	}, {
		name: "user workdir stopsignal maintainer",
		in:   "USER app:staff\nWORKDIR /src/$APP\nSTOPSIGNAL SIGTERM\nMAINTAINER Jane <jane@example.com>",
		want: []Instruction{
			&User{Base: base("USER", 2, 2, "USER app:staff"), User: "app:staff"},
			&Workdir{Base: base("WORKDIR", 3, 3, "WORKDIR /src/$APP"), Path: "/src/$APP"},
			&StopSignal{Base: base("STOPSIGNAL", 4, 4, "STOPSIGNAL SIGTERM"), Signal: "SIGTERM"},
			&Maintainer{Base: base("MAINTAINER", 5, 5, "MAINTAINER Jane <jane@example.com>"), Maintainer: "Jane <jane@example.com>"},
		},
	}, {
		name: "shell",
		in:   `SHELL ["/bin/bash", "-o", "pipefail", "-c"]`,
		want: []Instruction{&Shell{Base: base("SHELL", 2, 2, `SHELL ["/bin/bash", "-o", "pipefail", "-c"]`),
			Shell: []string{"/bin/bash", "-o", "pipefail", "-c"}}},
	}, {
		name: "healthcheck",
		in: "HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --start-interval=2s --retries=3 CMD curl -f http://localhost/\n" +
			"HEALTHCHECK CMD [\"/bin/check\", \"-q\"]\nHEALTHCHECK NONE",
		want: []Instruction{
			&Healthcheck{
				Base:     base("HEALTHCHECK", 2, 2, "HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --start-interval=2s --retries=3 CMD curl -f http://localhost/"),
				Test:     []string{"CMD-SHELL", "curl -f http://localhost/"},
				Interval: 30 * time.Second, Timeout: 5 * time.Second, StartPeriod: time.Minute, StartInterval: 2 * time.Second, Retries: 3,
			},
			&Healthcheck{Base: base("HEALTHCHECK", 3, 3, `HEALTHCHECK CMD ["/bin/check", "-q"]`), Test: []string{"CMD", "/bin/check", "-q"}},
			&Healthcheck{Base: base("HEALTHCHECK", 4, 4, "HEALTHCHECK NONE"), Test: []string{"NONE"}},
		},
	}, {
		name: "onbuild",
		in:   "ONBUILD COPY . /app\nonbuild RUN make",
		want: []Instruction{
			&Onbuild{Base: base("ONBUILD", 2, 2, "ONBUILD COPY . /app"), Expression: "COPY . /app"},
			&Onbuild{Base: base("ONBUILD", 3, 3, "onbuild RUN make"), Expression: "RUN make"},
		},
	}, {
		name: "arg in stage",
		in:   "ARG A B=2 C=",
		want: []Instruction{&Arg{Base: base("ARG", 2, 2, "ARG A B=2 C="),
			Args: []ArgDef{{Key: "A"}, {Key: "B", Default: ptr("2")}, {Key: "C", Default: ptr("")}}}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			df := mustParse(t, "FROM scratch\n"+tt.in+"\n")
			if len(df.Stages) != 1 {
				t.Fatalf("got %d stages, want 1", len(df.Stages))
			}
			if diff := cmp.Diff(tt.want, df.Stages[0].Commands); diff != "" {
				t.Errorf("instructions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStages(t *testing.T) {
	in := `# syntax=docker/dockerfile:1
ARG GO=1.26
ARG BASE
FROM --platform=$BUILDPLATFORM golang:${GO} AS Build
RUN go build

from alpine as final
COPY --from=build /out /
FROM final
`
	df := mustParse(t, in)
	want := &Dockerfile{
		File:   "Dockerfile",
		Escape: '\\',
		Syntax: "docker/dockerfile:1",
		MetaArgs: []*Arg{
			{Base: base("ARG", 2, 2, "ARG GO=1.26"), Args: []ArgDef{{Key: "GO", Default: ptr("1.26")}}},
			{Base: base("ARG", 3, 3, "ARG BASE"), Args: []ArgDef{{Key: "BASE"}}},
		},
		Stages: []*Stage{{
			Loc: loc(4, 4), Index: 0, Name: "build", BaseName: "golang:${GO}", Platform: "$BUILDPLATFORM",
			Original: "FROM --platform=$BUILDPLATFORM golang:${GO} AS Build",
			Commands: []Instruction{&Run{Base: base("RUN", 5, 5, "RUN go build"),
				Cmdline: Cmdline{Args: []string{"go build"}, PrependShell: true}}},
		}, {
			Loc: loc(7, 7), Index: 1, Name: "final", BaseName: "alpine", Original: "from alpine as final",
			Commands: []Instruction{&Copy{Base: base("COPY", 8, 8, "COPY --from=build /out /"),
				SourcesAndDest: SourcesAndDest{Sources: []string{"/out"}, Dest: "/"}, From: "build"}},
		}, {
			Loc: loc(9, 9), Index: 2, BaseName: "final", Original: "FROM final",
		}},
		Warnings: []Warning{{
			Loc:     loc(4, 4),
			Message: "Stage name 'Build' should be lowercase",
			Rule:    "StageNameCasing",
			URL:     "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/",
		}},
	}
	if diff := cmp.Diff(want, df); diff != "" {
		t.Errorf("Dockerfile (-want +got):\n%s", diff)
	}
}

func TestInstructionInterface(t *testing.T) {
	df := mustParse(t, "FROM scratch\ncopy \\\n  a b\n")
	var inst Instruction = df.Stages[0].Commands[0]
	got := []any{inst.Keyword(), inst.Original(), inst.Location(), inst.Location().String()}
	want := []any{"COPY", "copy   a b", loc(2, 3), "Dockerfile:2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
