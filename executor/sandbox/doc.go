// Package sandbox runs one process isolated in a prepared root filesystem,
// the way runc runs a container's process for BuildKit.
//
// A sandbox is data before it is a process: [GenerateSpec] turns a [Spec]
// (the root, command, user, network, limits, mounts) into an OCI runtime
// spec made the way Docker and BuildKit make their default one: Docker's
// default capabilities (for a user other than root only in the bounding
// set), Docker's seccomp profile (github.com/moby/profiles/seccomp),
// Docker's masked and read-only paths, runc's default devices and device
// cgroup rules, BuildKit's mounts (a fresh /proc, /dev, /dev/pts, /dev/shm,
// /dev/mqueue, a read-only /sys and /sys/fs/cgroup, /etc/hosts and
// /etc/resolv.conf bound read-only), new pid, ipc, uts, mount and cgroup
// namespaces (and a network namespace with only loopback, up, for
// NetworkNone). SecurityInsecure is BuildKit's security.insecure: every
// capability and device, no seccomp filter.
//
// [Run] executes it with a [Runtime]: [Builtin] (the default), or an OCI
// runtime program such as runc or crun ([OCIRuntime]); both get the same
// spec. Around the runtime, Run does what is the builder's business: it
// writes /etc/hosts and the like outside the root (secrets in a tmpfs,
// never on disk), creates a cgroup for the command whatever its limits
// (its device rules set with opencontainers/cgroups, runc's own code),
// creates in the root the mount points it lacks, and afterwards removes
// them, kills what is left in the cgroup and removes it. Mount points are
// created and removed through descriptors of the root (openat2 with
// RESOLVE_IN_ROOT, and RESOLVE_NO_SYMLINKS on removal), so that nothing a
// step does to its root makes the host side touch a file outside it.
//
// The built-in runtime re-executes a sealed in-memory copy of the current
// binary with [InitArg] in the new namespaces; the binary's main function
// must call [Init] when os.Args[1] == InitArg. The init waits until the
// builder has put it in the cgroup, enters a cgroup namespace, mounts what
// the spec lists (every mount point resolved inside the root and mounted
// on through its descriptor), creates the device nodes, masks paths,
// pivots into the root, sets the hostname, joins a new session keyring,
// marks every descriptor but 0, 1 and 2 close-on-exec, drops the bounding
// set, loads the seccomp filter (compiled once per builder with
// libseccomp), switches to the spec's user and groups, sets the
// capabilities, and executes the command in its own place: the command
// is pid 1 of its pid namespace, as under runc, and nothing of the
// builder remains inside. When it exits, the kernel kills whatever it
// left running in the namespace.
//
// On an overlay root, a parent directory that existed only in a lower
// layer (such as /etc) is copied up by the creation of a mount point and
// stays in the upper directory with its times restored; a differ should
// skip such directories, as BuildKit's overlay differ does.
//
// The package knows nothing of Dockerfiles, images or layers.
package sandbox
