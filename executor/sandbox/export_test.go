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
	mounts, err := readCgroupMounts()
	if err != nil {
		return nil
	}
	self, err := readSelfCgroups()
	if err != nil {
		return nil
	}
	prefix := strconv.Itoa(os.Getpid()) + "-"
	var dirs []string
	for _, m := range mounts {
		own := self[""]
		if !m.v2 {
			own = selfPath(self, m.controllers)
		}
		for _, base := range slices.Compact([]string{m.sub(own), m.dir}) {
			parent := filepath.Join(base, cgroupParent)
			ents, _ := os.ReadDir(parent)
			for _, e := range ents {
				if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
					dirs = append(dirs, filepath.Join(parent, e.Name()))
				}
			}
		}
	}
	slices.Sort(dirs)
	return slices.Compact(dirs)
}
