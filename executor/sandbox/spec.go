package sandbox

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Security modes of a sandbox (BuildKit's RUN --security).
const (
	// SecuritySandbox is the default: Docker's default capabilities,
	// seccomp profile, device rules, masked and read-only paths.
	SecuritySandbox = "sandbox"
	// SecurityInsecure is BuildKit's security.insecure entitlement, as
	// docker run --privileged: every capability, no seccomp filter, every
	// device allowed, /sys and the cgroup file system writable.
	SecurityInsecure = "insecure"
)

// defaultCaps is Docker's default capability set, in Docker's order.
var defaultCaps = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// maskedPaths are hidden from the process, as Docker's default spec does:
// directories under an empty read-only tmpfs, files under /dev/null.
var maskedPaths = []string{
	"/proc/asound",
	"/proc/acpi",
	"/proc/interrupts",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
}

// readonlyPaths are made read-only, as Docker's default spec does.
var readonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

func i64(n int64) *int64 { return &n }

// defaultDevices are the device nodes of the sandbox's /dev: the ones runc
// creates for every container.
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// defaultDeviceRules are the device cgroup rules: deny everything, then
// allow what runc allows every container (mknod of any device, which
// cannot be opened unless allowed below; the default nodes, ptys and tun).
var defaultDeviceRules = []specs.LinuxDeviceCgroup{
	{Allow: false, Access: "rwm"},
	{Allow: true, Type: "c", Access: "m"},
	{Allow: true, Type: "b", Access: "m"},
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(5), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(7), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(8), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(9), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(0), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(2), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64(136), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64(10), Minor: i64(200), Access: "rwm"},
}

// deviceRules are the device cgroup rules of a sandbox in security mode
// sec: the default ones, or for SecurityInsecure every device.
func deviceRules(sec string) []specs.LinuxDeviceCgroup {
	if sec == SecurityInsecure {
		return []specs.LinuxDeviceCgroup{
			{Allow: true, Type: "c", Access: "rwm"},
			{Allow: true, Type: "b", Access: "rwm"},
		}
	}
	return slices.Clone(defaultDeviceRules)
}

// insecureDevices are the host devices BuildKit adds to an insecure
// sandbox.
var insecureDevices = []specs.LinuxDevice{
	{Path: "/dev/kmsg", Type: "c", Major: 1, Minor: 11},
	{Path: "/dev/cuse", Type: "c", Major: 10, Minor: 203},
	{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229},
	{Path: "/dev/kvm", Type: "c", Major: 10, Minor: 232},
	{Path: "/dev/net/tun", Type: "c", Major: 10, Minor: 200},
	{Path: "/dev/loop-control", Type: "c", Major: 10, Minor: 237},
}

// specVersion is the OCI runtime spec version of the specs made here: the
// oldest that has every field they use, so that older runtimes (Debian's
// crun 1.8 refuses 1.3.0) take them.
const specVersion = "1.0.2"

// HostPaths are the host side of the files a sandbox's spec binds in,
// which [Run] writes before it makes the spec.
type HostPaths struct {
	// Hosts and Resolv are bound at /etc/hosts and /etc/resolv.conf.
	Hosts, Resolv string
	// DevFiles are bound at /dev/NAME, one per Spec.DevFiles.
	DevFiles []string
	// Files are the sources of the MountFile mounts, in Spec.Mounts order.
	Files []string
	// CgroupsPath is the sandbox's cgroup, relative to the builder's own
	// cgroup or (absolute) to each hierarchy's root.
	CgroupsPath string
	// NetNS is a network namespace to join for NetworkNone; empty makes a
	// new one.
	NetNS string
}

// GenerateSpec returns the OCI runtime spec of s, made the way Docker and
// BuildKit make their default one: Docker's default capabilities (only in
// the bounding set for a user other than root, as Docker does), seccomp
// profile, masked and read-only paths, device rules, and BuildKit's
// mounts (containerd's defaults without /run, /etc/resolv.conf and
// /etc/hosts bound read-only, the cgroup file system read-only), in new
// pid, ipc, uts, mount and cgroup namespaces. It does no I/O.
func GenerateSpec(s Spec, h HostPaths) (*specs.Spec, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if len(h.DevFiles) != len(s.DevFiles) {
		return nil, errors.New("generate spec: a host path for each dev file is needed")
	}
	hostname := s.Hostname
	if hostname == "" {
		hostname = DefaultHostname
	}
	cwd := s.Cwd
	if cwd == "" {
		cwd = "/"
	}
	gids := append([]uint32(nil), s.Groups...)
	if !slices.Contains(gids, s.GID) {
		// BuildKit lists the primary group too, first.
		gids = append([]uint32{s.GID}, gids...)
	}
	env := s.Env
	if env == nil {
		env = []string{}
	}
	spec := &specs.Spec{
		Version:  specVersion,
		Root:     &specs.Root{Path: s.Root},
		Hostname: hostname,
		Process: &specs.Process{
			Args: s.Args,
			Env:  env,
			Cwd:  cwd,
			User: specs.User{UID: s.UID, GID: s.GID, AdditionalGids: gids},
		},
		Mounts: defaultMounts(),
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.CgroupNamespace},
			},
			MaskedPaths:   slices.Clone(maskedPaths),
			ReadonlyPaths: slices.Clone(readonlyPaths),
			Devices:       slices.Clone(defaultDevices),
			CgroupsPath:   h.CgroupsPath,
			Resources: &specs.LinuxResources{
				Devices: deviceRules(s.Security),
			},
		},
	}
	if s.Network == NetworkNone {
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: h.NetNS})
	}
	setCapabilities(spec, defaultCaps)
	s.Limits.apply(spec.Linux.Resources)

	binds := []struct{ src, dst string }{{h.Resolv, "/etc/resolv.conf"}, {h.Hosts, "/etc/hosts"}}
	for _, b := range binds {
		if b.src == "" {
			return nil, fmt.Errorf("generate spec: no host file for %s", b.dst)
		}
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: b.dst, Type: "bind", Source: b.src,
			Options: []string{"nosuid", "noexec", "nodev", "rbind", "ro"}})
	}
	for i, f := range s.DevFiles {
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: path.Join("/dev", path.Clean("/"+f.Name)), Type: "bind",
			Source: h.DevFiles[i], Options: []string{"nosuid", "nodev", "rbind", "ro"}})
	}
	user, err := userMounts(s.Mounts, h.Files)
	if err != nil {
		return nil, err
	}
	spec.Mounts = append(spec.Mounts, user...)

	if s.Security == SecurityInsecure {
		makeInsecure(spec)
		return spec, nil
	}
	// The capability-dependent rules of the profile follow the bounding set.
	if spec.Linux.Seccomp, err = seccomp.GetDefaultProfile(spec); err != nil {
		return nil, fmt.Errorf("generate seccomp profile: %w", err)
	}
	return spec, nil
}

// defaultMounts are containerd's default mounts without /run (as BuildKit
// removes it), and the cgroup file system read-only (BuildKit's).
func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
	}
}

// setCapabilities gives root caps in its bounding, permitted and effective
// sets, and any other user caps in the bounding set alone, as Docker does
// (and as execve would for a non-root program).
func setCapabilities(spec *specs.Spec, caps []string) {
	c := &specs.LinuxCapabilities{Bounding: slices.Clone(caps)}
	if spec.Process.User.UID == 0 {
		c.Permitted = slices.Clone(caps)
		c.Effective = slices.Clone(caps)
	}
	spec.Process.Capabilities = c
}

// makeInsecure turns spec into BuildKit's security.insecure sandbox.
func makeInsecure(spec *specs.Spec) {
	all := allCapabilities()
	spec.Process.Capabilities = &specs.LinuxCapabilities{
		Bounding: all, Permitted: slices.Clone(all), Effective: slices.Clone(all),
		Inheritable: slices.Clone(all), Ambient: slices.Clone(all),
	}
	spec.Linux.MaskedPaths = []string{}
	spec.Linux.ReadonlyPaths = []string{}
	spec.Linux.Devices = append(spec.Linux.Devices, insecureDevices...)
	for i := range 8 {
		spec.Linux.Devices = append(spec.Linux.Devices, specs.LinuxDevice{Path: "/dev/loop" + strconv.Itoa(i), Type: "b", Major: 7, Minor: int64(i)})
	}
	for i, m := range spec.Mounts {
		if m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup" {
			spec.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
		}
	}
}

// userMounts turns the Spec's extra mounts into OCI mounts, outermost
// first; files holds the host sources of the MountFile ones, in the
// order of ms.
func userMounts(ms []Mount, files []string) ([]specs.Mount, error) {
	out := make([]specs.Mount, 0, len(ms))
	nfile := 0
	for _, m := range ms {
		target := path.Clean(m.Target)
		switch m.Type {
		case MountBind:
			opts := []string{"rbind"}
			if m.ReadOnly {
				opts = append(opts, "ro", "nosuid", "nodev")
			}
			out = append(out, specs.Mount{Destination: target, Type: "bind", Source: m.Source, Options: opts})
		case MountTmpfs:
			opts := []string{"nosuid", "nodev", "mode=1777"}
			if m.Size > 0 {
				opts = append(opts, "size="+strconv.FormatInt(m.Size, 10))
			}
			if m.ReadOnly {
				opts = append(opts, "ro")
			}
			out = append(out, specs.Mount{Destination: target, Type: "tmpfs", Source: "tmpfs", Options: opts})
		case MountFile:
			if nfile >= len(files) {
				return nil, fmt.Errorf("generate spec: no host file for %s", target)
			}
			out = append(out, specs.Mount{Destination: target, Type: "bind", Source: files[nfile],
				Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
			nfile++
		}
	}
	// Outermost first (stable), so that a mount inside another lands in it.
	slices.SortStableFunc(out, func(a, b specs.Mount) int {
		return strings.Count(a.Destination, "/") - strings.Count(b.Destination, "/")
	})
	return out, nil
}
