package copier

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The copier benchmarks work on a context of 5,000 small files in 50
// directories, the shape of BenchmarkCOPYManyFiles in cmd/mybuild:
//
//	go test -run '^$' -bench . -benchtime 20x ./executor/copier

// benchContext makes the context once per benchmark.
func benchContext(b *testing.B) string {
	b.Helper()
	root := b.TempDir()
	for i := 0; i < 5000; i++ {
		p := filepath.Join(root, "files", fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%04d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("file %d\n", i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}

// BenchmarkCopyTree copies the whole tree into an empty destination.
func BenchmarkCopyTree(b *testing.B) {
	benchCopy(b, []string{"files"})
}

// BenchmarkCopyWildcard copies the same files named by a wildcard, each
// match resolved on its own.
func BenchmarkCopyWildcard(b *testing.B) {
	benchCopy(b, []string{"files/*/*.txt"})
}

func benchCopy(b *testing.B, sources []string) {
	src, dest := benchContext(b), b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o := Options{SrcRoot: src, Sources: sources, DestRoot: dest, Dest: "/out/"}
		if err := Copy(context.Background(), o); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(filepath.Join(dest, "out")); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkSelectTree lists what a copy of the tree reads, as the cache key
// of a no-op rebuild does before it finds its digests in the stat cache.
func BenchmarkSelectTree(b *testing.B) {
	src := benchContext(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		err := Select(context.Background(), Options{SrcRoot: src, Sources: []string{"files"}}, func(Entry) error {
			n++
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if n != 5051 {
			b.Fatalf("selected %d entries, want 5051", n)
		}
	}
}
