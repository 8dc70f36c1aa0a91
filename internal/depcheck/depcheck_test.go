// Package depcheck_test keeps the import graph pointing one way:
// cmd → parser → planner → executor → snapshot/cache → image store, with
// BuildKit reachable only through parser.
package depcheck_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/mybuild/mybuild/"

// forbidden lists, per package (prefix), the packages it must not import
// directly.
var forbidden = map[string][]string{
	"parser":          {mod},
	"planner":         {mod + "executor", mod + "snapshot", mod + "internal/store", mod + "cache", mod + "cmd"},
	"snapshot":        {mod + "executor", mod + "planner", mod + "internal/store", mod + "parser", mod + "cmd"},
	"internal/store":  {mod + "executor", mod + "planner", mod + "snapshot", mod + "parser", mod + "cmd"},
	"executor/copier": {mod + "executor", mod + "planner", mod + "internal/store", mod + "parser", mod + "cmd"},
	"executor/users":  {mod},
	// The sandbox knows nothing of Dockerfiles, images or layers.
	"executor/sandbox": {mod},
	"cache":            {mod},
	"executor":         {mod + "cmd"},
	// Fetching a remote context knows nothing of builds; it unpacks with
	// executor/copier.
	"internal/remotecontext": {mod + "planner", mod + "snapshot", mod + "internal/store", mod + "parser", mod + "cache", mod + "cmd"},
	// The mount namespace of a command is the program's edge: it knows
	// nothing of what runs in it.
	"internal/mountns": {mod},
}

// leaves are helpers that import nothing of this module (checked below),
// so any package may use them without a path back up the floors.
var leaves = []string{mod + "internal/ctxio", mod + "internal/tartest", mod + "internal/atomicfile", mod + "internal/procstat"}

func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", mod+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := strings.TrimPrefix(f[0], mod), f[1:]
		for _, imp := range imports {
			if strings.HasPrefix(imp, "github.com/moby/buildkit/") && pkg != "parser" {
				t.Errorf("%s imports %s: only parser may import BuildKit", pkg, imp)
			}
			if slices.Contains(leaves, mod+pkg) && strings.HasPrefix(imp, mod) {
				t.Errorf("%s imports %s: a leaf helper imports nothing of the module", pkg, imp)
			}
			if slices.Contains(leaves, imp) {
				continue
			}
			for prefix, bad := range forbidden {
				if pkg != prefix {
					continue
				}
				for _, b := range bad {
					if strings.HasPrefix(imp, b) && !strings.HasPrefix(imp, mod+pkg+"/") {
						t.Errorf("%s imports %s, against the one-way data flow", pkg, imp)
					}
				}
			}
		}
	}
}

// TestNoHeavyBuildKit checks that the binary pulls in none of BuildKit's
// LLB, solver or gRPC machinery.
func TestNoHeavyBuildKit(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", mod+"cmd/mybuild").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"dockerfile2llb", "dockerui", "client/llb", "google.golang.org/grpc", "buildkit/solver"} {
			if strings.Contains(dep, bad) {
				t.Errorf("mybuild depends on %s", dep)
			}
		}
	}
}
