package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildErrors checks that bad input fails with a message that names the
// Dockerfile line (or the flag), and that nothing is written to the store.
func TestBuildErrors(t *testing.T) {
	e := newEnv(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files map[string]string
		args  []string
		want  []string // substrings of stderr
	}{
		{
			name:  "unknown instruction",
			files: map[string]string{"Dockerfile": "FROM busybox\nFOO bar\n"},
			want:  []string{"Dockerfile:2", "unknown instruction", "FOO bar"},
		},
		{
			name:  "malformed JSON form",
			files: map[string]string{"Dockerfile": "FROM busybox\nENV A=1\nSHELL [\"/bin/sh\", -c]\n"},
			want:  []string{"Dockerfile:3", "JSON"},
		},
		{
			name:  "missing COPY source",
			files: map[string]string{"Dockerfile": "FROM busybox\n\nCOPY missing.txt /x\n"},
			want:  []string{"Dockerfile:3", "missing.txt"},
		},
		{
			name:  "unknown target",
			files: map[string]string{"Dockerfile": "FROM busybox AS a\n"},
			args:  []string{"--target", "b"},
			want:  []string{`"b"`},
		},
		{
			name:  "stage cycle",
			files: map[string]string{"Dockerfile": "FROM busybox AS a\nCOPY --from=b /x /x\nFROM a AS b\n"},
			want:  []string{"Dockerfile:2"},
		},
		{
			name:  "symlink out of the context",
			files: map[string]string{"Dockerfile": "FROM busybox\nCOPY escape /x\n", "escape": "->" + filepath.Join(outside, "secret")},
			want:  []string{"Dockerfile:2", "escape"},
		},
		{
			name:  "dotdot out of the context",
			files: map[string]string{"Dockerfile": "FROM busybox\nCOPY ../secret /x\n"},
			want:  []string{"Dockerfile:2"},
		},
		{
			name:  "unknown base image",
			files: map[string]string{"Dockerfile": "FROM nosuchimage:1.0\n"},
			want:  []string{"Dockerfile:1", "nosuchimage:1.0"},
		},
		{
			name:  "failing RUN",
			files: map[string]string{"Dockerfile": "FROM busybox\nRUN echo oops >&2; exit 3\nRUN true\n"},
			want:  []string{"Dockerfile:2: RUN echo oops >&2; exit 3: exit code 3", "oops"},
		},
		{
			name:  "unwritable output",
			files: map[string]string{"Dockerfile": "FROM busybox\n"},
			args:  []string{"-o", "type=oci-archive,dest=/proc/nope/out.tar"},
			want:  []string{"--output", "/proc/nope/out.tar"},
		},
		{
			name:  "bad output flag",
			files: map[string]string{"Dockerfile": "FROM busybox\n"},
			args:  []string{"-o", "type=tarball,dest=x"},
			want:  []string{"--output", "tarball"},
		},
	}
	before := listImages(t, e)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := writeContext(t, tc.files)
			args := append(append([]string{"build", "-t", "shouldnotexist"}, tc.args...), ctx)
			stderr := e.mustFail(args...)
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, e.root) {
				t.Errorf("error shows a host store path:\n%s", stderr)
			}
		})
	}
	if after := listImages(t, e); after != before {
		t.Errorf("failed builds changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if stderr := e.mustFail("build", filepath.Join(t.TempDir(), "nope")); !strings.Contains(stderr, "context") {
		t.Errorf("missing context error: %s", stderr)
	}
	entries, _ := os.ReadDir(filepath.Join(e.root, "tmp"))
	if len(entries) != 0 {
		t.Errorf("temp files left in the store: %v", entries)
	}
}

func listImages(t *testing.T, e *env) string {
	t.Helper()
	return e.mustRun("images", "-q").stdout
}
