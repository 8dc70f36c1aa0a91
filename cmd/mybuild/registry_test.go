package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestPullPolicyFlag(t *testing.T) {
	for in, want := range map[string]pullPolicy{"missing": pullMissing, "always": pullAlways, "never": pullNever, "true": pullAlways, "false": pullMissing} {
		var p pullPolicy
		if err := p.Set(in); err != nil || p != want {
			t.Errorf("Set(%q) = %q, %v; want %q", in, p, err, want)
		}
	}
	var p pullPolicy
	if err := p.Set("sometimes"); err == nil || !strings.Contains(err.Error(), `"sometimes"`) {
		t.Errorf("Set(sometimes) = %v", err)
	}
	// --pull alone means always; default is missing.
	var o buildOptions
	fs := buildFlags(&o)
	if err := fs.Parse([]string{"--pull", "--platform", "linux/arm64", "--insecure-registry", "r:5000", "."}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MYBUILD_CONFIG", filepath.Join(t.TempDir(), "none.json"))
	ro, err := o.registry.options()
	if err != nil {
		t.Fatal(err)
	}
	if o.pull != pullAlways || o.registry.platform.String() != "linux/arm64" || ro.Insecure[0] != "r:5000" {
		t.Errorf("parsed %q %q %v", o.pull, o.registry.platform.String(), o.registry.insecure)
	}
	if err := buildFlags(&o).Parse([]string{"--platform", "linux"}); err == nil {
		t.Error("--platform linux accepted")
	}
}

func TestWriteMetadata(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.json")
	m := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}
	c := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}
	if err := writeMetadata(path, m, c, []string{"app", "127.0.0.1:5000/x:1"}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"containerimage.digest":        m.String(),
		"containerimage.config.digest": c.String(),
		"image.name":                   "docker.io/library/app:latest,127.0.0.1:5000/x:1",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("metadata (-want +got):\n%s", d)
	}
}

func TestReadPassword(t *testing.T) {
	for in, want := range map[string]string{"pw\n": "pw", "pw\r\n": "pw", "pw": "pw", "a b\nrest": "a b"} {
		if got, err := readPassword(strings.NewReader(in)); err != nil || got != want {
			t.Errorf("readPassword(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := readPassword(strings.NewReader("")); err == nil {
		t.Error("empty password accepted")
	}
}
