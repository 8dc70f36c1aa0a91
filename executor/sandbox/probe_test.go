package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mybuild/mybuild/executor/sandbox"
)

var (
	probeBinOnce sync.Once
	probeBin     string
	probeBinErr  error
)

// probeBinary builds testdata/probe, the attacker's program, as a static
// binary (once per test run).
func probeBinary(t *testing.T) string {
	t.Helper()
	probeBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mybuild-probe-")
		if err != nil {
			probeBinErr = err
			return
		}
		probeBin = filepath.Join(dir, "probe")
		cmd := exec.Command("go", "build", "-o", probeBin, "./testdata/probe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeBinErr = err
			probeBin = string(out)
		}
	})
	if probeBinErr != nil {
		t.Fatalf("build probe: %v\n%s", probeBinErr, probeBin)
	}
	return probeBin
}

// probeRoot is newRoot with the probe at /probe.
func probeRoot(t *testing.T) string {
	t.Helper()
	root := newRoot(t)
	data, err := os.ReadFile(probeBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "probe"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// runProbe runs /probe ARGS... in s and decodes its report into v.
func runProbe(t *testing.T, s sandbox.Spec, v any, args ...string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	s.Args = append([]string{"/probe"}, args...)
	s.Stdout, s.Stderr = &stdout, &stderr
	if s.Env == nil {
		s.Env = []string{"PATH=/bin"}
	}
	if err := sandbox.Run(context.Background(), s); err != nil {
		t.Fatalf("probe %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
	}
	decodeProbe(t, stdout.String(), v)
}

// decodeProbe finds the probe's "PROBE {json}" line in out.
func decodeProbe(t *testing.T, out string, v any) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if data, ok := strings.CutPrefix(line, "PROBE "); ok {
			if err := json.Unmarshal([]byte(data), v); err != nil {
				t.Fatalf("decode probe report: %v\n%s", err, data)
			}
			return
		}
	}
	t.Fatalf("no probe report in:\n%s", out)
}

// ociRuntime returns the OCI runtime name, or skips when it is missing
// (make test installs runc and crun).
func ociRuntime(t *testing.T, name string) sandbox.Runtime {
	t.Helper()
	rt, err := sandbox.OCIRuntime(name)
	if err != nil {
		t.Skipf("%s is not installed (make test installs it): %v", name, err)
	}
	return rt
}
