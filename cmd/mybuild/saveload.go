package main

// This file holds save and load: the local store to and from archives.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mybuild/mybuild/internal/atomicfile"
	"github.com/mybuild/mybuild/internal/store"
)

// cmdSave writes images to a tar archive.
func cmdSave(ctx context.Context, g *globals, args []string) error {
	fs := pflag.NewFlagSet("save", pflag.ContinueOnError)
	output := fs.StringP("output", "o", "", "write to this file (replaced atomically) instead of standard output")
	format := fs.String("format", "docker-archive", "archive format: docker-archive (what `docker load` reads) or oci-archive (a tar of an OCI image layout)")
	ok, err := parseFlags(g, fs, "save [OPTIONS] NAME|ID [NAME|ID...]",
		"Write images to a tar archive. An image given by name is saved under that name,\none given by ID or digest without a name. `mybuild load` reads both formats.", args)
	if !ok || err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("save needs at least one image (see 'mybuild save --help')")
	}
	f, err := store.ParseFormat(*format)
	if err != nil || f == store.FormatOCILayout {
		return fmt.Errorf("invalid --format %q: want docker-archive or oci-archive", *format)
	}
	if *output == "" && isTerminal(g.stdout) {
		return errors.New("refusing to write an archive to a terminal: use -o FILE or redirect standard output")
	}
	return withStore(g, func(st *store.Store) error {
		if *output == "" {
			return st.Save(ctx, fs.Args(), f, g.stdout)
		}
		return atomicfile.Write(*output, 0o644, func(file io.Writer) error {
			return st.Save(ctx, fs.Args(), f, file)
		})
	})
}

// cmdLoad imports images from an archive or an OCI layout.
func cmdLoad(ctx context.Context, g *globals, args []string) error {
	fs := pflag.NewFlagSet("load", pflag.ContinueOnError)
	input := fs.StringP("input", "i", "", "read the archive from this file instead of standard input")
	layoutDir := fs.String("oci-layout", "", "import the images of this OCI image layout directory")
	quiet := fs.BoolP("quiet", "q", false, "print nothing")
	ok, err := parseFlags(g, fs, "load [OPTIONS]",
		"Load images into the local store from a docker-archive or oci-archive tar\n(gzip-compressed or not; the format is detected), or from an OCI image layout\ndirectory. Images keep the names the archive gives them; one without a name is\nreported by its ID.", args)
	if !ok || err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("load takes no arguments, got %q (use -i FILE or --oci-layout DIR)", fs.Args())
	}
	if *input != "" && *layoutDir != "" {
		return errors.New("use either -i FILE or --oci-layout DIR, not both")
	}
	var names []string
	err = withStore(g, func(st *store.Store) error {
		switch {
		case *layoutDir != "":
			names, err = st.LoadLayout(ctx, *layoutDir)
		case *input != "":
			var f *os.File
			if f, err = os.Open(*input); err != nil {
				return fmt.Errorf("load: %w", err)
			}
			defer f.Close()
			names, err = st.Load(ctx, f)
		default:
			if f, ok := g.stdin.(*os.File); ok && isTerminal(f) {
				return errors.New("load: standard input is a terminal: use -i FILE, --oci-layout DIR or a redirect")
			}
			names, err = st.Load(ctx, g.stdin)
		}
		return err
	})
	if err != nil || *quiet {
		return err
	}
	for _, n := range names {
		if strings.HasPrefix(n, "sha256:") {
			fmt.Fprintf(g.stdout, "Loaded image ID: %s\n", n)
		} else {
			fmt.Fprintf(g.stdout, "Loaded image: %s\n", n)
		}
	}
	return nil
}
