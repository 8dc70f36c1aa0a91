package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// compileSeccomp turns an OCI seccomp profile into a BPF program (an array
// of struct sock_filter) with libseccomp, the library runc and crun use:
// rules with their argument conditions, per-rule errno values, every
// architecture the profile names.
func compileSeccomp(sc *specs.LinuxSeccomp) ([]byte, error) {
	def, err := seccompAction(sc.DefaultAction, sc.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	f, err := libseccomp.NewFilter(def)
	if err != nil {
		return nil, fmt.Errorf("create seccomp filter: %w", err)
	}
	defer f.Release()
	// no_new_privs is the spec's business (Process.NoNewPrivileges).
	if err := f.SetNoNewPrivsBit(false); err != nil {
		return nil, fmt.Errorf("create seccomp filter: %w", err)
	}
	for _, a := range sc.Architectures {
		arch, err := libseccomp.GetArchFromString(seccompArchName(a))
		if err != nil {
			return nil, fmt.Errorf("seccomp architecture %s: %w", a, err)
		}
		if err := f.AddArch(arch); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("seccomp architecture %s: %w", a, err)
		}
	}
	for _, rule := range sc.Syscalls {
		action, err := seccompAction(rule.Action, rule.ErrnoRet)
		if err != nil {
			return nil, err
		}
		if action == def {
			continue // libseccomp refuses a rule that changes nothing
		}
		conds, err := seccompConditions(rule.Args)
		if err != nil {
			return nil, err
		}
		for _, name := range rule.Names {
			call, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				continue // unknown to this libseccomp (or architecture): skipped, as runc does
			}
			for _, c := range conds {
				if err := f.AddRuleConditional(call, action, c); err != nil {
					return nil, fmt.Errorf("seccomp rule for %s: %w", name, err)
				}
			}
		}
	}
	return exportBPF(f)
}

// seccompConditions turns a rule's argument conditions into the condition
// sets libseccomp takes. libseccomp ANDs the conditions of one rule but
// refuses two on the same argument; those are ORed, so such a rule
// becomes one rule per condition (as runc does).
func seccompConditions(args []specs.LinuxSeccompArg) ([][]libseccomp.ScmpCondition, error) {
	if len(args) == 0 {
		return [][]libseccomp.ScmpCondition{nil}, nil
	}
	var conds []libseccomp.ScmpCondition
	seen := map[uint]bool{}
	sameArg := false
	for _, a := range args {
		op, err := seccompOperator(a.Op)
		if err != nil {
			return nil, err
		}
		values := []uint64{a.Value}
		if a.Op == specs.OpMaskedEqual {
			values = append(values, a.ValueTwo)
		}
		c, err := libseccomp.MakeCondition(a.Index, op, values...)
		if err != nil {
			return nil, fmt.Errorf("seccomp condition: %w", err)
		}
		if seen[a.Index] {
			sameArg = true
		}
		seen[a.Index] = true
		conds = append(conds, c)
	}
	if !sameArg {
		return [][]libseccomp.ScmpCondition{conds}, nil
	}
	out := make([][]libseccomp.ScmpCondition, len(conds))
	for i, c := range conds {
		out[i] = []libseccomp.ScmpCondition{c}
	}
	return out, nil
}

func seccompAction(a specs.LinuxSeccompAction, errnoRet *uint) (libseccomp.ScmpAction, error) {
	errno := int16(unix.EPERM)
	if errnoRet != nil {
		errno = int16(*errnoRet)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return libseccomp.ActKillThread, nil
	case specs.ActKillProcess:
		return libseccomp.ActKillProcess, nil
	case specs.ActErrno:
		return libseccomp.ActErrno.SetReturnCode(errno), nil
	case specs.ActTrap:
		return libseccomp.ActTrap, nil
	case specs.ActTrace:
		return libseccomp.ActTrace.SetReturnCode(errno), nil
	case specs.ActAllow:
		return libseccomp.ActAllow, nil
	case specs.ActLog:
		return libseccomp.ActLog, nil
	}
	return 0, fmt.Errorf("seccomp action %q not supported", a)
}

func seccompOperator(op specs.LinuxSeccompOperator) (libseccomp.ScmpCompareOp, error) {
	switch op {
	case specs.OpNotEqual:
		return libseccomp.CompareNotEqual, nil
	case specs.OpLessThan:
		return libseccomp.CompareLess, nil
	case specs.OpLessEqual:
		return libseccomp.CompareLessOrEqual, nil
	case specs.OpEqualTo:
		return libseccomp.CompareEqual, nil
	case specs.OpGreaterEqual:
		return libseccomp.CompareGreaterEqual, nil
	case specs.OpGreaterThan:
		return libseccomp.CompareGreater, nil
	case specs.OpMaskedEqual:
		return libseccomp.CompareMaskedEqual, nil
	}
	return 0, fmt.Errorf("seccomp operator %q not supported", op)
}

// seccompArchName maps an OCI architecture (SCMP_ARCH_X86_64) to
// libseccomp's name for it (x86_64).
func seccompArchName(a specs.Arch) string {
	names := map[specs.Arch]string{
		specs.ArchX86: "x86", specs.ArchX86_64: "amd64", specs.ArchX32: "x32",
		specs.ArchARM: "arm", specs.ArchAARCH64: "arm64",
		specs.ArchMIPS: "mips", specs.ArchMIPS64: "mips64", specs.ArchMIPS64N32: "mips64n32",
		specs.ArchMIPSEL: "mipsel", specs.ArchMIPSEL64: "mipsel64", specs.ArchMIPSEL64N32: "mipsel64n32",
		specs.ArchPPC: "ppc", specs.ArchPPC64: "ppc64", specs.ArchPPC64LE: "ppc64le",
		specs.ArchS390: "s390", specs.ArchS390X: "s390x", specs.ArchRISCV64: "riscv64",
		specs.ArchLOONGARCH64: "loong64",
	}
	if n, ok := names[a]; ok {
		return n
	}
	return string(a)
}

// seccompFlags maps the profile's flags to seccomp(2) filter flags.
func seccompFlags(flags []specs.LinuxSeccompFlag) (uint, error) {
	var out uint
	for _, f := range flags {
		switch f {
		case specs.LinuxSeccompFlagLog:
			out |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			out |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		default:
			return 0, fmt.Errorf("seccomp flag %q not supported", f)
		}
	}
	return out, nil
}

// exportBPF writes the compiled filter into a memfd and reads it back
// (libseccomp 2.5 exports only to a descriptor).
func exportBPF(f *libseccomp.ScmpFilter) ([]byte, error) {
	fd, err := unix.MemfdCreate("seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("export seccomp filter: %w", err)
	}
	mf := os.NewFile(uintptr(fd), "seccomp")
	defer mf.Close()
	if err := f.ExportBPF(mf); err != nil {
		return nil, fmt.Errorf("export seccomp filter: %w", err)
	}
	if _, err := mf.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("export seccomp filter: %w", err)
	}
	prog, err := io.ReadAll(mf)
	if err != nil {
		return nil, fmt.Errorf("export seccomp filter: %w", err)
	}
	if len(prog) == 0 || len(prog)%8 != 0 {
		return nil, fmt.Errorf("export seccomp filter: %d bytes is not a BPF program", len(prog))
	}
	return prog, nil
}

// loadSeccomp installs the BPF program prog as the calling thread's
// seccomp filter. Without no_new_privs the thread needs CAP_SYS_ADMIN.
func loadSeccomp(prog []byte, flags uint) error {
	fprog := unix.SockFprog{Len: uint16(len(prog) / 8), Filter: (*unix.SockFilter)(unsafe.Pointer(&prog[0]))}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return fmt.Errorf("load seccomp filter: %w", errno)
	}
	return nil
}
