package sandbox

import (
	"context"
	"io"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Runtime executes the OCI runtime spec of a sandbox: [Builtin], or an OCI
// runtime program such as runc or crun ([OCIRuntime]). Both get the same
// spec, the same cgroup (made by [Run]) and the same mount points.
type Runtime interface {
	// Name is how messages call the runtime ("builtin", "runc").
	Name() string
	// run executes c until its process (and with it, every process of its
	// pid namespace) has ended. It leaves c's cgroup in place for Run to
	// read and remove.
	run(ctx context.Context, c *container) error
	// delete drops what the runtime keeps of c after run.
	delete(c *container) error
	// needsNetNS reports whether NetworkNone needs a prepared network
	// namespace (with loopback up) rather than a new one.
	needsNetNS() bool
}

// container is one sandbox as a runtime executes it.
type container struct {
	id             string
	spec           *specs.Spec
	stdout, stderr io.Writer
	// dir is a private host directory for the runtime's own files.
	dir    string
	cgroup *cgroup
}
