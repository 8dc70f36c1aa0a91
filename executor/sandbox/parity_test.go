package sandbox_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mybuild/mybuild/executor/sandbox"
)

// probeView is what the probe's "view" reports (testdata/probe).
type probeView struct {
	UID, GID, PID, PPID int
	Groups              []int
	Status              map[string]string
	Cgroup              []string
	Mounts              []string
	Devices             []string
	Hostname, Cwd       string
	Env                 []string
	Limits              []string
	Pid1                string
	Procs               int
	SessionKeyring      string
}

// knownDifferences are where the built-in runtime knowingly differs from
// runc given the same spec; each is removed from both views before they
// are compared, with the reason.
var knownDifferences = []struct {
	why  string
	drop func(line string) bool
}{
	{
		// On a v1 or hybrid host runc mounts the tmpfs holding the
		// hierarchies read-write (only the hierarchies read-only) and
		// leaves out the unified one; the built-in runtime makes the
		// tmpfs read-only too and shows every hierarchy the host has.
		why: "cgroup tmpfs and unified hierarchy",
		drop: func(l string) bool {
			return strings.HasPrefix(l, "/sys/fs/cgroup tmpfs ") || strings.HasPrefix(l, "/sys/fs/cgroup/unified ")
		},
	},
}

// dropUnjoined removes from runc's view the v1 hierarchies the built-in
// runtime does not show: runc puts the step in a cgroup of its own in
// every v1 hierarchy and shows them all; the built-in runtime joins only
// those of the limits (moving a process into a v1 cgroup costs an RCU
// grace period, about a millisecond each here; its device rules are a BPF
// program on its v2 cgroup), and shows only those, since the others would
// show the builder's cgroup.
func dropUnjoined(builtin, other *probeView) {
	other.Mounts = slices.DeleteFunc(other.Mounts, func(l string) bool {
		return strings.HasPrefix(l, "/sys/fs/cgroup/") && strings.Contains(l, " cgroup ") && !slices.Contains(builtin.Mounts, l)
	})
}

func normalizeView(v *probeView) {
	v.Mounts = slices.DeleteFunc(v.Mounts, func(l string) bool {
		for _, d := range knownDifferences {
			if d.drop(l) {
				return true
			}
		}
		return false
	})
}

// TestRuntimeParity runs the same probe under the built-in runtime and
// under runc (and crun), given the same spec, and compares what the step
// sees: credentials and groups, capability sets, seccomp mode and
// no_new_privs, cgroup view, mounts and their options, /dev, hostname,
// working directory, environment (HOME as runc sets it), resource limits,
// pid 1 and the processes visible, and the session keyring. A
// difference is a bug of the built-in runtime unless knownDifferences
// documents it.
func TestRuntimeParity(t *testing.T) {
	root := probeRoot(t)
	specs := map[string]sandbox.Spec{
		"root":         {Root: root, Hostname: "parity"},
		"user":         {Root: root, UID: 1000, GID: 1000, Groups: []uint32{20, 1000}, Cwd: "/tmp"},
		"network none": {Root: root, Network: sandbox.NetworkNone},
		"limits":       {Root: root, Limits: sandbox.Limits{PidsLimit: 64, MemoryBytes: 256 << 20}},
		"insecure":     {Root: root, Security: sandbox.SecurityInsecure},
	}
	for _, name := range []string{"runc", "crun"} {
		t.Run(name, func(t *testing.T) {
			rt := ociRuntime(t, name)
			if name == "crun" && hybridCgroups() {
				t.Skip("crun (Debian's 1.8) refuses hosts with cgroup v1 and v2 controllers at once (\"cgroups in hybrid mode not supported\"), as this one has")
			}
			for sname, s := range specs {
				t.Run(sname, func(t *testing.T) {
					var builtin, other probeView
					runProbe(t, s, &builtin, "view")
					s.Runtime = rt
					runProbe(t, s, &other, "view")
					normalizeView(&builtin)
					normalizeView(&other)
					dropUnjoined(&builtin, &other)
					if diff := cmp.Diff(builtin, other); diff != "" {
						t.Errorf("the step sees a different sandbox (-builtin +%s):\n%s", name, diff)
					}
					if builtin.Pid1 != "/probe view" || builtin.Procs != 1 {
						t.Errorf("pid 1 is %q with %d processes, want the step alone", builtin.Pid1, builtin.Procs)
					}
				})
			}
		})
	}
}

// hybridCgroups reports whether the host has v1 hierarchies and a v2 one
// with controllers.
func hybridCgroups() bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	v1 := strings.Contains(string(data), " - cgroup ")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.Contains(line, " - cgroup2 ") {
			ctrls, _ := os.ReadFile(filepath.Join(f[4], "cgroup.controllers"))
			if v1 && len(strings.TrimSpace(string(ctrls))) > 0 {
				return true
			}
		}
	}
	return false
}
