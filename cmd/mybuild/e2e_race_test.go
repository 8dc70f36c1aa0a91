package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRaceContextSwap plays a local user who owns the build context and
// wants a root-only host file in the image: while mybuild builds
// "COPY dir /out/" again and again, a goroutine keeps exchanging a
// directory with a symbolic link to a host directory of mode 0700 whose
// files have the same names and hold a marker: dir itself, or the context
// directory (whose parent the user owns too). renameat2(RENAME_EXCHANGE)
// makes each swap atomic, so that the path always exists, as one or the
// other. Every build must either fail or give an image whose copied files
// are the context's: the marker never reaches a layer, nor a message.
func TestRaceContextSwap(t *testing.T) {
	e := newEnv(t)
	const copyDir = "FROM busybox\nCOPY dir /out/\n"
	// The bound directory is pinned when the step is prepared; before,
	// its path was bound by the sandbox some milliseconds later.
	const bindDir = "FROM busybox\nRUN --mount=type=bind,source=dir,target=/src cp -r /src /out\n"
	for _, tc := range []struct {
		name       string
		swapped    string // the path exchanged with a link to the host, relative to the context
		dockerfile string
	}{
		{"a directory of the context", "dir", copyDir},
		{"the context directory", ".", copyDir},
		{"a directory bound by RUN --mount", "dir", bindDir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{t: t, root: e.root}
			raceContextSwap(t, e, tc.swapped, tc.dockerfile)
		})
	}
}

func raceContextSwap(t *testing.T, e *env, swapped, dockerfile string) {
	const nFiles = 200
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		t.Fatal(err)
	}
	marker := "mybuild-race-marker-" + hex.EncodeToString(raw[:])

	// host/dir/fNNN hold the marker; the context is parent/ctx, with
	// ctx/dir/fNNN.
	host := filepath.Join(t.TempDir(), "root-only")
	if err := os.MkdirAll(filepath.Join(host, "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(host, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"Dockerfile": dockerfile}
	for i := 0; i < nFiles; i++ {
		name := fmt.Sprintf("f%03d", i)
		files["dir/"+name] = "context file\n"
		if err := os.WriteFile(filepath.Join(host, "dir", name), []byte(marker+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx := filepath.Join(t.TempDir(), "ctx")
	if err := os.Rename(writeContext(t, files), ctx); err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(ctx, swapped)
	alt := filepath.Join(filepath.Dir(real), "alt")
	if err := os.Symlink(filepath.Join(host, swapped), alt); err != nil {
		t.Fatal(err)
	}

	// The swapper leaves the real directory in place most of the time, so
	// that builds get past resolving their source, and swaps it out for
	// short moments, which land while the copy is under way.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var swaps int
	var swapErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := unix.Renameat2(unix.AT_FDCWD, real, unix.AT_FDCWD, alt, unix.RENAME_EXCHANGE); err != nil {
				swapErr = fmt.Errorf("exchange: %w", err)
				return
			}
			time.Sleep(time.Duration(50+i%7*50) * time.Microsecond)
			if err := unix.Renameat2(unix.AT_FDCWD, real, unix.AT_FDCWD, alt, unix.RENAME_EXCHANGE); err != nil {
				swapErr = fmt.Errorf("exchange back: %w", err)
				return
			}
			swaps++
			time.Sleep(time.Duration(200+i%13*100) * time.Microsecond)
		}
	}()
	stopSwapper := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	defer stopSwapper()

	var built, refused int
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 40 && time.Now().Before(deadline); i++ {
		name := fmt.Sprintf("race-%d", i)
		r := e.run("build", "--no-cache", "--progress=plain", "-t", name, ctx)
		if strings.Contains(r.stdout+r.stderr, marker) || strings.Contains(r.stderr, host) {
			t.Errorf("build %d: the output shows the host directory or its files:\n%s", i, r.stderr)
		}
		if r.err != nil {
			refused++
			if refused <= 3 {
				t.Logf("build %d failed: %s", i, lastLine(r.stderr))
			}
			continue
		}
		built++
		checkRaceImage(t, e, name+":latest", marker, nFiles)
	}
	stopSwapper()
	if swapErr != nil {
		t.Fatal(swapErr)
	}
	t.Logf("%d builds succeeded, %d failed, %d swaps", built, refused, swaps)
	if built == 0 {
		t.Errorf("no build succeeded: the copy was never raced")
	}
}

// checkRaceImage checks the layer COPY made in the image name: no entry
// holds the marker (a file whose content is not the context's, or a link
// to the host directory), and /out/ holds the n files of the context.
func checkRaceImage(t *testing.T, e *env, name, marker string, n int) {
	t.Helper()
	layers := lastLayers(t, e.image(name), 1)
	if len(layers) != 1 {
		t.Fatalf("%s: %d layers after the base, want 1", name, len(layers))
	}
	want := sha256hex([]byte("context file\n"))[:12]
	files := 0
	var leaked []string
	for _, en := range layerEntries(t, layers[0]) {
		if strings.Contains(en.Link, "root-only") || en.Type == "file" && en.Digest != want {
			leaked = append(leaked, en.Path)
			continue
		}
		if en.Type == "file" {
			files++
			if !strings.HasPrefix(en.Path, "out/") {
				t.Errorf("%s: unexpected file %s", name, en.Path)
			}
		}
	}
	if len(leaked) > 0 {
		t.Errorf("%s: %d entries hold the host's files (the marker %s) or differ from the context's: %s",
			name, len(leaked), marker, strings.Join(leaked[:min(len(leaked), 5)], " "))
	}
	if files != n {
		t.Errorf("%s: %d files copied, want %d", name, files, n)
	}
}
