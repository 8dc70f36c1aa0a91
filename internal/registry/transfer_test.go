package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// transfers collects Transfer reports.
type transfers struct {
	mu   sync.Mutex
	last map[v1.Hash]Transfer
	n    int
}

func (c *transfers) add(t Transfer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[v1.Hash]Transfer{}
	}
	c.last[t.Digest] = t
	c.n++
}

// checkDone checks that every layer of img was reported done, in full.
func (c *transfers) checkDone(t *testing.T, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		size, _ := l.Size()
		got, ok := c.last[d]
		if !ok || !got.Done || got.Err != nil || got.Complete != size || got.Size != size {
			t.Errorf("layer %s: last report %+v, want done with %d bytes", d, got, size)
		}
	}
	if c.n <= len(layers) {
		t.Errorf("%d reports for %d layers, want progress along the way", c.n, len(layers))
	}
}

func TestTransferProgress(t *testing.T) {
	s := newServer(t, "", "")
	ctx := context.Background()
	img := randomImage(t)
	var push transfers
	if _, err := Push(ctx, img, s.host+"/p/img:1", Options{OnTransfer: push.add}); err != nil {
		t.Fatal(err)
	}
	push.checkDone(t, img)

	var pull transfers
	got, err := Pull(ctx, s.host+"/p/img:1", Options{OnTransfer: pull.add})
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		rc, err := got.LayerByDigest(d)
		if err != nil {
			t.Fatal(err)
		}
		r, err := rc.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	pull.checkDone(t, img)
}

// tamper flips a byte of every layer blob the registry sends.
type tamper struct{ base http.RoundTripper }

func (tr tamper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := tr.base.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/blobs/sha256:") || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var cfg map[string]any
	if json.Unmarshal(data, &cfg) != nil && len(data) > 0 { // leave the config alone
		data[len(data)/2] ^= 0xff
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp, nil
}

func TestPullDigestMismatch(t *testing.T) {
	s := newServer(t, "", "")
	ctx := context.Background()
	img := randomImage(t)
	ref := s.host + "/m/img:1"
	if _, err := Push(ctx, img, ref, Options{}); err != nil {
		t.Fatal(err)
	}
	var seen transfers
	got, err := Pull(ctx, ref, Options{Transport: tamper{http.DefaultTransport}, OnTransfer: seen.add})
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := got.Layers()
	d, _ := layers[0].Digest()
	l, err := got.LayerByDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, r)
	r.Close()
	if err == nil || !strings.Contains(err.Error(), d.String()) {
		t.Errorf("reading a tampered blob: %v, want an error naming %s", err, d)
	}
	if tr := seen.last[d]; tr.Err == nil || tr.Done {
		t.Errorf("transfer report %+v, want a failure", tr)
	}
}

func TestUserConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	t.Setenv("MYBUILD_CONFIG", path)
	if p := UserConfigPath(); p != path {
		t.Errorf("UserConfigPath() = %s, want $MYBUILD_CONFIG", p)
	}
	if c, err := LoadUserConfig(path); err != nil || len(c.InsecureRegistries) != 0 {
		t.Errorf("missing file: %+v, %v", c, err)
	}
	os.WriteFile(path, []byte(`{"insecure-registries": ["reg.example:5000"]}`), 0o644)
	c, err := LoadUserConfig(path)
	if err != nil || len(c.InsecureRegistries) != 1 || c.InsecureRegistries[0] != "reg.example:5000" {
		t.Errorf("LoadUserConfig = %+v, %v", c, err)
	}
	os.WriteFile(path, []byte(`{"insecure-registries": "x"`), 0o644)
	if _, err := LoadUserConfig(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("malformed file: %v, want an error naming it", err)
	}
	t.Setenv("MYBUILD_CONFIG", "")
	t.Setenv("XDG_CONFIG_HOME", dir)
	if p := UserConfigPath(); p != filepath.Join(dir, "mybuild", "config.json") {
		t.Errorf("UserConfigPath() = %s", p)
	}
}

// fakeHelper is a docker-credential-fake that keeps credentials in files
// under dir, as docker-credential-pass or -secretservice would.
const fakeHelper = `#!/bin/sh
d="$(dirname "$0")/store"
mkdir -p "$d"
case "$1" in
store) cat > "$d/last-store"; url=$(sed 's/.*"ServerURL":"\([^"]*\)".*/\1/' "$d/last-store"); cp "$d/last-store" "$d/$(echo "$url" | tr '/:' '__')";;
get) read url; f="$d/$(echo "$url" | tr '/:' '__')"; if [ -f "$f" ]; then sed 's/"ServerURL":"[^"]*",//' "$f"; else echo "credentials not found in native keychain"; exit 1; fi;;
erase) read url; f="$d/$(echo "$url" | tr '/:' '__')"; if [ -f "$f" ]; then rm "$f"; else echo "credentials not found in native keychain"; exit 1; fi;;
*) exit 1;;
esac
`

func TestLoginCredentialHelper(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-fake"), []byte(fakeHelper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dc := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dc)
	path := filepath.Join(dc, "config.json")
	os.WriteFile(path, []byte(`{"credsStore": "fake"}`), 0o600)
	ctx := context.Background()
	const key, user, pass = "127.0.0.1:5000", "user", "helper-s3cret"

	if err := SaveLogin(ctx, path, key, user, pass); err != nil {
		t.Fatal(err)
	}
	sent, err := os.ReadFile(filepath.Join(bin, "store", "last-store"))
	if err != nil {
		t.Fatalf("the helper was not asked to store: %v", err)
	}
	var req map[string]string
	if err := json.Unmarshal(sent, &req); err != nil || req["ServerURL"] != key || req["Username"] != user || req["Secret"] != pass {
		t.Errorf("helper got %s (%v)", sent, err)
	}
	cfg, _ := os.ReadFile(path)
	if strings.Contains(string(cfg), `"auth"`) || !strings.Contains(string(cfg), `"credsStore": "fake"`) || !strings.Contains(string(cfg), key) {
		t.Errorf("config.json after login through a helper:\n%s", cfg)
	}
	// DefaultKeychain gets the credentials back through the helper.
	reg, _ := name.NewRegistry(key)
	a, err := authn.DefaultKeychain.Resolve(reg)
	if err != nil {
		t.Fatal(err)
	}
	if ac, err := a.Authorization(); err != nil || ac.Username != user || ac.Password != pass {
		t.Errorf("keychain gives %+v, %v", ac, err)
	}
	found, err := RemoveLogin(ctx, path, key)
	if err != nil || !found {
		t.Fatalf("RemoveLogin = %v, %v", found, err)
	}
	if a, _ := authn.DefaultKeychain.Resolve(reg); a != authn.Anonymous {
		t.Errorf("after logout the keychain still has credentials")
	}
	if found, err := RemoveLogin(ctx, path, key); err != nil || found {
		t.Errorf("second RemoveLogin = %v, %v", found, err)
	}
	// A credHelpers entry for the registry wins over the file.
	os.WriteFile(path, []byte(`{"credHelpers": {"127.0.0.1:5000": "missing"}}`), 0o600)
	err = SaveLogin(ctx, path, key, user, pass)
	if err == nil || !strings.Contains(err.Error(), "docker-credential-missing") || strings.Contains(err.Error(), pass) {
		t.Errorf("login with a missing helper: %v, want an error naming it (and not the password)", err)
	}
}
