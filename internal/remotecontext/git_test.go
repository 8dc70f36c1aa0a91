package remotecontext

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitEnv is an environment free of the user's git configuration, allowing
// file:// submodules.
func gitEnv(t *testing.T) []string {
	return append(os.Environ(), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=protocol.file.allow", "GIT_CONFIG_VALUE_0=always")
}

// git runs git in dir and returns its trimmed output.
func git(t *testing.T, env []string, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func write(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func TestCheckout(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed (make test installs it)")
	}
	env := gitEnv(t)
	base := t.TempDir()
	sub := filepath.Join(base, "lib")
	git(t, env, base, "init", "-q", "-b", "main", sub)
	write(t, filepath.Join(sub, "lib.txt"), "lib\n", 0o644)
	git(t, env, sub, "add", ".")
	git(t, env, sub, "commit", "-q", "-m", "lib")

	repo := filepath.Join(base, "repo")
	git(t, env, base, "init", "-q", "-b", "main", repo)
	write(t, filepath.Join(repo, "a.txt"), "one\n", 0o644)
	git(t, env, repo, "add", ".")
	git(t, env, repo, "commit", "-q", "-m", "one")
	first := git(t, env, repo, "rev-parse", "HEAD")
	git(t, env, repo, "tag", "-a", "-m", "v1", "v1")
	write(t, filepath.Join(repo, "a.txt"), "two\n", 0o644)
	write(t, filepath.Join(repo, "sub/run.sh"), "#!/bin/sh\n", 0o755)
	if err := os.Symlink("../..", filepath.Join(repo, "up")); err != nil {
		t.Fatal(err)
	}
	git(t, env, repo, "submodule", "-q", "add", sub, "vendor/lib")
	git(t, env, repo, "add", ".")
	git(t, env, repo, "commit", "-q", "-m", "two")
	second := git(t, env, repo, "rev-parse", "HEAD")

	for _, tc := range []struct {
		name    string
		ref     GitRef
		keep    bool
		env     []string
		wantErr string
		commit  string
		files   map[string]string // relative to the context directory; "" must not exist
	}{
		{name: "HEAD", ref: GitRef{}, commit: second,
			files: map[string]string{"a.txt": "two\n", "vendor/lib/lib.txt": "lib\n", ".git": "", "vendor/lib/.git": ""}},
		{name: "annotated tag", ref: GitRef{Ref: "v1"}, commit: first, files: map[string]string{"a.txt": "one\n", "sub": ""}},
		{name: "commit", ref: GitRef{Ref: first}, commit: first, files: map[string]string{"a.txt": "one\n"}},
		{name: "commit, protocol v0", ref: GitRef{Ref: first}, commit: first, files: map[string]string{"a.txt": "one\n"},
			env: append(gitEnv(t)[:len(env)-3], "GIT_CONFIG_COUNT=2", "GIT_CONFIG_KEY_0=protocol.file.allow", "GIT_CONFIG_VALUE_0=always",
				"GIT_CONFIG_KEY_1=protocol.version", "GIT_CONFIG_VALUE_1=0")},
		{name: "subdir", ref: GitRef{Ref: "main", SubDir: "sub"}, commit: second, files: map[string]string{"run.sh": "#!/bin/sh\n"}},
		{name: "no submodules", ref: GitRef{Submodules: new(bool)}, commit: second, files: map[string]string{"vendor/lib/lib.txt": ""}},
		{name: "keep .git", ref: GitRef{Ref: "main"}, keep: true, commit: second, files: map[string]string{".git/HEAD": second + "\n"}},
		{name: "checksum", ref: GitRef{Ref: "main", Checksum: first[:10]}, wantErr: "does not match the expected checksum"},
		{name: "missing ref", ref: GitRef{Ref: "nope"}, wantErr: "git fetch: fatal: couldn't find remote ref nope"},
		{name: "missing subdir", ref: GitRef{SubDir: "nope"}, wantErr: `subdirectory "nope" not found`},
		{name: "subdir escape", ref: GitRef{SubDir: "a/../../.."}, wantErr: `subdirectory "../.." is outside the repository`},
		{name: "subdir symlink escape", ref: GitRef{SubDir: "up/x"}, wantErr: `subdirectory "up/x" not found`},
		{name: "subdir file", ref: GitRef{SubDir: "a.txt"}, wantErr: "is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.ref
			r.Remote = repo
			dir := t.TempDir()
			e := tc.env
			if e == nil {
				e = env
			}
			cdir, commit, err := checkout(context.Background(), &r, dir, tc.keep, e)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("checkout: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if commit != tc.commit {
				t.Errorf("commit = %s, want %s", commit, tc.commit)
			}
			for name, want := range tc.files {
				p := filepath.Join(cdir, name)
				if want == "" {
					if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("%s exists (%v), want it absent", name, err)
					}
					continue
				}
				wantFile(t, p, want)
			}
			if fi, err := os.Stat(filepath.Join(cdir, "run.sh")); err == nil && fi.Mode().Perm() != 0o755 {
				t.Errorf("run.sh mode %v, want 0755", fi.Mode())
			}
		})
	}
}

func TestCheckoutCancel(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed (make test installs it)")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := checkout(ctx, &GitRef{Remote: t.TempDir()}, t.TempDir(), false, gitEnv(t))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("checkout: %v, want context.Canceled", err)
	}
}

// TestNormalizeModes: a checkout made under a strict umask gets the modes
// Git records.
func TestNormalizeModes(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "d/plain"), "x", 0o600)
	write(t, filepath.Join(dir, "d/exec"), "x", 0o700)
	write(t, filepath.Join(dir, ".git/config"), "x", 0o600)
	if err := os.Chmod(filepath.Join(dir, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("plain", filepath.Join(dir, "d/link")); err != nil {
		t.Fatal(err)
	}
	if err := normalizeModes(dir); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"d": 0o755, "d/plain": 0o644, "d/exec": 0o755, ".git/config": 0o600} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
}
