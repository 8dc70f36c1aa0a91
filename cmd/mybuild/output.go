package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/mybuild/mybuild/internal/atomicfile"
	"github.com/mybuild/mybuild/internal/store"
	"github.com/mybuild/mybuild/snapshot"
)

// output is a parsed --output value.
type output struct {
	kind string // "" (local store), "oci", "oci-archive", "docker-archive", "registry", "local", "tar"
	dest string
	name string // type=registry: where to push (default: the -t names)
}

// toStdout reports whether the output is written to standard output
// (type=tar,dest=-), which then carries nothing else.
func (o *output) toStdout() bool { return o.kind == "tar" && o.dest == "-" }

func parseOutput(s string) (*output, error) {
	if s == "" {
		return &output{}, nil
	}
	if !strings.ContainsAny(s, "=,") {
		// buildx's shorthand: -o DIR is type=local, -o - is type=tar.
		if s == "-" {
			return &output{kind: "tar", dest: "-"}, nil
		}
		return &output{kind: "local", dest: s}, nil
	}
	o := &output{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("invalid --output %q: %q is not KEY=VALUE", s, part)
		}
		switch strings.TrimSpace(k) {
		case "type":
			o.kind = v
		case "dest":
			o.dest = v
		case "name":
			o.name = v
		default:
			return nil, fmt.Errorf("invalid --output %q: unknown key %q", s, k)
		}
	}
	switch o.kind {
	case "oci", "oci-archive", "docker-archive", "local", "tar":
	case "registry":
		return o, nil // pushed, not written: no dest
	case "":
		return nil, fmt.Errorf("invalid --output %q: type= is required", s)
	default:
		return nil, fmt.Errorf("invalid --output %q: unsupported type %q (want oci, oci-archive, docker-archive, local, tar or registry)", s, o.kind)
	}
	if o.dest == "" {
		return nil, fmt.Errorf("invalid --output %q: dest= is required", s)
	}
	return o, nil
}

// check fails early, before any work, when the destination is not writable.
func (o *output) check() error {
	if o.kind == "" || o.kind == "registry" || o.toStdout() {
		return nil
	}
	dir := o.dest
	if o.kind != "oci" && o.kind != "local" {
		dir = filepath.Dir(o.dest)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--output dest %q is not writable: %w", o.dest, err)
	}
	f, err := os.CreateTemp(dir, ".mybuild-probe-*")
	if err != nil {
		return fmt.Errorf("--output dest %q is not writable: %w", o.dest, unwrapPath(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// write writes img where o says; stdout receives type=tar,dest=-.
func (o *output) write(ctx context.Context, st *store.Store, img v1.Image, tags []string, stdout io.Writer) error {
	names := make([]string, 0, len(tags))
	for _, t := range tags {
		n, err := store.NormalizeName(t)
		if err != nil {
			return err
		}
		names = append(names, n)
	}
	sort.Strings(names)
	switch o.kind {
	case "registry":
		// Pushed by the caller; nothing is written locally.
	case "oci":
		if err := st.WriteLayout(ctx, o.dest, img, names); err != nil {
			return fmt.Errorf("write --output %s: %w", o.dest, err)
		}
	case "local":
		// The image's files, not the image: its layers flattened
		// (whiteouts applied) and unpacked as safely as any layer.
		rc := mutate.Extract(img)
		defer rc.Close()
		if err := snapshot.Unpack(ctx, rc, o.dest, snapshot.UnpackOptions{}); err != nil {
			return fmt.Errorf("write --output %s: %w", o.dest, err)
		}
	case "tar":
		write := func(w io.Writer) error {
			rc := mutate.Extract(img)
			defer rc.Close()
			_, err := io.Copy(w, rc)
			return err
		}
		var err error
		if o.toStdout() {
			err = write(stdout)
		} else {
			err = atomicfile.Write(o.dest, 0o644, write)
		}
		if err != nil {
			return fmt.Errorf("write --output %s: %w", o.dest, err)
		}
	default:
		format := store.FormatOCIArchive
		if o.kind == "docker-archive" {
			format = store.FormatDockerArchive
		}
		err := atomicfile.Write(o.dest, 0o644, func(w io.Writer) error {
			return store.WriteArchive(ctx, w, img, names, format)
		})
		if err != nil {
			return fmt.Errorf("write --output %s: %w", o.dest, err)
		}
	}
	return nil
}
