package copier

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// LoadIgnore reads the ignore file of a build: <Dockerfile>.dockerignore
// next to the Dockerfile when there is one (e.g. "app.Dockerfile.dockerignore"),
// otherwise .dockerignore at the root of the context. It returns nil when
// there is neither or when the file has no patterns. dockerfileDir is the
// Dockerfile's directory, dockerfile its name; with dockerfileDir nil (a
// Dockerfile read from stdin) only the context's file applies. Both are
// read with Root.OpenFile, inside their directory.
func LoadIgnore(context, dockerfileDir *Root, dockerfile string) (*patternmatcher.PatternMatcher, error) {
	type candidate struct {
		dir  *Root
		name string
	}
	var candidates []candidate
	if dockerfileDir != nil {
		candidates = append(candidates, candidate{dockerfileDir, dockerfile + ".dockerignore"})
	}
	candidates = append(candidates, candidate{context, ".dockerignore"})
	for _, cand := range candidates {
		name := cand.name
		f, err := cand.dir.OpenFile(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", filepath.Base(name), bare(err))
		}
		patterns, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", filepath.Base(name), bare(err))
		}
		if len(patterns) == 0 {
			return nil, nil
		}
		pm, err := patternmatcher.New(patterns)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", filepath.Base(name), err)
		}
		return pm, nil
	}
	return nil, nil
}
