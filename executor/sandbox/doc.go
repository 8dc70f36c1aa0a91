// Package sandbox runs one process isolated in a prepared root filesystem,
// the way runc runs a container's process for BuildKit.
//
// The caller hands [Run] an already mounted root directory (typically an
// overlay's merged directory) and a process [Spec]. Run re-executes the
// current binary (/proc/self/exe) with [InitArg] in new mount, pid, uts, ipc
// and (for network "none") net namespaces; the binary's main function must
// call [Init] when os.Args[1] == InitArg, before anything else.
//
// The init process, pid 1 of the new pid namespace, mounts a fresh /proc with
// runc's masked and read-only paths, a read-only /sys, a minimal /dev tmpfs
// (null, zero, full, random, urandom, tty, pts, ptmx, shm, mqueue, fd and
// std* links), and binds /etc/hosts, /etc/resolv.conf and /etc/hostname
// read-only from files kept outside the root; it then pivots into the root, sets the hostname, brings
// up loopback when the network is "none", restricts capabilities to Docker's
// default set and starts the command with the spec's user, groups,
// environment and working directory. It reaps every process until the
// command exits and forwards the command's exit status; when it exits, the
// kernel kills whatever the command left running in the namespace. The
// init's own threads use pids of the namespace too, so the command is pid 1's
// child but not necessarily pid 2.
//
// Mount points that do not exist in the root (/proc, /sys, /dev and the three
// /etc files) are created by Run as empty stubs before the process starts and
// removed after it ends, with their parent directories' times restored, so
// the root is left as the command left it. On an overlay, a parent directory
// that existed only in a lower layer (such as /etc) is copied up by the stub's
// creation and stays in the upper directory with unchanged metadata; a differ
// should skip such directories, as BuildKit's overlay differ does.
//
// With [Spec.Limits] set, Run creates a cgroup for the command (in the v2
// unified hierarchy for the controllers it can delegate, else in the v1
// hierarchies: memory, cpu, pids), below the builder's own cgroup in a
// "mybuild" directory. Only the command and its descendants go in it — the
// init starts it there (clone3 CLONE_INTO_CGROUP for v2, a brief move of its
// own thread for v1) and stays outside, so it can always reap and report.
// After the sandbox ends, Run reads the out-of-memory and pids events
// (reported as an [*OOMError] or on the [*ExitError]), kills anything left
// and removes the cgroup; [SweepCgroups] removes those a killed builder left.
//
// The package knows nothing of Dockerfiles, images or layers.
package sandbox
