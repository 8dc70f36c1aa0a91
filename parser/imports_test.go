package parser

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps BuildKit's LLB-building packages out of the parser: only
// the Dockerfile syntax packages may be imported.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/moby/buildkit/frontend/dockerfile/parser":       true,
		"github.com/moby/buildkit/frontend/dockerfile/instructions": true,
		"github.com/moby/buildkit/frontend/dockerfile/shell":        true,
		"github.com/moby/buildkit/frontend/dockerfile/linter":       true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/moby/buildkit/") && !allowed[path] {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
