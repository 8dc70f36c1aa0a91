package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mybuild/mybuild/internal/registry"
)

func TestTransferView(t *testing.T) {
	d1 := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("1", 64)}
	d2 := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("2", 64)}
	for _, mode := range []string{"plain", "tty"} {
		t.Run(mode, func(t *testing.T) {
			var buf bytes.Buffer
			r := newRenderer(mode, &buf)
			v := newTransferView("pull", mode, r.event)
			v.interval = 0 // every report is a line
			v.update(registry.Transfer{Digest: d1, Size: 3_000_000})
			v.update(registry.Transfer{Digest: d2, Size: 2_000})
			time.Sleep(10 * time.Millisecond)
			v.update(registry.Transfer{Digest: d1, Size: 3_000_000, Complete: 1_500_000})
			if mode == "tty" {
				// The live line of a running layer shows bytes and rate.
				r.mu.Lock()
				r.drawLocked()
				r.mu.Unlock()
				mustContain(t, "live view", buf.String(), "pull sha256:111111111111 (3.0 MB)  1.5 MB / 3.0 MB, ", "MB/s")
			}
			v.update(registry.Transfer{Digest: d1, Size: 3_000_000, Complete: 3_000_000, Done: true})
			v.update(registry.Transfer{Digest: d2, Size: 2_000, Complete: 1_000, Err: errors.New("digest mismatch")})
			r.close()
			out := buf.String()
			if mode == "plain" {
				mustContain(t, "plain output", out,
					"#1 pull sha256:111111111111 (3.0 MB)\n", "#2 pull sha256:222222222222 (2.0 kB)\n",
					"1.5 MB / 3.0 MB, ", "3.0 MB, ", "MB/s\n", "#1 DONE ", "#2 ERROR: after 1.0 kB: digest mismatch")
			} else {
				mustContain(t, "tty output", out, "[+] Building", "=> pull sha256:111111111111 (3.0 MB)", "=> ERROR pull sha256:222222222222")
			}
		})
	}
}

func TestPushTargets(t *testing.T) {
	t.Setenv("MYBUILD_CONFIG", filepath.Join(t.TempDir(), "none.json"))
	for _, tc := range []struct {
		name   string
		args   []string
		want   []string
		errMsg string
	}{
		{"no push", []string{"-t", "a"}, nil, ""},
		{"push tags", []string{"--push", "-t", "r:5000/a:1", "-t", "r:5000/b"}, []string{"r:5000/a:1", "r:5000/b"}, ""},
		{"push without tag", []string{"--push"}, nil, "--push needs at least one -t NAME"},
		{"registry output with name", []string{"--output", "type=registry,name=r:5000/x:2", "-t", "local"}, []string{"r:5000/x:2"}, ""},
		{"registry output with tags", []string{"--output", "type=registry", "-t", "r:5000/y"}, []string{"r:5000/y"}, ""},
		{"registry output without name", []string{"--output", "type=registry"}, nil, "--output type=registry needs name=REF or a -t NAME"},
		{"registry output bad name", []string{"--output", "type=registry,name=Bad Name"}, nil, `"Bad Name"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o buildOptions
			if err := buildFlags(&o).Parse(append(tc.args, ".")); err != nil {
				t.Fatal(err)
			}
			out, err := parseOutput(o.output)
			if err != nil {
				t.Fatal(err)
			}
			if err := out.check(); err != nil {
				t.Fatal(err)
			}
			got, err := pushTargets(&o, out)
			if tc.errMsg != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errMsg) {
					t.Errorf("error %v, want %q", err, tc.errMsg)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("pushTargets = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestInsecureRegistriesFromConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	t.Setenv("MYBUILD_CONFIG", path)
	if err := os.WriteFile(path, []byte(`{"insecure-registries": ["reg.example:5000"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var o buildOptions
	if err := buildFlags(&o).Parse([]string{"--insecure-registry", "other.example", "."}); err != nil {
		t.Fatal(err)
	}
	ro, err := o.registry.options()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ro.Insecure, " ") != "other.example reg.example:5000" {
		t.Errorf("insecure registries %q, want the flag's and the config file's", ro.Insecure)
	}
	r, err := registry.ParseReference("reg.example:5000/a:1", ro)
	if err != nil || r.Context().Registry.Scheme() != "http" {
		t.Errorf("reference to a configured insecure registry: %v, %v", r, err)
	}
	if err := os.WriteFile(path, []byte(`{`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := o.registry.options(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("malformed config: %v, want an error naming %s", err, path)
	}
}
