package registry

import (
	"context"
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Pull resolves ref in its registry and returns the image: for a
// multi-platform index, the image for o.Platform (or the host's). The
// manifest and config are fetched now, so a missing image, a refused login
// or an unreachable registry is reported here; layers are fetched when
// read, each verified against its digest (a mismatch fails the read at
// its end) and reported to o.OnTransfer.
func Pull(ctx context.Context, ref string, o Options) (v1.Image, error) {
	r, err := ParseReference(ref, o)
	if err != nil {
		return nil, err
	}
	reg := r.Context().RegistryStr()
	opts := append(o.remoteOptions(r.Context().Registry), remote.WithContext(ctx))
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return nil, classify("pull", ref, reg, err)
	}
	img, err := imageFor(desc, o.platform())
	if err != nil {
		return nil, classify("pull", ref, reg, err)
	}
	// Fetch the config now: a broken image fails here, not mid-build.
	if _, err := img.ConfigFile(); err != nil {
		return nil, classify("pull", ref, reg, err)
	}
	return watchImage(img, o.OnTransfer, false), nil
}

// imageFor returns the image desc names, or its child for platform p when
// desc is an index.
func imageFor(desc *remote.Descriptor, p v1.Platform) (v1.Image, error) {
	if !desc.MediaType.IsIndex() {
		return desc.Image()
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	d, err := selectPlatform(im, p)
	if err != nil {
		return nil, err
	}
	return idx.Image(d.Digest)
}

// selectPlatform picks the manifest for p from an index.
func selectPlatform(im *v1.IndexManifest, p v1.Platform) (v1.Descriptor, error) {
	var have []string
	for _, d := range im.Manifests {
		if d.Platform == nil || !d.MediaType.IsImage() {
			continue
		}
		have = append(have, d.Platform.String())
		if matches(*d.Platform, p) {
			return d, nil
		}
	}
	return v1.Descriptor{}, fmt.Errorf("%w %s (the index has %s)", ErrNoPlatform, p.String(), strings.Join(have, ", "))
}

// matches reports whether an index entry's platform satisfies want; a want
// without a variant accepts any variant, as does arm64's implied "v8".
func matches(have, want v1.Platform) bool {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	if want.Variant == "" || have.Variant == want.Variant {
		return true
	}
	return want.Architecture == "arm64" && have.Variant == "" && want.Variant == "v8"
}

// platform is o.Platform or the host's.
func (o Options) platform() v1.Platform {
	if o.Platform != nil {
		return *o.Platform
	}
	return HostPlatform()
}

// HostPlatform is the platform mybuild runs on.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if p.Architecture == "arm" {
		p.Variant = "v7"
	}
	return p
}

// ParsePlatform parses "os/arch[/variant]", e.g. "linux/arm64/v8".
func ParsePlatform(s string) (*v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || (len(parts) == 3 && parts[2] == "") {
		return nil, fmt.Errorf("parse platform %q: want os/arch[/variant]", s)
	}
	p := &v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}
