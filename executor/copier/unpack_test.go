package copier

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnpack(t *testing.T) {
	archive := makeTar(t,
		tdir("d/", 0o750, 0, 0),
		treg("d/run.sh", "#!/bin/sh\n", 0o755, 0, 0),
		tsym("d/link", "run.sh"),
	)
	cases := []struct {
		name    string
		data    string
		opts    UnpackOptions
		errIs   error
		wantErr string
		want    []string // "path mode" of the unpacked tree
	}{
		{name: "plain", data: archive, want: []string{"/d 0750", "/d/link 0777", "/d/run.sh 0755"}},
		{name: "gzip", data: compress(t, "gzip", archive), want: []string{"/d 0750", "/d/link 0777", "/d/run.sh 0755"}},
		{name: "within limit", data: archive, opts: UnpackOptions{MaxSize: 10}, want: []string{"/d 0750", "/d/link 0777", "/d/run.sh 0755"}},
		{name: "over limit", data: archive, opts: UnpackOptions{MaxSize: 9}, errIs: ErrTooLarge},
		{name: "text", data: "FROM scratch\nCOPY . /\n", errIs: ErrNotArchive},
		{name: "empty", data: "", errIs: ErrNotArchive},
		{name: "gzipped text", data: compress(t, "gzip", "FROM scratch\n"), errIs: ErrNotArchive},
		{name: "escape", data: makeTar(t, treg("../x", "x", 0o644, 0, 0)), errIs: ErrUnsafeArchive},
		{name: "symlink out", data: makeTar(t, tsym("l", "../../etc/passwd")), errIs: ErrUnsafeArchive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "context")
			if err := os.WriteFile(src, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			dest := t.TempDir()
			err := Unpack(context.Background(), src, dest, tc.opts)
			if tc.errIs != nil || tc.wantErr != "" {
				if err == nil || (tc.errIs != nil && !errors.Is(err, tc.errIs)) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Unpack: %v, want %v %q", err, tc.errIs, tc.wantErr)
				}
				if errors.Is(err, ErrNotArchive) {
					if got := tree(t, dest); len(got) != 0 {
						t.Errorf("not an archive, yet unpacked %v", got)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range tree(t, dest) {
				got = append(got, n.Path+" "+n.Mode)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("unpacked:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
