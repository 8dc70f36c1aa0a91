// Package mountns runs the rest of a program in a mount namespace of its
// own, so that the mounts it makes die with it, however it dies.
//
// A running Go program cannot move into a new mount namespace:
// unshare(CLONE_NEWNS) changes one thread, and the runtime's other threads
// stay where they were. [Reexec] therefore starts the program again from
// /proc/self/exe, cloned into a new mount namespace, with [ChildArg] before
// its arguments. The parent does nothing more: it passes the child its
// standard streams and every other inherited descriptor unchanged, forwards
// SIGINT, SIGTERM, SIGHUP and SIGQUIT to it, waits, and ends as the child
// ended (the same exit code, or death by the same signal). The child is
// started with PR_SET_PDEATHSIG SIGKILL, so a parent killed outright takes
// the child with it.
//
// In the child, [Child] recognises ChildArg, makes every mount of the new
// namespace a slave of its twin in the old one (mounts made on the host
// still show in the namespace; none made in the namespace shows on the
// host), and returns the original arguments. When the last process in the
// namespace exits, the kernel takes down every mount made in it.
//
// Where no namespace can be made (not root, unshare refused), Reexec returns
// an error and the caller carries on in the namespace it has.
//
// The program must call Child, then (if it wants a namespace) Reexec, first
// thing in main: both change process-wide state.
package mountns
