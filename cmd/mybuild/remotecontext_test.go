package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mybuild/mybuild/internal/remotecontext"
)

func TestDockerfilePath(t *testing.T) {
	local, remote, plain := &mainContext{dir: "/ctx"}, &mainContext{dir: "/tmp/x/git/sub", kind: remotecontext.Git},
		&mainContext{dir: "/tmp/x/context", dockerfile: "/tmp/x/download", kind: remotecontext.HTTP}
	for _, tc := range []struct {
		c          *mainContext
		file       string
		name, path string
	}{
		{local, "", "Dockerfile", "/ctx/Dockerfile"},
		{local, "-", "-", ""},
		{local, "build/Dockerfile", "build/Dockerfile", "build/Dockerfile"}, // relative to the working directory
		{remote, "", "Dockerfile", "/tmp/x/git/sub/Dockerfile"},
		{remote, "build/Dockerfile", "build/Dockerfile", "/tmp/x/git/sub/build/Dockerfile"},
		{remote, "../../../etc/passwd", "../../../etc/passwd", "/tmp/x/git/sub/etc/passwd"}, // stays inside
		{remote, "/abs/Dockerfile", "/abs/Dockerfile", "/abs/Dockerfile"},
		{remote, "-", "-", ""},
		{plain, "", "Dockerfile", "/tmp/x/download"},
		{plain, "other", "Dockerfile", "/tmp/x/download"}, // docker ignores -f here
		{plain, "-", "-", ""},
	} {
		name, path, err := tc.c.dockerfilePath(tc.file)
		if err != nil || name != tc.name || path != tc.path {
			t.Errorf("%+v dockerfilePath(%q) = %q, %q, %v; want %q, %q", *tc.c, tc.file, name, path, err, tc.name, tc.path)
		}
	}
}

func TestResolveContext(t *testing.T) {
	dir := t.TempDir()
	colon := filepath.Join(dir, "host:path")
	if err := os.Mkdir(colon, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		arg     string
		kind    remotecontext.Kind
		wantErr string
	}{
		{arg: dir, kind: remotecontext.Local},
		{arg: colon, kind: remotecontext.Local}, // a directory wins over the scp-like form
		{arg: "https://host/ctx.tar.gz", kind: remotecontext.HTTP},
		{arg: "git://host/repo.git#main:sub", kind: remotecontext.Git},
		{arg: "git@host:repo.git", kind: remotecontext.Git},
		{arg: filepath.Join(dir, "missing"), wantErr: "does not exist"},
		{arg: "ftp://host/ctx.tar", wantErr: "does not exist"},
		{arg: "https://u:pw@host/repo.git?color=red", wantErr: `build context "https://host/repo.git?color=red": unexpected query "color"`},
	} {
		c, err := resolveContext(tc.arg)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("resolveContext(%q): %v, want %q", tc.arg, err, tc.wantErr)
			}
			continue
		}
		if err != nil || c.kind != tc.kind {
			t.Errorf("resolveContext(%q) = %+v, %v; want kind %v", tc.arg, c, err, tc.kind)
		}
	}
}
