package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/mybuild/mybuild/internal/registry"
)

// BenchmarkPull pulls a 3-layer image of 30 MiB and of 300 MiB
// (incompressible data) from a real registry on loopback into an empty
// store with the real binary, and reports the peak resident memory of the
// mybuild process (peak-RSS-MiB), which must not grow with the layers' size.
//
//	go test -run '^$' -bench Pull -benchtime 3x ./cmd/mybuild
func BenchmarkPull(b *testing.B) {
	if skipE2E != "" {
		b.Skip(skipE2E)
	}
	reg := startRegistry(b, "", "")
	for _, mib := range []int64{10, 100} {
		b.Run(fmt.Sprintf("3x%dMiB", mib), func(b *testing.B) { benchPull(b, reg, 3, mib<<20) })
	}
}

func benchPull(b *testing.B, reg *testRegistry, layers int, layerSize int64) {
	img := empty.Image
	for i := range layers {
		l, err := tarball.LayerFromOpener(randomTar(uint64(i), layerSize), tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			b.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			b.Fatal(err)
		}
	}
	ref := fmt.Sprintf("%s/big:%d", reg.host, layerSize>>20)
	if _, err := registry.Push(context.Background(), img, ref, registry.Options{}); err != nil {
		b.Fatal(err)
	}
	var peak int64
	b.SetBytes(int64(layers) * layerSize)
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(binPath, "--root", b.TempDir(), "pull", "--progress=plain", ref)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("pull: %v\n%s", err, out)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > peak {
			peak = ru.Maxrss // KiB on Linux
		}
	}
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MiB")
}

// randomTar opens a tar of one file of size pseudo-random bytes from seed,
// generated as it is read.
func randomTar(seed uint64, size int64) tarball.Opener {
	return func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data%d.bin", seed), Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
			if err == nil {
				_, err = io.CopyN(tw, rand.NewChaCha8([32]byte{byte(seed)}), size)
			}
			if err == nil {
				err = tw.Close()
			}
			pw.CloseWithError(err)
		}()
		return pr, nil
	}
}
