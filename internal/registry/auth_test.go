package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestSaveRemoveLogin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docker", "config.json")
	// Existing content other than our entry is kept.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"auths":{"other:1":{"auth":"b3RoZXI6eA=="}},"psFormat":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SaveLogin(context.Background(), path, "127.0.0.1:5000", "user", "pa:ss"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config mode %o, want 600", fi.Mode().Perm())
	}
	var cfg struct {
		Auths    map[string]struct{ Auth string } `json:"auths"`
		PsFormat string                           `json:"psFormat"`
	}
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Auths["127.0.0.1:5000"].Auth; got != base64.StdEncoding.EncodeToString([]byte("user:pa:ss")) {
		t.Errorf("auth = %q", got)
	}
	if cfg.PsFormat != "x" || cfg.Auths["other:1"].Auth == "" {
		t.Errorf("other content lost: %s", data)
	}
	// DefaultKeychain reads what we wrote.
	t.Setenv("DOCKER_CONFIG", filepath.Dir(path))
	reg, _ := name.NewRegistry("127.0.0.1:5000")
	a, err := authn.DefaultKeychain.Resolve(reg)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := a.Authorization()
	if err != nil || ac.Username != "user" || ac.Password != "pa:ss" {
		t.Errorf("keychain gives %+v, %v", ac, err)
	}
	if p, _ := ConfigPath(); p != path {
		t.Errorf("ConfigPath() = %s, want %s", p, path)
	}
	found, err := RemoveLogin(context.Background(), path, "127.0.0.1:5000")
	if err != nil || !found {
		t.Fatalf("RemoveLogin = %v, %v", found, err)
	}
	found, err = RemoveLogin(context.Background(), path, "127.0.0.1:5000")
	if err != nil || found {
		t.Fatalf("second RemoveLogin = %v, %v", found, err)
	}
	data, _ = os.ReadFile(path)
	if strings.Contains(string(data), "127.0.0.1:5000") || !strings.Contains(string(data), "other:1") {
		t.Errorf("after logout: %s", data)
	}
	hub, _ := ParseRegistry("docker.io", Options{})
	if k := ConfigKey(hub); k != "https://index.docker.io/v1/" {
		t.Errorf("Docker Hub key = %q", k)
	}
}

func TestCheckLogin(t *testing.T) {
	s := newServer(t, "user", "secret")
	ctx := context.Background()
	if err := CheckLogin(ctx, s.host, "user", "secret", Options{}); err != nil {
		t.Errorf("good credentials: %v", err)
	}
	err := CheckLogin(ctx, s.host, "user", "wrong-password", Options{})
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), s.host) {
		t.Errorf("bad credentials: %v, want ErrUnauthorized naming the registry", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error shows the password: %v", err)
	}
}
