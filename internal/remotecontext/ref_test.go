package remotecontext

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Kind
	}{
		{".", Local},
		{"/abs/dir", Local},
		{"./a:b", Local},
		{"docker-image://busybox", Local},
		{"ftp://host/ctx.tar", Local},
		{"https://host/ctx.tar.gz", HTTP},
		{"http://host/Dockerfile", HTTP},
		{"https://host/repo.git/Dockerfile", HTTP},
		{"HTTPS://host/ctx", HTTP},
		{"https://host/repo.git", Git},
		{"https://host/repo.git#main:sub", Git},
		{"https://host/repo.git?branch=main", Git},
		{"http://user:pw@host/repo.git", Git},
		{"git://host/repo", Git},
		{"ssh://git@host/repo", Git},
		{"git@github.com:moby/buildkit.git", Git},
		{"git@github.com:moby/buildkit.git#v0.1:dir", Git},
		{"host:path", Git},
	} {
		if got := Detect(tc.in); got != tc.want {
			t.Errorf("Detect(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseGit(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		in      string
		want    *GitRef
		wantErr string
	}{
		{in: "https://github.com/moby/buildkit.git", want: &GitRef{Remote: "https://github.com/moby/buildkit.git"}},
		{in: "https://github.com/moby/buildkit.git#main", want: &GitRef{Remote: "https://github.com/moby/buildkit.git", Ref: "main"}},
		{in: "https://github.com/moby/buildkit.git#v0.10.0:frontend/dockerfile", want: &GitRef{Remote: "https://github.com/moby/buildkit.git", Ref: "v0.10.0", SubDir: "frontend/dockerfile"}},
		{in: "https://github.com/moby/buildkit.git#:sub", want: &GitRef{Remote: "https://github.com/moby/buildkit.git", SubDir: "sub"}},
		{in: "https://github.com/moby/buildkit.git#refs/pull/42/head", want: &GitRef{Remote: "https://github.com/moby/buildkit.git", Ref: "refs/pull/42/head"}},
		{in: "https://tok:secret@host/r.git#b", want: &GitRef{Remote: "https://tok:secret@host/r.git", Ref: "b"}},
		{in: "git://127.0.0.1:9418/repo.git#0123456789abcdef0123456789abcdef01234567", want: &GitRef{Remote: "git://127.0.0.1:9418/repo.git", Ref: "0123456789abcdef0123456789abcdef01234567"}},
		{in: "ssh://git@host:2222/srv/repo", want: &GitRef{Remote: "ssh://git@host:2222/srv/repo"}},
		{in: "git@github.com:moby/buildkit.git#v1:docs", want: &GitRef{Remote: "git@github.com:moby/buildkit.git", Ref: "v1", SubDir: "docs"}},
		{in: "git@github.com:moby/buildkit.git?tag=v1&subdir=docs", want: &GitRef{Remote: "git@github.com:moby/buildkit.git", Ref: "refs/tags/v1", SubDir: "docs"}},
		{in: "https://host/r.git?branch=dev&subdir=a/b", want: &GitRef{Remote: "https://host/r.git", Ref: "refs/heads/dev", SubDir: "a/b"}},
		{in: "https://host/r.git?ref=pull/1/head", want: &GitRef{Remote: "https://host/r.git", Ref: "pull/1/head"}},
		{in: "https://host/r.git?checksum=abcdef1", want: &GitRef{Remote: "https://host/r.git", Ref: "abcdef1", Checksum: "abcdef1"}},
		{in: "https://host/r.git?tag=v1&commit=abcdef1", want: &GitRef{Remote: "https://host/r.git", Ref: "refs/tags/v1", Checksum: "abcdef1"}},
		{in: "https://host/r.git?keep-git-dir&submodules=false", want: &GitRef{Remote: "https://host/r.git", KeepGitDir: &yes, Submodules: &no}},
		{in: "https://host/r.git#main?x", want: &GitRef{Remote: "https://host/r.git", Ref: "main?x"}},
		{in: "https://host/r.git?tag=v1&branch=b", wantErr: "branch conflicts with tag"},
		{in: "https://host/r.git?ref=b#a", wantErr: "ref conflicts"},
		{in: "https://host/r.git?ref=a&ref=b", wantErr: "multiple values"},
		{in: "https://host/r.git?color=red", wantErr: `unexpected query "color"`},
		{in: "https://host/r.git?ref=", wantErr: "has no value"},
		{in: "https://host/r.git?submodules=maybe", wantErr: "invalid submodules value"},
		{in: "https://host/r.git#--upload-pack=touch", wantErr: "invalid ref"},
		{in: "https://host/ctx.tar", wantErr: "not a Git URL"},
	} {
		got, err := ParseGit(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseGit(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseGit(%q): %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("ParseGit(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pa55word@host/r.git#main": "https://host/r.git#main",
		"https://token@host/ctx.tar.gz":         "https://host/ctx.tar.gz",
		"git://host/r.git":                      "git://host/r.git",
		"git@github.com:a/b.git":                "git@github.com:a/b.git",
		"https://us%zzer:pw@host/x":             "https://host/x",
		"https://us%zzer:pw@host":               "https://host",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	msg := "fatal: unable to access 'https://user:pa55word@host/r.git/': pa55word rejected"
	if got := scrub(msg, secrets("https://user:pa55word@host/r.git")); strings.Contains(got, "pa55word") {
		t.Errorf("scrub left the password: %q", got)
	}
}
