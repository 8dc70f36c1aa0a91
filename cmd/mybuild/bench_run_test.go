package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// BenchmarkRUNTouchOne times a RUN that touches one file, on a small base
// (busybox) and on a base with 50,000 more files: the layer's cost follows
// the change, not the base, so the two should be close.
//
//	go test -run '^$' -bench RUN -benchtime 5x ./cmd/mybuild
func BenchmarkRUNTouchOne(b *testing.B) {
	if skipE2E != "" {
		b.Skip(skipE2E)
	}
	root := benchStore(b)
	buildBig50k(b, root)

	for _, base := range []string{"busybox", "big50k"} {
		b.Run(base, func(b *testing.B) {
			ctx := b.TempDir()
			writeDockerfile(b, ctx, "FROM "+base+"\nRUN touch /one-file\n")
			mustCmd(b, binPath, "--root", root, "build", "--progress=plain", ctx) // extracts the base once
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				mustCmd(b, binPath, "--root", root, "build", "--no-cache", "--progress=plain", ctx)
			}
		})
	}
}

// BenchmarkRUNStep times what a RUN step costs: Dockerfiles of ten RUN
// steps (RUN true, and RUN touch of one file on a base of 50,000 more
// files), built with --no-cache, under the built-in runtime and runc. The
// time is reported per step (ms/step): the sandbox's setup and teardown
// (spec, cgroup, mount points, namespaces, seccomp) plus the step's
// overlay mount and diff.
//
//	go test -run '^$' -bench RUNStep -benchtime 5x ./cmd/mybuild
func BenchmarkRUNStep(b *testing.B) {
	if skipE2E != "" {
		b.Skip(skipE2E)
	}
	const steps = 10
	root := benchStore(b)
	buildBig50k(b, root)
	for _, tc := range []struct{ name, base, cmd string }{
		{"true", "busybox", "true"},
		{"touch-50k", "big50k", "touch /one-file"},
	} {
		for _, runtime := range []string{"builtin", "runc"} {
			b.Run(tc.name+"/"+runtime, func(b *testing.B) {
				if _, err := exec.LookPath(runtime); runtime != "builtin" && err != nil {
					b.Skipf("%s is not installed", runtime)
				}
				ctx := b.TempDir()
				df := "FROM " + tc.base + "\n"
				for i := range steps {
					df += fmt.Sprintf("RUN %s # %d\n", tc.cmd, i)
				}
				writeDockerfile(b, ctx, df)
				args := []string{"--root", root, "build", "--runtime", runtime, "--no-cache", "--progress=plain", ctx}
				mustCmd(b, binPath, args...) // extracts the base once
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					mustCmd(b, binPath, args...)
				}
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*steps), "ms/step")
			})
		}
	}
}

// BenchmarkRUNWrite1GiB times a RUN that writes 1 GiB and reports the peak
// memory of mybuild while it turns that into a layer.
func BenchmarkRUNWrite1GiB(b *testing.B) {
	if skipE2E != "" {
		b.Skip(skipE2E)
	}
	root := benchStore(b)
	ctx := b.TempDir()
	writeDockerfile(b, ctx, "FROM busybox\nRUN head -c 1073741824 /dev/zero > /big\n")
	b.SetBytes(1 << 30)
	var peak int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(binPath, "--root", root, "build", "--no-cache", "--progress=plain", ctx)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build: %v\n%s", err, out)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > peak {
			peak = ru.Maxrss
		}
	}
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
}

// buildBig50k builds big50k: busybox and 50,000 more files, in the store
// at root.
func buildBig50k(b *testing.B, root string) {
	b.Helper()
	big := b.TempDir()
	for i := 0; i < 50000; i++ {
		p := filepath.Join(big, "data", fmt.Sprintf("d%03d", i%500), fmt.Sprintf("f%05d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	writeDockerfile(b, big, "FROM busybox\nCOPY data/ /data/\n")
	mustCmd(b, binPath, "--root", root, "build", "--progress=plain", "-t", "big50k", big)
}

// benchStore is a fresh store holding the busybox base image.
func benchStore(b *testing.B) string {
	b.Helper()
	root := b.TempDir()
	mustCmd(b, binPath, "--root", baseStore, "save", "busybox:latest", "-o", filepath.Join(root, "bb.tar"))
	mustCmd(b, binPath, "--root", root, "load", "-i", filepath.Join(root, "bb.tar"))
	return root
}

func mustCmd(b *testing.B, name string, args ...string) {
	b.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func writeDockerfile(b *testing.B, dir, content string) {
	b.Helper()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkTwoSleepingStages builds two independent stages that each
// `sleep 2`, uncached: with stages in parallel the wall time is about 2 s,
// not 4 s.
func BenchmarkTwoSleepingStages(b *testing.B) {
	if skipE2E != "" {
		b.Skip(skipE2E)
	}
	root := benchStore(b)
	ctx := b.TempDir()
	writeDockerfile(b, ctx, "FROM busybox AS a\nRUN sleep 2 > /a\nFROM busybox AS b\nRUN sleep 2 > /b\nFROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		mustCmd(b, binPath, "--root", root, "build", "--no-cache", "--progress=plain", ctx)
	}
}
