package parser

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHeredocs(t *testing.T) {
	tests := []struct {
		name string
		in   string // lines after "FROM scratch\n"
		want []Instruction
	}{{
		name: "run single",
		in:   "RUN <<EOF\napt-get update\napt-get install -y git\nEOF\nUSER app",
		want: []Instruction{
			&Run{Base: base("RUN", 2, 5, "RUN <<EOF"), Cmdline: Cmdline{
				Args: []string{"<<EOF"}, PrependShell: true,
				Heredocs: []Heredoc{{Name: "EOF", Data: "apt-get update\napt-get install -y git\n", Expand: true}},
			}},
			&User{Base: base("USER", 6, 6, "USER app"), User: "app"},
		},
	}, {
		name: "run several with chomp and quoting",
		in:   "RUN cat <<-A > /a && cat <<'B' > /b\n\tone $X\n\t\ttwo\n\tA\nthree $Y\nB",
		want: []Instruction{&Run{Base: base("RUN", 2, 7, "RUN cat <<-A > /a && cat <<'B' > /b"), Cmdline: Cmdline{
			Args: []string{"cat <<-A > /a && cat <<'B' > /b"}, PrependShell: true,
			Heredocs: []Heredoc{
				{Name: "A", Data: "one $X\ntwo\n", Chomp: true, Expand: true},
				{Name: "B", Data: "three $Y\n", Expand: false},
			},
		}}},
	}, {
		name: "run with flags and double-quoted delimiter",
		in:   "RUN --network=none python3 <<\"PY\"\nprint('hi')\nPY",
		want: []Instruction{&Run{Base: base("RUN", 2, 4, `RUN --network=none python3 <<"PY"`), Network: "none", Cmdline: Cmdline{
			Args: []string{`python3 <<"PY"`}, PrependShell: true,
			Heredocs: []Heredoc{{Name: "PY", Data: "print('hi')\n"}},
		}}},
	}, {
		name: "empty heredoc",
		in:   "RUN <<EOF\nEOF",
		want: []Instruction{&Run{Base: base("RUN", 2, 3, "RUN <<EOF"), Cmdline: Cmdline{
			Args: []string{"<<EOF"}, PrependShell: true, Heredocs: []Heredoc{{Name: "EOF", Expand: true}},
		}}},
	}, {
		name: "copy inline files and a path",
		in:   "COPY --chmod=755 <<run.sh <<-'conf' app.bin /srv/\n#!/bin/sh\necho $HOME\nrun.sh\n\tkey=$v\n\tconf",
		want: []Instruction{&Copy{Base: base("COPY", 2, 7, "COPY --chmod=755 <<run.sh <<-'conf' app.bin /srv/"), SourcesAndDest: SourcesAndDest{
			Sources: []string{"app.bin"}, Dest: "/srv/", Chmod: "755",
			Heredocs: []Heredoc{
				{Name: "run.sh", Data: "#!/bin/sh\necho $HOME\n", Expand: true},
				{Name: "conf", Data: "key=$v\n", Chomp: true},
			},
		}}},
	}, {
		name: "add inline file",
		in:   "ADD <<EOF /etc/motd\nwelcome\nEOF",
		want: []Instruction{&Add{Base: base("ADD", 2, 4, "ADD <<EOF /etc/motd"), SourcesAndDest: SourcesAndDest{
			Dest: "/etc/motd", Heredocs: []Heredoc{{Name: "EOF", Data: "welcome\n", Expand: true}},
		}}},
	}, {
		name: "onbuild keeps the document in its expression",
		in:   "ONBUILD RUN <<EOF\nmake\nEOF",
		want: []Instruction{&Onbuild{Base: base("ONBUILD", 2, 4, "ONBUILD RUN <<EOF"), Expression: "RUN <<EOF\nmake\nEOF"}},
	}, {
		name: "no heredoc in exec form or other instructions",
		in:   "RUN [\"cat\", \"<<EOF\"]\nENV A=<<EOF",
		want: []Instruction{
			&Run{Base: base("RUN", 2, 2, `RUN ["cat", "<<EOF"]`), Cmdline: Cmdline{Args: []string{"cat", "<<EOF"}}},
			&Env{Base: base("ENV", 3, 3, "ENV A=<<EOF"), Env: []KeyValue{{"A", "<<EOF"}}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			df := mustParse(t, "FROM scratch\n"+tt.in+"\n")
			if diff := cmp.Diff(tt.want, df.Stages[0].Commands); diff != "" {
				t.Errorf("instructions (-want +got):\n%s", diff)
			}
		})
	}
}
