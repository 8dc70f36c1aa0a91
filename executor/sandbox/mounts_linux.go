package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// maskedPaths are hidden from the process, as runc's default spec does:
// directories under an empty read-only tmpfs, files under /dev/null.
var maskedPaths = []string{
	"proc/acpi",
	"proc/asound",
	"proc/interrupts",
	"proc/kcore",
	"proc/keys",
	"proc/latency_stats",
	"proc/timer_list",
	"proc/timer_stats",
	"proc/sched_debug",
	"proc/scsi",
	"sys/firmware",
	"sys/devices/virtual/powercap",
}

// readonlyPaths are made read-only, as runc's default spec does.
var readonlyPaths = []string{
	"proc/bus",
	"proc/fs",
	"proc/irq",
	"proc/sys",
	"proc/sysrq-trigger",
}

// devices are bound from the host's /dev into the sandbox's.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// devLinks are the symbolic links of the sandbox's /dev.
var devLinks = [][2]string{
	{"fd", "/proc/self/fd"},
	{"stdin", "/proc/self/fd/0"},
	{"stdout", "/proc/self/fd/1"},
	{"stderr", "/proc/self/fd/2"},
	{"core", "/proc/kcore"},
	{"ptmx", "pts/ptmx"},
}

// mount wraps unix.Mount with an error naming the target as the process
// sees it (name), never the host path.
func mount(source, target, fstype string, flags uintptr, data, name string) error {
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s: %w", name, err)
	}
	return nil
}

// bindReadonly binds path onto itself and makes the new mount read-only.
func bindReadonly(path, name string, extra uintptr) error {
	if err := mount(path, path, "", unix.MS_BIND|unix.MS_REC, "", name); err != nil {
		return err
	}
	return mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|extra, "", name)
}

// setupRoot builds the sandbox's mount tree under cfg.Root and pivots into it.
// It runs in the init's own mount namespace.
func setupRoot(cfg *initConfig) error {
	if err := mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "", "/"); err != nil {
		return err
	}
	root := cfg.Root
	if err := mount(root, root, "", unix.MS_BIND|unix.MS_REC, "", "/"); err != nil {
		return err
	}
	const nosuidNodevNoexec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := mount("proc", cfg.Proc, "proc", nosuidNodevNoexec, "", "/proc"); err != nil {
		return err
	}
	if err := mountSys(cfg.Sys); err != nil {
		return err
	}
	if err := mountDev(cfg.Dev); err != nil {
		return err
	}
	if err := writeDevFiles(cfg.Dev, cfg.DevFiles); err != nil {
		return err
	}
	base := map[string]string{"proc": cfg.Proc, "sys": cfg.Sys}
	for _, p := range maskedPaths {
		dir, rest, _ := strings.Cut(p, "/")
		if err := mask(filepath.Join(base[dir], rest), "/"+p); err != nil {
			return err
		}
	}
	for _, p := range readonlyPaths {
		path := filepath.Join(cfg.Proc, p[len("proc/"):])
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := bindReadonly(path, "/"+p, nosuidNodevNoexec); err != nil {
			return err
		}
	}
	for _, b := range cfg.Binds {
		name := "/" + relative(root, b.Target)
		if err := mount(b.Source, b.Target, "", unix.MS_BIND, "", name); err != nil {
			return err
		}
		if err := mount("", b.Target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|nosuidNodevNoexec, "", name); err != nil {
			return err
		}
	}
	if err := setupMounts(root, cfg.Scratch, cfg.Mounts); err != nil {
		return err
	}
	return pivotRoot(root)
}

func relative(root, target string) string {
	rel, err := filepath.Rel(root, target)
	if err != nil {
		return filepath.Base(target)
	}
	return rel
}

// mask hides path: a directory under a read-only empty tmpfs, anything else
// under the host's /dev/null. A missing path is left alone.
func mask(path, name string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mask %s: %w", name, unwrapPath(err))
	}
	if fi.IsDir() {
		return mount("tmpfs", path, "tmpfs", unix.MS_RDONLY, "", name)
	}
	return mount("/dev/null", path, "", unix.MS_BIND, "", name)
}

// mountSys mounts a fresh read-only sysfs, or binds the host's read-only
// when the kernel refuses a new instance.
func mountSys(target string) error {
	const flags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if unix.Mount("sysfs", target, "sysfs", flags, "") == nil {
		return nil
	}
	if err := mount("/sys", target, "", unix.MS_BIND|unix.MS_REC, "", "/sys"); err != nil {
		return err
	}
	return mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|flags, "", "/sys")
}

// mountDev builds a minimal /dev on a tmpfs.
func mountDev(dev string) error {
	if err := mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k", "/dev"); err != nil {
		return err
	}
	for _, name := range devices {
		target := filepath.Join(dev, name)
		if err := os.WriteFile(target, nil, 0o666); err != nil {
			return fmt.Errorf("create /dev/%s: %w", name, unwrapPath(err))
		}
		if err := mount("/dev/"+name, target, "", unix.MS_BIND, "", "/dev/"+name); err != nil {
			return err
		}
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return fmt.Errorf("create /dev/%s: %w", d, unwrapPath(err))
		}
	}
	if err := mount("devpts", filepath.Join(dev, "pts"), "devpts", unix.MS_NOSUID|unix.MS_NOEXEC,
		"newinstance,ptmxmode=0666,mode=0620,gid=5", "/dev/pts"); err != nil {
		return err
	}
	if err := mount("shm", filepath.Join(dev, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		"mode=1777,size=65536k", "/dev/shm"); err != nil {
		return err
	}
	if err := mount("mqueue", filepath.Join(dev, "mqueue"), "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		"", "/dev/mqueue"); err != nil {
		return err
	}
	for _, l := range devLinks {
		if err := os.Symlink(l[1], filepath.Join(dev, l[0])); err != nil {
			return fmt.Errorf("create /dev/%s: %w", l[0], unwrapPath(err))
		}
	}
	return nil
}

// writeDevFiles creates the spec's extra files in the fresh /dev tmpfs.
func writeDevFiles(dev string, files []DevFile) error {
	for _, f := range files {
		name := filepath.Clean("/" + f.Name)
		p := filepath.Join(dev, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("create /dev%s: %w", filepath.Dir(name), unwrapPath(err))
		}
		if err := os.WriteFile(p, f.Data, f.Mode.Perm()); err != nil {
			return fmt.Errorf("create /dev%s: %w", name, unwrapPath(err))
		}
		if err := os.Chmod(p, f.Mode.Perm()); err != nil {
			return fmt.Errorf("chmod /dev%s: %w", name, unwrapPath(err))
		}
	}
	return nil
}

// pivotRoot makes root the process's root directory and detaches the old
// root from the mount namespace.
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("enter root: %w", err)
	}
	// Stacking the old root under the new one avoids needing a directory
	// for it (runc's approach).
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("enter root: %w", err)
	}
	return nil
}
