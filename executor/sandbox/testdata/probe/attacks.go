package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The escapes the step tries.

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
