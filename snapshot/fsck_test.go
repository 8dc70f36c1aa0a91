package snapshot

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

func checkKinds(t *testing.T, s *Store, o CheckOptions) []string {
	t.Helper()
	fs, err := s.Check(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fs {
		k := f.Kind + " " + f.Path
		if f.Leftover {
			k += " leftover"
		}
		if f.Repaired {
			k += " repaired"
		}
		out = append(out, k)
	}
	return out
}

func TestCheck(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	used := extract(t, s, buildTar(t, ent{Name: "f", Body: "x"}))
	unused := extract(t, s, buildTar(t, ent{Name: "g", Body: "yy"}))
	isUsed := func(d v1.Hash) bool { return d.Hex == filepath.Base(used) }

	live := mount(t, s, false, used)
	liveTmp := s.path("tmp", s.owner+"-456")
	must(t, os.Mkdir(liveTmp, 0o700))

	clean := checkKinds(t, s, CheckOptions{Used: isUsed})
	if diff := cmp.Diff([]string{"unused-layer layers/" + filepath.Base(unused)}, clean); diff != "" {
		t.Fatalf("clean store (-want +got):\n%s", diff)
	}

	cmd := exec.Command("true")
	must(t, cmd.Run())
	dead := strconv.Itoa(cmd.Process.Pid) + ".12345"
	orphan, err := s.Mount(ctx, []string{used})
	must(t, err)
	t.Cleanup(func() { orphan.Release() })
	writeFile(t, filepath.Join(filepath.Dir(orphan.Dir), "owner"), dead+"\n", 0o600)
	orphanID := filepath.Base(filepath.Dir(orphan.Dir))
	must(t, os.Mkdir(s.path("tmp", dead+"-123"), 0o700))
	// What a build killed in a mount namespace of its own leaves: the
	// directories, no mount.
	must(t, os.MkdirAll(s.path("mounts", "unmounted", "upper"), 0o755))
	must(t, os.Mkdir(s.path("mounts", "unmounted", "merged"), 0o755))
	writeFile(t, s.path("mounts", "unmounted", "owner"), dead+"\n", 0o600)
	must(t, os.Symlink("/nonexistent/layer", s.path("l", "dangling")))
	must(t, os.Mkdir(s.path("layers", "junk"), 0o700))
	stray := s.path("empty", "stray")
	must(t, os.Mkdir(stray, 0o700))
	if err := unix.Mount("tmpfs", stray, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(stray, unix.MNT_DETACH) })

	want := []string{
		"leftover-mount mounts/" + orphanID, // still mounted: a problem
		"leftover-mount mounts/unmounted leftover",
		"leftover-temp tmp/" + dead + "-123 leftover",
		"stray-mount empty/stray",
		"dangling-link l/dangling",
		"stray-layer layers/junk",
	}
	if diff := cmp.Diff(want, checkKinds(t, s, CheckOptions{})); diff != "" {
		t.Errorf("check (-want +got):\n%s", diff)
	}
	for i := range want {
		want[i] += " repaired"
	}
	if diff := cmp.Diff(want, checkKinds(t, s, CheckOptions{Repair: true})); diff != "" {
		t.Errorf("repair (-want +got):\n%s", diff)
	}
	if got := checkKinds(t, s, CheckOptions{}); len(got) != 0 {
		t.Errorf("after repair: %q", got)
	}

	if ms, _ := mountsUnder(s.root); len(ms) != 1 || ms[0] != live.Dir {
		t.Errorf("mounts after repair: %q, want only the live one %s", ms, live.Dir)
	}
	if _, err := os.Lstat(filepath.Dir(orphan.Dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover mount survived repair: %v", err)
	}
	if got := readString(t, filepath.Join(live.Dir, "f")); got != "x" {
		t.Errorf("live mount broken: f = %q", got)
	}
	if _, err := os.Stat(liveTmp); err != nil {
		t.Errorf("live temporary directory removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(used, "f")); err != nil {
		t.Errorf("layer damaged: %v", err)
	}
	if _, err := os.Stat(unused); err != nil {
		t.Errorf("unused layer removed (it is only reclaimable): %v", err)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/a/b`:            "/a/b",
		`/a\040b`:         "/a b",
		`/tab\011x\134y`:  "/tab\tx\\y",
		`/end\04`:         `/end\04`,
		`/not\999escaped`: `/not\999escaped`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCheckZombieOwner: a process that died but is not reaped yet (a
// build killed after its parent, waiting for init) owns nothing; one that
// runs keeps its mount directory.
func TestCheckZombieOwner(t *testing.T) {
	s := newStore(t)
	sleeper := exec.Command("sleep", "60")
	must(t, sleeper.Start())
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	zombie := exec.Command("true")
	must(t, zombie.Start())
	t.Cleanup(func() { zombie.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, running, err := processOwner(zombie.Process.Pid); err == nil && !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("true did not exit")
		}
	}
	for name, p := range map[string]*os.Process{"live": sleeper.Process, "zombie": zombie.Process} {
		owner, _, err := processOwner(p.Pid)
		must(t, err)
		must(t, os.MkdirAll(s.path("mounts", name, "merged"), 0o755))
		writeFile(t, s.path("mounts", name, "owner"), owner+"\n", 0o600)
	}
	want := []string{"leftover-mount mounts/zombie leftover"}
	if diff := cmp.Diff(want, checkKinds(t, s, CheckOptions{})); diff != "" {
		t.Errorf("check (-want +got):\n%s", diff)
	}
}
