package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// SandboxCgroupDirs lists the host directories of the cgroups of this
// process's sandboxes that exist now, in every hierarchy.
func SandboxCgroupDirs() []string {
	parents, err := sandboxParents()
	if err != nil {
		return nil
	}
	prefix := strconv.Itoa(os.Getpid()) + "-"
	var dirs []string
	for _, parent := range parents {
		ents, _ := os.ReadDir(parent)
		for _, e := range ents {
			if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
				dirs = append(dirs, filepath.Join(parent, e.Name()))
			}
		}
	}
	slices.Sort(dirs)
	return slices.Compact(dirs)
}
