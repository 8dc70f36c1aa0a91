package main

import (
	"strings"
	"testing"

	"github.com/mybuild/mybuild/executor/sandbox"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "1024", want: 1024},
		{in: "32m", want: 32 << 20},
		{in: "32M", want: 32 << 20},
		{in: "64MiB", want: 64 << 20},
		{in: "1.5g", want: 3 << 29},
		{in: "512k", want: 512 << 10},
		{in: "2b", want: 2},
		{in: "", err: true},
		{in: "m", err: true},
		{in: "12x", err: true},
		{in: "-1m", err: true},
		{in: "99999999999t", err: true},
	}
	for _, tt := range tests {
		got, err := parseBytes(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestLimitFlags(t *testing.T) {
	tests := []struct {
		flags limitFlags
		want  sandbox.Limits
		err   bool
	}{
		{},
		{flags: limitFlags{memory: "32m", pidsLimit: 20}, want: sandbox.Limits{MemoryBytes: 32 << 20, PidsLimit: 20}},
		{flags: limitFlags{cpus: 1.5}, want: sandbox.Limits{CPUQuota: 150000}},
		{flags: limitFlags{cpus: 0.5, cpuPeriod: 50000}, want: sandbox.Limits{CPUQuota: 25000, CPUPeriod: 50000}},
		{flags: limitFlags{cpuQuota: 20000}, want: sandbox.Limits{CPUQuota: 20000}},
		{flags: limitFlags{cpuQuota: -1, pidsLimit: -1}},
		{flags: limitFlags{memory: "1m"}, err: true},
		{flags: limitFlags{memory: "lots"}, err: true},
		{flags: limitFlags{cpus: 1, cpuQuota: 50000}, err: true},
		{flags: limitFlags{cpus: -1}, err: true},
		{flags: limitFlags{cpuQuota: 10}, err: true},
		{flags: limitFlags{cpuPeriod: 10}, err: true},
		{flags: limitFlags{pidsLimit: -5}, err: true},
	}
	for _, tt := range tests {
		got, err := tt.flags.limits()
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("%+v: got %+v, %v; want %+v, error %v", tt.flags, got, err, tt.want, tt.err)
		}
	}
}

func TestRuntimeAndAllowFlags(t *testing.T) {
	if rt, err := parseRuntime("builtin", "/store"); err != nil || rt.Name() != "builtin" {
		t.Errorf("builtin: %v, %v; want the built-in runtime", rt, err)
	} else if b := rt.(*sandbox.Builtin); b.CacheDir != "/store/sandbox/seccomp" {
		t.Errorf("builtin runtime caches filters in %q", b.CacheDir)
	}
	if _, err := parseRuntime("no-such-runtime", "/store"); err == nil || !strings.Contains(err.Error(), `invalid --runtime "no-such-runtime"`) {
		t.Errorf("a runtime that does not exist: %v", err)
	}
	if ok, err := parseAllow([]string{"security.insecure"}); !ok || err != nil {
		t.Errorf("--allow security.insecure: %v, %v", ok, err)
	}
	if ok, err := parseAllow(nil); ok || err != nil {
		t.Errorf("no --allow: %v, %v", ok, err)
	}
	if _, err := parseAllow([]string{"network.host"}); err == nil || !strings.Contains(err.Error(), "invalid --allow") {
		t.Errorf("unknown entitlement: %v", err)
	}
}
