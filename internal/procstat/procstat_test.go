package procstat

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	self, err := Read("self")
	if err != nil || self.Dead() || self.StartTime == "" {
		t.Fatalf("Read(self) = %+v, %v", self, err)
	}
	again, err := Read(strconv.Itoa(os.Getpid()))
	if err != nil || again.StartTime != self.StartTime || again.PPID != strconv.Itoa(os.Getppid()) {
		t.Errorf("Read(pid) = %+v, %v; want start time %s", again, err, self.StartTime)
	}
	// A child that has exited and is not reaped yet is a zombie.
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	for range 2000 {
		if st, err := Read(pid); err == nil && st.Dead() {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if st, err := Read(pid); err != nil || !st.Dead() {
		t.Errorf("exited child: %+v, %v; want dead", st, err)
	}
	_ = cmd.Wait()
	if _, err := Read(pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reaped child: %v, want ErrNotExist", err)
	}
}
