package copier

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// The race tests play a local user who owns the source root and, while a
// copy runs, keeps swapping its directories for symbolic links to a
// root-only host directory whose files have the same names as the
// context's and hold raceMarker. A copy must then fail, or copy files of
// the context: never the host's.

const raceMarker = "host secret: race marker"

// raceWorld is a source root, ctx, next to a host directory, host.
//
//	ctx/dir/f00..f19, ctx/dir/sub/g00..g19   "context"
//	ctx/dir/a.tar                            an archive of t: "context"
//	ctx/alt -> host/dir                      absolute
//	ctx/dir/alt-sub -> ../../host/dir/sub    climbing out
//	host/dir/...                             the same names, raceMarker
//
// Its swapper exchanges ctx/dir with ctx/alt, then ctx/dir/sub with
// ctx/dir/alt-sub, with renameat2(RENAME_EXCHANGE) so that both names
// always exist, leaving the context as it is most of the time.
type raceWorld struct {
	ctx, host string
}

func newRaceWorld(t *testing.T) raceWorld {
	t.Helper()
	parent := t.TempDir()
	w := raceWorld{ctx: filepath.Join(parent, "ctx"), host: filepath.Join(parent, "host")}
	var ctxEntries, hostEntries []entry
	for _, tree := range []struct {
		entries *[]entry
		data    string
	}{{&ctxEntries, "context"}, {&hostEntries, raceMarker}} {
		*tree.entries = append(*tree.entries, dir("dir"), dir("dir/sub"),
			file("dir/a.tar", makeTar(t, treg("t", tree.data, 0o644, 0, 0))))
		for i := 0; i < 20; i++ {
			*tree.entries = append(*tree.entries,
				file(fmt.Sprintf("dir/f%02d", i), tree.data), file(fmt.Sprintf("dir/sub/g%02d", i), tree.data))
		}
	}
	build(t, w.host, append(hostEntries, dir(".").withMode(0o700))...)
	build(t, w.ctx, append(ctxEntries, symlink("alt", filepath.Join(w.host, "dir")), symlink("dir/alt-sub", "../../host/dir/sub"))...)
	return w
}

// swap runs the swapper until the returned function is called, which
// returns the swapper's error and how many swaps it made.
func (w raceWorld) swap(t *testing.T) (stop func() int) {
	t.Helper()
	pairs := [][2]string{
		{filepath.Join(w.ctx, "dir"), filepath.Join(w.ctx, "alt")},
		{filepath.Join(w.ctx, "dir/sub"), filepath.Join(w.ctx, "dir/alt-sub")},
	}
	exchange := func(p [2]string) error {
		return unix.Renameat2(unix.AT_FDCWD, p[0], unix.AT_FDCWD, p[1], unix.RENAME_EXCHANGE)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	var err error
	swaps := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			p := pairs[i%2]
			if err = exchange(p); err != nil {
				return
			}
			// A sleep this short takes far longer: spin instead.
			for start := time.Now(); time.Since(start) < time.Duration(10+i%5*10)*time.Microsecond; {
			}
			if err = exchange(p); err != nil {
				return
			}
			swaps++
			time.Sleep(time.Duration(100+i%7*100) * time.Microsecond)
		}
	}()
	var once sync.Once
	return func() int {
		once.Do(func() {
			close(done)
			wg.Wait()
			if err != nil {
				t.Errorf("swap: %v", err)
			}
		})
		return swaps
	}
}

// TestCopyRaceSwap copies from the race world, again and again while its
// swapper runs, with each kind of source and each way of resolving paths
// (openat2, and pathrs-lite's emulation of it): every copy either fails
// or copies only files of the context.
func TestCopyRaceSwap(t *testing.T) {
	// What a successful copy holds varies: the swapper can make a
	// directory look like a link, or the other way, to part of a walk.
	cases := []struct {
		name string
		o    Options
	}{
		{"directory", Options{Sources: []string{"dir"}}},
		{"file below a swapped directory", Options{Sources: []string{"dir/sub/g05"}}},
		{"wildcards", Options{Sources: []string{"dir/f*", "dir/sub/g1*"}}},
		{"ADD of a local archive", Options{Sources: []string{"dir/a.tar"}, Add: true}},
		{"parents", Options{Sources: []string{"dir/./sub/g0*"}, Parents: true}},
	}
	for _, emulate := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/emulate=%v", tc.name, emulate), func(t *testing.T) {
				w := newRaceWorld(t)
				dest := t.TempDir()
				o := tc.o
				o.SrcRoot, o.DestRoot, o.Dest = w.ctx, dest, "/out/"
				stop := w.swap(t)
				defer stop()
				copied, failed, files := 0, 0, 0
				for i := 0; i < 60; i++ {
					c, err := newCopier(context.Background(), o)
					if err != nil {
						t.Fatal(err)
					}
					c.src.emulate = emulate
					err = c.copy()
					c.close()
					if err != nil {
						failed++
						if failed < 4 {
							t.Log(err)
						}
						if strings.Contains(err.Error(), w.host) || strings.Contains(err.Error(), w.ctx) {
							t.Errorf("error %q shows a host path", err)
						}
					} else {
						copied++
						files += checkRaceCopy(t, filepath.Join(dest, "out"))
					}
					if err := os.RemoveAll(filepath.Join(dest, "out")); err != nil {
						t.Fatal(err)
					}
				}
				swaps := stop()
				t.Logf("%d copies (%d files), %d failed, %d swaps", copied, files, failed, swaps)
				if files == 0 {
					t.Error("no copy copied anything: the copy was never raced")
				}
			})
		}
	}
}

// checkRaceCopy checks that no file below dir holds the marker, and that
// every file there is one of the context (holds "context", a.tar too); it
// returns how many files there are.
func checkRaceCopy(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		n++
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "host secret") {
			t.Errorf("%s holds the host's file", p)
		} else if !strings.Contains(string(b), "context") {
			t.Errorf("%s holds %.40q, not a file of the context", p, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSelectRaceSwap reads every file Select reports through Entry.Open,
// as the cache key does, while the swapper runs: no read may return the
// host's file.
func TestSelectRaceSwap(t *testing.T) {
	w := newRaceWorld(t)
	stop := w.swap(t)
	defer stop()
	read, failed := 0, 0
	for i := 0; i < 60; i++ {
		err := Select(context.Background(), Options{SrcRoot: w.ctx, Sources: []string{"dir"}}, func(e Entry) error {
			if !e.Info.Mode().IsRegular() {
				return nil
			}
			f, err := e.Open()
			if err != nil {
				return err
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil {
				return err
			}
			if strings.Contains(string(b), "host secret") {
				t.Errorf("select %d: %s reads the host's file", i, e.Rel)
			}
			read++
			return nil
		})
		if err != nil {
			failed++
		}
	}
	t.Logf("%d files read, %d selections failed, %d swaps", read, failed, stop())
	if read == 0 {
		t.Error("no file was read: the selection was never raced")
	}
}

// TestSourceEmulated checks that resolving paths with pathrs-lite, where
// the kernel has no openat2, copies what openat2 copies.
func TestSourceEmulated(t *testing.T) {
	sources := [][]string{{"."}, {"linkdir/one.txt", "link.txt"}, {"d*/*.txt"}, {"dir/sub/"}}
	for _, srcs := range sources {
		t.Run(strings.Join(srcs, ","), func(t *testing.T) {
			srcRoot := t.TempDir()
			build(t, srcRoot, defaultContext...)
			var trees [2][]node
			for i, emulate := range []bool{false, true} {
				dest := t.TempDir()
				c, err := newCopier(context.Background(), Options{SrcRoot: srcRoot, Sources: srcs, DestRoot: dest, Dest: "/out/", DirTime: time.Unix(tDir, 0)})
				if err != nil {
					t.Fatal(err)
				}
				c.src.emulate = emulate
				err = c.copy()
				c.close()
				if err != nil {
					t.Fatalf("emulate=%v: %v", emulate, err)
				}
				trees[i] = tree(t, dest)
			}
			if len(trees[0]) == 0 {
				t.Fatal("nothing copied")
			}
			if diff := cmp.Diff(trees[0], trees[1]); diff != "" {
				t.Errorf("openat2 vs emulated (-openat2 +emulated):\n%s", diff)
			}
		})
	}
}
