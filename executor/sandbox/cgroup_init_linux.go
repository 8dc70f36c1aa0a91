package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// cgroupJoin starts the command in the sandbox's cgroup. Its files are
// opened before the init pivots into the root, where the host's cgroup
// file systems are out of reach.
type cgroupJoin struct {
	v2       int        // the v2 directory, or -1
	v1, home []*os.File // "tasks" files of the v1 directories and of the init's own
}

func openCgroup(c *initCgroup) (_ *cgroupJoin, err error) {
	j := &cgroupJoin{v2: -1}
	if c == nil {
		return j, nil
	}
	defer func() {
		if err != nil {
			j.close()
		}
	}()
	if c.V2 != "" {
		if j.v2, err = unix.Open(c.V2, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return nil, fmt.Errorf("open cgroup: %w", err)
		}
	}
	open := func(dir string) (*os.File, error) {
		f, err := os.OpenFile(filepath.Join(dir, "tasks"), os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("open cgroup: %w", err)
		}
		return f, nil
	}
	for i, dir := range c.V1 {
		f, err := open(dir)
		if err != nil {
			return nil, err
		}
		j.v1 = append(j.v1, f)
		if f, err = open(c.Home[i]); err != nil {
			return nil, err
		}
		j.home = append(j.home, f)
	}
	return j, nil
}

// start starts cmd in the cgroup: a v2 cgroup through clone3's
// CLONE_INTO_CGROUP; v1 ones by moving the calling thread (locked to the
// init's goroutine) into them for the fork, and back after, so the init
// itself stays out of the cgroup and never counts against its limits.
func (j *cgroupJoin) start(cmd *exec.Cmd) error {
	if j.v2 >= 0 {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = j.v2
	}
	for _, f := range j.v1 {
		// "0" is the writing thread.
		if _, err := f.WriteString("0"); err != nil {
			j.leave()
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	err := cmd.Start()
	j.leave()
	return err
}

// leave moves the calling thread back to the init's own v1 cgroups. Should
// that fail, the init merely counts against the limits too.
func (j *cgroupJoin) leave() {
	for _, f := range j.home {
		_, _ = f.WriteString("0")
	}
}

func (j *cgroupJoin) close() {
	if j.v2 >= 0 {
		unix.Close(j.v2)
	}
	for _, f := range append(j.v1, j.home...) {
		f.Close()
	}
}
