package sandbox

import (
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Limits are the resource limits of a sandbox's command, enforced with a
// cgroup (v2 where the unified hierarchy offers the controller, v1
// otherwise). A zero field means no limit; the zero value sets none (the
// command still runs in a cgroup of its own).
type Limits struct {
	// MemoryBytes caps the memory (and swap) of the command and every
	// process it starts; exceeding it gets a process killed by the kernel's
	// out-of-memory killer, which Run reports as an *OOMError.
	MemoryBytes int64
	// CPUQuota is the CPU time, in microseconds, the processes may use in
	// each CPUPeriod (0 means 100000, 100 ms); 150000 of 100000 is 1.5 CPUs.
	CPUQuota, CPUPeriod int64
	// PidsLimit caps the number of processes (and threads) at once.
	PidsLimit int64
}

// DefaultCPUPeriod is the CPU period, in microseconds, used when
// Limits.CPUPeriod is zero.
const DefaultCPUPeriod = 100000

func (l Limits) validate() error {
	switch {
	case l.MemoryBytes < 0:
		return fmt.Errorf("invalid memory limit %d", l.MemoryBytes)
	case l.CPUQuota < 0 || l.CPUPeriod < 0:
		return fmt.Errorf("invalid cpu quota %d/%d", l.CPUQuota, l.CPUPeriod)
	case l.CPUPeriod != 0 && (l.CPUPeriod < 1000 || l.CPUPeriod > 1000000):
		return fmt.Errorf("invalid cpu period %d: want 1000 to 1000000 microseconds", l.CPUPeriod)
	case l.CPUQuota != 0 && l.CPUQuota < 1000:
		return fmt.Errorf("invalid cpu quota %d: want at least 1000 microseconds", l.CPUQuota)
	case l.PidsLimit < 0:
		return fmt.Errorf("invalid pids limit %d", l.PidsLimit)
	}
	return nil
}

// apply writes l into the OCI resources r. Swap is limited to the memory
// limit itself (no swap), as the cgroup Run makes does.
func (l Limits) apply(r *specs.LinuxResources) {
	if l.MemoryBytes > 0 {
		r.Memory = &specs.LinuxMemory{Limit: &l.MemoryBytes, Swap: &l.MemoryBytes}
	}
	if l.CPUQuota > 0 {
		period := uint64(l.CPUPeriod)
		if period == 0 {
			period = DefaultCPUPeriod
		}
		r.CPU = &specs.LinuxCPU{Quota: &l.CPUQuota, Period: &period}
	}
	if l.PidsLimit > 0 {
		r.Pids = &specs.LinuxPids{Limit: &l.PidsLimit}
	}
}

// controllers lists the cgroup controllers l needs.
func (l Limits) controllers() []string {
	var c []string
	if l.MemoryBytes > 0 {
		c = append(c, "memory")
	}
	if l.CPUQuota > 0 {
		c = append(c, "cpu")
	}
	if l.PidsLimit > 0 {
		c = append(c, "pids")
	}
	return c
}

// ErrOOM is matched (with errors.Is) by the error Run returns when the
// command failed after the out-of-memory killer killed one of its processes.
var ErrOOM = errors.New("out of memory")

// OOMError reports that the command failed after a process of the sandbox
// was killed for exceeding Limits.MemoryBytes. It matches ErrOOM.
type OOMError struct {
	// Limit is the memory limit, in bytes.
	Limit int64
	// Code is the command's exit status (137 when it was the one killed).
	Code int
}

// Error implements error.
func (e *OOMError) Error() string {
	return fmt.Sprintf("out of memory: killed at the memory limit of %s (exit code %d)", FormatBytes(e.Limit), e.Code)
}

// Is makes errors.Is(err, ErrOOM) true.
func (e *OOMError) Is(target error) bool { return target == ErrOOM }

// FormatBytes writes n in binary units the way Docker prints sizes:
// "512B", "64MiB", "1.5GiB".
func FormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d%s", int64(f), units[i])
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}
