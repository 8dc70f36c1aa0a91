package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"

	"github.com/mybuild/mybuild/internal/registry"
	"github.com/mybuild/mybuild/internal/store"
	"github.com/mybuild/mybuild/planner"
)

// registryFlags are the registry options pull, push, login and build share.
type registryFlags struct {
	platform platformFlag
	insecure []string
}

func (r *registryFlags) add(fs *pflag.FlagSet, withPlatform bool) {
	if withPlatform {
		fs.Var(&r.platform, "platform", "platform of the image to pull from a multi-platform index: os/arch[/variant] (default: this host's)")
	}
	fs.StringArrayVar(&r.insecure, "insecure-registry", nil, "registry HOST[:PORT] to reach over plain HTTP or unverified TLS; repeatable, and added to \"insecure-registries\" of $MYBUILD_CONFIG (default ~/.config/mybuild/config.json); loopback registries fall back to HTTP anyway")
}

// options are the registry options of the flags and of mybuild's config
// file (its "insecure-registries" add to --insecure-registry).
func (r *registryFlags) options() (registry.Options, error) {
	cfg, err := registry.LoadUserConfig(registry.UserConfigPath())
	if err != nil {
		return registry.Options{}, err
	}
	insecure := append(append([]string(nil), r.insecure...), cfg.InsecureRegistries...)
	return registry.Options{Platform: r.platform.p, Insecure: insecure}, nil
}

// platformFlag is a --platform value, checked when parsed.
type platformFlag struct{ p *v1.Platform }

func (f *platformFlag) String() string {
	if f.p == nil {
		return ""
	}
	return f.p.String()
}

func (f *platformFlag) Set(s string) error {
	p, err := registry.ParsePlatform(s)
	if err != nil {
		return err
	}
	f.p = p
	return nil
}

func (f *platformFlag) Type() string { return "os/arch" }

// pullPolicy is a --pull value: when FROM images are pulled.
type pullPolicy string

const (
	pullMissing pullPolicy = "missing" // only when not in the local store (default)
	pullAlways  pullPolicy = "always"  // every time, to follow a moving tag
	pullNever   pullPolicy = "never"   // never: the local store only
)

func (p *pullPolicy) String() string {
	if *p == "" {
		return string(pullMissing)
	}
	return string(*p)
}

func (p *pullPolicy) Set(s string) error {
	switch pullPolicy(s) {
	case pullMissing, pullAlways, pullNever:
		*p = pullPolicy(s)
		return nil
	case "true":
		*p = pullAlways
		return nil
	case "false":
		*p = pullMissing
		return nil
	}
	return fmt.Errorf("invalid --pull %q: want missing, always or never", s)
}

func (p *pullPolicy) Type() string { return "policy" }

// transferCommand is what pull and push share: their flags (registry
// options, --progress), parsed.
type transferCommand struct {
	fs   *pflag.FlagSet
	mode string           // progress mode
	opts registry.Options // registry options
}

// parseTransfer parses the flags of pull (withPlatform) or push, which take
// minArgs to maxArgs arguments; ok is false when only help was asked for.
func parseTransfer(g *globals, name, usage, help string, withPlatform bool, minArgs, maxArgs int, args []string) (*transferCommand, bool, error) {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	var rf registryFlags
	rf.add(fs, withPlatform)
	progressFlag := fs.String("progress", "auto", "progress output: auto (live view on a terminal, plain otherwise), plain, json")
	ok, err := parseFlags(g, fs, usage, help, args)
	if !ok || err != nil {
		return nil, false, err
	}
	if fs.NArg() < minArgs || fs.NArg() > maxArgs {
		return nil, false, fmt.Errorf("%s needs %s, got %d arguments (see 'mybuild %s --help')", name, strings.TrimPrefix(usage, name+" [OPTIONS] "), fs.NArg(), name)
	}
	mode, err := progressMode(*progressFlag, g.stderr)
	if err != nil {
		return nil, false, err
	}
	o, err := rf.options()
	if err != nil {
		return nil, false, err
	}
	return &transferCommand{fs: fs, mode: mode, opts: o}, true, nil
}

// cmdPull pulls an image from its registry into the store.
func cmdPull(ctx context.Context, g *globals, args []string) error {
	c, ok, err := parseTransfer(g, "pull", "pull [OPTIONS] REF",
		"Pull the image REF (name[:tag] or name@sha256:…) from its registry into the local\nstore, under its normalised name. Credentials come from 'mybuild login' (Docker's\nconfig.json, credential helpers, Podman's auth.json).",
		true, 1, 1, args)
	if !ok || err != nil {
		return err
	}
	return withStore(g, func(st *store.Store) error {
		_, n, err := pullInto(ctx, g, st, c.fs.Arg(0), c.opts, c.mode, nil)
		if err != nil {
			return err
		}
		fmt.Fprintln(g.stdout, n)
		return nil
	})
}

// pullInto pulls ref into st, named ref when it is a tag, and returns the
// stored manifest digest and the name (or the digest when unnamed). Layer
// downloads are shown as the progress mode says; a non-nil pf unpacks
// the layers as they arrive.
func pullInto(ctx context.Context, g *globals, st *store.Store, ref string, o registry.Options, mode string, pf *layerPrefetch) (v1.Hash, string, error) {
	r, err := registry.ParseReference(ref, o)
	if err != nil {
		return v1.Hash{}, "", err
	}
	var names []string
	if _, isTag := r.(name.Tag); isTag {
		names = []string{ref}
	}
	fmt.Fprintf(g.stderr, "pulling %s\n", r.Name())
	pr := newRenderer(mode, g.stderr)
	defer pr.close()
	o.OnTransfer = newTransferView("pull", mode, pr.event).update
	img, err := registry.Pull(ctx, ref, o)
	if err != nil {
		return v1.Hash{}, "", err
	}
	// The store fetches the layers it lacks, in parallel, verifying each
	// against its digest; a blob that does not match leaves nothing behind.
	dgst, err := st.Put(ctx, pf.wrap(img), names)
	pr.close()
	if err != nil {
		return v1.Hash{}, "", fmt.Errorf("pull %q: store image: %w", ref, err)
	}
	shown := dgst.String()
	if len(names) > 0 {
		shown, _ = store.NormalizeName(ref)
	}
	fmt.Fprintf(g.stderr, "pulled %s (manifest %s)\n", r.Name(), dgst)
	return dgst, shown, nil
}

// cmdPush pushes a stored image to a registry.
func cmdPush(ctx context.Context, g *globals, args []string) error {
	c, ok, err := parseTransfer(g, "push", "push [OPTIONS] NAME [REF]",
		"Push the stored image NAME to the registry, as REF (default: NAME).\nBlobs the registry already has are not uploaded again. Prints REF@DIGEST.",
		false, 1, 2, args)
	if !ok || err != nil {
		return err
	}
	src, dst := c.fs.Arg(0), c.fs.Arg(0)
	if c.fs.NArg() == 2 {
		dst = c.fs.Arg(1)
	}
	return withStore(g, func(st *store.Store) error {
		img, _, err := st.Image(src)
		if err != nil {
			return fmt.Errorf("push %q: %w", src, err)
		}
		_, err = pushImage(ctx, g, img, dst, c.opts, c.mode)
		return err
	})
}

// pushImage pushes img to ref and prints ref@digest on stdout. Layer
// uploads are shown as the progress mode says.
func pushImage(ctx context.Context, g *globals, img v1.Image, ref string, o registry.Options, mode string) (v1.Hash, error) {
	r, err := registry.ParseReference(ref, o)
	if err != nil {
		return v1.Hash{}, err
	}
	fmt.Fprintf(g.stderr, "pushing %s\n", r.Name())
	pr := newRenderer(mode, g.stderr)
	defer pr.close()
	o.OnTransfer = newTransferView("push", mode, pr.event).update
	d, err := registry.Push(ctx, img, ref, o)
	pr.close()
	if err != nil {
		return v1.Hash{}, err
	}
	fmt.Fprintf(g.stderr, "pushed %s: digest %s\n", r.Name(), d)
	fmt.Fprintf(g.stdout, "%s@%s\n", r.Context().Name(), d)
	return d, nil
}

// cmdLogin checks credentials with a registry and saves them the way
// `docker login` does.
func cmdLogin(ctx context.Context, g *globals, args []string) error {
	fs := pflag.NewFlagSet("login", pflag.ContinueOnError)
	user := fs.StringP("username", "u", "", "user name")
	stdin := fs.Bool("password-stdin", false, "read the password from standard input")
	var rf registryFlags
	rf.add(fs, false)
	ok, err := parseFlags(g, fs, "login [OPTIONS] [REGISTRY]",
		"Log in to REGISTRY (default Docker Hub): check the credentials with the registry\nand save them in $DOCKER_CONFIG/config.json (or ~/.docker/config.json), or, when\nthat file names a credential helper (credsStore, credHelpers), through\ndocker-credential-NAME, as docker login does.", args)
	if !ok || err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("login takes at most one REGISTRY, got %d arguments", fs.NArg())
	}
	if *user == "" || !*stdin {
		return errors.New("login needs -u USER and --password-stdin (the password is read from standard input)")
	}
	pass, err := readPassword(g.stdin)
	if err != nil {
		return err
	}
	o, err := rf.options()
	if err != nil {
		return err
	}
	reg, err := registry.ParseRegistry(fs.Arg(0), o)
	if err != nil {
		return err
	}
	if err := registry.CheckLogin(ctx, fs.Arg(0), *user, pass, o); err != nil {
		return err
	}
	path, err := registry.ConfigPath()
	if err != nil {
		return err
	}
	if err := registry.SaveLogin(ctx, path, registry.ConfigKey(reg), *user, pass); err != nil {
		return fmt.Errorf("save login: %w", err)
	}
	fmt.Fprintln(g.stdout, "Login Succeeded")
	return nil
}

// readPassword reads one line from r, without its line ending.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	pass := strings.TrimRight(line, "\r\n")
	if pass == "" {
		return "", errors.New("read password: standard input is empty")
	}
	return pass, nil
}

// cmdLogout removes saved credentials for a registry.
func cmdLogout(ctx context.Context, g *globals, args []string) error {
	fs := pflag.NewFlagSet("logout", pflag.ContinueOnError)
	ok, err := parseFlags(g, fs, "logout [REGISTRY]",
		"Remove the credentials for REGISTRY (default Docker Hub) from the Docker config.", args)
	if !ok || err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("logout takes at most one REGISTRY, got %d arguments", fs.NArg())
	}
	reg, err := registry.ParseRegistry(fs.Arg(0), registry.Options{})
	if err != nil {
		return err
	}
	path, err := registry.ConfigPath()
	if err != nil {
		return err
	}
	key := registry.ConfigKey(reg)
	found, err := registry.RemoveLogin(ctx, path, key)
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	if !found {
		fmt.Fprintf(g.stdout, "Not logged in to %s\n", key)
		return nil
	}
	fmt.Fprintf(g.stdout, "Removing login credentials for %s\n", key)
	return nil
}

// baseImage looks up ref in the store and, as policy says, pulls it.
func baseImage(ctx context.Context, g *globals, st *store.Store, ref string, policy pullPolicy, o registry.Options, mode string, pf *layerPrefetch) (v1.Image, v1.Hash, error) {
	if policy != pullAlways {
		img, dgst, err := st.Image(ref)
		if err == nil || !errors.Is(err, store.ErrNotFound) {
			return img, dgst, err
		}
		if policy == pullNever {
			return nil, v1.Hash{}, fmt.Errorf("base image %q not found in the local store and --pull=never (load it with 'mybuild load', pull it, or build it first)", ref)
		}
	}
	dgst, _, err := pullInto(ctx, g, st, ref, o, mode, pf)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	img, _, err := st.Image(dgst.String())
	return img, dgst, err
}

// baseInfo turns a stored base image into the planner's view of it.
func baseInfo(ref string, img v1.Image, dgst v1.Hash) (*planner.BaseImage, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("base image %q: read config: %w", ref, err)
	}
	return &planner.BaseImage{Ref: ref, Digest: dgst, Config: *cf}, nil
}

// pushTargets says, before anything is built, where a build pushes: the
// name= of --output type=registry, else every -t for --push or
// type=registry. Without a name to push to, or with a name that is not a
// valid reference, it fails.
func pushTargets(o *buildOptions, out *output) ([]string, error) {
	ro, err := o.registry.options()
	if err != nil {
		return nil, err
	}
	var refs []string
	switch {
	case out.kind == "registry" && out.name != "":
		refs = []string{out.name}
	case out.kind == "registry" && len(o.tags) == 0:
		return nil, errors.New("--output type=registry needs name=REF or a -t NAME to push to")
	case o.push && len(o.tags) == 0:
		return nil, errors.New("--push needs at least one -t NAME to push to")
	case out.kind == "registry" || o.push:
		refs = o.tags
	}
	for _, r := range refs {
		if _, err := registry.ParseReference(r, ro); err != nil {
			return nil, err
		}
	}
	return refs, nil
}

// pushTags pushes img under every ref and returns its manifest digest.
func pushTags(ctx context.Context, g *globals, img v1.Image, refs []string, rf *registryFlags, mode string) (v1.Hash, error) {
	o, err := rf.options()
	if err != nil {
		return v1.Hash{}, err
	}
	var d v1.Hash
	for _, r := range refs {
		if d, err = pushImage(ctx, g, img, r, o, mode); err != nil {
			return v1.Hash{}, err
		}
	}
	return d, nil
}

// writeMetadata writes the --metadata-file JSON the way `docker buildx
// build --metadata-file` does.
func writeMetadata(path string, manifest, config v1.Hash, tags []string) error {
	names := make([]string, 0, len(tags))
	for _, t := range tags {
		if r, err := name.ParseReference(t); err == nil {
			names = append(names, strings.Replace(r.Name(), name.DefaultRegistry+"/", "docker.io/", 1))
		}
	}
	m := map[string]string{
		"containerimage.digest":        manifest.String(),
		"containerimage.config.digest": config.String(),
	}
	if len(names) > 0 {
		m["image.name"] = strings.Join(names, ",")
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, append(data, '\n')); err != nil {
		return fmt.Errorf("write --metadata-file: %w", err)
	}
	return nil
}
