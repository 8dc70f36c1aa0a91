package remotecontext

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tarGz is a gzipped tar of files (path → content, mode 0644).
func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFetchHTTP(t *testing.T) {
	archive := tarGz(t, map[string]string{"Dockerfile": "FROM scratch\n", "src/a.txt": "hello"})
	dockerfile := "FROM busybox\nRUN true\n"
	mux := http.NewServeMux()
	mux.HandleFunc("/ctx.tar.gz", func(w http.ResponseWriter, r *http.Request) { w.Write(archive) })
	mux.HandleFunc("/Dockerfile", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
		w.Write([]byte(dockerfile))
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		for range 4 {
			w.Write(bytes.Repeat([]byte("#"), 1000))
			w.(http.Flusher).Flush() // no Content-Length
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name    string
		path    string
		opts    Options
		errIs   error
		wantErr string
		check   func(t *testing.T, c *Context)
	}{
		{name: "archive", path: "/ctx.tar.gz", check: func(t *testing.T, c *Context) {
			wantFile(t, filepath.Join(c.Dir, "src/a.txt"), "hello")
			wantFile(t, filepath.Join(c.Dir, "Dockerfile"), "FROM scratch\n")
			if c.Dockerfile != "" {
				t.Errorf("Dockerfile = %q, want none for an archive", c.Dockerfile)
			}
		}},
		{name: "dockerfile", path: "/Dockerfile", check: func(t *testing.T, c *Context) {
			wantFile(t, c.Dockerfile, dockerfile)
			if ents, _ := os.ReadDir(c.Dir); len(ents) != 0 {
				t.Errorf("context of a Dockerfile URL has %d entries, want none", len(ents))
			}
		}},
		{name: "named keeps the file", path: "/ctx.tar.gz", opts: Options{Named: true}, check: func(t *testing.T, c *Context) {
			fi, err := os.Stat(filepath.Join(c.Dir, "context"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 || fi.Size() != int64(len(archive)) {
				t.Errorf("context file: mode %v size %d, want 0600 and %d", fi.Mode(), fi.Size(), len(archive))
			}
		}},
		{name: "not found", path: "/nope", wantErr: "invalid response status 404 Not Found"},
		{name: "download limit", path: "/ctx.tar.gz", opts: Options{MaxDownload: 10}, errIs: ErrTooLarge},
		{name: "download limit, chunked", path: "/chunked", opts: Options{MaxDownload: 3000}, errIs: ErrTooLarge},
		{name: "unpack limit", path: "/ctx.tar.gz", opts: Options{MaxUnpacked: 12}, errIs: ErrTooLarge},
		{name: "dockerfile limit", path: "/Dockerfile", opts: Options{MaxDockerfile: 5}, errIs: ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Fetch(context.Background(), srv.URL+tc.path, t.TempDir(), tc.opts)
			if tc.errIs != nil || tc.wantErr != "" {
				if err == nil || (tc.errIs != nil && !errors.Is(err, tc.errIs)) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Fetch: %v, want %v %q", err, tc.errIs, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func wantFile(t *testing.T, p, want string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("%s = %q, want %q", p, b, want)
	}
}
