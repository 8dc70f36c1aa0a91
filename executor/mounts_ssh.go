package executor

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mybuild/mybuild/executor/sandbox"
	"github.com/mybuild/mybuild/planner"
)

// sshMount forwards the agent socket of Config.SSH[id] (id "default"
// unless set) through a socket of the mount's owner and mode. It reports
// whether the mount was added (an optional missing agent is skipped).
func (b *build) sshMount(rm *runMounts, m planner.RunMount, target string) (bool, error) {
	spec := m.Spec
	id := spec.CacheID
	if id == "" {
		id = "default"
	}
	sock, ok := b.cfg.SSH[id]
	if !ok {
		if spec.Required {
			return false, fmt.Errorf("ssh %s: not provided (use --ssh %s=SOCKET)", id, id)
		}
		return false, nil
	}
	dir, err := b.tempDir(rm)
	if err != nil {
		return false, err
	}
	p := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", p)
	if err != nil {
		return false, fmt.Errorf("ssh %s: listen: %w", id, err)
	}
	fwd := &forwarder{l: l, to: sock}
	go fwd.serve()
	rm.release = append(rm.release, fwd.close)
	o := sandbox.Mount{Mode: 0o600}
	setOwner(&o, spec.Mode, spec.UID, spec.GID)
	if err := os.Chown(p, int(o.UID), int(o.GID)); err != nil {
		return false, fmt.Errorf("ssh %s: %w", id, unwrapPath(err))
	}
	if err := os.Chmod(p, o.Mode.Perm()); err != nil {
		return false, fmt.Errorf("ssh %s: %w", id, unwrapPath(err))
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return false, fmt.Errorf("ssh %s: %w", id, unwrapPath(err))
	}
	rm.mounts = append(rm.mounts, sandbox.Mount{Type: sandbox.MountBind, Source: p, Target: target})
	return true, nil
}

// forwarder relays connections on l to the unix socket to.
type forwarder struct {
	l  net.Listener
	to string
	wg sync.WaitGroup
	mu sync.Mutex
	cs []net.Conn
}

func (f *forwarder) serve() {
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		up, err := net.DialTimeout("unix", f.to, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		f.cs = append(f.cs, c, up)
		f.mu.Unlock()
		f.wg.Add(2)
		go f.pipe(c, up)
		go f.pipe(up, c)
	}
}

func (f *forwarder) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	_, _ = io.Copy(dst, src)
	if uc, ok := dst.(*net.UnixConn); ok {
		_ = uc.CloseWrite()
	}
}

func (f *forwarder) close() {
	f.l.Close()
	f.mu.Lock()
	for _, c := range f.cs {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
