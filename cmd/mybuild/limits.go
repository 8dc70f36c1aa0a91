package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mybuild/mybuild/executor/sandbox"
)

// minMemory is the smallest --memory accepted, as Docker's.
const minMemory = 6 << 20

// limitFlags are the resource limit flags of RUN steps, as docker run's.
type limitFlags struct {
	memory    string  // --memory: bytes, with a k, m or g suffix
	cpus      float64 // --cpus
	cpuQuota  int64   // --cpu-quota, microseconds per period
	cpuPeriod int64   // --cpu-period, microseconds
	pidsLimit int64   // --pids-limit
}

func (l *limitFlags) add(fs *pflag.FlagSet) {
	fs.StringVarP(&l.memory, "memory", "m", "", "memory limit of each RUN step (bytes, or a number with a b, k, m or g suffix; at least 6m); a step over it fails as out of memory")
	fs.Float64Var(&l.cpus, "cpus", 0, "CPUs each RUN step may use, e.g. 1.5")
	fs.Int64Var(&l.cpuQuota, "cpu-quota", 0, "CPU time (microseconds) each RUN step may use per --cpu-period")
	fs.Int64Var(&l.cpuPeriod, "cpu-period", 0, "CPU period (microseconds) of --cpu-quota and --cpus (default 100000)")
	fs.Int64Var(&l.pidsLimit, "pids-limit", 0, "maximum number of processes (and threads) of each RUN step (0 or -1: unlimited)")
}

// limits checks the flags and turns them into sandbox limits.
func (l *limitFlags) limits() (sandbox.Limits, error) {
	var out sandbox.Limits
	if l.memory != "" {
		n, err := parseBytes(l.memory)
		if err != nil {
			return out, fmt.Errorf("invalid --memory %q: %w", l.memory, err)
		}
		if n < minMemory {
			return out, fmt.Errorf("invalid --memory %q: the minimum is 6MiB", l.memory)
		}
		out.MemoryBytes = n
	}
	if l.cpuPeriod != 0 && (l.cpuPeriod < 1000 || l.cpuPeriod > 1000000) {
		return out, fmt.Errorf("invalid --cpu-period %d: want 1000 to 1000000 microseconds", l.cpuPeriod)
	}
	out.CPUPeriod = l.cpuPeriod
	period := l.cpuPeriod
	if period == 0 {
		period = sandbox.DefaultCPUPeriod
	}
	switch {
	case l.cpus != 0 && l.cpuQuota != 0:
		return out, fmt.Errorf("--cpus and --cpu-quota cannot both be set")
	case l.cpus < 0 || math.IsNaN(l.cpus) || math.IsInf(l.cpus, 0):
		return out, fmt.Errorf("invalid --cpus %v", l.cpus)
	case l.cpus > 0:
		out.CPUQuota = int64(math.Round(l.cpus * float64(period)))
		if out.CPUQuota < 1000 {
			return out, fmt.Errorf("invalid --cpus %v: too small", l.cpus)
		}
	case l.cpuQuota == -1:
	case l.cpuQuota < 0 || (l.cpuQuota > 0 && l.cpuQuota < 1000):
		return out, fmt.Errorf("invalid --cpu-quota %d: want at least 1000 microseconds (or -1: unlimited)", l.cpuQuota)
	default:
		out.CPUQuota = l.cpuQuota
	}
	switch {
	case l.pidsLimit < -1:
		return out, fmt.Errorf("invalid --pids-limit %d", l.pidsLimit)
	case l.pidsLimit > 0:
		out.PidsLimit = l.pidsLimit
	}
	return out, nil
}

// parseBytes reads a size as docker's --memory does: a number with an
// optional binary unit (b, k, m, g, t, also as kb/kib and so on, in any case).
func parseBytes(s string) (int64, error) {
	// Cut the lowered string itself: lowering can change its length
	// (invalid UTF-8, "İ").
	low := strings.ToLower(s)
	num := strings.TrimRightFunc(low, func(r rune) bool { return r >= 'a' && r <= 'z' })
	unit := low[len(num):]
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
		"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
		"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("not a size")
	}
	return int64(f * mult), nil
}

// parseRuntime turns --runtime into the runtime of RUN steps: the
// built-in one (keeping its compiled seccomp filters in the store at
// root), else an OCI runtime program, which must exist.
func parseRuntime(v, root string) (sandbox.Runtime, error) {
	if v == "" || v == "builtin" {
		return &sandbox.Builtin{CacheDir: filepath.Join(root, "sandbox", "seccomp")}, nil
	}
	rt, err := sandbox.OCIRuntime(v)
	if err != nil {
		return nil, fmt.Errorf("invalid --runtime %q: %w", v, err)
	}
	return rt, nil
}

// parseAllow reads the --allow entitlements and reports whether
// security.insecure is among them.
func parseAllow(vs []string) (insecure bool, _ error) {
	for _, v := range vs {
		for _, e := range strings.Split(v, ",") {
			switch strings.TrimSpace(e) {
			case "security.insecure":
				insecure = true
			default:
				return false, fmt.Errorf("invalid --allow %q: want security.insecure", e)
			}
		}
	}
	return insecure, nil
}
