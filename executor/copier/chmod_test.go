package copier

import (
	"fmt"
	"testing"
)

func TestParseChmod(t *testing.T) {
	tests := []struct {
		spec string
		mode uint32
		dir  bool
		want uint32
	}{
		{spec: "755", mode: 0o600, want: 0o755},
		{spec: "0644", mode: 0o4777, dir: true, want: 0o644},
		{spec: "2750", mode: 0o600, want: 0o2750},
		{spec: "+x", mode: 0o644, want: 0o755},
		{spec: "u+x", mode: 0o644, want: 0o744},
		{spec: "g=u", mode: 0o640, want: 0o660},
		{spec: "go=rX", mode: 0o700, dir: true, want: 0o755},
		{spec: "go=rX", mode: 0o600, want: 0o644},
		{spec: "go=rX", mode: 0o700, want: 0o755},
		{spec: "u=rwX,go=rX", mode: 0o777, want: 0o755},
		{spec: "a-w", mode: 0o666, want: 0o444},
		{spec: "o=", mode: 0o777, want: 0o770},
		{spec: "u+s", mode: 0o755, want: 0o4755},
		{spec: "g+s", mode: 0o755, want: 0o2755},
		{spec: "o+s", mode: 0o755, want: 0o755},
		{spec: "+t", mode: 0o777, dir: true, want: 0o1777},
		{spec: "u=rw,g=r,o=", mode: 0o777, want: 0o640},
		{spec: "a=", mode: 0o4755, want: 0},
		{spec: "u-x+s", mode: 0o755, want: 0o4655},
		{spec: "ug+w,o-r", mode: 0o444, want: 0o660},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s on %o", tt.spec, tt.mode), func(t *testing.T) {
			fn, _, err := parseChmod(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := fn(tt.mode, tt.dir); got != tt.want {
				t.Errorf("got %04o, want %04o", got, tt.want)
			}
		})
	}
}

func TestParseChmodErrors(t *testing.T) {
	for _, spec := range []string{"9", "08", "100000", "x", "u", "u+q", "z+x", "u+x,", ",", "u+x,,g-w"} {
		if _, _, err := parseChmod(spec); err == nil {
			t.Errorf("parseChmod(%q) accepted", spec)
		}
	}
}
