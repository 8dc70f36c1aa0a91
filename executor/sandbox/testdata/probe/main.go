// Command probe is the attacker's program of the sandbox tests: copied as
// a static binary into a RUN step, it reports what the step can see and
// tries, one by one, the escapes a hostile Dockerfile would. Each
// subcommand prints one JSON object; the tests check it and then check
// the host.
//
//	probe view                   what the step sees (for the runtime comparison)
//	probe procs                  every process of the step: exe digest, caps, dumpable
//	probe fds                    descriptors beyond 0-2, and what they reach
//	probe keyring HOSTKEY NEWKEY the session keyring; find a host key; add a key
//	probe syscalls               syscalls Docker's seccomp profile refuses
//	probe devices MAJ:MIN MARK   mknod+open of /dev/kmsg and a block device
//	probe cgroup-escape N        leave the cgroup, then start N processes
//	probe ptrace                 ptrace, /proc/PID/mem and kill of every other process
//	probe sleep SECONDS          sleep (to be found on the host)
//	probe traceme                make the step's parent trace a thread, then exit

// The runtime must not open cgroup files of its own: "fds" reports every
// descriptor beyond 0-2.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe SUBCOMMAND [ARGS]")
		os.Exit(2)
	}
	var out any
	switch args := os.Args[2:]; os.Args[1] {
	case "view":
		out = view()
	case "procs":
		out = procs()
	case "fds":
		out = fds()
	case "keyring":
		out = keyring(arg(args, 0), arg(args, 1))
	case "syscalls":
		out = syscalls()
	case "devices":
		out = devices(arg(args, 0), arg(args, 1))
	case "cgroup-escape":
		n, _ := strconv.Atoi(arg(args, 0))
		out = cgroupEscape(n)
	case "ptrace":
		out = ptrace()
	case "traceme":
		traceme()
		return
	case "sleep":
		d, _ := time.ParseDuration(arg(args, 0) + "s")
		time.Sleep(d)
		return
	case "child":
		// A process that only waits, for cgroup-escape's count.
		time.Sleep(30 * time.Second)
		return
	default:
		fmt.Fprintf(os.Stderr, "probe: unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
	data, err := json.Marshal(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("PROBE " + string(data))
}

func arg(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

// errno names the result of a syscall: "ok" or the errno's name.
func errno(err error) string {
	if err == nil {
		return "ok"
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	return err.Error()
}

// statusFields reads the named fields of /proc/PID/status.
func statusFields(pid string, names ...string) map[string]string {
	m := map[string]string{}
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		for _, n := range names {
			if k == n {
				m[k] = strings.Join(strings.Fields(v), " ")
			}
		}
	}
	return m
}

// View is what a step sees of its sandbox.
type View struct {
	UID, GID, PID, PPID int
	Groups              []int
	Status              map[string]string // capabilities, seccomp, no_new_privs
	Cgroup              []string          // /proc/self/cgroup
	Mounts              []string          // mount point, type, options (sorted)
	Devices             []string          // /dev entries: name, type, numbers, mode
	Hostname, Cwd       string
	Env                 []string
	Limits              []string // /proc/self/limits
	Pid1                string   // /proc/1/cmdline
	Procs               int      // processes in /proc
	SessionKeyring      string   // keyctl(GET_KEYRING_ID, @s) errno
}

func view() View {
	v := View{UID: os.Getuid(), GID: os.Getgid(), PID: os.Getpid(), PPID: os.Getppid()}
	v.Groups, _ = os.Getgroups()
	sort.Ints(v.Groups)
	v.Status = statusFields("self", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters")
	if data, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		v.Cgroup = strings.Split(strings.TrimSpace(string(data)), "\n")
	}
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			pre, post, _ := strings.Cut(line, " - ")
			f, t := strings.Fields(pre), strings.Fields(post)
			if len(f) < 6 || len(t) < 1 {
				continue
			}
			// The root's overlay options name host paths; they differ
			// between runs and are not what is compared.
			opts := f[5]
			if f[4] == "/" {
				opts = "(root)"
			}
			v.Mounts = append(v.Mounts, f[4]+" "+t[0]+" "+opts)
		}
		sort.Strings(v.Mounts)
	}
	ents, _ := os.ReadDir("/dev")
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Lstat("/dev/"+e.Name(), &st) != nil {
			continue
		}
		desc := e.Name() + " " + fmt.Sprintf("%o", st.Mode)
		if st.Mode&unix.S_IFMT == unix.S_IFCHR || st.Mode&unix.S_IFMT == unix.S_IFBLK {
			desc += fmt.Sprintf(" %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if l, err := os.Readlink("/dev/" + e.Name()); err == nil {
			desc += " -> " + l
		}
		v.Devices = append(v.Devices, desc)
	}
	v.Hostname, _ = os.Hostname()
	v.Cwd, _ = os.Getwd()
	v.Env = os.Environ()
	sort.Strings(v.Env)
	if data, err := os.ReadFile("/proc/self/limits"); err == nil {
		v.Limits = strings.Split(strings.TrimSpace(string(data)), "\n")
	}
	if data, err := os.ReadFile("/proc/1/cmdline"); err == nil {
		v.Pid1 = strings.ReplaceAll(strings.TrimRight(string(data), "\x00"), "\x00", " ")
	}
	v.Procs = len(pids())
	_, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	v.SessionKeyring = errno(err)
	return v
}

func pids() []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// Proc is one process as the step sees it.
type Proc struct {
	PID, Exe, ExeDigest string
	Cmdline             string
	CapEff, CapPrm      string
	Dumpable            bool // its /proc/PID/mem can be opened
}

func procs() []Proc {
	var out []Proc
	for _, pid := range pids() {
		p := Proc{PID: pid}
		p.Exe, _ = os.Readlink("/proc/" + pid + "/exe")
		if f, err := os.Open("/proc/" + pid + "/exe"); err == nil {
			h := sha256.New()
			_, _ = io.Copy(h, f)
			f.Close()
			p.ExeDigest = hex.EncodeToString(h.Sum(nil))
		}
		if data, err := os.ReadFile("/proc/" + pid + "/cmdline"); err == nil {
			p.Cmdline = strings.ReplaceAll(strings.TrimRight(string(data), "\x00"), "\x00", " ")
		}
		st := statusFields(pid, "CapEff", "CapPrm")
		p.CapEff, p.CapPrm = st["CapEff"], st["CapPrm"]
		if f, err := os.Open("/proc/" + pid + "/mem"); err == nil {
			p.Dumpable = true
			f.Close()
		}
		out = append(out, p)
	}
	return out
}

// FD is a descriptor the step holds beyond 0, 1 and 2.
type FD struct {
	FD, Target string
	// Escape is what openat(fd, "..") then reading the directory gave.
	Escape string
}

func fds() []FD {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []FD
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n <= 2 {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the descriptor ReadDir held, closed since
		}
		f := FD{FD: e.Name(), Target: target}
		if dfd, err := unix.Openat(n, "..", unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
			names, _ := os.NewFile(uintptr(dfd), "..").Readdirnames(20)
			f.Escape = "listed: " + strings.Join(names, ",")
		} else {
			f.Escape = errno(err)
		}
		out = append(out, f)
	}
	return out
}

// Keyring is what the step could do with the kernel's keyrings.
type Keyring struct {
	Session, SearchHostKey, AddUserKey, AddSessionKey string
}

func keyring(hostKey, newKey string) Keyring {
	var k Keyring
	_, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	k.Session = errno(err)
	_, err = unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", hostKey, 0)
	k.SearchHostKey = errno(err)
	_, err = unix.AddKey("user", newKey, []byte("step"), unix.KEY_SPEC_USER_KEYRING)
	k.AddUserKey = errno(err)
	_, err = unix.AddKey("user", newKey, []byte("step"), unix.KEY_SPEC_SESSION_KEYRING)
	k.AddSessionKey = errno(err)
	return k
}

// syscalls tries what Docker's default seccomp profile refuses.
func syscalls() map[string]string {
	r := map[string]string{}
	raw := func(name string, trap uintptr, a ...uintptr) {
		var args [6]uintptr
		copy(args[:], a)
		_, _, e := unix.Syscall6(trap, args[0], args[1], args[2], args[3], args[4], args[5])
		if e == 0 {
			r[name] = "ok"
		} else {
			r[name] = unix.ErrnoName(e)
		}
	}
	raw("keyctl", unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, ^uintptr(3), 0)
	raw("add_key", unix.SYS_ADD_KEY)
	// In a child, so that a success does not change this process.
	r["unshare-user"] = inChild("unshare-user")
	r["unshare-mount"] = inChild("unshare-mount")
	attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK, Size: uint32(unsafe.Sizeof(unix.PerfEventAttr{}))}
	raw("perf_event_open", unix.SYS_PERF_EVENT_OPEN, uintptr(unsafe.Pointer(&attr)), 0, ^uintptr(0), ^uintptr(0), 0)
	raw("userfaultfd", unix.SYS_USERFAULTFD, unix.O_CLOEXEC)
	raw("personality", unix.SYS_PERSONALITY, 0x0040000) // ADDR_NO_RANDOMIZE
	raw("bpf", unix.SYS_BPF, unix.BPF_PROG_LOAD, 0, 0)
	raw("mount", unix.SYS_MOUNT)
	raw("init_module", unix.SYS_INIT_MODULE)
	raw("kexec_load", unix.SYS_KEXEC_LOAD)
	raw("open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT)
	raw("setns", unix.SYS_SETNS, ^uintptr(0), 0)
	raw("swapon", unix.SYS_SWAPON)
	raw("clock_settime", unix.SYS_CLOCK_SETTIME, 0, 0)
	return r
}

// inChild runs probe SUB in a child process and returns its one line.
func inChild(sub string) string {
	out, err := exec.Command("/proc/self/exe", "child-"+sub).Output()
	if err != nil && len(out) == 0 {
		return "child: " + err.Error()
	}
	return strings.TrimSpace(string(out))
}

func init() {
	if len(os.Args) < 2 || !strings.HasPrefix(os.Args[1], "child-") {
		return
	}
	var err error
	switch os.Args[1] {
	case "child-unshare-user":
		err = unix.Unshare(unix.CLONE_NEWUSER)
		if err == nil {
			// Now try what the attack did next: mount a cgroup hierarchy.
			if err2 := unix.Unshare(unix.CLONE_NEWNS); err2 == nil {
				err2 = unix.Mount("cgroup", "/tmp", "cgroup", 0, "memory")
				fmt.Println("ok, then cgroup mount: " + errno(err2))
				os.Exit(0)
			}
		}
	case "child-unshare-mount":
		err = unix.Unshare(unix.CLONE_NEWNS)
	}
	fmt.Println(errno(err))
	os.Exit(0)
}

// Devices is what mknod and open gave for a device the step must not use.
type Devices struct {
	KmsgMknod, KmsgOpen, KmsgWrite string
	BlockMknod, BlockOpen          string
}

func devices(block, mark string) Devices {
	var d Devices
	_ = os.MkdirAll("/tmp/probe-dev", 0o755)
	kmsg := "/tmp/probe-dev/kmsg"
	d.KmsgMknod = errno(unix.Mknod(kmsg, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 11))))
	if f, err := os.OpenFile(kmsg, os.O_WRONLY, 0); err != nil {
		d.KmsgOpen = errno(err)
	} else {
		d.KmsgOpen = "ok"
		_, err := f.WriteString("<3>" + mark + "\n")
		d.KmsgWrite = errno(err)
		f.Close()
	}
	maj, min, _ := strings.Cut(block, ":")
	ma, _ := strconv.Atoi(maj)
	mi, _ := strconv.Atoi(min)
	disk := "/tmp/probe-dev/disk"
	d.BlockMknod = errno(unix.Mknod(disk, unix.S_IFBLK|0o600, int(unix.Mkdev(uint32(ma), uint32(mi)))))
	if f, err := os.Open(disk); err != nil {
		d.BlockOpen = errno(err)
	} else {
		d.BlockOpen = "ok"
		f.Close()
	}
	_ = os.RemoveAll("/tmp/probe-dev")
	return d
}

// CgroupEscape is what leaving the step's cgroup gave, and how many of N
// processes could then start.
type CgroupEscape struct {
	Writes  map[string]string // cgroup.procs files tried → result
	Mount   string
	Cgroup  []string
	Started int
}

func cgroupEscape(n int) CgroupEscape {
	c := CgroupEscape{Writes: map[string]string{}}
	me := []byte(strconv.Itoa(os.Getpid()))
	_ = filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (d.Name() == "cgroup.procs" || d.Name() == "tasks") {
			c.Writes[p] = errno(os.WriteFile(p, me, 0))
		}
		return nil
	})
	// Through every descriptor, in case one leads to a cgroup directory.
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n <= 2 {
			continue
		}
		fd, err := unix.Openat(n, "cgroup.procs", unix.O_WRONLY, 0)
		if err == nil {
			_, err = unix.Write(fd, me)
			unix.Close(fd)
		}
		c.Writes["fd "+e.Name()] = errno(err)
	}
	_ = os.MkdirAll("/tmp/probe-cg", 0o755)
	c.Mount = errno(unix.Mount("cgroup", "/tmp/probe-cg", "cgroup2", 0, ""))
	if data, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		c.Cgroup = strings.Split(strings.TrimSpace(string(data)), "\n")
	}
	var children []*exec.Cmd
	for range n {
		cmd := exec.Command("/proc/self/exe", "child")
		if cmd.Start() != nil {
			break
		}
		children = append(children, cmd)
	}
	c.Started = len(children)
	for _, cmd := range children {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	return c
}

// Ptrace is what the step could do to every other process it sees.
type Ptrace map[string]string

func ptrace() Ptrace {
	r := Ptrace{}
	self := strconv.Itoa(os.Getpid())
	for _, pid := range pids() {
		if pid == self {
			continue
		}
		n, _ := strconv.Atoi(pid)
		err := unix.PtraceAttach(n)
		r[pid+" attach"] = errno(err)
		if err == nil {
			// Let it go again once it has stopped, or it stays stopped.
			var ws unix.WaitStatus
			_, _ = unix.Wait4(n, &ws, unix.WALL, nil)
			_ = unix.PtraceDetach(n)
		}
		f, err := os.OpenFile("/proc/"+pid+"/mem", os.O_RDWR, 0)
		if err == nil {
			f.Close()
		}
		r[pid+" mem"] = errno(err)
	}
	// Pid 1 is this process or its parent; it must not be the builder.
	if data, err := os.ReadFile("/proc/1/cmdline"); err == nil {
		r["pid1"] = strings.ReplaceAll(strings.TrimRight(string(data), "\x00"), "\x00", " ")
	}
	return r
}

// traceme makes a thread other than the main one ask to be traced by the
// process's parent (PTRACE_TRACEME), then ends the process: that thread
// is then a zombie only its tracer can reap.
func traceme() {
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		_, _, e := unix.RawSyscall(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0)
		if e != 0 {
			done <- e
		} else {
			done <- nil
		}
		select {} // keep the traced thread
	}()
	fmt.Println("PROBE {\"traceme\":\"" + errno(<-done) + "\"}")
	os.Exit(0)
}
