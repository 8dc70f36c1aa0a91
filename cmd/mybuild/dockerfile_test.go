package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mybuild/mybuild/executor/copier"
	"github.com/mybuild/mybuild/parser"
)

// TestReadDockerfileContained reads Dockerfiles that are symbolic links:
// followed inside the Dockerfile's directory, never to a host file out of
// it, whose content must not show in the error either; and one in a
// directory of the context that is a symbolic link, followed inside the
// context only.
func TestReadDockerfileContained(t *testing.T) {
	base := t.TempDir()
	host := filepath.Join(base, "host")
	if err := os.Mkdir(host, 0o700); err != nil {
		t.Fatal(err)
	}
	const secret = "SECRET-HOST-LINE"
	if err := os.WriteFile(filepath.Join(host, "Dockerfile"), []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, link string
		wantErr    string // "" when the Dockerfile must parse
	}{
		{"link inside the context", "real/Dockerfile.prod", ""},
		{"absolute link inside the context", "/real/Dockerfile.prod", ""},
		{"absolute link to a host file", filepath.Join(host, "Dockerfile"), "not found"},
		{"link climbing out", "$UP/Dockerfile", "not found"},
		{"directory link to the host", "hostdir/Dockerfile", "not found"},
		{"-f through a directory link to the host", "-f hostdir/Dockerfile", "not found"},
		{"-f in a directory of the context", "-f real/Dockerfile.prod", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := writeContext(t, map[string]string{
				"real/Dockerfile.prod": "FROM busybox\nRUN true\n",
				"hostdir":              "->" + host,
			})
			up, err := filepath.Rel(ctx, host) // ../../host, or so
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(ctx, "Dockerfile")
			if f, ok := strings.CutPrefix(tc.link, "-f "); ok {
				path = filepath.Join(ctx, f)
			} else if err := os.Symlink(strings.ReplaceAll(tc.link, "$UP", up), path); err != nil {
				t.Fatal(err)
			}
			df, err := loadDockerfile(t, ctx, path)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(df.Stages) != 1 {
					t.Errorf("parsed %d stages, want 1", len(df.Stages))
				}
				return
			}
			if err == nil {
				t.Fatalf("read the Dockerfile through %q, want an error", tc.link)
			}
			if !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), base) {
				t.Errorf("error %q: want %q, and neither the host file nor a host path", err, tc.wantErr)
			}
		})
	}
}

// loadDockerfile reads the Dockerfile at path for the context ctx, as a
// build does.
func loadDockerfile(t *testing.T, ctx, path string) (*parser.Dockerfile, error) {
	t.Helper()
	root, err := copier.OpenRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	dir, err := dockerfileDir(root, ctx, "Dockerfile", path)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return readDockerfile(&globals{}, "Dockerfile", dir, filepath.Base(path))
}
