package sandbox

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSealedExecutable: the built-in runtime starts its init from a sealed
// in-memory copy of the binary, so a step that gets to run it (RUN
// ["/proc/self/exe"]) finds a memfd behind /proc/PID/exe that cannot be
// written, never the builder's binary on the host (CVE-2019-5736).
func TestSealedExecutable(t *testing.T) {
	b := &Builtin{}
	p, err := b.executable()
	if err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(p)
	if err != nil || !strings.HasPrefix(target, "/memfd:mybuild-init") {
		t.Errorf("init executable %s -> %q (%v), want a memfd", p, target, err)
	}
	seals, err := unix.FcntlInt(b.exe.Fd(), unix.F_GET_SEALS, 0)
	want := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if err != nil || seals&want != want {
		t.Errorf("seals = %#x (%v), want %#x", seals, err, want)
	}
	if f, err := os.OpenFile(p, os.O_RDWR, 0); err == nil {
		_, werr := f.WriteAt([]byte("pwned"), 0)
		f.Close()
		if !errors.Is(werr, unix.EPERM) {
			t.Errorf("write to the init executable: %v, want EPERM", werr)
		}
	}
	if digest(t, p) != digest(t, "/proc/self/exe") {
		t.Error("the sealed copy differs from the running binary")
	}
}

func digest(t *testing.T, p string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// TestDeviceRulesV2: the device rules are a BPF program on the sandbox's
// v2 cgroup, which the kernel checks besides the v1 controller (here, the
// test process's, which allows everything): a process in it may use
// /dev/zero but not /dev/kmsg.
func TestDeviceRulesV2(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	mounts, err := readCgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	var v2 string
	for _, m := range mounts {
		if m.v2 {
			v2 = m.dir
		}
	}
	if v2 == "" {
		t.Skip("no cgroup v2 hierarchy mounted")
	}
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Skip("no /dev/kmsg on this host")
	}
	dir := filepath.Join(v2, "mybuild-devtest-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot create a v2 cgroup: %v", err)
	}
	defer os.Remove(dir)
	c := &cgroup{v2: dir, v1: map[string]string{}}
	if err := c.setDevicesV2(defaultDeviceRules); err != nil {
		t.Fatalf("set device rules: %v", err)
	}
	cmd := exec.Command("/bin/busybox", "sh", "-c",
		"read x; head -c1 /dev/kmsg >/dev/null 2>&1 && echo kmsg allowed || echo kmsg refused; head -c3 /dev/zero | wc -c")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Skipf("no busybox: %v", err)
	}
	if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(cmd.Process.Pid)); err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}
	_, _ = io.WriteString(stdin, "go\n")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if got := strings.Join(strings.Fields(out.String()), " "); got != "kmsg refused 3" {
		t.Errorf("in the cgroup: %q, want /dev/kmsg refused and /dev/zero read", got)
	}
}

// TestSeccompFilterCache: a filter compiled once is kept in CacheDir and
// read back by the next builder; a damaged one is compiled again.
func TestSeccompFilterCache(t *testing.T) {
	dir := t.TempDir()
	spec, err := GenerateSpec(Spec{Root: "/r", Args: []string{"true"}}, HostPaths{Hosts: "/h", Resolv: "/r"})
	if err != nil {
		t.Fatal(err)
	}
	first, _, err := (&Builtin{CacheDir: dir}).seccompFilter(spec.Linux.Seccomp)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.bpf"))
	if len(files) != 1 {
		t.Fatalf("cached filters: %v, want one", files)
	}
	again, _, err := (&Builtin{CacheDir: dir}).seccompFilter(spec.Linux.Seccomp)
	if err != nil || !bytes.Equal(first, again) {
		t.Errorf("cached filter differs (%v)", err)
	}
	if err := os.WriteFile(files[0], []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	fixed, _, err := (&Builtin{CacheDir: dir}).seccompFilter(spec.Linux.Seccomp)
	if err != nil || !bytes.Equal(first, fixed) {
		t.Errorf("a damaged cached filter was used (%v)", err)
	}
}
