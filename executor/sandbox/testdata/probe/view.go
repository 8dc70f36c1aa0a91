package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// What the step sees: its credentials, capabilities, mounts, devices and
// processes.

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
