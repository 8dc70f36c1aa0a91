package copier

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// LoadIgnore reads the ignore file of a build: <Dockerfile>.dockerignore
// next to the Dockerfile when there is one (e.g. "app.Dockerfile.dockerignore"),
// otherwise .dockerignore at the root of the context directory. It returns
// nil when there is neither or when the file has no patterns. dockerfile may
// be empty or "-" (read from stdin): only the context's file applies. Each
// file is read with OpenInDir, inside its directory.
func LoadIgnore(contextDir, dockerfile string) (*patternmatcher.PatternMatcher, error) {
	var candidates []string
	if dockerfile != "" && dockerfile != "-" {
		candidates = append(candidates, dockerfile+".dockerignore")
	}
	candidates = append(candidates, filepath.Join(contextDir, ".dockerignore"))
	for _, name := range candidates {
		f, err := OpenInDir(filepath.Dir(name), filepath.Base(name))
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

// OpenInDir opens the regular file name of the directory dir for reading,
// as BuildKit reads a Dockerfile and its .dockerignore, and as COPY reads a
// source: symbolic links, the last one included, are followed inside dir,
// an absolute target taken as inside it, never out of it. Whoever can
// write in dir cannot have a file outside it read in its place. A name
// that does not resolve inside dir gives an error matching os.ErrNotExist.
func OpenInDir(dir, name string) (*os.File, error) {
	root, err := cleanRoot(dir)
	if err != nil {
		return nil, err
	}
	src, err := openSource(root)
	if err != nil {
		return nil, err
	}
	defer src.close()
	c := &copier{srcRoot: root, src: src}
	it, err := c.lookup(name, path.Join("/", filepath.ToSlash(name)))
	if errors.Is(err, ErrNotFound) {
		return nil, &os.PathError{Op: "open", Path: name, Err: os.ErrNotExist}
	}
	if err != nil {
		return nil, err
	}
	f, err := src.openFile(it.rel)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: bare(err)}
	}
	return f, nil
}
