package main

import (
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
)

// FuzzBuildArgs checks that parseBuildArgs never panics and that the map
// it returns, written back as KEY=VALUE flags, parses to itself.
func FuzzBuildArgs(f *testing.F) {
	for _, s := range []string{
		"A=1", "A=1\nB=2", "A=\nB==x", "HTTP_PROXY=http://p:3128", "A=1\nA=2",
		"=x", "NOVALUE", "PATH", "K=multi word value", "A=b=c\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list := strings.Split(s, "\n")
		m, err := parseBuildArgs(list)
		if err != nil {
			return
		}
		var again []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if k == "" || strings.Contains(k, "=") {
				t.Fatalf("parseBuildArgs(%q): bad key %q", list, k)
			}
			again = append(again, k+"="+m[k])
		}
		m2, err := parseBuildArgs(again)
		if err != nil {
			t.Fatalf("parseBuildArgs(%q): %v", again, err)
		}
		if diff := cmp.Diff(m, m2); diff != "" {
			t.Fatalf("build args do not read back (-first +again):\n%s", diff)
		}
	})
}

// FuzzOutput checks that parseOutput never panics and that an accepted
// value, written back as type=,dest=,name=, parses to the same output.
func FuzzOutput(f *testing.F) {
	for _, s := range []string{
		"", "type=oci,dest=out", "type=oci-archive,dest=/tmp/a.tar", "type=docker-archive,dest=img.tar",
		"type=registry", "type=registry,name=localhost:5000/app:v1", " type =oci,dest=a=b",
		"type=local,dest=x", "dest=x", "type=oci", "type", "type=oci,,dest=x", "type=oci,dest=x,dest=y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := parseOutput(s)
		if err != nil {
			return
		}
		var parts []string
		for _, kv := range [][2]string{{"type", o.kind}, {"dest", o.dest}, {"name", o.name}} {
			if kv[1] != "" {
				parts = append(parts, kv[0]+"="+kv[1])
			}
		}
		again := strings.Join(parts, ",")
		o2, err := parseOutput(again)
		if err != nil {
			t.Fatalf("parseOutput(%q) = %+v, which reads back with an error: %v", s, *o, err)
		}
		if *o2 != *o {
			t.Fatalf("parseOutput(%q) = %+v, reads back as %+v", s, *o, *o2)
		}
	})
}

// FuzzLimits parses the resource limit flags as the command line gives
// them: no panic, and accepted limits are in range and read back the same
// when given again in bytes and microseconds.
func FuzzLimits(f *testing.F) {
	for _, s := range []struct {
		mem, cpus     string
		quota, period int64
		pids          int64
	}{
		{"512m", "", 0, 0, 0}, {"1g", "1.5", 0, 0, 100}, {"6291456", "", 50000, 100000, -1},
		{"1.5GiB", "", 0, 0, 0}, {"5m", "", 0, 0, 0}, {"10 k", "0.001", 0, 0, 0},
		{"", "", -1, 1000, 0}, {"9999999999t", "", 0, 0, 0}, {"NaN", "NaN", 0, 0, -2}, {"1e3m", "Inf", 0, 0, 0},
	} {
		f.Add(s.mem, s.cpus, s.quota, s.period, s.pids)
	}
	f.Fuzz(func(t *testing.T, mem, cpus string, quota, period, pids int64) {
		var l limitFlags
		fs := pflag.NewFlagSet("build", pflag.ContinueOnError)
		l.add(fs)
		args := []string{"--memory=" + mem, "--cpu-quota=" + strconv.FormatInt(quota, 10),
			"--cpu-period=" + strconv.FormatInt(period, 10), "--pids-limit=" + strconv.FormatInt(pids, 10)}
		if cpus != "" {
			args = append(args, "--cpus="+cpus)
		}
		if err := fs.Parse(args); err != nil {
			return
		}
		lim, err := l.limits()
		if err != nil {
			return
		}
		if lim.MemoryBytes != 0 && lim.MemoryBytes < minMemory || lim.CPUQuota < 0 || lim.PidsLimit < 0 {
			t.Fatalf("limits() = %+v out of range", lim)
		}
		if l.cpus > 0 && (math.IsNaN(l.cpus) || lim.CPUQuota < 1000) {
			t.Fatalf("--cpus %v gave quota %d", l.cpus, lim.CPUQuota)
		}
		if lim.MemoryBytes != 0 {
			n, err := parseBytes(strconv.FormatInt(lim.MemoryBytes, 10))
			if err != nil || n != lim.MemoryBytes {
				t.Fatalf("memory %d reads back as %d, %v", lim.MemoryBytes, n, err)
			}
		}
		again := limitFlags{memory: strconv.FormatInt(lim.MemoryBytes, 10), cpuQuota: lim.CPUQuota, cpuPeriod: lim.CPUPeriod, pidsLimit: lim.PidsLimit}
		if lim.MemoryBytes == 0 {
			again.memory = ""
		}
		lim2, err := again.limits()
		if err != nil {
			t.Fatalf("limits %+v do not read back: %v", lim, err)
		}
		if lim2 != lim {
			t.Fatalf("limits %+v read back as %+v", lim, lim2)
		}
	})
}
