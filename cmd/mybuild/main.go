// Command mybuild builds container images from Dockerfiles without a daemon.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"

	"github.com/mybuild/mybuild/executor/sandbox"
	"github.com/mybuild/mybuild/internal/store"
	"github.com/mybuild/mybuild/parser"
)

// globals are the options every subcommand shares.
type globals struct {
	root   string // --root / MYBUILD_ROOT
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// openStore opens the local image store at g.root.
func (g *globals) openStore() (*store.Store, error) {
	return store.Open(g.root)
}

// command is one subcommand: it parses its own flags from args.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, g *globals, args []string) error
}

func commands() []command {
	return []command{
		{"build", "Build an image from a Dockerfile", cmdBuild},
		{"images", "List images in the local store", cmdImages},
		{"inspect", "Show an image's config and manifest as JSON", cmdInspect},
		{"history", "Show the history of an image", cmdHistory},
		{"tag", "Give an image another name", cmdTag},
		{"rmi", "Remove images from the local store", cmdRmi},
		{"prune", "Remove cached step results and the layers only they used", cmdPrune},
		{"fsck", "Verify the store and repair what dead builds left", cmdFsck},
		{"save", "Write images to a tar archive (docker-archive or oci-archive)", cmdSave},
		{"load", "Load images from a tar archive or an OCI layout", cmdLoad},
		{"pull", "Pull an image from a registry into the local store", cmdPull},
		{"push", "Push an image from the local store to a registry", cmdPush},
		{"login", "Log in to a registry", cmdLogin},
		{"logout", "Log out from a registry", cmdLogout},
	}
}

// defaultRoot is the store location: $MYBUILD_ROOT, /var/lib/mybuild for
// root, $XDG_DATA_HOME/mybuild (or ~/.local/share/mybuild) otherwise.
func defaultRoot() string {
	if r := os.Getenv("MYBUILD_ROOT"); r != "" {
		return r
	}
	if os.Geteuid() == 0 {
		return "/var/lib/mybuild"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "mybuild")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "share", "mybuild")
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitArg {
		sandbox.Init() // the RUN sandbox's init: never returns
	}
	args := privateMounts(os.Args) // a build's mounts die with it (mountns.go)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile(os.Getenv("MYBUILD_CPUPROFILE"))
	code := run(ctx, args[1:], os.Stdin, os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile to path (for `go tool pprof`) until
// the returned function is called; an empty path does nothing. It is how
// the benchmarks' numbers get explained.
func startProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "warning: MYBUILD_CPUPROFILE: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "warning: MYBUILD_CPUPROFILE: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// exitError carries a specific exit code.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{root: defaultRoot(), stdin: stdin, stdout: stdout, stderr: stderr}
	args = g.takeGlobalFlags(args)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := findCommand(args[0])
	if cmd == nil {
		// `mybuild -f Dockerfile -t name .` means build.
		cmd = findCommand("build")
	} else {
		args = args[1:]
	}
	if err := cmd.run(ctx, g, args); err != nil {
		if ctx.Err() != nil {
			// SIGINT or SIGTERM: the work was cancelled and cleaned up.
			fmt.Fprintln(stderr, "error: interrupted")
			return 130
		}
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		printError(stderr, err)
		return 1
	}
	return 0
}

// printError writes err for the user; a Dockerfile error also shows the
// offending line, the way BuildKit does.
func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "error: %v\n", err)
	var perr *parser.Error
	if errors.As(err, &perr) && perr.Source != "" {
		fmt.Fprintf(w, "\n %4d | %s\n", perr.Loc.Line, perr.Source)
	}
}

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return &c
		}
	}
	return nil
}

// takeGlobalFlags removes a leading --root DIR / --root=DIR from args.
func (g *globals) takeGlobalFlags(args []string) []string {
	for len(args) > 0 {
		switch {
		case args[0] == "--root" && len(args) > 1:
			g.root, args = args[1], args[2:]
		case len(args[0]) > 7 && args[0][:7] == "--root=":
			g.root, args = args[0][7:], args[1:]
		default:
			return args
		}
	}
	return args
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: mybuild [--root DIR] COMMAND [OPTIONS]\n       mybuild [build options] CONTEXT   (same as mybuild build)\n\nBuild container images from Dockerfiles, no daemon needed.\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nGlobal options:\n  --root DIR   image store directory (default $MYBUILD_ROOT, /var/lib/mybuild for root, $XDG_DATA_HOME/mybuild otherwise)\n\nRun 'mybuild COMMAND --help' for a command's options.\n")
}
