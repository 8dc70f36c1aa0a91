package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The attack tests: each tries, as a hostile Dockerfile would, one of the
// escapes the attack review found in the RUN sandbox, with a static probe
// program (executor/sandbox/testdata/probe) copied into the image, and
// then checks the host.

var (
	probeOnce sync.Once
	probePath string
	probeErr  error
)

// probeBinary builds the probe once, statically.
func probeBinary(t *testing.T) string {
	t.Helper()
	probeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mybuild-probe-")
		if err != nil {
			probeErr = err
			return
		}
		probePath = filepath.Join(dir, "probe")
		cmd := exec.Command("go", "build", "-o", probePath, "../../executor/sandbox/testdata/probe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = err
			probePath = string(out)
		}
	})
	if probeErr != nil {
		t.Fatalf("build probe: %v\n%s", probeErr, probePath)
	}
	return probePath
}

// attackContext is a context holding the probe and this Dockerfile, which
// should start with "FROM busybox\nCOPY probe /probe\n".
func attackContext(t *testing.T, dockerfile string) string {
	t.Helper()
	ctx := writeContext(t, map[string]string{"Dockerfile": dockerfile})
	data, err := os.ReadFile(probeBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctx, "probe"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// probeReports decodes every "PROBE {json}" line of a build's output, in
// order, into the values of vs.
func probeReports(t *testing.T, out string, vs ...any) {
	t.Helper()
	i := 0
	for _, line := range strings.Split(out, "\n") {
		_, rest, ok := strings.Cut(line, " PROBE ")
		if !ok || i >= len(vs) {
			continue
		}
		if err := json.Unmarshal([]byte(rest), vs[i]); err != nil {
			t.Fatalf("decode probe report %d: %v\n%s", i, err, rest)
		}
		i++
	}
	if i != len(vs) {
		t.Fatalf("%d probe reports, want %d, in:\n%s", i, len(vs), out)
	}
}

func fileDigest(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestAttackPid1: the step cannot reach the builder's process. Before, pid
// 1 of a step was the dumpable mybuild binary with privileged threads: a
// step wrote code into it through /proc/1/mem, ptraced it, killed it, or
// made it dump goroutine stacks into the log with SIGQUIT.
func TestAttackPid1(t *testing.T) {
	e := newEnv(t)
	ctx := attackContext(t, `FROM busybox
COPY probe /probe
RUN /probe procs
RUN sh -c '/probe ptrace; true'
RUN sh -c 'kill -QUIT 1; kill -ABRT 1; kill -SEGV 1; kill -TERM 1; sleep 0.2; echo survived'
`)
	r := e.mustRun("build", "--progress=plain", "--no-cache", ctx)
	var procs []struct {
		PID, Exe, ExeDigest, Cmdline, CapEff string
	}
	var ptrace map[string]string
	probeReports(t, r.stderr, &procs, &ptrace)
	builder := fileDigest(t, binPath)
	if len(procs) != 1 || procs[0].PID != "1" || procs[0].Cmdline != "/probe procs" {
		t.Errorf("the step sees processes %+v, want itself alone, as pid 1", procs)
	}
	for _, p := range procs {
		if p.ExeDigest == builder {
			t.Errorf("process %s of the step runs the mybuild binary", p.PID)
		}
		if p.CapEff != "00000000a80425fb" {
			t.Errorf("process %s has capabilities %s, want Docker's default set", p.PID, p.CapEff)
		}
	}
	// Pid 1 is the step's own shell; the probe may trace its own parent,
	// as under Docker, but nothing of the builder is there to trace.
	if got := ptrace["pid1"]; got != "sh -c /probe ptrace; true" {
		t.Errorf("pid 1 is %q, want the step's shell", got)
	}
	if !strings.Contains(r.stderr, "survived") {
		t.Errorf("signals to pid 1 ended the step:\n%s", r.stderr)
	}
	for _, leak := range []string{"goroutine ", ".go:", "SIGQUIT"} {
		if strings.Contains(r.stderr, leak) {
			t.Errorf("the build log holds %q: a builder process dumped its stacks:\n%s", leak, r.stderr)
		}
	}
}

// TestAttackTraceme: a thread of the step's pid 1 that asks to be traced
// by its parent (PTRACE_TRACEME, which Docker's profile allows) makes the
// builder its tracer; once the step exits, only the tracer can reap that
// thread. The build must still end, and leave no process.
func TestAttackTraceme(t *testing.T) {
	e := newEnv(t)
	ctx := attackContext(t, "FROM busybox\nCOPY probe /probe\nRUN /probe traceme\n")
	for _, runtime := range []string{"builtin", "runc"} {
		t.Run(runtime, func(t *testing.T) {
			if runtime != "builtin" {
				needRuntime(t, runtime)
			}
			cmd := exec.Command(binPath, "--root", e.root, "build", "--runtime", runtime, "--progress=plain", "--no-cache", ctx)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("build: %v\n%s", err, out.String())
				}
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("the build hung after a step made the builder its tracer:\n%s", out.String())
			}
			var r struct{ Traceme string }
			probeReports(t, out.String(), &r)
			if r.Traceme != "ok" {
				t.Errorf("PTRACE_TRACEME: %s; the attack did not happen", r.Traceme)
			}
		})
	}
}

// TestAttackStubCleanup: after a step, the host-side removal of the mount
// points it created must never follow what the step did. Before, a step
// that moved /etc away and put a symlink to a host directory in its place
// got host files named hosts and resolv.conf deleted (an empty file, a
// symlink, an empty directory, a device node), and the same through the
// parent of a RUN --mount target.
func TestAttackStubCleanup(t *testing.T) {
	e := newEnv(t)
	d1, d2, d3 := t.TempDir(), t.TempDir(), t.TempDir()
	mustDo(t, os.WriteFile(filepath.Join(d1, "hosts"), nil, 0o644))
	mustDo(t, os.Symlink("/nonexistent", filepath.Join(d1, "resolv.conf")))
	mustDo(t, unix.Mknod(filepath.Join(d2, "hosts"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
	mustDo(t, os.Mkdir(filepath.Join(d2, "resolv.conf"), 0o755))
	mustDo(t, os.Mkdir(filepath.Join(d3, "target"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(d3, "file"), nil, 0o644))
	before := map[string][]string{}
	for _, d := range []string{d1, d2, d3} {
		before[d] = dirListing(t, d)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	mustDo(t, os.WriteFile(secret, []byte("s3cr3t"), 0o600))
	// Each attack in a stage of its own. An image without /etc makes the
	// sandbox create /etc (and the hosts and resolv.conf stubs in it) in
	// the step's upper directory, where the step can rename it (overlayfs
	// refuses to rename a directory of a lower layer).
	ctx := attackContext(t, `FROM scratch AS noetc
COPY --from=busybox /bin /bin
COPY --from=busybox /sbin /sbin
COPY --from=busybox /usr /usr
FROM noetc AS a
RUN mv /etc /etc.moved && ln -s `+d1+` /etc
FROM noetc AS b
RUN mv /etc /etc.moved && ln -s `+d2+` /etc
FROM busybox AS c
RUN --mount=type=tmpfs,target=/m/target sh -c 'mv /m /m.moved && ln -s `+d3+` /m'
FROM busybox AS d
RUN --mount=type=secret,id=s,target=/s/file sh -c 'mv /s /s.moved && ln -s `+d3+` /s'
FROM busybox
COPY --from=a /etc.moved /a
COPY --from=b /etc.moved /b
COPY --from=c /m.moved /c
COPY --from=d /s.moved /d
`)
	e.mustRun("build", "--progress=plain", "--no-cache", "--secret", "id=s,src="+secret, ctx)
	for _, d := range []string{d1, d2, d3} {
		if got := dirListing(t, d); strings.Join(got, "\n") != strings.Join(before[d], "\n") {
			t.Errorf("host directory %s changed by the builder's cleanup:\nbefore %q\nafter  %q", d, before[d], got)
		}
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dirListing names the entries of dir with their types.
func dirListing(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name()+" "+e.Type().String())
	}
	return out
}

// TestAttackInheritedFds: descriptors the process that started mybuild
// had open never reach a step. Before, a directory descriptor of the
// host's / reached the step, which listed, read and wrote the host
// through /proc/self/fd/N.
func TestAttackInheritedFds(t *testing.T) {
	e := newEnv(t)
	hostDir := t.TempDir()
	secret := filepath.Join(hostDir, "secret")
	mustDo(t, os.WriteFile(secret, []byte("host secret\n"), 0o600))
	ctx := attackContext(t, `FROM busybox
COPY probe /probe
RUN /probe fds
RUN for fd in 3 4 5 6 7 8 9; do cat /proc/self/fd/$fd/secret /proc/self/fd/$fd 2>/dev/null; touch /proc/self/fd/$fd/pwned 2>/dev/null; done; echo tried
`)
	for _, runtime := range []string{"builtin", "runc"} {
		t.Run(runtime, func(t *testing.T) {
			if runtime != "builtin" {
				needRuntime(t, runtime)
			}
			dirFd, err := os.Open(hostDir)
			mustDo(t, err)
			defer dirFd.Close()
			fileFd, err := os.Open(secret)
			mustDo(t, err)
			defer fileFd.Close()
			rootFd, err := os.Open("/")
			mustDo(t, err)
			defer rootFd.Close()
			cmd := exec.Command(binPath, "--root", e.root, "build", "--runtime", runtime, "--progress=plain", "--no-cache", ctx)
			cmd.ExtraFiles = []*os.File{dirFd, fileFd, rootFd} // 3, 4, 5 in mybuild
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("build: %v\n%s", err, out.String())
			}
			var fds []struct{ FD, Target, Escape string }
			probeReports(t, out.String(), &fds)
			if len(fds) != 0 {
				t.Errorf("the step holds descriptors beyond 0-2: %+v", fds)
			}
			if strings.Contains(out.String(), "host secret") {
				t.Errorf("the step read the host's file through an inherited descriptor:\n%s", out.String())
			}
			if _, err := os.Stat(filepath.Join(hostDir, "pwned")); err == nil {
				t.Error("the step wrote into the host directory through an inherited descriptor")
			}
		})
	}
}

// needRuntime skips when the OCI runtime name is not installed (make test
// installs runc and crun).
func needRuntime(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed (make test installs it)", name)
	}
}

// TestAttackKeyring: a step gets a session keyring of its own and cannot
// use the kernel's keyrings at all (Docker's seccomp profile refuses
// keyctl, add_key and request_key). Before, the step read a key the host
// had put in its session keyring and left a key in root's user keyring
// that outlived the build.
func TestAttackKeyring(t *testing.T) {
	e := newEnv(t)
	if _, err := exec.LookPath("keyctl"); err != nil {
		t.Skip("keyctl is not installed (make test installs keyutils)")
	}
	desc := "mybuild-attack-" + strconv.Itoa(os.Getpid())
	ctx := attackContext(t, `FROM busybox
COPY probe /probe
RUN /probe keyring `+desc+` `+desc+`-default
RUN --security=insecure /probe keyring `+desc+` `+desc+`-insecure
`)
	// mybuild starts in a new session keyring holding the host's key.
	script := `keyctl add user "$1" hostsecret @s >/dev/null && shift && exec "$@"`
	cmd := exec.Command("keyctl", "session", "-", "sh", "-c", script, "sh", desc,
		binPath, "--root", e.root, "build", "--allow", "security.insecure", "--progress=plain", "--no-cache", ctx)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	defer exec.Command("keyctl", "purge", "user", desc+"-insecure").Run()
	type keyring struct{ Session, SearchHostKey, AddUserKey, AddSessionKey string }
	var sandboxed, insecure keyring
	probeReports(t, string(out), &sandboxed, &insecure)
	if want := (keyring{"EPERM", "EPERM", "EPERM", "EPERM"}); sandboxed != want {
		t.Errorf("default sandbox: keyrings %+v, want every call refused %+v", sandboxed, want)
	}
	// Without seccomp (security.insecure), the session keyring is still
	// the step's own: the host's key is not in it. (Root's user keyring
	// is reachable then, as under docker run --privileged.)
	if insecure.SearchHostKey != "ENOKEY" || insecure.AddSessionKey != "ok" {
		t.Errorf("insecure sandbox: keyrings %+v, want the host key out of reach (ENOKEY) and a session of its own", insecure)
	}
	// Nothing the default step did outlives the build in root's keyring.
	if out, err := exec.Command("keyctl", "search", "@u", "user", desc+"-default").CombinedOutput(); err == nil {
		t.Errorf("the default step left a key in root's user keyring: %s", out)
	}
}

// TestAttackSeccompAndDevices: Docker's seccomp profile holds, and the
// device cgroup allows only the default devices. Before, keyctl,
// unshare(CLONE_NEWUSER) (then a cgroup mount inside it),
// perf_event_open, userfaultfd and personality all worked, and a step
// mknod'ed /dev/kmsg and wrote into the host's kernel log.
func TestAttackSeccompAndDevices(t *testing.T) {
	e := newEnv(t)
	var st unix.Stat_t
	mustDo(t, unix.Stat("/", &st))
	disk := strconv.Itoa(int(unix.Major(st.Dev))) + ":" + strconv.Itoa(int(unix.Minor(st.Dev)))
	mark := "mybuild-kmsg-" + strconv.Itoa(os.Getpid())
	ctx := attackContext(t, `FROM busybox
COPY probe /probe
RUN /probe syscalls
RUN /probe devices `+disk+` `+mark+`
RUN --security=insecure /probe view
`)
	// Without the entitlement, an insecure step is refused before it runs.
	stderr := e.mustFail("build", "--progress=plain", "--no-cache", ctx)
	if !strings.Contains(stderr, "Dockerfile:5") || !strings.Contains(stderr, "--allow security.insecure") {
		t.Errorf("insecure step without --allow: want an error naming Dockerfile:5 and the flag:\n%s", stderr)
	}
	for _, runtime := range []string{"builtin", "runc"} {
		t.Run(runtime, func(t *testing.T) {
			if runtime != "builtin" {
				needRuntime(t, runtime)
			}
			r := e.mustRun("build", "--runtime", runtime, "--allow", "security.insecure", "--progress=plain", "--no-cache", ctx)
			var calls map[string]string
			var devs struct{ KmsgMknod, KmsgOpen, KmsgWrite, BlockMknod, BlockOpen string }
			var insecure struct{ Status map[string]string }
			probeReports(t, r.stderr, &calls, &devs, &insecure)
			for _, name := range []string{"keyctl", "add_key", "unshare-user", "unshare-mount", "perf_event_open",
				"userfaultfd", "personality", "bpf", "mount", "init_module", "kexec_load", "open_by_handle_at",
				"setns", "swapon", "clock_settime"} {
				if calls[name] != "EPERM" {
					t.Errorf("%s: %q, want EPERM", name, calls[name])
				}
			}
			if devs.KmsgOpen != "EPERM" || devs.BlockOpen != "EPERM" {
				t.Errorf("devices %+v: want /dev/kmsg and the host disk refused at open (EPERM)", devs)
			}
			if log, err := exec.Command("dmesg").Output(); err == nil && strings.Contains(string(log), mark) {
				t.Error("the step wrote into the host's kernel log")
			}
			if insecure.Status["Seccomp"] != "0" || insecure.Status["CapEff"] == "00000000a80425fb" {
				t.Errorf("RUN --security=insecure with --allow: %v, want no seccomp filter and every capability", insecure.Status)
			}
		})
	}
}

// TestAttackCgroupEscape: a step cannot leave its cgroup, and gets one
// even without limits. Before, with --pids-limit a step moved itself out
// through pid 1's open cgroup handles and the limit was gone.
func TestAttackCgroupEscape(t *testing.T) {
	e := newEnv(t)
	limitsSkip(t, e)
	ctx := attackContext(t, `FROM busybox
COPY probe /probe
RUN /probe cgroup-escape 60
`)
	for _, runtime := range []string{"builtin", "runc"} {
		t.Run(runtime, func(t *testing.T) {
			if runtime != "builtin" {
				needRuntime(t, runtime)
			}
			watch := watchSandboxCgroups(t)
			r := e.mustRun("build", "--runtime", runtime, "--pids-limit", "20", "--progress=plain", "--no-cache", ctx)
			seen := watch()
			var esc struct {
				Writes  map[string]string
				Mount   string
				Cgroup  []string
				Started int
			}
			probeReports(t, r.stderr, &esc)
			for file, res := range esc.Writes {
				if res == "ok" {
					t.Errorf("the step wrote itself into %s", file)
				}
			}
			if esc.Mount == "ok" {
				t.Error("the step mounted a cgroup file system")
			}
			if esc.Started >= 20 {
				t.Errorf("the step started %d processes under --pids-limit 20", esc.Started)
			}
			for _, line := range esc.Cgroup {
				if !strings.HasSuffix(line, ":/") {
					t.Errorf("the step sees a cgroup outside its namespace: %s", line)
				}
			}
			checkCgroupsGone(t, seen)

			// Without limits, the step still has a cgroup of its own.
			watch = watchSandboxCgroups(t)
			e.mustRun("build", "--runtime", runtime, "--progress=plain", "--no-cache", ctx)
			checkCgroupsGone(t, watch())
		})
	}
}
