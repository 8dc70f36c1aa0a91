package parser

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMount(t *testing.T) {
	env := []string{"ID=gomod", "T=/go/pkg/mod"}
	expand := func(s string) (string, error) {
		r, _, err := NewExpander('\\').Expand(s, env)
		return r, err
	}
	tests := []struct {
		raw  string
		want Mount
	}{
		{"target=/src", Mount{Type: "bind", Target: "/src", ReadOnly: true}},
		{"type=bind,from=build,source=/out,target=/in,rw", Mount{Type: "bind", From: "build", Source: "/out", Target: "/in"}},
		{"type=cache,target=$T,id=${ID},sharing=locked,mode=0700,uid=1000,gid=1000", Mount{
			Type: "cache", Target: "/go/pkg/mod", CacheID: "gomod", CacheSharing: "locked",
			Mode: ptr(uint64(0o700)), UID: ptr(uint64(1000)), GID: ptr(uint64(1000)),
		}},
		{"type=tmpfs,target=/tmp,size=64m", Mount{Type: "tmpfs", Target: "/tmp", SizeLimit: 64 << 20}},
		{"type=secret,id=npmrc,env=NPM_TOKEN,required", Mount{Type: "secret", CacheID: "npmrc", Env: ptr("NPM_TOKEN"), Required: true, ReadOnly: true}},
		{"type=ssh", Mount{Type: "ssh", ReadOnly: true}},
	}
	for _, tt := range tests {
		got, err := ParseMount(tt.raw, expand)
		if err != nil {
			t.Errorf("ParseMount(%q): %v", tt.raw, err)
			continue
		}
		if diff := cmp.Diff(tt.want, *got); diff != "" {
			t.Errorf("ParseMount(%q) (-want +got):\n%s", tt.raw, diff)
		}
	}

	got, err := ParseMount("type=cache,target=$T", nil)
	if err != nil || got.Target != "$T" {
		t.Errorf("ParseMount without expander = %+v, %v; want target kept as written", got, err)
	}

	for raw, want := range map[string]string{
		"type=bogus":                   `unsupported mount type "bogus"`,
		"type=bind,mode=0600":          `mode not allowed for "bind" type mounts`,
		"type=cache,sharing=sometimes": `unsupported sharing value "sometimes"`,
		"type=secret":                  "invalid secret mount",
		"target=/x,color=red":          "unexpected key 'color'",
	} {
		_, err := ParseMount(raw, expand)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "parse mount ") {
			t.Errorf("ParseMount(%q) error = %v, want one containing %q", raw, err, want)
		}
	}
}
