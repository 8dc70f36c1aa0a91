package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// prepared is the host side of one Run: the files the spec binds in, in a
// directory outside the root, undone by cleanup.
type prepared struct {
	tmp   string
	paths HostPaths
	// filesMounted says that tmp/files is a tmpfs (holding MountFile data).
	filesMounted bool
}

// prepare writes the sandbox's files: /etc/hosts, /etc/resolv.conf and
// the DevFiles in a new directory below s.TempDir, the data of MountFile
// mounts in a tmpfs mounted there (never on disk), and, when netns is set
// and the sandbox has no network, a network namespace with loopback up.
func prepare(s Spec, netns bool) (_ *prepared, err error) {
	p := &prepared{}
	defer func() {
		if err != nil {
			_ = p.cleanup()
		}
	}()
	if p.tmp, err = os.MkdirTemp(s.TempDir, "mybuild-sandbox-"); err != nil {
		return nil, fmt.Errorf("create sandbox files: %w", err)
	}
	hosts := s.Hosts
	if hosts == nil {
		hosts = []byte("127.0.0.1\tlocalhost " + s.Hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n")
		for _, h := range s.ExtraHosts {
			hosts = append(hosts, h+"\n"...)
		}
	}
	resolv := s.Resolv
	if resolv == nil {
		// Missing on the host means an empty file in the sandbox.
		resolv, _ = os.ReadFile("/etc/resolv.conf")
	}
	p.paths.Hosts = filepath.Join(p.tmp, "hosts")
	p.paths.Resolv = filepath.Join(p.tmp, "resolv.conf")
	for _, f := range []struct {
		name string
		data []byte
	}{{p.paths.Hosts, hosts}, {p.paths.Resolv, resolv}} {
		if err := os.WriteFile(f.name, f.data, 0o644); err != nil {
			return nil, fmt.Errorf("write sandbox files: %w", unwrapPath(err))
		}
	}
	for i, f := range s.DevFiles {
		name := filepath.Join(p.tmp, "dev-"+strconv.Itoa(i))
		if err := writeOwned(name, f.Data, f.Mode.Perm(), 0, 0); err != nil {
			return nil, fmt.Errorf("write /dev/%s: %w", f.Name, err)
		}
		p.paths.DevFiles = append(p.paths.DevFiles, name)
	}
	for i, m := range s.Mounts {
		if m.Type != MountFile {
			continue
		}
		dir := filepath.Join(p.tmp, "files")
		if !p.filesMounted {
			if err := os.Mkdir(dir, 0o700); err != nil {
				return nil, fmt.Errorf("create sandbox files: %w", unwrapPath(err))
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=700"); err != nil {
				return nil, fmt.Errorf("mount sandbox files: %w", err)
			}
			p.filesMounted = true
		}
		name := filepath.Join(dir, strconv.Itoa(i))
		mode := m.Mode.Perm()
		if m.Mode == 0 {
			mode = 0o400
		}
		if err := writeOwned(name, m.Data, mode, m.UID, m.GID); err != nil {
			return nil, fmt.Errorf("create %s: %w", m.Target, err)
		}
		p.paths.Files = append(p.paths.Files, name)
	}
	if netns && s.Network == NetworkNone {
		p.paths.NetNS = filepath.Join(p.tmp, "netns")
		if err := newNetNS(p.paths.NetNS); err != nil {
			p.paths.NetNS = ""
			return nil, err
		}
	}
	return p, nil
}

// writeOwned writes a new file with exactly mode and owner.
func writeOwned(name string, data []byte, mode os.FileMode, uid, gid uint32) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return unwrapPath(err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chown(int(uid), int(gid))
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return unwrapPath(err)
}

// cleanup removes everything prepare made.
func (p *prepared) cleanup() error {
	var errs []error
	if p.paths.NetNS != "" {
		if err := unix.Unmount(p.paths.NetNS, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("release network namespace: %w", err))
		}
	}
	if p.filesMounted {
		if err := unix.Unmount(filepath.Join(p.tmp, "files"), unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount sandbox files: %w", err))
		}
	}
	if p.tmp != "" {
		if err := os.RemoveAll(p.tmp); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox files: %w", unwrapPath(err)))
		}
	}
	return errors.Join(errs...)
}

// newNetNS makes a network namespace with its loopback interface up and
// binds it at target, for an OCI runtime to join. A goroutine locked to
// its thread enters the new namespace to set it up and then returns the
// thread to the builder's namespace.
func newNetNS(target string) error {
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create network namespace: %w", unwrapPath(err))
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("create network namespace: %w", err)
			return
		}
		defer orig.Close()
		err = unix.Unshare(unix.CLONE_NEWNET)
		if err == nil {
			if err = loopbackUp(); err == nil {
				err = unix.Mount("/proc/thread-self/ns/net", target, "", unix.MS_BIND, "")
			}
		}
		// A thread that cannot go back stays locked and ends with the
		// goroutine.
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr == nil {
			runtime.UnlockOSThread()
		}
		if err != nil {
			err = fmt.Errorf("create network namespace: %w", err)
		}
		errc <- err
	}()
	return <-errc
}

// loopbackUp brings up the "lo" interface of the current network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	return nil
}
