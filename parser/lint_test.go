package parser

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLint(t *testing.T) {
	baseEnv := func(ref string) ([]string, bool) {
		if ref == "busybox" {
			return []string{"PATH=/bin", "HOME=/root"}, true
		}
		return nil, false
	}
	tests := []struct {
		name string
		df   string
		o    LintOptions
		want []string
	}{
		{
			name: "undefined var with suggestion",
			df:   "FROM busybox\nENV VERSION=1\nLABEL v=$VERSOIN h=$HOME p=${PATH}\n",
			o:    LintOptions{BaseEnv: baseEnv},
			want: []string{"Dockerfile:3: UndefinedVar: Usage of undefined variable '$VERSOIN' (did you mean $VERSION?)"},
		},
		{
			name: "unknown base image: no UndefinedVar",
			df:   "FROM other\nLABEL v=$NOPE\n",
			o:    LintOptions{BaseEnv: baseEnv},
		},
		{
			name: "args declared without value are defined; stages inherit",
			df:   "FROM busybox AS a\nARG X\nENV Y=1\nFROM a\nLABEL x=$X y=$Y\n",
			o:    LintOptions{BaseEnv: baseEnv},
		},
		{
			name: "undefined arg in from, with suggestion",
			df:   "ARG VERSION=1\nFROM busybox:$VERSON\n",
			want: []string{
				"Dockerfile:2: UndefinedArgInFrom: FROM argument 'VERSON' is not declared (did you mean VERSION?)",
				"Dockerfile:2: InvalidDefaultArgInFrom: Default value for ARG busybox:$VERSON results in empty or invalid base image name",
			},
		},
		{
			name: "redundant target platform and const platform in a named stage",
			df:   "FROM --platform=$TARGETPLATFORM busybox\nFROM --platform=linux/arm64 busybox AS build-arm64\n",
			want: []string{"Dockerfile:1: RedundantTargetPlatform: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior"},
		},
		{
			name: "majority lowercase",
			df:   "from busybox\nrun true\nCOPY a b\n",
			want: []string{"Dockerfile:3: ConsistentInstructionCasing: Command 'COPY' should match the case of the command majority (lowercase)"},
		},
		{
			name: "SHELL makes shell form fine; secrets allow-list",
			df:   "FROM busybox\nSHELL [\"/bin/sh\", \"-c\"]\nARG PUBLIC_KEY GITHUB_TOKEN\nENTRYPOINT sh\n",
			want: []string{`Dockerfile:3: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG "GITHUB_TOKEN")`},
		},
		{
			name: "multiple healthchecks, reported at the one ignored",
			df:   "FROM busybox\nHEALTHCHECK NONE\nHEALTHCHECK CMD true\n",
			want: []string{"Dockerfile:2: MultipleInstructionsDisallowed: Multiple HEALTHCHECK instructions should not be used in the same stage because only the last one will be used"},
		},
		{
			name: "ignored file",
			df:   "FROM busybox\nCOPY keep.txt /secret.txt ./ /x/\n",
			o:    LintOptions{Ignored: func(p string) bool { return p == "secret.txt" }},
			want: []string{`Dockerfile:2: CopyIgnoredFile: Attempting to Copy file "secret.txt" that is excluded by .dockerignore`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			df, err := Parse(strings.NewReader(tt.df), "Dockerfile")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range Lint(df, tt.o) {
				got = append(got, w.Loc.String()+": "+w.Rule+": "+w.Message)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
