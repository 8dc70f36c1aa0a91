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

	"golang.org/x/sys/unix"

	"github.com/opencontainers/cgroups"
	_ "github.com/opencontainers/cgroups/devices" // device rules for v1 and v2
	devconfig "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/mybuild/mybuild/internal/procstat"
)

// cgroupParent is the directory, below the cgroup the builder runs in (or
// a hierarchy's root), that holds one child cgroup per running sandbox.
const cgroupParent = "mybuild"

// cgroup is one sandbox's cgroup: a directory in the unified (v2)
// hierarchy, which holds the limits when it offers their controllers, and
// one in the v1 hierarchies of the limits v2 cannot hold. Every sandbox
// gets one, limits or not: its device rules allow only the default
// devices (a v2 BPF program, or the v1 devices controller where BPF is
// unavailable), its processes are killed and
// counted through it, and the command sees it as the root of its cgroup
// namespace.
type cgroup struct {
	limits Limits
	// specPath is the cgroup's path as the OCI spec gives it: relative
	// (to the builder's own cgroup in each hierarchy) or absolute.
	specPath string
	v2       string            // the v2 directory, or ""
	v1       map[string]string // controller → its v1 directory
}

// cgroupMount is a mounted cgroup hierarchy.
type cgroupMount struct {
	dir, root   string
	v2          bool
	controllers []string // v1 only
	options     []string // v1 only: controllers and name=
}

// newCgroup creates the cgroup of sandbox id with limits l and device
// rules rules.
func newCgroup(id string, l Limits, rules []specs.LinuxDeviceCgroup) (_ *cgroup, err error) {
	mounts, err := readCgroupMounts()
	if err != nil {
		return nil, err
	}
	self, err := readSelfCgroups()
	if err != nil {
		return nil, err
	}
	c := &cgroup{limits: l, v1: map[string]string{}, specPath: filepath.Join(cgroupParent, id)}
	defer func() {
		if err != nil {
			_ = c.destroy()
		}
	}()
	need := l.controllers()
	var v1need []string
	i2 := slices.IndexFunc(mounts, func(m cgroupMount) bool { return m.v2 })
	if i2 >= 0 {
		m := mounts[i2]
		ctrls := m.controllers2()
		v2need := need
		if slices.ContainsFunc(need, func(c string) bool { return !slices.Contains(ctrls, c) }) {
			// A hybrid host: the limits go to v1, v2 only holds the
			// sandbox (and, without a v1 devices controller, its rules).
			v2need, v1need = nil, need
		}
		atRoot, err := c.setupV2(m, self[""], id, v2need)
		if err != nil {
			return nil, err
		}
		if atRoot {
			c.specPath = "/" + c.specPath
		}
	} else {
		v1need = need
	}
	// In v1, the hierarchies of the limits v2 cannot hold. Moving a
	// process into a v1 cgroup waits for an RCU grace period (about a
	// millisecond here, each), so the others are left alone; runc joins
	// them all (see TestRuntimeParity).
	for _, ctrl := range v1need {
		if err := c.joinV1(mounts, self, ctrl); err != nil {
			return nil, err
		}
	}
	if err := c.apply(); err != nil {
		return nil, err
	}
	// The device rules: a BPF program on the v2 cgroup, which the
	// process starts in at no cost, even on a hybrid host (the kernel
	// checks both); else, or where BPF is refused, the v1 controller.
	var v2err error
	if c.v2 != "" {
		if v2err = c.setDevicesV2(rules); v2err == nil {
			return c, nil
		}
	}
	if !slices.ContainsFunc(mounts, func(m cgroupMount) bool { return slices.Contains(m.controllers, "devices") }) {
		if v2err != nil {
			return nil, v2err
		}
		return nil, errors.New("set device rules: no devices cgroup controller and no cgroup v2")
	}
	if err := c.joinV1(mounts, self, "devices"); err != nil {
		return nil, err
	}
	if err := c.setDevicesV1(rules); err != nil {
		return nil, err
	}
	return c, nil
}

// joinV1 creates the cgroup's directory in the v1 hierarchy of ctrl.
func (c *cgroup) joinV1(mounts []cgroupMount, self map[string]string, ctrl string) error {
	if c.v1[ctrl] != "" {
		return nil
	}
	i := slices.IndexFunc(mounts, func(m cgroupMount) bool { return slices.Contains(m.controllers, ctrl) })
	if i < 0 {
		return fmt.Errorf("create cgroup: no %s controller", ctrl)
	}
	m := mounts[i]
	own := m.sub(selfPath(self, m.controllers))
	if c.specPath[0] == '/' {
		own = m.dir
	}
	dir := filepath.Join(own, c.specPath)
	if err := mkdirCgroup(own, dir, slices.Contains(m.controllers, "cpuset")); err != nil {
		return err
	}
	for _, o := range m.options {
		c.v1[o] = dir
	}
	return nil
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

// setupV2 creates the v2 directory, below the builder's own cgroup or else
// below the hierarchy's root (the only cgroup with processes that may
// delegate controllers), enabling the controllers need in the parents. It
// reports whether the directory is below the root.
func (c *cgroup) setupV2(m cgroupMount, self, id string, need []string) (atRoot bool, _ error) {
	enable := ""
	if len(need) > 0 {
		enable = "+" + strings.Join(need, " +")
	}
	var firstErr error
	bases := slices.Compact([]string{m.sub(self), m.dir})
	for i, base := range bases {
		parent := filepath.Join(base, cgroupParent)
		var err error
		if enable != "" {
			err = writeFile(filepath.Join(base, "cgroup.subtree_control"), enable)
		}
		if err == nil {
			if err = os.Mkdir(parent, 0o755); errors.Is(err, fs.ErrExist) {
				err = nil
			}
		}
		if err == nil && enable != "" {
			err = writeFile(filepath.Join(parent, "cgroup.subtree_control"), enable)
		}
		if err == nil {
			dir := filepath.Join(parent, id)
			if err = os.Mkdir(dir, 0o755); err == nil {
				c.v2 = dir
				return i > 0, nil
			}
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return false, fmt.Errorf("create cgroup v2: %w", firstErr)
}

// apply writes the limits into the cgroup's files.
func (c *cgroup) apply() error {
	l := c.limits
	period := l.CPUPeriod
	if period == 0 {
		period = DefaultCPUPeriod
	}
	type setting struct{ file, value string }
	v2 := map[string][]setting{}
	v1 := map[string][]setting{}
	if l.MemoryBytes > 0 {
		n := strconv.FormatInt(l.MemoryBytes, 10)
		v2["memory"] = []setting{{"memory.max", n}, {"memory.swap.max?", "0"}}
		v1["memory"] = []setting{{"memory.limit_in_bytes", n}, {"memory.memsw.limit_in_bytes?", n}}
	}
	if l.CPUQuota > 0 {
		v2["cpu"] = []setting{{"cpu.max", fmt.Sprintf("%d %d", l.CPUQuota, period)}}
		v1["cpu"] = []setting{{"cpu.cfs_period_us", strconv.FormatInt(period, 10)}, {"cpu.cfs_quota_us", strconv.FormatInt(l.CPUQuota, 10)}}
	}
	if l.PidsLimit > 0 {
		n := strconv.FormatInt(l.PidsLimit, 10)
		v2["pids"] = []setting{{"pids.max", n}}
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
	for _, ctrl := range l.controllers() {
		dir, settings := c.v1[ctrl], v1[ctrl]
		if dir == "" {
			dir, settings = c.v2, v2[ctrl]
		}
		for _, s := range settings {
			if err := write(dir, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// deviceResources turns OCI device rules into opencontainers/cgroups'.
func deviceResources(rules []specs.LinuxDeviceCgroup) *cgroups.Resources {
	res := &cgroups.Resources{}
	for _, r := range rules {
		typ := devconfig.WildcardDevice
		if r.Type != "" && r.Type != "a" {
			typ = devconfig.Type(r.Type[0])
		}
		rule := &devconfig.Rule{Type: typ, Major: devconfig.Wildcard, Minor: devconfig.Wildcard,
			Permissions: devconfig.Permissions(r.Access), Allow: r.Allow}
		if r.Major != nil {
			rule.Major = *r.Major
		}
		if r.Minor != nil {
			rule.Minor = *r.Minor
		}
		res.Devices = append(res.Devices, rule)
	}
	return res
}

// setDevicesV2 attaches the device rules to the v2 directory as a BPF
// program, and setDevicesV1 writes them into the v1 devices controller,
// both with opencontainers/cgroups, runc's own implementation.
func (c *cgroup) setDevicesV2(rules []specs.LinuxDeviceCgroup) error {
	if err := cgroups.DevicesSetV2(c.v2, deviceResources(rules)); err != nil {
		return fmt.Errorf("set device rules: %w", err)
	}
	return nil
}

func (c *cgroup) setDevicesV1(rules []specs.LinuxDeviceCgroup) error {
	if err := cgroups.DevicesSetV1(c.v1["devices"], deviceResources(rules)); err != nil {
		return fmt.Errorf("set device rules: %w", err)
	}
	return nil
}

// openV2 opens the v2 directory for clone3's CLONE_INTO_CGROUP, which
// starts a process in it without a migration; -1 when there is none.
func (c *cgroup) openV2() int {
	if c.v2 == "" {
		return -1
	}
	fd, err := unix.Open(c.v2, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	return fd
}

// place moves the process pid (all its threads) into the cgroup: into
// the v1 directories, and into the v2 one too unless it started there.
func (c *cgroup) place(pid int, inV2 bool) error {
	for _, dir := range c.dirs() {
		if dir == c.v2 && inV2 {
			continue
		}
		if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	return nil
}

// joined reports whether the sandbox's process is in a cgroup of its own
// in the hierarchy mounted at dir.
func (c *cgroup) joined(m cgroupMount) bool {
	if m.v2 {
		return c.v2 != ""
	}
	for _, o := range m.options {
		if c.v1[o] != "" {
			return true
		}
	}
	return false
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
	if d := c.v1[ctrl]; d != "" {
		return d
	}
	return c.v2
}

// oomKilled reports whether the out-of-memory killer killed a process of
// the cgroup.
func (c *cgroup) oomKilled() bool {
	if c.limits.MemoryBytes <= 0 {
		return false
	}
	dir := c.v1["memory"]
	if dir == "" {
		return readKey(filepath.Join(c.v2, "memory.events"), "oom_kill") > 0
	}
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

// removeEverywhere removes the cgroup's directory in every hierarchy,
// where an OCI runtime made more than Run did (runc joins every v1
// controller); their children must be gone already.
func (c *cgroup) removeEverywhere() {
	mounts, err := readCgroupMounts()
	if err != nil {
		return
	}
	self, err := readSelfCgroups()
	if err != nil {
		return
	}
	for _, m := range mounts {
		own := self[""]
		if !m.v2 {
			own = selfPath(self, m.controllers)
		}
		dir := filepath.Join(m.sub(own), c.specPath)
		if c.specPath[0] == '/' {
			dir = filepath.Join(m.dir, c.specPath)
		}
		_ = os.Remove(dir)
	}
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
