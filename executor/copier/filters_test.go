package copier

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/patternmatcher"
)

func mustMatcher(t *testing.T, patterns ...string) *patternmatcher.PatternMatcher {
	t.Helper()
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return pm
}

func TestCopyDockerignore(t *testing.T) {
	ctx := []entry{
		file("a.txt", "A"),
		file("secret.txt", "S"),
		file("notes.md", "N"),
		symlink("to-secret", "secret.txt"),
		dir("logs").withMode(0o750),
		file("logs/x.log", "x"),
		file("logs/keep.log", "k"),
		dir("docs"),
		file("docs/readme.md", "r"),
		dir("private"),
		file("private/key", "k"),
	}
	ignore := mustMatcher(t, "secret.txt", "*.md", "logs", "!logs/keep.log", "private")
	withIgnore := func(o Options) Options { o.Ignore = ignore; return o }
	runCases(t, []copyCase{
		{
			name:  "an ignored file does not exist",
			src:   ctx,
			opts:  withIgnore(Options{Sources: []string{"secret.txt"}, Dest: "/x"}),
			errIs: ErrNotFound, wantErr: `resolve "secret.txt": not found: excluded by .dockerignore`,
		},
		{
			name:  "a link to an ignored file leads nowhere",
			src:   ctx,
			opts:  withIgnore(Options{Sources: []string{"to-secret"}, Dest: "/x"}),
			errIs: ErrNotFound,
		},
		{
			name:  "below an ignored directory",
			src:   ctx,
			opts:  withIgnore(Options{Sources: []string{"private/key"}, Dest: "/x"}),
			errIs: ErrNotFound,
		},
		{
			name: "the whole context",
			src:  ctx,
			opts: withIgnore(Options{Sources: []string{"."}, Dest: "/app/"}),
			want: []node{
				dirNode("/app", "0755", tSrc),
				fileNode("/app/a.txt", "A", "0644", tSrc),
				dirNode("/app/docs", "0755", tSrc),
				fileNode("/app/docs/readme.md", "r", "0644", tSrc),
				dirNode("/app/logs", "0750", tSrc),
				fileNode("/app/logs/keep.log", "k", "0644", tSrc),
				linkNode("/app/to-secret", "secret.txt", tSrc),
			},
		},
		{
			name: "an ignored directory with an exception",
			src:  ctx,
			opts: withIgnore(Options{Sources: []string{"logs"}, Dest: "/l"}),
			want: []node{dirNode("/l", "0755", tSrc), fileNode("/l/keep.log", "k", "0644", tSrc)},
		},
		{
			name: "wildcards skip ignored files",
			src:  ctx,
			opts: withIgnore(Options{Sources: []string{"*.txt", "*.md"}, Dest: "/t/"}),
			want: []node{dirNode("/t", "0755", tDir), fileNode("/t/a.txt", "A", "0644", tSrc)},
		},
	})
}

func TestCopyExcludes(t *testing.T) {
	runCases(t, []copyCase{
		{
			name: "patterns are relative to the copied directory",
			opts: Options{Sources: []string{"dir"}, Dest: "/app", Excludes: []string{"*.txt"}},
			want: []node{
				dirNode("/app", "0755", tSrc2), linkNode("/app/link", "one.txt", tSrc),
				dirNode("/app/sub", "0700", tSrc), fileNode("/app/sub/two.txt", "22", "0644", tSrc),
			},
		},
		{
			name: "directories stay when their files are excluded",
			opts: Options{Sources: []string{"dir"}, Dest: "/app", Excludes: []string{"**/*.txt", "link"}},
			want: []node{dirNode("/app", "0755", tSrc2), dirNode("/app/sub", "0700", tSrc)},
		},
		{
			name: "exception inside an excluded directory",
			opts: Options{Sources: []string{"dir"}, Dest: "/app", Excludes: []string{"sub", "one.txt", "link", "!sub/two.txt"}},
			want: []node{dirNode("/app", "0755", tSrc2), dirNode("/app/sub", "0700", tSrc), fileNode("/app/sub/two.txt", "22", "0644", tSrc)},
		},
		{
			name: "wildcard matches are excluded too (documented behaviour)",
			opts: Options{Sources: []string{"*.txt"}, Dest: "/t/", Excludes: []string{"b*"}},
			want: []node{dirNode("/t", "0755", tDir), fileNode("/t/a.txt", "A", "0644", tSrc), fileNode("/t/link.txt", "A", "0644", tSrc)},
		},
		{
			name: "wildcard matches relative to the wildcard's directory",
			opts: Options{Sources: []string{"d2/*"}, Dest: "/t/", Excludes: []string{"*.md"}},
			want: []node{dirNode("/t", "0755", tDir), fileNode("/t/y.txt", "y", "0644", tSrc)},
		},
		{
			name: "everything excluded leaves the destination directory",
			opts: Options{Sources: []string{"d*"}, Dest: "/e/", Excludes: []string{"*"}},
			want: []node{dirNode("/e", "0755", tSrc2)},
		},
	})
}

func TestCopyParents(t *testing.T) {
	runCases(t, []copyCase{
		{
			name: "paths keep their directories",
			opts: Options{Sources: []string{"dir/sub/two.txt", "./d1/x.txt"}, Dest: "/p", Parents: true},
			want: []node{
				dirNode("/p", "0755", tSrc),
				dirNode("/p/d1", "0755", tSrc), fileNode("/p/d1/x.txt", "x", "0644", tSrc),
				dirNode("/p/dir", "0750", tSrc2), dirNode("/p/dir/sub", "0700", tSrc),
				fileNode("/p/dir/sub/two.txt", "22", "0644", tSrc),
			},
		},
		{
			name: "a directory keeps its name",
			opts: Options{Sources: []string{"d2"}, Dest: "/p/", Parents: true},
			want: []node{
				dirNode("/p", "0755", tSrc), dirNode("/p/d2", "0755", tSrc),
				fileNode("/p/d2/y.txt", "y", "0644", tSrc), fileNode("/p/d2/z.md", "z", "0644", tSrc),
			},
		},
		{
			name: "pivot",
			opts: Options{Sources: []string{"dir/./sub/*.txt"}, Dest: "/p/", Parents: true},
			want: []node{dirNode("/p", "0755", tSrc2), dirNode("/p/sub", "0700", tSrc), fileNode("/p/sub/two.txt", "22", "0644", tSrc)},
		},
		{
			name: "double star",
			opts: Options{Sources: []string{"d*/**/*.txt"}, Dest: "/p/", Parents: true},
			want: []node{
				dirNode("/p", "0755", tSrc),
				dirNode("/p/d1", "0755", tSrc), fileNode("/p/d1/x.txt", "x", "0644", tSrc),
				dirNode("/p/d2", "0755", tSrc), fileNode("/p/d2/y.txt", "y", "0644", tSrc),
				dirNode("/p/dir", "0750", tSrc2), fileNode("/p/dir/one.txt", "1", "0644", tSrc),
				dirNode("/p/dir/sub", "0700", tSrc), fileNode("/p/dir/sub/two.txt", "22", "0644", tSrc),
			},
		},
		{
			name: "into existing directories",
			dest: []entry{dir("p").at(tOld), dir("p/dir").withMode(0o777).owned(5, 5).at(tOld)},
			opts: Options{Sources: []string{"dir/one.txt"}, Dest: "/p", Parents: true},
			want: []node{
				dirNode("/p", "0755", tSrc), dirNode("/p/dir", "0750", tOld).own(5, 5),
				fileNode("/p/dir/one.txt", "1", "0644", tSrc),
			},
		},
		{
			name:  "missing path",
			opts:  Options{Sources: []string{"dir/nope.txt"}, Dest: "/p", Parents: true},
			errIs: ErrNotFound,
		},
	})
}

func TestLoadIgnore(t *testing.T) {
	tests := []struct {
		name       string
		files      map[string]string
		dockerfile string
		check      map[string]bool // path → ignored
		wantNil    bool
	}{
		{
			name:       "context file",
			files:      map[string]string{"ctx/.dockerignore": "# comment\n*.log\n!keep.log\n/abs\n"},
			dockerfile: "ctx/Dockerfile",
			check:      map[string]bool{"x.log": true, "keep.log": false, "abs": true, "a.txt": false},
		},
		{
			name: "Dockerfile-specific file wins",
			files: map[string]string{
				"ctx/.dockerignore":                 "*.log\n",
				"files/app.Dockerfile.dockerignore": "*.txt\n",
			},
			dockerfile: "files/app.Dockerfile",
			check:      map[string]bool{"x.log": false, "a.txt": true},
		},
		{
			name:       "none",
			dockerfile: "ctx/Dockerfile",
			wantNil:    true,
		},
		{
			name:       "empty file",
			files:      map[string]string{"ctx/.dockerignore": "\n# nothing\n"},
			dockerfile: "-",
			wantNil:    true,
		},
		{
			name:       "symbolic link inside the context",
			files:      map[string]string{"ctx/.dockerignore": "->rules/ignore", "ctx/rules/ignore": "*.log\n"},
			dockerfile: "ctx/Dockerfile",
			check:      map[string]bool{"x.log": true, "a.txt": false},
		},
		{
			name:       "symbolic link to a host file",
			files:      map[string]string{"ctx/.dockerignore": "->$BASE/host/ignore", "host/ignore": "*.log\n"},
			dockerfile: "ctx/Dockerfile",
			wantNil:    true,
		},
		{
			name:       "symbolic link climbing out",
			files:      map[string]string{"ctx/.dockerignore": "->../host/ignore", "host/ignore": "*.log\n"},
			dockerfile: "ctx/Dockerfile",
			wantNil:    true,
		},
		{
			name:       "Dockerfile-specific file linked out of its directory",
			files:      map[string]string{"files/app.Dockerfile.dockerignore": "->../host/ignore", "host/ignore": "*.log\n"},
			dockerfile: "files/app.Dockerfile",
			wantNil:    true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			if err := os.MkdirAll(filepath.Join(base, "ctx"), 0o755); err != nil {
				t.Fatal(err)
			}
			for name, data := range tt.files {
				p := filepath.Join(base, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if target, ok := strings.CutPrefix(data, "->"); ok {
					err := os.Symlink(strings.ReplaceAll(target, "$BASE", base), p)
					if err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			context := openRoot(t, filepath.Join(base, "ctx"))
			var dfDir *Root
			if tt.dockerfile != "-" {
				dfDir = openRoot(t, filepath.Join(base, filepath.Dir(tt.dockerfile)))
			}
			pm, err := LoadIgnore(context, dfDir, filepath.Base(tt.dockerfile))
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNil {
				if pm != nil {
					t.Fatalf("matcher = %v, want nil", pm.Patterns())
				}
				return
			}
			got := map[string]bool{}
			for p := range tt.check {
				got[p], err = pm.MatchesOrParentMatches(p)
				if err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tt.check, got); diff != "" {
				t.Errorf("ignored mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// openRoot opens dir as a Root closed with the test.
func openRoot(t *testing.T, dir string) *Root {
	t.Helper()
	r, err := OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
