package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCrashKills starts builds, pulls, pushes and cache exports and kills
// mybuild with SIGKILL at random moments (seeded: MYBUILD_CRASH_SEED
// replays a run). After each kill no process of the build (mybuild in its
// mount namespace, RUN processes) survives and no mount is left on the
// host; fsck finds no problem at once, only leftovers; and a rebuild
// (after every third kill) must succeed, sweep the leftovers and give the
// image an uninterrupted build gives.
func TestCrashKills(t *testing.T) {
	const kills = 30
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MYBUILD_CRASH_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (MYBUILD_CRASH_SEED=%d replays this run)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	reg := startRegistry(t, "", "")
	base := reg.host + "/lib/base:1"
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY big /big\nRUN sleep 0.314159 && md5sum /big > /sum\nCOPY small /app/small\nRUN cat /app/small /sum > /app/all && echo done\n",
		"small":      "small\n",
	})
	big := make([]byte, 8<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	if err := os.WriteFile(filepath.Join(ctx, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	epoch := []string{concEpoch}

	// The base image in the registry: busybox and a layer of 16 MiB, so
	// that a pull takes a while.
	ref := newEnv(t)
	baseCtx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY base.bin /base.bin\n"})
	if err := os.WriteFile(filepath.Join(baseCtx, "base.bin"), bytes.Repeat(big, 2), 0o644); err != nil {
		t.Fatal(err)
	}
	ref.mustRun("build", "-t", "base", baseCtx)
	ref.mustRun("push", "base", base)

	// The reference: an uninterrupted build in a fresh store.
	clean := newEnv(t)
	timed := func(e *env, args ...string) (result, time.Duration) {
		t0 := time.Now()
		r := e.runEnv(e.root, epoch, "", args...)
		return r, time.Since(t0)
	}
	rr, buildTime := timed(clean, "build", "--progress=plain", "-t", "crash", ctx)
	if rr.err != nil {
		t.Fatalf("reference build: %v\n%s", rr.err, rr.stderr)
	}
	wantID := strings.TrimSpace(rr.stdout)

	e := newEnv(t)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	rr, pushTime := timed(clean, "push", "crash", reg.host+"/crash/timing:1")
	if rr.err != nil {
		t.Fatalf("push: %v\n%s", rr.err, rr.stderr)
	}
	rr, pullTime := timed(e, "pull", base)
	if rr.err != nil {
		t.Fatalf("pull: %v\n%s", rr.err, rr.stderr)
	}
	t.Logf("uninterrupted: build %v, push %v, pull %v", buildTime.Round(time.Millisecond), pushTime.Round(time.Millisecond), pullTime.Round(time.Millisecond))

	type op struct {
		name string
		args func(i int) []string
		dur  time.Duration
	}
	ops := []op{
		{"build", func(int) []string {
			return []string{"build", "--progress=plain", "-t", "crash", ctx}
		}, buildTime},
		{"build --no-cache --pull=always --cache-to", func(int) []string {
			return []string{"build", "--progress=plain", "--no-cache", "--pull=always", "-t", "crash", "--cache-to", "type=local,dest=" + cacheDir + ",mode=max", ctx}
		}, buildTime},
		{"pull after rmi", func(int) []string { return []string{"pull", base} }, pullTime},
		{"push", func(i int) []string { return []string{"push", "crash", fmt.Sprintf("%s/crash/p%d:1", reg.host, i)} }, pushTime},
	}

	killed := 0
	for i := 0; killed < kills; i++ {
		if i >= 8*kills {
			t.Fatalf("only %d of %d kills landed in %d tries", killed, kills, i)
		}
		o := &ops[rng.IntN(len(ops))]
		if o.name == "pull after rmi" {
			e.run("rmi", base) // may fail: the image may be gone already
		}
		if o.name == "push" {
			if r := e.runEnv(e.root, epoch, "", "images"); !strings.Contains(r.stdout, "crash") {
				o = &ops[0]
			}
		}
		// A moment within the op's last uninterrupted run: cached builds
		// and repeated pushes get quicker, kills must keep landing.
		delay := time.Duration(rng.Int64N(int64(o.dur)))
		t0 := time.Now()
		cmd := exec.Command(binPath, append([]string{"--root", e.root}, o.args(i)...)...)
		cmd.Env = append(os.Environ(), "CI=1", concEpoch, "MYBUILD_CONFIG="+filepath.Join(e.root, "no-mybuild-config.json"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
			if err != nil {
				t.Fatalf("%s (not killed) failed: %v\n%s", o.name, err, out.String())
			}
			o.dur = max(time.Since(t0), 10*time.Millisecond)
			continue // finished before the kill: try again
		case <-time.After(delay):
			cmd.Process.Signal(os.Kill)
			if err = <-done; err == nil {
				continue // it finished just before the kill
			}
		}
		killed++
		t.Logf("kill %d: %s after %v (%v)", killed, o.name, delay.Round(time.Millisecond), err)
		checkCrashProcesses(t)

		// The build's mounts died with it, before any sweep.
		checkNoMounts(t, e.root)
		// fsck: no problem, at most leftovers of the dead build (mount
		// directories, temp files), which the next build sweeps.
		res, code := e.fsckRun()
		if code != 0 || res.Problems != 0 {
			t.Fatalf("kill %d (%s after %v): fsck: exit %d, problems %q", killed, o.name, delay, code, problems(res))
		}
		if killed%3 == 0 || killed == kills {
			rr := e.runEnv(e.root, epoch, "", "build", "--progress=plain", "-t", "crash", ctx)
			if rr.err != nil {
				t.Fatalf("kill %d (%s after %v): rebuild: %v\n%s", killed, o.name, delay, rr.err, rr.stderr)
			}
			if id := strings.TrimSpace(rr.stdout); id != wantID {
				t.Fatalf("kill %d (%s after %v): rebuild gave %s, an uninterrupted build %s", killed, o.name, delay, id, wantID)
			}
			if res, code = e.fsckRun(); code != 0 || res.Problems != 0 || res.Leftovers != 0 {
				t.Fatalf("kill %d (%s after %v): fsck after the rebuild: exit %d, problems %q, leftovers %q",
					killed, o.name, delay, code, problems(res), leftovers(res))
			}
		}
	}

	// The store, the cache export and the registry still work end to end.
	rr = e.runEnv(e.root, epoch, "", "build", "--progress=plain", "--no-cache", "-t", "crash", "--cache-to", "type=local,dest="+cacheDir+",mode=max", ctx)
	if rr.err != nil || strings.TrimSpace(rr.stdout) != wantID {
		t.Fatalf("final build: %v, id %q, want %s\n%s", rr.err, rr.stdout, wantID, rr.stderr)
	}
	fresh := newEnv(t)
	rr = fresh.runEnv(fresh.root, epoch, "", "build", "--progress=plain", "--cache-from", "type=local,src="+cacheDir, "-t", "crash", ctx)
	if rr.err != nil || strings.TrimSpace(rr.stdout) != wantID {
		t.Fatalf("build from the exported cache: %v, id %q, want %s\n%s", rr.err, rr.stdout, wantID, rr.stderr)
	}
	for _, step := range ranSteps2(t, rr.stderr) {
		t.Errorf("build from the exported cache ran %q, want all cached\n%s", step, rr.stderr)
	}
	e.mustRun("push", "crash", reg.host+"/crash/final:1")
	e.mustBeClean()
}

// checkCrashProcesses fails when a process of a killed build (mybuild
// in its mount namespace, the sandbox's init, a RUN process) is still
// alive a moment later. A zombie, waiting for init to reap it, is dead.
func checkCrashProcesses(t *testing.T) {
	t.Helper()
	for try := 0; ; try++ {
		var left []string
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			exe, _ := os.Readlink(filepath.Join(filepath.Dir(p), "exe"))
			if err == nil && (exe == binPath || bytes.Contains(b, []byte("0.314159")) && !bytes.Contains(b, []byte("mybuild.test"))) {
				left = append(left, p+": "+strings.ReplaceAll(string(b), "\x00", " "))
			}
		}
		if len(left) == 0 {
			return
		}
		if try == 20 {
			t.Errorf("processes outlived the killed build:\n%s", strings.Join(left, "\n"))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ranSteps2 is ranSteps without the unnamed progress entries (the pull
// of the base image, the cache import).
func ranSteps2(t *testing.T, stderr string) []string {
	t.Helper()
	ran, _ := ranSteps(t, stderr)
	var out []string
	for _, s := range ran {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
