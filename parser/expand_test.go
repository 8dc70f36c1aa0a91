package parser

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func names(ns ...string) map[string]struct{} {
	m := map[string]struct{}{}
	for _, n := range ns {
		m[n] = struct{}{}
	}
	return m
}

func TestExpand(t *testing.T) {
	env := []string{"A=1", "B=x y", "A=2", "EMPTY=", "P=/usr/local/bin", "Q=it's"}
	tests := []struct {
		escape rune
		word   string
		want   string
		used   map[string]struct{}
	}{
		{'\\', "plain", "plain", names()},
		{'\\', "$A", "2", names("A")}, // later entries win
		{'\\', "${A}", "2", names("A")},
		{'\\', "a${B}c", "ax yc", names("B")},
		{'\\', "$A$UNSET.", "2.", names("A", "UNSET")},
		{'\\', "${UNSET:-def}", "def", names("UNSET")},
		{'\\', "${A:-def}", "2", names("A")},
		{'\\', "${EMPTY:-def}", "def", names("EMPTY")},
		{'\\', "${EMPTY-def}", "", names("EMPTY")},
		{'\\', "${UNSET-def}", "def", names("UNSET")},
		{'\\', "${A:+alt}", "alt", names("A")},
		{'\\', "${UNSET:+alt}", "", names("UNSET")},
		{'\\', "${EMPTY+alt}", "alt", names("EMPTY")},
		{'\\', "${P#*/}", "usr/local/bin", names("P")},
		{'\\', "${P##*/}", "bin", names("P")},
		{'\\', "${P%/*}", "/usr/local", names("P")},
		{'\\', "${P%%/*}", "", names("P")},
		{'\\', "${P/local/opt}", "/usr/opt/bin", names("P")},
		{'\\', "${A:-${B}}", "2", names("A", "B")}, // BuildKit reads the unused default too
		{'\\', "${UNSET:-${B}}", "x y", names("UNSET", "B")},
		{'\\', `\$A`, "$A", names()},
		{'\\', `\${A}`, "${A}", names()},
		{'\\', `'$A'`, "$A", names()},
		{'\\', `"$A"`, "2", names("A")},
		{'\\', `"a b" 'c d'`, "a b c d", names()},
		{'\\', `"$Q"`, "it's", names("Q")},
		{'\\', `a\ b`, "a b", names()},
		{'\\', "$", "$", names()},
		{'\\', "c:\\dir", "c:dir", names()},
		{'`', "c:\\dir", "c:\\dir", names()},
		{'`', "`$A \\$A", "$A \\2", names("A")},
		{0, "$A", "2", names("A")},
	}
	for _, tt := range tests {
		t.Run(string(tt.escape)+tt.word, func(t *testing.T) {
			got, used, err := NewExpander(tt.escape).Expand(tt.word, env)
			if err != nil {
				t.Fatalf("Expand(%q): %v", tt.word, err)
			}
			if got != tt.want {
				t.Errorf("Expand(%q) = %q, want %q", tt.word, got, tt.want)
			}
			if diff := cmp.Diff(tt.used, used, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Expand(%q) names (-want +got):\n%s", tt.word, diff)
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct {
		word, want string
	}{
		{"${UNSET:?is required}", `expand "${UNSET:?is required}": UNSET: is required`},
		{"${EMPTY?}", ""},
		{"${A", `expand "${A": `},
		{"${A:=x}", `expand "${A:=x}": `},
	}
	env := []string{"A=1", "EMPTY="}
	for _, tt := range tests {
		_, _, err := NewExpander('\\').Expand(tt.word, env)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Expand(%q): unexpected error %v", tt.word, err)
		case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
			t.Errorf("Expand(%q) error = %v, want prefix %q", tt.word, err, tt.want)
		case err != nil && strings.Contains(err.Error(), "failed to"):
			t.Errorf("Expand(%q) error %q keeps BuildKit's wrapping", tt.word, err)
		}
	}
}

func TestExpandWords(t *testing.T) {
	env := []string{"PORTS=80 443/tcp", "DIR=/my data", "EMPTY="}
	tests := []struct {
		word string
		want []string
	}{
		{"8080 $PORTS", []string{"8080", "80", "443/tcp"}},
		{`"$DIR" /logs`, []string{"/my data", "/logs"}},
		{`$DIR`, []string{"/my", "data"}},
		{`a\ b  c`, []string{"a b", "c"}},
		{`'$PORTS'`, []string{"$PORTS"}},
		{"$EMPTY", nil},
		{`""`, nil}, // BuildKit drops empty quoted words
	}
	for _, tt := range tests {
		got, err := NewExpander('\\').ExpandWords(tt.word, env)
		if err != nil {
			t.Fatalf("ExpandWords(%q): %v", tt.word, err)
		}
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ExpandWords(%q) (-want +got):\n%s", tt.word, diff)
		}
	}
}

func TestExpandHeredoc(t *testing.T) {
	env := []string{"NAME=world", "Q=a'b"}
	got, used, err := NewExpander('`').ExpandHeredoc("say \"hello $NAME\" '${Q}' \\$NAME $MISSING\n", env)
	if err != nil {
		t.Fatal(err)
	}
	if want := "say \"hello world\" 'a'b' $NAME \n"; got != want {
		t.Errorf("ExpandHeredoc = %q, want %q", got, want)
	}
	if diff := cmp.Diff(names("NAME", "Q", "MISSING"), used); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
}
