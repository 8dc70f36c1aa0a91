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
// otherwise .dockerignore at the root of the context directory. It returns
// nil when there is neither or when the file has no patterns. dockerfile may
// be empty or "-" (read from stdin): only the context's file applies.
func LoadIgnore(contextDir, dockerfile string) (*patternmatcher.PatternMatcher, error) {
	var candidates []string
	if dockerfile != "" && dockerfile != "-" {
		candidates = append(candidates, dockerfile+".dockerignore")
	}
	candidates = append(candidates, filepath.Join(contextDir, ".dockerignore"))
	for _, name := range candidates {
		f, err := os.Open(name)
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
