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
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

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
