package registry

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// fastRetry keeps retry tests short.
var fastRetry = Options{backoff: &v1Backoff}

var v1Backoff = backoffFor(10*time.Millisecond, 3)

// server is an in-memory registry behind a counting (and optionally
// failing or authenticating) handler.
type server struct {
	*httptest.Server
	host    string
	uploads atomic.Int64 // POST/PUT of blobs
	fail503 atomic.Int64 // answer this many manifest GETs with 503
}

func newServer(t *testing.T, user, pass string) *server {
	t.Helper()
	s := &server{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		if strings.Contains(r.URL.Path, "/blobs/") && (r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch) {
			s.uploads.Add(1)
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") && s.fail503.Add(-1) >= 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	s.host = strings.TrimPrefix(s.URL, "http://")
	return s
}

func randomImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "alpine", want: "index.docker.io/library/alpine:latest"},
		{in: "127.0.0.1:5000/a/b:1", want: "127.0.0.1:5000/a/b:1"},
		{in: "reg.example/project/image:tag", want: "reg.example/project/image:tag"},
		{in: "x@sha256:" + strings.Repeat("a", 64), want: "index.docker.io/library/x@sha256:" + strings.Repeat("a", 64)},
		{in: "UPPER/case", err: `parse reference "UPPER/case"`},
		{in: "a:b:c", err: `parse reference "a:b:c"`},
		{in: "", err: `parse reference ""`},
	} {
		r, err := ParseReference(tc.in, Options{})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseReference(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || r.Name() != tc.want {
			t.Errorf("ParseReference(%q) = %v, %v; want %s", tc.in, r, err, tc.want)
		}
	}
	r, _ := ParseReference("myreg.example:5000/x", Options{Insecure: []string{"myreg.example:5000"}})
	if got := r.Context().Registry.Scheme(); got != "http" {
		t.Errorf("insecure registry scheme = %s, want http", got)
	}
	r, _ = ParseReference("myreg.example:5000/x", Options{})
	if got := r.Context().Registry.Scheme(); got != "https" {
		t.Errorf("secure registry scheme = %s, want https", got)
	}
}

func TestPushPullRoundTrip(t *testing.T) {
	s := newServer(t, "", "")
	ctx := context.Background()
	img := randomImage(t)
	ref := s.host + "/test/img:v1"
	d, err := Push(ctx, img, ref, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d != want {
		t.Fatalf("Push digest = %s, want %s", d, want)
	}
	got, err := Pull(ctx, ref, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if gd, _ := got.Digest(); gd != want {
		t.Errorf("pulled digest %s, want %s", gd, want)
	}
	if err := validate.Image(got); err != nil {
		t.Errorf("validate pulled image: %v", err)
	}
}

func TestPushSkipsExistingBlobs(t *testing.T) {
	s := newServer(t, "", "")
	ctx := context.Background()
	img := randomImage(t)
	if _, err := Push(ctx, img, s.host+"/a/img:1", Options{}); err != nil {
		t.Fatal(err)
	}
	if n := s.uploads.Load(); n == 0 {
		t.Fatal("first push uploaded nothing")
	}
	s.uploads.Store(0)
	if _, err := Push(ctx, img, s.host+"/a/img:2", Options{}); err != nil {
		t.Fatal(err)
	}
	if n := s.uploads.Load(); n != 0 {
		t.Errorf("second push to the same repository made %d blob upload requests, want 0", n)
	}
	// Another repository: blobs are mounted, not uploaded again.
	s.uploads.Store(0)
	pulled, err := Pull(ctx, s.host+"/a/img:1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Push(ctx, pulled, s.host+"/b/img:1", Options{}); err != nil {
		t.Fatal(err)
	}
	if n := s.uploads.Load(); n > 4 { // at most one mount POST per blob (3 layers + config)
		t.Errorf("cross-repository push made %d blob requests, want mounts only", n)
	}
}

func TestPullPlatform(t *testing.T) {
	s := newServer(t, "", "")
	ctx := context.Background()
	amd, arm, armv7 := randomImage(t), randomImage(t), randomImage(t)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: armv7, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}}},
	)
	ref := s.host + "/multi:latest"
	r, _ := ParseReference(ref, Options{})
	if err := writeIndex(ctx, r, idx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		platform string
		want     v1.Image
	}{
		{"linux/amd64", amd},
		{"linux/arm64", arm},
		{"linux/arm64/v8", arm},
		{"linux/arm/v7", armv7},
	} {
		p, err := ParsePlatform(tc.platform)
		if err != nil {
			t.Fatal(err)
		}
		img, err := Pull(ctx, ref, Options{Platform: p})
		if err != nil {
			t.Fatalf("pull for %s: %v", tc.platform, err)
		}
		got, _ := img.Digest()
		want, _ := tc.want.Digest()
		if got != want {
			t.Errorf("pull for %s: digest %s, want %s", tc.platform, got, want)
		}
	}
	// The host platform is the default (amd64 and arm64 are in the index).
	if hp := HostPlatform(); hp.Architecture == "amd64" || hp.Architecture == "arm64" {
		if _, err := Pull(ctx, ref, Options{}); err != nil {
			t.Errorf("pull for the host platform: %v", err)
		}
	}
	_, err := Pull(ctx, ref, Options{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}})
	if !errors.Is(err, ErrNoPlatform) || !strings.Contains(err.Error(), "linux/s390x") || !strings.Contains(err.Error(), "linux/arm64/v8") {
		t.Errorf("pull for a missing platform: %v, want ErrNoPlatform naming wanted and available platforms", err)
	}
	for _, bad := range []string{"linux", "linux/", "/amd64", "a/b/c/d"} {
		if _, err := ParsePlatform(bad); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("ParsePlatform(%q) = %v, want an error quoting it", bad, err)
		}
	}
}

func TestPullErrors(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, "", "")
	img := randomImage(t)
	if _, err := Push(ctx, img, s.host+"/exists:1", Options{}); err != nil {
		t.Fatal(err)
	}
	auth := newServer(t, "user", "secret")

	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	for _, tc := range []struct {
		name, ref string
		kind      error
		msg       []string
	}{
		{"missing tag", s.host + "/exists:2", ErrNotFound, []string{`"` + s.host + `/exists:2"`, "not found"}},
		{"missing repo", s.host + "/nope:1", ErrNotFound, []string{`"` + s.host + `/nope:1"`}},
		{"unauthorized", auth.host + "/x:1", ErrUnauthorized, []string{auth.host, "401", "mybuild login " + auth.host}},
		{"unreachable", dead + "/x:1", ErrUnreachable, []string{dead, "unreachable", "refused"}},
		{"bad reference", "Bad Ref", nil, []string{`"Bad Ref"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Pull(ctx, tc.ref, fastRetry)
			if err == nil {
				t.Fatal("pull succeeded")
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("error took %v", d)
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Errorf("error %v is not %v", err, tc.kind)
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
	// Push to a registry that refuses us says the same.
	_, err = Push(ctx, img, auth.host+"/x:1", fastRetry)
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "mybuild login") {
		t.Errorf("push without credentials: %v", err)
	}
	// With credentials it works.
	kc := staticKeychain{authn.FromConfig(authn.AuthConfig{Username: "user", Password: "secret"})}
	if _, err := Push(ctx, img, auth.host+"/x:1", Options{Keychain: kc}); err != nil {
		t.Errorf("push with credentials: %v", err)
	}
	if _, err := Pull(ctx, auth.host+"/x:1", Options{Keychain: kc}); err != nil {
		t.Errorf("pull with credentials: %v", err)
	}
}

func TestPullRetries5xx(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, "", "")
	img := randomImage(t)
	if _, err := Push(ctx, img, s.host+"/r:1", Options{}); err != nil {
		t.Fatal(err)
	}
	s.fail503.Store(2)
	if _, err := Pull(ctx, s.host+"/r:1", fastRetry); err != nil {
		t.Fatalf("pull after two 503s: %v", err)
	}
	s.fail503.Store(100)
	_, err := Pull(ctx, s.host+"/r:1", fastRetry)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("pull with the registry always 503: %v", err)
	}
	s.fail503.Store(0)
}

type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }
