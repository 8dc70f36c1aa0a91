package sandbox

import "strings"

// HostCgroupDirs maps the lines of a sandboxed process's /proc/self/cgroup
// that name a sandbox cgroup to their directories on the host.
func HostCgroupDirs(procSelfCgroup string) []string {
	mounts, err := readCgroupMounts()
	if err != nil {
		return nil
	}
	var dirs []string
	for _, line := range strings.Split(procSelfCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !strings.Contains(parts[2], "/"+cgroupParent+"/") {
			continue
		}
		for _, m := range mounts {
			if (parts[1] == "" && m.v2) || (parts[1] != "" && parts[1] == strings.Join(m.controllers, ",")) {
				dirs = append(dirs, m.sub(parts[2]))
			}
		}
	}
	return dirs
}
