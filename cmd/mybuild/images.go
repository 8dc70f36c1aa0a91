package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"

	"github.com/mybuild/mybuild/internal/store"
)

// This file holds the subcommands that work on the local image store.

// parseFlags parses args into fs. It prints the help and returns false
// when asked for it.
func parseFlags(g *globals, fs *pflag.FlagSet, usage, about string, args []string) (bool, error) {
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	help := fs.BoolP("help", "h", false, "show this help")
	if err := fs.Parse(args); err != nil {
		return false, fmt.Errorf("%w (see 'mybuild %s --help')", err, fs.Name())
	}
	if *help {
		fmt.Fprintf(g.stdout, "Usage: mybuild %s\n\n%s\n\nOptions:\n%s", usage, about, fs.FlagUsages())
		return false, nil
	}
	return true, nil
}

// withStore opens the store, runs fn and closes the store.
func withStore(g *globals, fn func(*store.Store) error) error {
	st, err := g.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

// cmdImages lists the images in the store, like `docker images`.
func cmdImages(ctx context.Context, g *globals, args []string) error {
	fs := pflag.NewFlagSet("images", pflag.ContinueOnError)
	quiet := fs.BoolP("quiet", "q", false, "print only image IDs, each once")
	digests := fs.Bool("digests", false, "add a DIGEST column with the manifest digest")
	noTrunc := fs.Bool("no-trunc", false, "print full image IDs (sha256:…) instead of their first 12 digits")
	format := fs.String("format", "table", "output format: table, or json for one JSON object per image name and line")
	ok, err := parseFlags(g, fs, "images [OPTIONS] [REPOSITORY[:TAG]]",
		"List the images in the local store, newest first. An image without a name shows\nas <none>. REPOSITORY[:TAG] lists only that repository (and tag).", args)
	if !ok || err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("images takes at most one REPOSITORY[:TAG] argument, got %d", fs.NArg())
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("invalid --format %q: want table or json", *format)
	}
	var ents []store.Entry
	if err := withStore(g, func(st *store.Store) error {
		ents, err = st.List()
		return err
	}); err != nil {
		return err
	}
	if fs.NArg() == 1 {
		ents = filterEntries(ents, fs.Arg(0))
	}
	id := func(h v1.Hash) string {
		if *noTrunc {
			return h.String()
		}
		return shortID(h)
	}
	if *quiet {
		seen := map[v1.Hash]bool{}
		for _, e := range ents {
			if !seen[e.ID] {
				seen[e.ID] = true
				fmt.Fprintln(g.stdout, id(e.ID))
			}
		}
		return nil
	}
	now := time.Now()
	if *format == "json" {
		rows := make([]map[string]any, 0, len(ents))
		for _, e := range ents {
			repo, tag := splitName(e.Name)
			rows = append(rows, map[string]any{
				"Repository": repo, "Tag": tag, "Digest": e.Digest.String(), "ID": id(e.ID),
				"CreatedAt": formatTime(e.Created), "CreatedSince": humanSince(now, e.Created),
				"Size": humanSize(e.Size), "SizeBytes": e.Size,
			})
		}
		return jsonLines(g.stdout, rows)
	}
	tw := tabwriter.NewWriter(g.stdout, 10, 1, 3, ' ', 0)
	header := []string{"REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"}
	if !*digests {
		header = slices.Delete(header, 2, 3)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, e := range ents {
		repo, tag := splitName(e.Name)
		row := []string{repo, tag, e.Digest.String(), id(e.ID), humanSince(now, e.Created), humanSize(e.Size)}
		if !*digests {
			row = slices.Delete(row, 2, 3)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// inspectImage is one element of `mybuild inspect`'s output.
type inspectImage struct {
	ID           string       `json:"Id"`     // image ID: the config digest
	Digest       string       `json:"Digest"` // manifest digest
	RepoTags     []string     `json:"RepoTags"`
	Created      string       `json:"Created,omitempty"`
	Author       string       `json:"Author,omitempty"`
	Architecture string       `json:"Architecture"`
	Variant      string       `json:"Variant,omitempty"`
	Os           string       `json:"Os"`
	OsVersion    string       `json:"OsVersion,omitempty"`
	Size         int64        `json:"Size"` // config and compressed layers
	Config       v1.Config    `json:"Config"`
	RootFS       inspectFS    `json:"RootFS"`
	History      []v1.History `json:"History"`
	Manifest     *v1.Manifest `json:"Manifest"`
}

type inspectFS struct {
	Type   string    `json:"Type"`
	Layers []v1.Hash `json:"Layers"` // diffIDs
}

// cmdInspect prints images' configs and manifests as a JSON array.
func cmdInspect(ctx context.Context, g *globals, args []string) error {
	fs := pflag.NewFlagSet("inspect", pflag.ContinueOnError)
	ok, err := parseFlags(g, fs, "inspect NAME|ID [NAME|ID...]",
		"Show images as a JSON array like `docker image inspect`: Id (config digest),\nDigest (manifest digest), RepoTags, Created, Architecture, Os, Size, Config,\nRootFS (diffIDs), History and the OCI Manifest. NAME is repo[:tag]; ID is a\ndigest or a unique prefix of at least 4 hex digits of an image ID or manifest\ndigest. The images found are printed even when some are not.", args)
	if !ok || err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("inspect needs at least one image (see 'mybuild inspect --help')")
	}
	out := []inspectImage{}
	var errs []error
	err = withStore(g, func(st *store.Store) error {
		ents, err := st.List()
		if err != nil {
			return err
		}
		for _, ref := range fs.Args() {
			ii, err := inspectOne(st, ents, ref)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, ii)
		}
		return nil
	})
	if err != nil {
		return err
	}
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "    ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	return errors.Join(errs...)
}

func inspectOne(st *store.Store, ents []store.Entry, ref string) (inspectImage, error) {
	img, digest, err := st.Image(ref)
	if err != nil {
		return inspectImage{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return inspectImage{}, fmt.Errorf("inspect %q: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return inspectImage{}, fmt.Errorf("inspect %q: %w", ref, err)
	}
	ii := inspectImage{
		ID:           m.Config.Digest.String(),
		Digest:       digest.String(),
		RepoTags:     []string{},
		Created:      formatTime(cf.Created.Time),
		Author:       cf.Author,
		Architecture: cf.Architecture,
		Variant:      cf.Variant,
		Os:           cf.OS,
		OsVersion:    cf.OSVersion,
		Size:         m.Config.Size,
		Config:       cf.Config,
		RootFS:       inspectFS{Type: cf.RootFS.Type, Layers: cf.RootFS.DiffIDs},
		History:      cf.History,
		Manifest:     m,
	}
	for _, l := range m.Layers {
		ii.Size += l.Size
	}
	for _, e := range ents {
		if e.Digest == digest && e.Name != "" {
			ii.RepoTags = append(ii.RepoTags, e.Name)
		}
	}
	if ii.RootFS.Layers == nil {
		ii.RootFS.Layers = []v1.Hash{}
	}
	if ii.History == nil {
		ii.History = []v1.History{}
	}
	return ii, nil
}

// historyRow is one line of `mybuild history`.
type historyRow struct {
	id      string
	created time.Time
	by      string
	size    int64
	comment string
}

// cmdHistory shows how an image was built, newest step first.
func cmdHistory(ctx context.Context, g *globals, args []string) error {
	fs := pflag.NewFlagSet("history", pflag.ContinueOnError)
	noTrunc := fs.Bool("no-trunc", false, "print full image IDs and CREATED BY commands")
	human := fs.BoolP("human", "H", true, "print sizes and dates for people (--human=false: bytes and RFC 3339)")
	format := fs.String("format", "table", "output format: table, or json for one JSON object per step and line")
	ok, err := parseFlags(g, fs, "history [OPTIONS] NAME|ID",
		"Show the history of an image, newest step first, like `docker history`.\nSIZE is the compressed size of the layer a step made, 0B for steps that\nmade none (ENV, CMD, ...). IMAGE is shown for the image itself only.", args)
	if !ok || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("history needs exactly one image, got %d (see 'mybuild history --help')", fs.NArg())
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("invalid --format %q: want table or json", *format)
	}
	var rows []historyRow
	err = withStore(g, func(st *store.Store) error {
		rows, err = historyRows(st, fs.Arg(0))
		return err
	})
	if err != nil {
		return err
	}
	now := time.Now()
	id := func(r historyRow) string {
		if r.id == "" || *noTrunc {
			return r.id
		}
		return strings.TrimPrefix(r.id, "sha256:")[:12]
	}
	created := func(t time.Time) string {
		if *human {
			return humanSince(now, t)
		}
		return formatTime(t)
	}
	size := func(n int64) string {
		if *human {
			return humanSize(n)
		}
		return fmt.Sprint(n)
	}
	if *format == "json" {
		out := make([]map[string]any, 0, len(rows))
		for _, r := range rows {
			out = append(out, map[string]any{
				"ID": orMissing(id(r)), "CreatedAt": formatTime(r.created), "CreatedSince": humanSince(now, r.created),
				"CreatedBy": r.by, "Size": size(r.size), "SizeBytes": r.size, "Comment": r.comment,
			})
		}
		return jsonLines(g.stdout, out)
	}
	tw := tabwriter.NewWriter(g.stdout, 10, 1, 3, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT")
	for _, r := range rows {
		by := strings.Join(strings.Fields(r.by), " ")
		if !*noTrunc {
			by = ellipsis(by, 45)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", orMissing(id(r)), created(r.created), by, size(r.size), r.comment)
	}
	return tw.Flush()
}

// historyRows pairs an image's history with its layers, newest first.
func historyRows(st *store.Store, ref string) ([]historyRow, error) {
	img, _, err := st.Image(ref)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("history %q: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("history %q: %w", ref, err)
	}
	hist := cf.History
	if len(hist) == 0 { // no history: one anonymous step per layer
		hist = make([]v1.History, len(m.Layers))
	}
	rows := make([]historyRow, 0, len(hist))
	layer := 0
	for _, h := range hist {
		r := historyRow{created: h.Created.Time, by: h.CreatedBy, comment: h.Comment}
		if !h.EmptyLayer && layer < len(m.Layers) {
			r.size = m.Layers[layer].Size
			layer++
		}
		rows = append(rows, r)
	}
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	if len(rows) > 0 {
		rows[0].id = m.Config.Digest.String()
	}
	return rows, nil
}

// cmdTag gives an image another name.
func cmdTag(ctx context.Context, g *globals, args []string) error {
	fs := pflag.NewFlagSet("tag", pflag.ContinueOnError)
	ok, err := parseFlags(g, fs, "tag SOURCE TARGET",
		"Give the image SOURCE (a name, an ID or a digest) the name TARGET (repo[:tag]).\nIf another image had the name TARGET, it loses it.", args)
	if !ok || err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("tag needs SOURCE and TARGET, got %d arguments (see 'mybuild tag --help')", fs.NArg())
	}
	return withStore(g, func(st *store.Store) error {
		return st.Tag(ctx, fs.Arg(0), fs.Arg(1))
	})
}

// cmdRmi removes images, then the blobs no image needs any more.
func cmdRmi(ctx context.Context, g *globals, args []string) error {
	fs := pflag.NewFlagSet("rmi", pflag.ContinueOnError)
	force := fs.BoolP("force", "f", false, "remove an image given by ID or digest even if it has several names")
	ok, err := parseFlags(g, fs, "rmi [OPTIONS] NAME|ID [NAME|ID...]",
		"Remove images from the local store. A NAME is untagged, and the image goes with\nits last name. An ID or digest removes the image, if it has at most one name\n(use --force otherwise). Blobs no image uses are then deleted, unless another\nmybuild is using the store.", args)
	if !ok || err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("rmi needs at least one image (see 'mybuild rmi --help')")
	}
	return withStore(g, func(st *store.Store) error {
		var errs []error
		for _, ref := range fs.Args() {
			if err := removeImage(ctx, g, st, ref, *force); err != nil {
				errs = append(errs, err)
			}
		}
		if _, err := st.GCKeep(ctx, cachedLayers(ctx, g)); err != nil && !errors.Is(err, store.ErrBusy) {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
}

func removeImage(ctx context.Context, g *globals, st *store.Store, ref string, force bool) error {
	refs := []string{ref}
	if force {
		refs = allNames(st, ref)
	}
	for _, r := range refs {
		res, err := st.Remove(ctx, r)
		if err != nil {
			return err
		}
		for _, n := range res.Untagged {
			fmt.Fprintf(g.stdout, "Untagged: %s\n", n)
		}
		if res.Deleted != (v1.Hash{}) {
			fmt.Fprintf(g.stdout, "Deleted: %s\n", res.Deleted)
		}
	}
	return nil
}

// allNames returns the names of the image ref gives by ID or digest, so
// that removing them all removes it; a name, or an ID of an image without
// names, is returned as it is.
func allNames(st *store.Store, ref string) []string {
	_, digest, err := st.Image(ref)
	ents, lerr := st.List()
	if err != nil || lerr != nil {
		return []string{ref}
	}
	var names []string
	for _, e := range ents {
		if n, _ := store.NormalizeName(ref); e.Name == n {
			return []string{ref}
		}
		if e.Digest == digest && e.Name != "" {
			names = append(names, e.Name)
		}
	}
	if len(names) == 0 {
		return []string{ref}
	}
	return names
}
