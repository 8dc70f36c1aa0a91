package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/opencontainers/cgroups"
	_ "github.com/opencontainers/cgroups/devices" // device rules for v1 and v2
	devconfig "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
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
	mounts   []cgroupMount     // the host's hierarchies
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
	c := &cgroup{limits: l, v1: map[string]string{}, specPath: filepath.Join(cgroupParent, id), mounts: mounts}
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

// hierarchy is a host cgroup hierarchy as the init mounts it again in the
// sandbox's cgroup namespace.
type hierarchy struct {
	Dir     string   // its mount point on the host
	V2      bool     // cgroup2
	Options []string // v1: its controllers and name=
}

// hierarchies lists the hierarchies the sandbox's process has a cgroup of
// its own in: those /sys/fs/cgroup shows it.
func (c *cgroup) hierarchies() []hierarchy {
	var hs []hierarchy
	for _, m := range c.mounts {
		joined := m.v2 && c.v2 != ""
		for _, o := range m.options {
			joined = joined || c.v1[o] != ""
		}
		if joined {
			hs = append(hs, hierarchy{Dir: m.dir, V2: m.v2, Options: m.options})
		}
	}
	return hs
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

// removeEverywhere removes the cgroup's directory in every hierarchy,
// where an OCI runtime made more than Run did (runc joins every v1
// controller); their children must be gone already.
func (c *cgroup) removeEverywhere() {
	parents, err := sandboxParents()
	if err != nil {
		return
	}
	for _, p := range parents {
		_ = os.Remove(filepath.Join(p, filepath.Base(c.specPath)))
	}
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
