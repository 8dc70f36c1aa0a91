package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/mybuild/mybuild/internal/atomicfile"
)

// dockerHubKey is the config.json key docker uses for Docker Hub.
const dockerHubKey = "https://index.docker.io/v1/"

// CheckLogin verifies user and password against registry (as ParseRegistry
// reads it) by asking for /v2/ with them. It returns an error wrapping
// ErrUnauthorized when the registry refuses them. The password never
// appears in the error.
func CheckLogin(ctx context.Context, registry, user, password string, o Options) error {
	reg, err := ParseRegistry(registry, o)
	if err != nil {
		return err
	}
	host := reg.RegistryStr()
	auth := authn.FromConfig(authn.AuthConfig{Username: user, Password: password})
	rt, err := transport.NewWithContext(ctx, reg, auth, o.transport(reg), []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return classify("login", registry, host, err)
	}
	schemes := []string{"https"}
	if reg.Scheme() == "http" {
		schemes = append(schemes, "http")
	}
	var last error
	for _, scheme := range schemes {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+"/v2/", nil)
		if err != nil {
			return fmt.Errorf("login %q: %w", registry, err)
		}
		resp, err := (&http.Client{Transport: rt}).Do(req)
		if err != nil {
			last = err
			continue
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		return classify("login", registry, host, &transport.Error{StatusCode: resp.StatusCode, Request: req})
	}
	return classify("login", registry, host, last)
}

// ConfigPath is the Docker client configuration file:
// $DOCKER_CONFIG/config.json, or ~/.docker/config.json.
func ConfigPath() (string, error) {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find docker config: %w", err)
	}
	return filepath.Join(home, ".docker", "config.json"), nil
}

// ConfigKey is the key of registry in config.json's "auths", as docker
// writes it: "host:port", or "https://index.docker.io/v1/" for Docker Hub.
func ConfigKey(reg name.Registry) string {
	if reg.RegistryStr() == name.DefaultRegistry {
		return dockerHubKey
	}
	return reg.RegistryStr()
}

// SaveLogin records user and password for key in the config file at path,
// as `docker login` does. When the file names a credential helper for the
// registry (credHelpers) or for all (credsStore), the credentials go to it
// (docker-credential-NAME store) and the file only gets an empty auths
// entry; otherwise auths[key].auth = base64(user:password). Other contents
// of the file are kept; the file is replaced atomically and is readable by
// its owner only.
func SaveLogin(ctx context.Context, path, key, user, password string) error {
	helper, err := credentialHelper(path, key)
	if err != nil {
		return err
	}
	if helper != "" {
		req, _ := json.Marshal(map[string]string{"ServerURL": key, "Username": user, "Secret": password})
		if _, err := runHelper(ctx, helper, "store", req); err != nil {
			return err
		}
	}
	return editConfig(path, func(auths map[string]json.RawMessage) bool {
		if helper != "" {
			auths[key] = json.RawMessage("{}")
			return true
		}
		entry, _ := json.Marshal(map[string]string{
			"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password)),
		})
		auths[key] = entry
		return true
	})
}

// RemoveLogin forgets the credentials for key in the config file at path,
// and in its credential helper when it names one. It reports whether there
// were any.
func RemoveLogin(ctx context.Context, path, key string) (bool, error) {
	helper, err := credentialHelper(path, key)
	if err != nil {
		return false, err
	}
	erased := false
	if helper != "" {
		out, err := runHelper(ctx, helper, "erase", []byte(key))
		switch {
		case err == nil:
			erased = true
		case !strings.Contains(string(out), "credentials not found"):
			return false, err
		}
	}
	found := false
	err = editConfig(path, func(auths map[string]json.RawMessage) bool {
		_, found = auths[key]
		delete(auths, key)
		return found
	})
	return found || erased, err
}

// credentialHelper is the name of the credential helper the config file at
// path names for key ("" for none): credHelpers[host], else credsStore.
func credentialHelper(path, key string) (string, error) {
	var cfg struct {
		CredsStore  string            `json:"credsStore"`
		CredHelpers map[string]string `json:"credHelpers"`
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read %s: %w", path, err)
	case len(bytes.TrimSpace(data)) == 0:
		return "", nil
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("parse %s: %w", path, err)
	}
	host := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	host, _, _ = strings.Cut(host, "/")
	for _, k := range []string{key, host} {
		if h := cfg.CredHelpers[k]; h != "" {
			return h, nil
		}
	}
	return cfg.CredsStore, nil
}

// runHelper runs docker-credential-NAME ACTION with input on its standard
// input, as Docker's credential helper protocol says, and returns what it
// printed. The input (which may hold a password) is never in the error.
func runHelper(ctx context.Context, name, action string, input []byte) ([]byte, error) {
	prog := "docker-credential-" + name
	cmd := exec.CommandContext(ctx, prog, action)
	cmd.Stdin = bytes.NewReader(input)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		return out.Bytes(), fmt.Errorf("%s credentials with %s: %s", action, prog, msg)
	}
	return out.Bytes(), nil
}

// editConfig lets edit change the "auths" of the config file at path and
// writes the file back if edit reports a change.
func editConfig(path string, edit func(map[string]json.RawMessage) bool) error {
	cfg := map[string]json.RawMessage{}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read %s: %w", path, err)
	case len(bytes.TrimSpace(data)) > 0:
		if err := json.Unmarshal(data, &cfg); err != nil {
			return fmt.Errorf("parse %s: %w", path, err)
		}
	}
	auths := map[string]json.RawMessage{}
	if raw, ok := cfg["auths"]; ok {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return fmt.Errorf("parse %s: auths: %w", path, err)
		}
	}
	if !edit(auths) {
		return nil
	}
	raw, err := json.Marshal(auths)
	if err != nil {
		return err
	}
	cfg["auths"] = raw
	out, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := writePrivate(path, append(out, '\n')); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writePrivate replaces path with data by renaming a fsynced 0600 temp file.
func writePrivate(path string, data []byte) error {
	return atomicfile.WriteFile(path, data, 0o600)
}
