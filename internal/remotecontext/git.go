package remotecontext

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// ErrNoGit is returned (wrapped) when the git binary is not installed.
var ErrNoGit = errors.New("git is not installed")

// checkout fetches r into the empty directory dir, as BuildKit's git
// source does: a shallow fetch of the ref (a full one when the server will
// not serve a commit shallowly), a detached checkout, the submodules, and
// the .git directory removed unless keep. It returns the context directory
// (dir, or the subdirectory r names) and the commit checked out.
func checkout(ctx context.Context, r *GitRef, dir string, keep bool, env []string) (string, string, error) {
	bin, err := exec.LookPath("git")
	if err != nil {
		return "", "", fmt.Errorf("%w (a Git build context needs it): %v", ErrNoGit, err)
	}
	if env == nil {
		env = os.Environ()
	}
	// Never wait for a password on a terminal (ssh has none to open either:
	// git runs in a session of its own).
	env = append(env[:len(env):len(env)], "GIT_TERMINAL_PROMPT=0")
	g := &gitCmd{bin: bin, dir: dir, env: env, secrets: secrets(r.Remote)}

	if _, err := g.run(ctx, "init", "-c", "init.defaultBranch=main", "init", "-q"); err != nil {
		return "", "", err
	}
	// The remote goes into the config file rather than on a command line,
	// where other users could read its credentials.
	if err := addRemote(dir, r.Remote); err != nil {
		return "", "", fmt.Errorf("git init: %w", err)
	}
	ref := r.Ref
	if ref == "" {
		ref = "HEAD"
	}
	target := "FETCH_HEAD"
	if _, err := g.run(ctx, "fetch", "fetch", "--depth=1", "--no-tags", "--no-recurse-submodules", "origin", ref); err != nil {
		if !isCommitLike(ref) || ctx.Err() != nil {
			return "", "", err
		}
		// Servers speaking Git protocol v0 refuse a commit nobody
		// advertises: fetch everything, then look the commit up.
		if _, err := g.run(ctx, "fetch", "fetch", "--tags", "--no-recurse-submodules", "origin"); err != nil {
			return "", "", err
		}
		target = ref
	}
	if _, err := g.run(ctx, "checkout", "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", target); err != nil {
		return "", "", err
	}
	commit, err := g.run(ctx, "rev-parse", "rev-parse", "HEAD")
	if err != nil {
		return "", "", err
	}
	commit = strings.TrimSpace(commit)
	if r.Checksum != "" && !strings.HasPrefix(commit, r.Checksum) {
		return "", "", fmt.Errorf("checked out commit %s, which does not match the expected checksum %s", commit, r.Checksum)
	}
	if isCommitLike(r.Ref) && !strings.HasPrefix(commit, r.Ref) && target != "FETCH_HEAD" {
		return "", "", fmt.Errorf("checked out commit %s, not %s", commit, r.Ref)
	}
	subs := r.Submodules == nil || *r.Submodules
	if _, err := os.Lstat(filepath.Join(dir, ".gitmodules")); err != nil {
		subs = false
	}
	if subs {
		if _, err := g.run(ctx, "submodule update", "submodule", "update", "--init", "--recursive", "--depth=1"); err != nil {
			if ctx.Err() != nil {
				return "", "", err
			}
			// A pinned commit that is no branch tip cannot be fetched
			// shallowly from every server.
			if _, err := g.run(ctx, "submodule update", "submodule", "update", "--init", "--recursive"); err != nil {
				return "", "", err
			}
		}
	}
	if err := normalizeModes(dir); err != nil {
		return "", "", err
	}
	if keep {
		// What stays in the context must not hold the credentials.
		if _, err := g.run(ctx, "remote set-url", "remote", "set-url", "origin", Redact(r.Remote)); err != nil {
			return "", "", err
		}
	} else if err := removeGitDirs(dir, subs); err != nil {
		return "", "", err
	}
	ctxDir, err := subDir(dir, r.SubDir)
	return ctxDir, commit, err
}

// addRemote adds the remote "origin" to the config of the repository in
// dir, fetching every branch.
func addRemote(dir, remote string) error {
	f, err := os.OpenFile(filepath.Join(dir, ".git", "config"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(remote)
	_, err = fmt.Fprintf(f, "[remote \"origin\"]\n\turl = \"%s\"\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n", q)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// isCommitLike tells whether ref may be a commit's name (hexadecimal, at
// least 7 digits), which a server may refuse to fetch by itself.
func isCommitLike(ref string) bool {
	if len(ref) < 7 || len(ref) > 64 {
		return false
	}
	for _, c := range ref {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// normalizeModes gives the checkout the modes Git records, whatever the
// umask was: 0755 for directories and executable files, 0644 for other
// files. The .git directory is left as it is.
func normalizeModes(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == ".git" && d.IsDir() {
			return filepath.SkipDir
		}
		var mode fs.FileMode
		switch {
		case d.IsDir():
			mode = 0o755
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			mode = 0o644
			if fi.Mode()&0o100 != 0 {
				mode = 0o755
			}
			if fi.Mode().Perm() == mode {
				return nil
			}
		default:
			return nil
		}
		return os.Chmod(p, mode)
	})
}

// removeGitDirs removes the .git directory of the checkout in dir and,
// when there are submodules, their .git files. Git never checks out an
// entry named .git, so every one is git's own.
func removeGitDirs(dir string, subs bool) error {
	if err := os.RemoveAll(filepath.Join(dir, ".git")); err != nil {
		return fmt.Errorf("remove .git: %w", err)
	}
	if !subs {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() != ".git" {
			return nil
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove .git: %w", err)
		}
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
}

// subDir resolves the context directory sub inside the checkout root,
// never leaving it.
func subDir(root, sub string) (string, error) {
	sub = path.Clean(strings.Trim(sub, "/"))
	if sub == "." {
		return root, nil
	}
	if sub == ".." || strings.HasPrefix(sub, "../") {
		return "", fmt.Errorf("subdirectory %q is outside the repository", sub)
	}
	p, err := securejoin.SecureJoin(root, sub)
	if err != nil {
		return "", fmt.Errorf("subdirectory %q: %w", sub, err)
	}
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("subdirectory %q not found in the repository", sub)
	case err != nil:
		return "", fmt.Errorf("subdirectory %q: %w", sub, err)
	case !fi.IsDir():
		return "", fmt.Errorf("subdirectory %q is not a directory", sub)
	}
	return p, nil
}

// gitCmd runs git in a directory.
type gitCmd struct {
	bin, dir string
	env      []string
	secrets  []string // scrubbed from messages
}

// run runs git with args and returns its standard output; on failure the
// error is "git VERB: " and the end of git's standard error.
func (g *gitCmd) run(ctx context.Context, verb string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, g.bin, args...)
	cmd.Dir, cmd.Env = g.dir, g.env
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	// A session of its own: no terminal for ssh to prompt on, and a process
	// group that cancellation kills whole (ssh, remote helpers).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return "", fmt.Errorf("git %s: %w", verb, cerr)
	}
	msg := lastLines(scrub(stderr.String(), g.secrets), 4)
	if msg == "" {
		msg = err.Error()
	}
	return "", fmt.Errorf("git %s: %s", verb, msg)
}

// noise are the beginnings of the lines of git's standard error that say
// how it went rather than what went wrong.
var noise = []string{"remote: ", "From ", " * ", "Cloning into", "Submodule ", "hint: ",
	"Receiving objects", "Resolving deltas", "Unpacking objects", "Counting objects", "Compressing objects", "Enumerating objects"}

// lastLines joins the last n lines of s that are neither empty nor
// progress.
func lastLines(s string, n int) string {
	var lines []string
next:
	for _, l := range strings.Split(s, "\n") {
		// Progress lines end in carriage returns: keep their last state.
		if i := strings.LastIndexByte(strings.TrimRight(l, "\r"), '\r'); i >= 0 {
			l = l[i+1:]
		}
		for _, p := range noise {
			if strings.HasPrefix(l, p) {
				continue next
			}
		}
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " ")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }
