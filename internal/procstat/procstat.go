// Package procstat reads what /proc/PID/stat says of a process that tells
// it apart from a later one with the same pid: its state and start time.
// It imports nothing of this module, so any package may use it.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Stat is a process's state ("R", "S", "Z", ...), parent's pid and start
// time in clock ticks after boot (fields 3, 4 and 22 of /proc/PID/stat).
type Stat struct {
	State, PPID, StartTime string
}

// Dead reports whether the process has ended and waits to be reaped
// (state Z or X).
func (s Stat) Dead() bool { return s.State == "Z" || s.State == "X" }

// Read reads the Stat of process pid ("self" for this one). A process
// that does not exist gives an error matching os.ErrNotExist.
func Read(pid string) (Stat, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return Stat{}, err
	}
	// The command name (field 2) may hold spaces and parentheses; the
	// fields are counted after its last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, fmt.Errorf("parse /proc/%s/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("parse /proc/%s/stat", pid)
	}
	return Stat{State: f[0], PPID: f[1], StartTime: f[19]}, nil
}
