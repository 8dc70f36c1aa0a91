package executor

import (
	"bufio"
	"errors"
	"net"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestForwarder(t *testing.T) {
	dir := t.TempDir()
	agent, err := net.Listen("unix", filepath.Join(dir, "agent"))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	go func() {
		for {
			c, err := agent.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				_, _ = c.Write([]byte("pong " + line))
			}()
		}
	}()
	l, err := net.Listen("unix", filepath.Join(dir, "proxy"))
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{l: l, to: filepath.Join(dir, "agent")}
	go f.serve()
	defer f.close()
	c, err := net.Dial("unix", filepath.Join(dir, "proxy"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "pong ping\n" {
		t.Errorf("reply = %q, %v", got, err)
	}
}

func TestLockFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "0.lock")
	ctx := t.Context()
	sh1, err := lockFile(ctx, p, unix.LOCK_SH, true)
	if err != nil {
		t.Fatal(err)
	}
	sh2, err := lockFile(ctx, p, unix.LOCK_SH, false)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	if _, err := lockFile(ctx, p, unix.LOCK_EX, false); !errors.Is(err, errBusy) {
		t.Fatalf("exclusive lock while shared = %v, want errBusy", err)
	}
	sh1()
	sh2()
	ex, err := lockFile(ctx, p, unix.LOCK_EX, false)
	if err != nil {
		t.Fatalf("exclusive lock after release: %v", err)
	}
	ex()
}

func TestRedact(t *testing.T) {
	rm := &runMounts{secrets: []string{"hunter22"}}
	if got := rm.redact("pw=hunter22!"); got != "pw=****!" {
		t.Errorf("redact = %q", got)
	}
}
