package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// fileIn returns the content of path as the image's top-most layer holding
// it has it ("" and false when no layer does).
func fileIn(t *testing.T, img v1.Image, path string) (string, bool) {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i := len(ls) - 1; i >= 0; i-- {
		rc, err := ls[i].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name == path {
				b, err := io.ReadAll(tr)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				return string(b), true
			}
		}
		rc.Close()
	}
	return "", false
}

func TestRunEnvUserWorkdir(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": `FROM busybox
ARG FLAVOR=plain
ENV GREETING=hello
WORKDIR /work
RUN echo "$GREETING $FLAVOR $(pwd) $(id -u):$(id -g)" > /work/root.txt
USER app
RUN id > /tmp/id.txt && touch /tmp/owned-by-app
USER root
RUN ["/bin/sh", "-c", "echo exec form > /exec.txt"]
RUN <<EOT
#!/bin/sh
echo "script $GREETING" > /script.txt
EOT
RUN cat <<EOT > /heredoc.txt
hi $GREETING
EOT
`})
	e.mustRun("build", "-t", "runs", "--build-arg", "FLAVOR=mint", ctx)
	img := e.image("runs:latest")
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	for path, want := range map[string]string{
		"work/root.txt": "hello mint /work 0:0\n",
		// Supplementary groups come from /etc/group membership, with the
		// primary group, as BuildKit lists them.
		"tmp/id.txt":  "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)\n",
		"exec.txt":    "exec form\n",
		"script.txt":  "script hello\n",
		"heredoc.txt": "hi hello\n",
	} {
		if got, ok := fileIn(t, img, path); !ok || got != want {
			t.Errorf("%s = %q (found %v), want %q", path, got, ok, want)
		}
	}
	var owned []entry
	for _, l := range lastLayers(t, img, baseLayers) {
		for _, en := range layerEntries(t, l) {
			if en.Path == "tmp/owned-by-app" {
				owned = append(owned, en)
			}
		}
	}
	if len(owned) != 1 || owned[0].UID != 1000 || owned[0].GID != 1000 {
		t.Errorf("file created by USER app: %v", owned)
	}
	hist := configFile(t, img).History
	var runs []string
	for _, h := range hist {
		if strings.HasPrefix(h.CreatedBy, "RUN ") {
			runs = append(runs, h.CreatedBy)
		}
	}
	if len(runs) == 0 || runs[0] != `RUN |1 FLAVOR=mint /bin/sh -c echo "$GREETING $FLAVOR $(pwd) $(id -u):$(id -g)" > /work/root.txt # buildkit` {
		t.Errorf("RUN history = %q", runs)
	}
	if env := configFile(t, img).Config.Env; strings.Contains(strings.Join(env, " "), "FLAVOR") {
		t.Errorf("build arg leaked into the image env: %q", env)
	}
}

// TestRunLayers checks what RUN steps' layers hold, entry by entry:
// whiteouts of each kind, metadata-only changes, hard links to files of
// lower layers, nothing for files only copied up, and nothing of the
// sandbox's own mount points.
func TestRunLayers(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{
		"Dockerfile": `FROM busybox
COPY tree/ /t/
RUN touch -d @1000 /new.txt
RUN rm /t/file.txt && rm -r /t/dir
RUN chmod 0600 /t/keep.txt
RUN chown 1000:1000 /t/owned.txt
RUN rm /t/f2d.txt && mkdir /t/f2d.txt
RUN rm /t/link && mkdir /t/link
RUN ln /t/keep.txt /t/hard1 && ln /t/keep.txt /t/hard2
RUN rm -rf /t/sub && mkdir -p /t/sub/deep && echo n > /t/sub/new.txt
RUN chown 0:0 /t/untouched.md && chmod 0644 /t/untouched.md
RUN true
`,
		"tree/file.txt":     "f\n",
		"tree/dir/a":        "a\n",
		"tree/keep.txt":     "k\n",
		"tree/owned.txt":    "o\n",
		"tree/f2d.txt":      "x\n",
		"tree/link":         "->keep.txt",
		"tree/untouched.md": "u\n",
		"tree/sub/old.txt":  "o\n",
		"tree/sub/deep/x":   "x\n",
		"tree/sub/gone/y":   "y\n",
	})
	e.mustRun("build", "-t", "layers", ctx)
	img := e.image("layers:latest")
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	ls := lastLayers(t, img, baseLayers+1) // after the base and the COPY
	var got [][]string
	for _, l := range ls {
		var s []string
		for _, en := range layerEntries(t, l) {
			s = append(s, en.Type+" "+en.Mode+" "+en.Path+" "+en.Link)
		}
		got = append(got, s)
	}
	want := [][]string{
		{"file 0644 new.txt "},
		{"dir 0755 t/ ", "file 0000 t/.wh.dir ", "file 0000 t/.wh.file.txt "},
		{"dir 0755 t/ ", "file 0600 t/keep.txt "},
		{"dir 0755 t/ ", "file 0644 t/owned.txt "},
		{"dir 0755 t/ ", "dir 0755 t/f2d.txt/ "},
		{"dir 0755 t/ ", "dir 0755 t/link/ "},
		// keep.txt, of a lower layer, is only copied up: as with BuildKit
		// the layer holds the new names alone, the first a full copy.
		{"dir 0755 t/ ", "file 0600 t/hard1 ", "hardlink 0600 t/hard2 t/hard1"},
		// A deleted then recreated directory: one whiteout per entry it
		// hid, at every level, as BuildKit writes it (no opaque marker).
		{"dir 0755 t/ ", "dir 0755 t/sub/ ", "file 0000 t/sub/.wh.gone ", "file 0000 t/sub/.wh.old.txt ",
			"dir 0755 t/sub/deep/ ", "file 0000 t/sub/deep/.wh.x ", "file 0644 t/sub/new.txt "},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RUN layers (-want +got):\n%s", diff)
	}
	hist := configFile(t, img).History
	// chown and chmod to what the file had copy it up and change nothing.
	for i, cmd := range []string{"chown 0:0 /t/untouched.md && chmod 0644 /t/untouched.md", "true"} {
		h := hist[len(hist)-2+i]
		if !h.EmptyLayer || h.CreatedBy != "RUN /bin/sh -c "+cmd+" # buildkit" {
			t.Errorf("RUN %s history = %+v, want an empty_layer entry", cmd, h)
		}
	}
}

// TestRunSandbox checks the security boundary of RUN.
func TestRunSandbox(t *testing.T) {
	e := newEnv(t)
	marker := filepath.Join(t.TempDir(), "host-marker")
	if err := os.WriteFile(marker, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := writeContext(t, map[string]string{
		"a.txt": "a\n",
		"Dockerfile": `FROM busybox
RUN ln -s / /escape && ln -s /etc /etc-link
RUN { test -e ` + marker + ` && echo visible || echo hidden; } > /marker.txt
RUN { mount -t tmpfs none /mnt 2>/dev/null && echo mounted || echo no-mount; } > /mount.txt
RUN { echo 1 > /proc/sys/kernel/hostname 2>/dev/null && echo wrote || echo ro; } > /procsys.txt
RUN { ls /dev | grep -E '^(sd|vd|nvme|loop|dm-)' || echo none; } > /blockdevs.txt
RUN { echo "$$ $PPID $(hostname)"; } > /pid.txt
RUN sleep 1000.7311 & echo started
RUN { grep CapEff /proc/self/status; } > /caps.txt
RUN { ls /escape/ | grep -c host-marker || true; ls /escape` + filepath.Dir(marker) + ` 2>&1 | head -1; } > /escape.txt
COPY a.txt /escape/tmp/through-link.txt
COPY a.txt /etc-link/through-etc-link.txt
RUN --network=none { ls /sys/class/net; } > /net.txt
`,
	})
	e.mustRun("build", "-t", "sandboxed", ctx)
	img := e.image("sandboxed:latest")
	for path, want := range map[string]string{
		"marker.txt":    "hidden\n",
		"mount.txt":     "no-mount\n",
		"procsys.txt":   "ro\n",
		"blockdevs.txt": "none\n",
		"caps.txt":      "CapEff:\t00000000a80425fb\n",
		"net.txt":       "lo\n",
	} {
		if got, _ := fileIn(t, img, path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	// The RUN's shell is pid 1 of its namespace, as under runc: no
	// process of the builder is inside.
	if got, _ := fileIn(t, img, "pid.txt"); !strings.HasPrefix(got, "1 0 ") {
		t.Errorf("RUN's shell is not pid 1 of its namespace: %q", got)
	} else if got != "1 0 buildkitsandbox\n" {
		t.Errorf("RUN's hostname is not BuildKit's buildkitsandbox: %q", got)
	}
	if got, _ := fileIn(t, img, "escape.txt"); !strings.HasPrefix(got, "0\n") || !strings.Contains(got, "No such file") {
		t.Errorf("a symlink to / reached the host: %q", got)
	}
	if _, ok := fileIn(t, img, "tmp/through-link.txt"); !ok {
		t.Errorf("COPY through a symlink to / did not land inside the image root")
	}
	if _, ok := fileIn(t, img, "etc/through-etc-link.txt"); !ok {
		t.Errorf("COPY through /etc-link did not land in the image's /etc")
	}
	if _, err := os.Stat("/tmp/through-link.txt"); err == nil {
		t.Errorf("COPY wrote to the host's /tmp")
	}
	if b, _ := os.ReadFile(marker); string(b) != "secret" {
		t.Errorf("host marker changed")
	}
	// The backgrounded sleep died with its step.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.HasPrefix(string(b), "sleep\x001000.7311") {
			t.Errorf("a RUN's background process is still running: %s", p)
		}
	}
	// No /etc/hosts, /etc/resolv.conf or /etc/hostname in any layer.
	for _, l := range lastLayers(t, img, baseLayers) {
		entries := layerEntries(t, l)
		for _, en := range entries {
			if en.Path == "etc/" && len(entries) == 2 && entries[1].Path == "etc/through-etc-link.txt" {
				continue // the COPY into /etc
			}
			switch en.Path {
			case "etc/hosts", "etc/resolv.conf", "etc/hostname", "proc/", "sys/", "dev/", "etc/":
				t.Errorf("sandbox mount point %s left in a layer", en.Path)
			}
		}
	}
}

// TestRunAddHost: --add-host entries follow BuildKit's /etc/hosts lines in
// every RUN, are part of the RUN's cache key, and never reach a layer.
func TestRunAddHost(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN cat /etc/hosts > /hosts.txt\n"})
	e.mustRun("build", "-t", "hosts", "--add-host", "db:10.0.0.7", "--add-host", "v6=fd00::1", ctx)
	img := e.image("hosts:latest")
	wantFiles(t, img, map[string]string{"hosts.txt": "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"10.0.0.7\tdb\nfd00::1\tv6\n"})
	for _, l := range lastLayers(t, img, 1) {
		for _, ent := range layerEntries(t, l) {
			if strings.HasPrefix(ent.Path, "etc/") {
				t.Errorf("layer has %s", ent.Path)
			}
		}
	}
	r := e.mustRun("build", "--progress=plain", "-t", "hosts2", ctx)
	if strings.Contains(r.stderr, "#2 CACHED") {
		t.Errorf("a RUN without --add-host reused the result made with it:\n%s", r.stderr)
	}
	wantFiles(t, e.image("hosts2:latest"), map[string]string{"hosts.txt": "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n"})
	for _, bad := range []string{"db", "db:nope", ":1.2.3.4", "gw:host-gateway"} {
		msg := e.mustFail("build", "--add-host", bad, ctx)
		mustContain(t, "--add-host "+bad, msg, "--add-host")
	}
}
