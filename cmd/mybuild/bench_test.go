package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// The COPY benchmarks run the real binary and report, besides time per
// build, the peak resident memory of the mybuild process (peak-RSS-MiB).
// Memory must stay flat as the copied file grows: compare the 20 MB and
// 200 MB cases.
//
//	go test -run '^$' -bench COPY -benchtime 3x ./cmd/mybuild

func BenchmarkCOPYManyFiles(b *testing.B) {
	ctx := b.TempDir()
	for i := 0; i < 5000; i++ {
		p := filepath.Join(ctx, "files", fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%04d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("file %d\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	benchBuild(b, ctx, "FROM busybox\nCOPY files/ /files/\n")
}

func BenchmarkCOPYBigFile(b *testing.B) {
	for _, mb := range []int{20, 200} {
		b.Run(fmt.Sprintf("%dMB", mb), func(b *testing.B) {
			ctx := b.TempDir()
			f, err := os.Create(filepath.Join(ctx, "big.bin"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyN(f, rand.Reader, int64(mb)<<20); err != nil {
				b.Fatal(err)
			}
			f.Close()
			b.SetBytes(int64(mb) << 20)
			benchBuild(b, ctx, "FROM busybox\nCOPY big.bin /big.bin\n")
		})
	}
}

func benchBuild(b *testing.B, ctx, dockerfile string) {
	if skipE2E != "" {
		b.Skip(skipE2E)
	}
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		b.Fatal(err)
	}
	var peak int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root := b.TempDir()
		cmd := exec.Command(binPath, "--root", baseStore, "save", "busybox:latest", "-o", filepath.Join(root, "bb.tar"))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("save: %v\n%s", err, out)
		}
		if out, err := exec.Command(binPath, "--root", root, "load", "-i", filepath.Join(root, "bb.tar")).CombinedOutput(); err != nil {
			b.Fatalf("load: %v\n%s", err, out)
		}
		b.StartTimer()
		cmd = exec.Command(binPath, "--root", root, "build", "--progress=plain", "-t", "bench", ctx)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build: %v\n%s", err, out)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > peak {
			peak = ru.Maxrss // KiB on Linux
		}
	}
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
}
