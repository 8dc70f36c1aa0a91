package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// prepared is the host-side state of one Run: the files bound over /etc and
// the mount points created in the root, undone by cleanup.
type prepared struct {
	tmp            string
	binds          []bind
	proc, sys, dev string
	mounts         []extraMount
	scratch        string // where the init keeps the files of MountFile mounts
	// stubs are the files and directories created in the root, in order.
	stubs []string
	// times are the times of the existing directories the stubs were
	// created in, restored once the stubs are gone.
	times map[string][2]unix.Timespec
	order []string
}

// prepare writes the /etc files outside the root and makes sure every mount
// point exists inside it, resolved without leaving the root.
func prepare(s Spec) (_ *prepared, err error) {
	p := &prepared{times: map[string][2]unix.Timespec{}}
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
	files := []struct {
		name string
		data []byte
	}{
		{"etc/hosts", hosts},
		{"etc/resolv.conf", resolv},
		{"etc/hostname", []byte(s.Hostname + "\n")},
	}
	for _, f := range files {
		src := filepath.Join(p.tmp, filepath.Base(f.name))
		if err := os.WriteFile(src, f.data, 0o644); err != nil {
			return nil, fmt.Errorf("write /%s: %w", f.name, err)
		}
		target, err := p.mountPoint(s.Root, f.name, false)
		if err != nil {
			return nil, err
		}
		p.binds = append(p.binds, bind{Source: src, Target: target})
	}
	for _, d := range []struct {
		name string
		dst  *string
	}{{"proc", &p.proc}, {"sys", &p.sys}, {"dev", &p.dev}} {
		if *d.dst, err = p.mountPoint(s.Root, d.name, true); err != nil {
			return nil, err
		}
	}
	if len(s.Mounts) > 0 {
		p.scratch = filepath.Join(p.tmp, "files")
		if err := os.Mkdir(p.scratch, 0o700); err != nil {
			return nil, fmt.Errorf("create sandbox files: %w", err)
		}
		if p.mounts, err = p.prepareMounts(s.Root, s.Mounts); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// mountPoint resolves name inside root and creates it (a directory, or an
// empty file) when it does not exist, remembering what it created.
func (p *prepared) mountPoint(root, name string, dir bool) (string, error) {
	root = filepath.Clean(root)
	target, err := securejoin.SecureJoin(root, name)
	if err != nil {
		return "", fmt.Errorf("resolve /%s: %w", name, err)
	}
	if target == root {
		return "", fmt.Errorf("prepare mount point /%s: resolves to the root directory", name)
	}
	fi, err := os.Lstat(target)
	switch {
	case err == nil && fi.IsDir() != dir:
		return "", fmt.Errorf("prepare mount point /%s: wrong file type", name)
	case err == nil:
		return target, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("prepare mount point /%s: %w", name, unwrapPath(err))
	}
	// Create the missing parents one by one, outermost first.
	var missing []string
	for d := filepath.Dir(target); d != root && len(d) > len(root); d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	parent := filepath.Dir(target)
	if len(missing) > 0 {
		parent = filepath.Dir(missing[len(missing)-1])
	}
	if err := p.saveTimes(parent); err != nil {
		return "", fmt.Errorf("prepare mount point /%s: %w", name, err)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil {
			return "", fmt.Errorf("prepare mount point /%s: %w", name, unwrapPath(err))
		}
		p.stubs = append(p.stubs, missing[i])
	}
	if dir {
		err = os.Mkdir(target, 0o755)
	} else {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return "", fmt.Errorf("prepare mount point /%s: %w", name, unwrapPath(err))
	}
	p.stubs = append(p.stubs, target)
	return target, nil
}

func (p *prepared) saveTimes(dir string) error {
	if _, ok := p.times[dir]; ok {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	p.times[dir] = [2]unix.Timespec{st.Atim, st.Mtim}
	p.order = append(p.order, dir)
	return nil
}

// cleanup removes the stubs that are still empty, restores the times of the
// directories they were created in, and removes the files outside the root.
func (p *prepared) cleanup() error {
	var errs []error
	for i := len(p.stubs) - 1; i >= 0; i-- {
		stub := p.stubs[i]
		fi, err := os.Lstat(stub)
		if err != nil {
			continue
		}
		if fi.Mode().IsRegular() && fi.Size() != 0 {
			continue // the command replaced it; keep its work
		}
		if err := os.Remove(stub); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// A directory the command filled up stays.
			var errno unix.Errno
			if !errors.As(err, &errno) || (errno != unix.ENOTEMPTY && errno != unix.EEXIST) {
				errs = append(errs, fmt.Errorf("remove mount point: %w", unwrapPath(err)))
			}
		}
	}
	for i := len(p.order) - 1; i >= 0; i-- {
		dir := p.order[i]
		ts := p.times[dir]
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dir, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("restore directory times: %w", err))
		}
	}
	if p.tmp != "" {
		if err := os.RemoveAll(p.tmp); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox files: %w", unwrapPath(err)))
		}
	}
	return errors.Join(errs...)
}

// unwrapPath drops the host path from a *fs.PathError so that it never
// reaches the user.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
