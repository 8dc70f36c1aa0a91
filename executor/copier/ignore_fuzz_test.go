package copier

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/patternmatcher"
)

// FuzzIgnore loads arbitrary .dockerignore contents and matches arbitrary
// paths against them: neither may panic.
func FuzzIgnore(f *testing.F) {
	for _, s := range []struct{ ignore, path string }{
		{"*.md\n!README.md\n", "docs/README.md"},
		{"# comment\nnode_modules\n**/*.log\n", "a/b/c.log"},
		{"/abs/path\n./rel\n../up\n", "abs/path/x"},
		{"[a-\n", "a"},
		{"\\\n!\n!!x\n", "x"},
		{"**\n!keep/**\n", "keep/deep/file"},
		{"dir/\n", "dir/file"},
		{"\ufeff*.tmp\r\n", "x.tmp"},
	} {
		f.Add(s.ignore, s.path)
	}
	f.Fuzz(func(t *testing.T, ignore, p string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte(ignore), 0o644); err != nil {
			t.Fatal(err)
		}
		pm, err := LoadIgnore(openRoot(t, dir), nil, "")
		if err != nil || pm == nil {
			return
		}
		_, _ = pm.MatchesOrParentMatches(p)
		_, _ = pm.MatchesOrParentMatches(filepath.Clean(p))
		_, info, err := pm.MatchesUsingParentResults(filepath.Dir(p), patternmatcher.MatchInfo{})
		if err == nil {
			_, _, _ = pm.MatchesUsingParentResults(p, info)
		}
	})
}
