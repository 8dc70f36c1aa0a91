package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mybuild/mybuild/internal/procstat"
)

// The host's cgroup file systems as the builder sees them: the mounted
// hierarchies, its own cgroup in each, the directories sandboxes' cgroups
// live in, and the sweep of those dead builders left.

// cgroupMount is a mounted cgroup hierarchy.
type cgroupMount struct {
	dir, root   string
	v2          bool
	controllers []string // v1 only
	options     []string // v1 only: controllers and name=
}

// mkdirCgroup creates dir (and the parents it lacks) below the existing
// cgroup base. A new cpuset cgroup has no CPUs or memory nodes: it gets
// its parent's.
func mkdirCgroup(base, dir string, cpuset bool) error {
	rel, err := filepath.Rel(base, dir)
	if err != nil {
		return fmt.Errorf("create cgroup: %w", err)
	}
	cur := base
	for _, comp := range strings.Split(rel, "/") {
		parent := cur
		cur = filepath.Join(cur, comp)
		if err := os.Mkdir(cur, 0o755); errors.Is(err, fs.ErrExist) {
			continue
		} else if err != nil {
			return fmt.Errorf("create cgroup: %w", err)
		}
		if !cpuset {
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			data, err := os.ReadFile(filepath.Join(parent, f))
			if err == nil {
				err = writeFile(filepath.Join(cur, f), strings.TrimSpace(string(data)))
			}
			if err != nil {
				return fmt.Errorf("create cgroup: %s: %w", f, err)
			}
		}
	}
	return nil
}

// controllers2 lists the controllers a v2 hierarchy offers.
func (m cgroupMount) controllers2() []string {
	data, _ := os.ReadFile(filepath.Join(m.dir, "cgroup.controllers"))
	return strings.Fields(string(data))
}

// removeCgroup kills the processes in dir until it can be removed. When the
// sandbox's pid namespace has ended they are gone already (or exiting).
func removeCgroup(dir string) error {
	if err := os.Remove(dir); err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	_ = writeFile(filepath.Join(dir, "cgroup.kill"), "1") // v2, kernel 5.14+
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup: %w", err)
		}
		data, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SweepCgroups removes the cgroups of sandboxes whose builder is gone: in
// every hierarchy, below the mybuild parent of the builder's own cgroup
// and of the root, each cgroup named after a builder process that no
// longer runs has its processes killed (a step that outlived a killed
// builder) and is removed. Cgroups of running builders are left alone.
func SweepCgroups() error {
	parents, err := sandboxParents()
	if err != nil {
		return err
	}
	var errs []error
	for _, parent := range parents {
		ents, _ := os.ReadDir(parent)
		for _, e := range ents {
			if !e.IsDir() || !staleSandbox(e.Name()) {
				continue
			}
			if err := removeCgroup(filepath.Join(parent, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("remove stale cgroup: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// sandboxParents lists the directories that may hold sandbox cgroups: the
// mybuild directory below the builder's own cgroup and below the root, in
// every hierarchy.
func sandboxParents() ([]string, error) {
	mounts, err := readCgroupMounts()
	if err != nil {
		return nil, err
	}
	self, err := readSelfCgroups()
	if err != nil {
		return nil, err
	}
	var parents []string
	for _, m := range mounts {
		own := self[""]
		if !m.v2 {
			own = selfPath(self, m.controllers)
		}
		for _, base := range slices.Compact([]string{m.sub(own), m.dir}) {
			parents = append(parents, filepath.Join(base, cgroupParent))
		}
	}
	return parents, nil
}

// staleSandbox reports whether the sandbox id (PID-STARTTIME-RANDOM) names
// a builder process that has ended (or whose pid another process has
// taken since).
func staleSandbox(id string) bool {
	parts := strings.SplitN(id, "-", 3)
	if len(parts) != 3 {
		return false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 {
		return false
	}
	// A zombie builder is as dead as a gone one: its mounts and processes
	// died with it, only its parent has not reaped it yet.
	st, err := procstat.Read(parts[0])
	return err != nil || st.StartTime != parts[1] || st.Dead()
}

// sub returns the directory of cgroup path p (as /proc/self/cgroup names
// it) in the mounted hierarchy m.
func (m cgroupMount) sub(p string) string {
	rel, ok := strings.CutPrefix(p, m.root)
	if !ok || strings.Contains(p, "..") {
		return m.dir
	}
	return filepath.Join(m.dir, rel)
}

// readCgroupMounts lists the cgroup hierarchies mounted in this mount
// namespace, the first mount of each.
func readCgroupMounts() ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	var mounts []cgroupMount
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 3 || seen[fields[2]] {
			continue
		}
		m := cgroupMount{root: fields[3], dir: fields[4]}
		switch tail[0] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			for _, o := range strings.Split(tail[2], ",") {
				if o == "rw" || o == "ro" {
					continue
				}
				m.options = append(m.options, o)
				if !strings.Contains(o, "=") {
					m.controllers = append(m.controllers, o)
				}
			}
		default:
			continue
		}
		seen[fields[2]] = true
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	return mounts, nil
}

// readSelfCgroups maps each hierarchy's controllers, as /proc/self/cgroup
// lists them ("" for v2, "cpu,cpuacct" for a v1 hierarchy), to this
// process's cgroup path in it.
func readSelfCgroups() (map[string]string, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read own cgroups: %w", err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			m[parts[1]] = parts[2]
		}
	}
	return m, nil
}

// selfPath returns this process's path in the v1 hierarchy of ctrls.
func selfPath(self map[string]string, ctrls []string) string {
	for k, p := range self {
		have := strings.Split(k, ",")
		if len(have) == len(ctrls) && !slices.ContainsFunc(have, func(c string) bool { return !slices.Contains(ctrls, c) }) {
			return p
		}
	}
	return "/"
}

// readKey returns the value of key in a flat-keyed cgroup file
// ("key value" lines), or -1 when the file or key is missing.
func readKey(file, key string) int64 {
	data, err := os.ReadFile(file)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

func writeFile(name, value string) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
