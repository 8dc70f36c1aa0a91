package main

import "github.com/mybuild/mybuild/internal/mountns"

// privateMounts runs a command that mounts filesystems (build) in a mount
// namespace of its own, by re-executing mybuild there (see package
// mountns), so that a build killed outright leaves no mount on the host.
// It returns the arguments (os.Args) the rest of main works with: in the
// re-executed child, those without the namespace marker. In the parent it
// does not return, unless no namespace can be made (not root): then the
// command mounts in the host's namespace, as it always did. Other commands
// pay nothing. Call it first in main, after the sandbox's init check.
func privateMounts(args []string) []string {
	if rest, ok := mountns.Child(args); ok {
		return rest
	}
	if mountsFilesystems(args[1:]) {
		mountns.Reexec(args) // an error means no namespace here: go on without
	}
	return args
}

// mountsFilesystems reports whether the command line args (without the
// program name) runs a command that mounts: build, named or implied, as
// run resolves it.
func mountsFilesystems(args []string) bool {
	args = (&globals{}).takeGlobalFlags(args)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		return false
	}
	cmd := findCommand(args[0])
	return cmd == nil || cmd.name == "build"
}
