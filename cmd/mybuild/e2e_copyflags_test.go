package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestLinkIndependentOfParent: a change in the layer below a COPY --link
// does not rebuild it, and its layer (made on an empty root, with the
// destination's parents 0755 root) keeps its digest.
func TestLinkIndependentOfParent(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox\nCOPY base.txt /base.txt\nCOPY --link a.txt /opt/app/\nCOPY b.txt /b.txt\n",
		"base.txt":   "one\n",
		"a.txt":      "a\n",
		"b.txt":      "b\n",
	})
	_, ran, _ := e.buildPlain(ctx)
	if len(ran) != 3 {
		t.Fatalf("cold build ran %q, want 3 steps", ran)
	}
	first := lastLayers(t, e.image("cached:latest"), 1)
	want := []entry{
		{Path: "opt/", Type: "dir", Mode: "0755"},
		{Path: "opt/app/", Type: "dir", Mode: "0755"},
		{Path: "opt/app/a.txt", Type: "file", Mode: "0644", Size: 2, Digest: sha256hex([]byte("a\n"))[:12]},
	}
	if diff := cmp.Diff(want, layerEntries(t, first[1])); diff != "" {
		t.Errorf("--link layer (-want +got):\n%s", diff)
	}

	if err := os.WriteFile(filepath.Join(ctx, "base.txt"), []byte("two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, ran, _ = e.buildPlain(ctx)
	// The layer below changed: it and the step after the linked one run;
	// the linked COPY is cached.
	if diff := cmp.Diff([]string{"COPY b.txt /b.txt", "COPY base.txt /base.txt"}, ran); diff != "" {
		t.Errorf("rebuild: steps that ran (-want +got):\n%s", diff)
	}
	second := lastLayers(t, e.image("cached:latest"), 1)
	if d1, d2 := digestOf(t, first[1]), digestOf(t, second[1]); d1 != d2 {
		t.Errorf("--link layer digest changed: %s, then %s", d1, d2)
	}
	if b1, b2 := digestOf(t, first[0]), digestOf(t, second[0]); b1 == b2 {
		t.Errorf("the layer below did not change (%s)", b1)
	}

	// Without the cache the linked layer is the same too: it does not
	// depend on what is below it.
	_, ran, _ = e.buildPlain(ctx, "--no-cache")
	third := lastLayers(t, e.image("cached:latest"), 1)
	if len(ran) != 3 || digestOf(t, third[1]) != digestOf(t, first[1]) {
		t.Errorf("--no-cache: ran %q, --link layer %s, want 3 steps and %s", ran, digestOf(t, third[1]), digestOf(t, first[1]))
	}

	// The linked files are there on top of the rest.
	e.mustRun("build", "-t", "check", writeContext(t, map[string]string{
		"Dockerfile": "FROM cached\nRUN cat /opt/app/a.txt /base.txt /b.txt > /all\n",
	}))
	if got, _ := fileIn(t, e.image("check:latest"), "all"); got != "a\ntwo\nb\n" {
		t.Errorf("/all = %q", got)
	}
}

func digestOf(t *testing.T, l v1.Layer) v1.Hash {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fileServer serves files on loopback, counting the requests.
type fileServer struct {
	*httptest.Server
	hits  atomic.Int64
	files map[string]string
}

var lastModified = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func newFileServer(t *testing.T, files map[string]string) *fileServer {
	t.Helper()
	fs := &fileServer{files: files}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.hits.Add(1)
		body, ok := fs.files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/cd/") {
			w.Header().Set("Content-Disposition", `attachment; filename="other-name.bin"`)
		}
		w.Header().Set("Last-Modified", lastModified.Format(http.TimeFormat))
		io.WriteString(w, body)
	}))
	t.Cleanup(fs.Close)
	return fs
}

// tarHeaders are the tar headers of a layer, by path.
func tarHeaders(t *testing.T, l v1.Layer) map[string]*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}

// TestAddURL: ADD of an http URL, verified by --checksum (a wrong one
// fails on the ADD's line), named after the URL's path (not
// Content-Disposition), mode 0600 and the Last-Modified time, as BuildKit
// makes it; with a checksum a cached rebuild downloads nothing, without
// one the content decides the cache.
func TestAddURL(t *testing.T) {
	e := newEnv(t)
	srv := newFileServer(t, map[string]string{"/dl/tool.txt": "hello\n", "/cd/data": "data v1\n"})
	sum := "sha256:" + sha256hex([]byte("hello\n"))
	df := fmt.Sprintf("FROM busybox\nADD --checksum=%s %s/dl/tool.txt /opt/\nADD %s/cd/data?x=1 /data/\n", sum, srv.URL, srv.URL)
	ctx := writeContext(t, map[string]string{"Dockerfile": df})
	_, ran, _ := e.buildPlain(ctx)
	if len(ran) != 2 {
		t.Fatalf("cold build ran %q, want 2 steps", ran)
	}
	// The downloads lived in a temp dir of the store, gone with the build.
	if left, err := os.ReadDir(filepath.Join(e.root, "tmp")); err != nil || len(left) > 0 {
		t.Errorf("store temp dir after the build: %d entries, err %v", len(left), err)
	}
	ls := lastLayers(t, e.image("cached:latest"), 1)
	hs := tarHeaders(t, ls[0])
	h := hs["opt/tool.txt"]
	if h == nil {
		t.Fatalf("no opt/tool.txt in the layer: %v", hs)
	}
	if h.Mode&0o7777 != 0o600 || h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(lastModified) {
		t.Errorf("opt/tool.txt: mode %04o owner %d:%d mtime %s, want 0600 0:0 %s", h.Mode&0o7777, h.Uid, h.Gid, h.ModTime, lastModified)
	}
	if got, _ := fileIn(t, e.image("cached:latest"), "opt/tool.txt"); got != "hello\n" {
		t.Errorf("opt/tool.txt = %q", got)
	}
	if _, ok := tarHeaders(t, ls[1])["data/data"]; !ok {
		t.Errorf("second ADD: no data/data (named after the URL path): %v", tarHeaders(t, ls[1]))
	}

	// Cached rebuild: the checksummed URL is not downloaded again; the
	// other one is, to learn its content, which did not change.
	before := srv.hits.Load()
	_, ran, _ = e.buildPlain(ctx)
	if len(ran) != 0 {
		t.Errorf("rebuild ran %q, want all cached", ran)
	}
	if n := srv.hits.Load() - before; n != 1 {
		t.Errorf("rebuild made %d requests, want 1 (the URL without a checksum)", n)
	}

	// New content behind the URL without a checksum: that ADD runs again.
	srv.files["/cd/data"] = "data v2\n"
	_, ran, why := e.buildPlain(ctx)
	want := []string{"ADD " + srv.URL + "/cd/data?x=1 /data/"}
	if diff := cmp.Diff(want, ran); diff != "" {
		t.Errorf("after a content change: ran (-want +got):\n%s\n%v", diff, why)
	}

	// A wrong checksum fails on the ADD's line and names both digests.
	bad := "sha256:" + strings.Repeat("0", 64)
	ctx2 := writeContext(t, map[string]string{"Dockerfile": fmt.Sprintf("FROM busybox\n\nADD --checksum=%s %s/dl/tool.txt /opt/\n", bad, srv.URL)})
	stderr := e.mustFail("build", "--progress=plain", ctx2)
	for _, w := range []string{"Dockerfile:3", "checksum mismatch", sum, bad} {
		if !strings.Contains(stderr, w) {
			t.Errorf("wrong checksum: stderr lacks %q:\n%s", w, stderr)
		}
	}
	// So does a malformed one, before anything is downloaded.
	ctx3 := writeContext(t, map[string]string{"Dockerfile": fmt.Sprintf("FROM busybox\nADD --checksum=sha256:abc %s/dl/tool.txt /opt/\n", srv.URL)})
	if stderr := e.mustFail("build", ctx3); !strings.Contains(stderr, "Dockerfile:2") || !strings.Contains(stderr, "invalid checksum") {
		t.Errorf("malformed checksum: %s", stderr)
	}
	// And a missing file.
	ctx4 := writeContext(t, map[string]string{"Dockerfile": fmt.Sprintf("FROM busybox\nADD %s/nope /opt/\n", srv.URL)})
	if stderr := e.mustFail("build", ctx4); !strings.Contains(stderr, "Dockerfile:2") || !strings.Contains(stderr, "404") {
		t.Errorf("404: %s", stderr)
	}
}

// TestBuildContexts: --build-context directories, OCI layouts and images
// in FROM and COPY --from.
func TestBuildContexts(t *testing.T) {
	e := newEnv(t)
	assets := writeContext(t, map[string]string{"logo.txt": "logo\n", "sub/x.txt": "x\n"})
	rootfs := writeContext(t, map[string]string{"etc/motd": "hi\n"})

	// An OCI layout holding one image, tagged v1, whose layer has /marker.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "marker", Mode: 0o644, Size: 7, Typeflag: tar.TypeReg})
	tw.Write([]byte("marker\n"))
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Env: []string{"FROM_LAYOUT=1"}})
	if err != nil {
		t.Fatal(err)
	}
	lp, err := layout.Write(filepath.Join(t.TempDir(), "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}

	ctx := writeContext(t, map[string]string{"Dockerfile": `FROM rootfs AS files
FROM layered AS fromlayout
FROM alias
COPY --from=assets logo.txt /logo.txt
COPY --from=assets sub /sub/
COPY --from=files /etc/motd /motd
COPY --from=fromlayout /marker /marker
COPY --from=layered /marker /marker2
RUN --mount=type=bind,from=assets,target=/assets cat /assets/logo.txt > /mounted.txt
RUN --mount=type=bind,from=assets,source=sub,target=/sub2,rw echo rw > /sub2/new && cat /sub2/x.txt > /mounted-rw.txt
`})
	e.mustRun("build", "-t", "ctx",
		"--build-context", "assets="+assets,
		"--build-context", "rootfs="+rootfs,
		"--build-context", "layered=oci-layout://"+string(lp)+":v1",
		"--build-context", "alias=docker-image://busybox:latest",
		ctx)
	got := e.image("ctx:latest")
	for p, want := range map[string]string{"logo.txt": "logo\n", "sub/x.txt": "x\n", "motd": "hi\n", "marker": "marker\n", "marker2": "marker\n",
		"mounted.txt": "logo\n", "mounted-rw.txt": "x\n"} {
		if v, _ := fileIn(t, got, p); v != want {
			t.Errorf("/%s = %q, want %q", p, v, want)
		}
	}
	if _, ok := fileIn(t, got, "bin/busybox"); !ok {
		t.Errorf("FROM alias (docker-image://busybox) has no /bin/busybox")
	}
	if _, err := os.Stat(filepath.Join(assets, "sub", "new")); err == nil {
		t.Errorf("a rw bind mount of a named context wrote into it")
	}

	// A stage FROM the layout starts from its config.
	ctx2 := writeContext(t, map[string]string{"Dockerfile": "FROM layered\nCOPY --from=assets logo.txt /\n"})
	e.mustRun("build", "-t", "ctx2", "--build-context", "assets="+assets,
		"--build-context", "layered=oci-layout://"+string(lp)+":v1", ctx2)
	cf := configFile(t, e.image("ctx2:latest"))
	if !strings.Contains(strings.Join(cf.Config.Env, " "), "FROM_LAYOUT=1") {
		t.Errorf("FROM an OCI layout context: env %q lacks FROM_LAYOUT=1", cf.Config.Env)
	}

	// A context named like a stage replaces the stage, as in BuildKit: its
	// RUN never runs.
	ctx4 := writeContext(t, map[string]string{"Dockerfile": "FROM busybox AS base\nRUN exit 1\nFROM base\nCOPY --from=base /marker /copied\n"})
	e.mustRun("build", "-t", "ctx4", "--build-context", "base=oci-layout://"+string(lp)+":v1", ctx4)
	if v, _ := fileIn(t, e.image("ctx4:latest"), "copied"); v != "marker\n" {
		t.Errorf("stage replaced by a context: /copied = %q", v)
	}

	// Changing the directory context rebuilds the COPY that reads it.
	ctx3 := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY --from=assets logo.txt /\n"})
	_, ran, _ := e.buildPlain(ctx3, "--build-context", "assets="+assets)
	if len(ran) != 1 {
		t.Fatalf("ran %q", ran)
	}
	if _, ran, _ = e.buildPlain(ctx3, "--build-context", "assets="+assets); len(ran) != 0 {
		t.Errorf("unchanged context: ran %q, want all cached", ran)
	}
	os.WriteFile(filepath.Join(assets, "logo.txt"), []byte("new logo\n"), 0o644)
	if _, ran, _ = e.buildPlain(ctx3, "--build-context", "assets="+assets); len(ran) != 1 {
		t.Errorf("changed context: ran %q, want the COPY", ran)
	}

	// Errors: a bad value, a missing tag.
	if stderr := e.mustFail("build", "--build-context", "assets", ctx3); !strings.Contains(stderr, "--build-context") {
		t.Errorf("bad --build-context: %s", stderr)
	}
	if stderr := e.mustFail("build", "--build-context", "assets=oci-layout://"+string(lp)+":v2", ctx3); !strings.Contains(stderr, "Dockerfile:2") || !strings.Contains(stderr, "no image v2") {
		t.Errorf("missing layout tag: %s", stderr)
	}
}
