package registry

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// DefaultJobs is how many blobs are transferred at once when Options.Jobs
// is zero.
const DefaultJobs = 4

// dialTimeout bounds connecting to a registry, so an unreachable one is
// reported within seconds.
const dialTimeout = 5 * time.Second

// Options configure Pull, Push and Login. The zero value works: host
// platform, authn.DefaultKeychain, DefaultJobs parallel transfers, HTTPS
// (with HTTP fallback for loopback registries only).
type Options struct {
	// Platform selects the image of a multi-platform index; nil means the
	// host's platform.
	Platform *v1.Platform
	// Insecure lists registries ("HOST" or "HOST:PORT") that may be reached
	// over plain HTTP or HTTPS without certificate verification.
	Insecure []string
	// Keychain finds credentials; nil means authn.DefaultKeychain.
	Keychain authn.Keychain
	// Jobs bounds parallel blob transfers; 0 means DefaultJobs.
	Jobs int
	// OnTransfer, when set, is told how each layer's transfer goes (bytes
	// so far, done, failed) during Pull's layer reads and Push's uploads.
	// It is called from several goroutines at once, often: it must be safe
	// for concurrent use and quick.
	OnTransfer func(Transfer)
	// Transport is the base HTTP transport; nil means a clone of
	// http.DefaultTransport with short connect timeouts.
	Transport http.RoundTripper

	// backoff overrides the retry backoff (tests).
	backoff *remote.Backoff
}

// ParseReference parses an image reference: "alpine" is
// "index.docker.io/library/alpine:latest", "host:port/repo:tag" and
// "repo@sha256:…" are accepted. A registry named in o.Insecure is marked for
// plain HTTP. The error quotes the reference.
func ParseReference(s string, o Options) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("parse reference %q: %w", s, err)
	}
	if o.insecure(ref.Context().RegistryStr()) {
		ref, err = name.ParseReference(s, name.Insecure)
		if err != nil {
			return nil, fmt.Errorf("parse reference %q: %w", s, err)
		}
	}
	return ref, nil
}

// ParseRegistry parses a registry host ("host", "host:port", with or without
// an https:// prefix or a trailing path, as `docker login` accepts them).
// An empty string is Docker Hub.
func ParseRegistry(s string, o Options) (name.Registry, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	if h == "" || h == "docker.io" || h == "registry-1.docker.io" {
		h = name.DefaultRegistry
	}
	var opts []name.Option
	if o.insecure(h) {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRegistry(h, opts...)
	if err != nil {
		return name.Registry{}, fmt.Errorf("parse registry %q: %w", s, err)
	}
	return r, nil
}

// insecure reports whether host is listed in o.Insecure.
func (o Options) insecure(host string) bool {
	for _, h := range o.Insecure {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://"), "/")
		if h == host {
			return true
		}
	}
	return false
}

func (o Options) keychain() authn.Keychain {
	if o.Keychain != nil {
		return o.Keychain
	}
	return authn.DefaultKeychain
}

func (o Options) jobs() int {
	if o.Jobs > 0 {
		return o.Jobs
	}
	return DefaultJobs
}

// transport returns the base transport for reg: short connect timeouts,
// and no certificate verification for an insecure registry.
func (o Options) transport(reg name.Registry) http.RoundTripper {
	if o.Transport != nil {
		return o.Transport
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = dialTimeout
	if o.insecure(reg.RegistryStr()) {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it
	}
	return t
}

// remoteOptions are the go-containerregistry options for a transfer with
// reg.
func (o Options) remoteOptions(reg name.Registry) []remote.Option {
	opts := []remote.Option{
		remote.WithAuthFromKeychain(o.keychain()),
		remote.WithTransport(o.transport(reg)),
		remote.WithJobs(o.jobs()),
		remote.WithUserAgent("mybuild"),
	}
	if o.backoff != nil {
		opts = append(opts, remote.WithRetryBackoff(*o.backoff))
	}
	return opts
}
