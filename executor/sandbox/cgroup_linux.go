package sandbox

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
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
)

// cgroupParent is the directory, below the cgroup the builder runs in (or
// a hierarchy's root), that holds one child cgroup per running sandbox.
const cgroupParent = "mybuild"

// cgroup is one sandbox's cgroup: a directory in the unified (v2) hierarchy
// for the controllers it offers, and one directory per v1 hierarchy for the
// others. Only the command and its descendants are put in it, not the
// sandbox's init, so the init can always reap and report.
type cgroup struct {
	limits Limits
	v2     string            // the v2 directory, or ""
	v1     map[string]string // controller → its v1 directory
	home   map[string]string // v1 directory → the builder's own directory in that hierarchy
}

// initCgroup tells the init where to start the command: in V2 (with
// CLONE_INTO_CGROUP), and in each V1 directory (by moving its own thread
// there for the fork, then back to the matching Home directory).
type initCgroup struct {
	V2       string
	V1, Home []string
}

// cgroupMount is a mounted cgroup hierarchy.
type cgroupMount struct {
	dir, root   string
	v2          bool
	controllers []string // v1 only
}

// newCgroup creates a cgroup with limits l: in v2 when the unified
// hierarchy can delegate all the controllers l needs, else in v1.
func newCgroup(l Limits) (_ *cgroup, err error) {
	mounts, err := readCgroupMounts()
	if err != nil {
		return nil, err
	}
	self, err := readSelfCgroups()
	if err != nil {
		return nil, err
	}
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	c := &cgroup{limits: l, v1: map[string]string{}, home: map[string]string{}}
	defer func() {
		if err != nil {
			_ = c.destroy()
		}
	}()
	need := l.controllers()
	var v2err error
	for _, m := range mounts {
		if m.v2 {
			if v2err = c.setupV2(m, self[""], id, need); v2err == nil {
				return c, c.apply()
			}
			break
		}
	}
	for _, ctrl := range need {
		i := slices.IndexFunc(mounts, func(m cgroupMount) bool { return slices.Contains(m.controllers, ctrl) })
		if i < 0 {
			if v2err != nil {
				return nil, fmt.Errorf("create cgroup: no %s controller: %w", ctrl, v2err)
			}
			return nil, fmt.Errorf("create cgroup: no %s controller", ctrl)
		}
		m := mounts[i]
		own := m.sub(selfPath(self, m.controllers))
		dir := filepath.Join(own, cgroupParent, id)
		if _, ok := c.home[dir]; !ok {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("create cgroup: %w", err)
			}
			c.home[dir] = own
		}
		c.v1[ctrl] = dir
	}
	return c, c.apply()
}

// setupV2 creates the v2 directory, below the builder's own cgroup or else
// below the hierarchy's root (the only cgroup with processes that may
// delegate controllers), enabling the controllers in the parents.
func (c *cgroup) setupV2(m cgroupMount, self, id string, need []string) error {
	avail, err := os.ReadFile(filepath.Join(m.dir, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("read cgroup controllers: %w", err)
	}
	for _, ctrl := range need {
		if !slices.Contains(strings.Fields(string(avail)), ctrl) {
			return fmt.Errorf("cgroup v2 has no %s controller", ctrl)
		}
	}
	enable := "+" + strings.Join(need, " +")
	var firstErr error
	for _, base := range slices.Compact([]string{m.sub(self), m.dir}) {
		parent := filepath.Join(base, cgroupParent)
		err := writeFile(filepath.Join(base, "cgroup.subtree_control"), enable)
		if err == nil {
			if err = os.Mkdir(parent, 0o755); errors.Is(err, fs.ErrExist) {
				err = nil
			}
		}
		if err == nil {
			err = writeFile(filepath.Join(parent, "cgroup.subtree_control"), enable)
		}
		if err == nil {
			dir := filepath.Join(parent, id)
			if err = os.Mkdir(dir, 0o755); err == nil {
				c.v2 = dir
				return nil
			}
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return fmt.Errorf("create cgroup v2: %w", firstErr)
}

// apply writes the limits into the cgroup's files.
func (c *cgroup) apply() error {
	l := c.limits
	period := l.CPUPeriod
	if period == 0 {
		period = DefaultCPUPeriod
	}
	type setting struct{ file, value string }
	var v2 []setting
	v1 := map[string][]setting{}
	if l.MemoryBytes > 0 {
		n := strconv.FormatInt(l.MemoryBytes, 10)
		v2 = append(v2, setting{"memory.max", n}, setting{"memory.swap.max?", "0"})
		v1["memory"] = []setting{{"memory.limit_in_bytes", n}, {"memory.memsw.limit_in_bytes?", n}}
	}
	if l.CPUQuota > 0 {
		v2 = append(v2, setting{"cpu.max", fmt.Sprintf("%d %d", l.CPUQuota, period)})
		v1["cpu"] = []setting{{"cpu.cfs_period_us", strconv.FormatInt(period, 10)}, {"cpu.cfs_quota_us", strconv.FormatInt(l.CPUQuota, 10)}}
	}
	if l.PidsLimit > 0 {
		n := strconv.FormatInt(l.PidsLimit, 10)
		v2 = append(v2, setting{"pids.max", n})
		v1["pids"] = []setting{{"pids.max", n}}
	}
	write := func(dir string, s setting) error {
		name, optional := strings.CutSuffix(s.file, "?")
		err := writeFile(filepath.Join(dir, name), s.value)
		if err != nil && !(optional && errors.Is(err, fs.ErrNotExist)) {
			return fmt.Errorf("set cgroup limit %s: %w", name, err)
		}
		return nil
	}
	if c.v2 != "" {
		for _, s := range v2 {
			if err := write(c.v2, s); err != nil {
				return err
			}
		}
		return nil
	}
	for ctrl, settings := range v1 {
		for _, s := range settings {
			if err := write(c.v1[ctrl], s); err != nil {
				return err
			}
		}
	}
	return nil
}

// placement is what the init needs to start the command in the cgroup.
func (c *cgroup) placement() *initCgroup {
	p := &initCgroup{V2: c.v2}
	for _, dir := range c.dirs() {
		if dir != c.v2 {
			p.V1 = append(p.V1, dir)
			p.Home = append(p.Home, c.home[dir])
		}
	}
	return p
}

// dirs lists the cgroup's directories, each once, in a fixed order.
func (c *cgroup) dirs() []string {
	var d []string
	if c.v2 != "" {
		d = append(d, c.v2)
	}
	for _, dir := range c.v1 {
		d = append(d, dir)
	}
	slices.Sort(d)
	return slices.Compact(d)
}

// dir returns the directory holding controller ctrl.
func (c *cgroup) dir(ctrl string) string {
	if c.v2 != "" {
		return c.v2
	}
	return c.v1[ctrl]
}

// oomKilled reports whether the out-of-memory killer killed a process of
// the cgroup.
func (c *cgroup) oomKilled() bool {
	if c.limits.MemoryBytes <= 0 {
		return false
	}
	if c.v2 != "" {
		return readKey(filepath.Join(c.v2, "memory.events"), "oom_kill") > 0
	}
	dir := c.v1["memory"]
	if n := readKey(filepath.Join(dir, "memory.oom_control"), "oom_kill"); n >= 0 {
		return n > 0
	}
	// Kernels before 4.13 do not count kills; a hit limit is the best hint.
	data, _ := os.ReadFile(filepath.Join(dir, "memory.failcnt"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return n > 0
}

// pidsLimited reports whether a fork or clone failed at the pids limit.
func (c *cgroup) pidsLimited() bool {
	return c.limits.PidsLimit > 0 && readKey(filepath.Join(c.dir("pids"), "pids.events"), "max") > 0
}

// annotate turns the command's failure into an *OOMError, or notes on
// its *ExitError that the pids limit was reached.
func (c *cgroup) annotate(err error) error {
	var ee *ExitError
	if !errors.As(err, &ee) {
		return err
	}
	if c.oomKilled() {
		return &OOMError{Limit: c.limits.MemoryBytes, Code: ee.Code}
	}
	if c.pidsLimited() {
		ee.PidsLimit = c.limits.PidsLimit
	}
	return err
}

// destroy kills whatever is left in the cgroup and removes its directories.
func (c *cgroup) destroy() error {
	var errs []error
	for _, dir := range c.dirs() {
		if err := removeCgroup(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeCgroup kills the processes in dir until it can be removed. When the
// sandbox's pid namespace has ended they are gone already (or exiting).
func removeCgroup(dir string) error {
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

// SweepCgroups removes the cgroups of sandboxes whose builder was killed
// before it could remove them: empty directories below every hierarchy's
// mybuild parent (in the builder's own cgroup and at the root) that are
// older than a minute, so a cgroup just created for a starting command is
// never taken.
func SweepCgroups() error {
	mounts, err := readCgroupMounts()
	if err != nil {
		return err
	}
	self, err := readSelfCgroups()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range mounts {
		own := self[""]
		if !m.v2 {
			own = selfPath(self, m.controllers)
		}
		for _, base := range slices.Compact([]string{m.sub(own), m.dir}) {
			parent := filepath.Join(base, cgroupParent)
			ents, _ := os.ReadDir(parent)
			for _, e := range ents {
				info, err := e.Info()
				if !e.IsDir() || err != nil || time.Since(info.ModTime()) < time.Minute {
					continue
				}
				err = os.Remove(filepath.Join(parent, e.Name()))
				if err != nil && !errors.Is(err, syscall.EBUSY) && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, fmt.Errorf("remove stale cgroup: %w", err))
				}
			}
		}
	}
	return errors.Join(errs...)
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
				if o != "rw" && o != "ro" && !strings.Contains(o, "=") {
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

func randomID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("create cgroup name: %w", err)
	}
	return hex.EncodeToString(b), nil
}
