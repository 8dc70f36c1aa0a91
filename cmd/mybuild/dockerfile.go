package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mybuild/mybuild/executor/copier"
	"github.com/mybuild/mybuild/parser"
)

// readDockerfile reads and parses the Dockerfile name of the directory
// dir (standard input when dir is nil), which messages call display. As
// in BuildKit, a symbolic link there is followed inside dir only: whoever
// writes in the build context cannot have a host file read in its place.
func readDockerfile(g *globals, display string, dir *copier.Root, name string) (*parser.Dockerfile, error) {
	r := g.stdin
	if dir != nil {
		f, err := dir.OpenFile(name)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("dockerfile %q not found", display)
			}
			return nil, fmt.Errorf("open dockerfile: %w", unwrapPath(err))
		}
		defer f.Close()
		r = f
	}
	return parser.Parse(r, display)
}

// dockerfileDir opens the directory of the Dockerfile at the host path
// path, nil for standard input (path ""): through the context when it lies
// inside contextDir, whose symbolic links then lead nowhere else, or else
// by its path.
func dockerfileDir(ctxRoot *copier.Root, contextDir, display, path string) (*copier.Root, error) {
	if path == "" {
		return nil, nil
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("open dockerfile: %w", err)
	}
	var r *copier.Root
	rel, err := filepath.Rel(contextDir, dir)
	if err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		r, err = ctxRoot.Sub(rel)
	} else {
		r, err = copier.OpenRoot(dir)
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("dockerfile %q not found", display)
	}
	if err != nil {
		return nil, fmt.Errorf("open dockerfile: %w", unwrapPath(err))
	}
	return r, nil
}

// closeRoot closes r unless it is nil.
func closeRoot(r *copier.Root) {
	if r != nil {
		r.Close()
	}
}
