package main

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestBuildOutputs(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY a.txt /a.txt\nCMD [\"cat\", \"/a.txt\"]\n", "a.txt": "a\n"})
	dir := t.TempDir()
	ociDir := filepath.Join(dir, "layout")
	e.mustRun("build", "-t", "out:1", "-o", "type=oci,dest="+ociDir, ctx)
	img := layoutImage(t, ociDir, "out:1")
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image of the OCI layout: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.root, "oci")); err == nil {
		if strings.Contains("\n"+e.mustRun("images").stdout, "\nout ") {
			t.Errorf("--output also wrote to the store")
		}
	}
	if _, err := exec.LookPath("skopeo"); err == nil {
		out, err := exec.Command("skopeo", "inspect", "--config", "oci:"+ociDir+":out:1").CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect: %v\n%s", err, out)
		}
		var cfg struct{ Config struct{ Cmd []string } }
		if err := json.Unmarshal(out, &cfg); err != nil || strings.Join(cfg.Config.Cmd, " ") != "cat /a.txt" {
			t.Errorf("skopeo sees config %s (err %v)", out, err)
		}
	} else {
		t.Log("skopeo not installed; skipping the skopeo check")
	}
	if _, err := exec.LookPath("umoci"); err == nil {
		out, err := exec.Command("umoci", "ls", "--layout", ociDir).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "out:1") {
			t.Errorf("umoci ls: %v\n%s", err, out)
		}
		out, err = exec.Command("umoci", "ls", "--layout", filepath.Join(e.root, "oci")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "busybox:latest") {
			t.Errorf("umoci ls of the store: %v\n%s", err, out)
		}
	}

	for _, format := range []string{"oci-archive", "docker-archive"} {
		t.Run(format, func(t *testing.T) {
			tarPath := filepath.Join(dir, format+".tar")
			e.mustRun("build", "-t", "arch:"+format, "-o", "type="+format+",dest="+tarPath, ctx)
			other := &env{t: t, root: t.TempDir()}
			other.mustRun("load", "-i", tarPath)
			img := other.image("arch:" + format)
			if err := validate.Image(img); err != nil {
				t.Fatalf("validate.Image after load: %v", err)
			}
			if cmd := configFile(t, img).Config.Cmd; strings.Join(cmd, " ") != "cat /a.txt" {
				t.Errorf("loaded image Cmd = %q", cmd)
			}
		})
	}
}

func TestStoreCommands(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nCOPY a.txt /a.txt\nENV A=1\n", "a.txt": "a\n"})
	// -f - reads the Dockerfile from stdin; no subcommand means build.
	r := e.runIn(e.root, strings.NewReader("FROM busybox\nCOPY a.txt /a.txt\nENV A=1\n"), "-f", "-", "-t", "app:v1", ctx)
	if r.err != nil {
		t.Fatalf("build from stdin: %v\n%s", r.err, r.stderr)
	}
	images := e.mustRun("images").stdout
	for _, w := range []string{"REPOSITORY", "app", "v1", "busybox", "latest"} {
		if !strings.Contains(images, w) {
			t.Errorf("images output lacks %q:\n%s", w, images)
		}
	}
	hist := e.mustRun("history", "app:v1").stdout
	for _, w := range []string{"ENV A=1", "COPY a.txt /a.txt"} {
		if !strings.Contains(hist, w) {
			t.Errorf("history lacks %q:\n%s", w, hist)
		}
	}
	var inspect []map[string]any
	if err := json.Unmarshal([]byte(e.mustRun("inspect", "app:v1").stdout), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("inspect output is not a one-element JSON array: %v", err)
	}
	e.mustRun("tag", "app:v1", "app:v2")
	if cf := configFile(t, e.image("app:v2")); len(cf.Config.Env) == 0 {
		t.Errorf("tagged image has no env")
	}
	save := filepath.Join(t.TempDir(), "app.tar")
	e.mustRun("save", "app:v2", "-o", save)
	e.mustRun("rmi", "app:v2")
	if strings.Contains(e.mustRun("images").stdout, "v2") {
		t.Errorf("rmi left the tag")
	}
	e.mustFail("inspect", "app:v2")
	e.mustRun("load", "-i", save)
	e.image("app:v2")
	_ = ctx
}

// TestBuildOutputFiles: type=local (and the -o DIR shorthand) writes the
// target stage's files, whiteouts applied, the way `docker build -o`
// exports build artifacts; type=tar (and -o -) writes them as one tar, to
// a file or standard output, which then carries nothing else. No image is
// stored.
func TestBuildOutputFiles(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": `FROM busybox AS build
RUN mkdir -p /out/sub && echo bin > /out/app && chmod 755 /out/app && echo gone > /out/tmp && ln -s app /out/sub/link
RUN rm /out/tmp
FROM scratch
COPY --from=build /out/ /
`})
	check := func(dir string) {
		t.Helper()
		if b, err := os.ReadFile(filepath.Join(dir, "app")); err != nil || string(b) != "bin\n" {
			t.Errorf("app = %q, %v", b, err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "app")); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("app mode: %v, %v", fi, err)
		}
		if l, err := os.Readlink(filepath.Join(dir, "sub", "link")); err != nil || l != "app" {
			t.Errorf("sub/link -> %q, %v", l, err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "tmp")); !os.IsNotExist(err) {
			t.Errorf("a file removed in the build was exported: %v", err)
		}
	}
	local := filepath.Join(t.TempDir(), "local")
	r := e.mustRun("build", "-o", "type=local,dest="+local, ctx)
	check(local)
	short := filepath.Join(t.TempDir(), "short")
	e.mustRun("build", "-o", short, ctx)
	check(short)

	// The files of the build stage, a whole root (busybox and all),
	// including the whiteout of /out/tmp, as a tar on stdout.
	r = e.mustRun("build", "--target", "build", "-o", "-", ctx)
	tr := tar.NewReader(strings.NewReader(r.stdout))
	seen := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("stdout is not just a tar: %v", err)
		}
		seen[strings.TrimPrefix(hdr.Name, "/")] = true
	}
	if !seen["out/app"] || !seen["bin/busybox"] || seen["out/tmp"] || seen["out/.wh.tmp"] {
		t.Errorf("tar on stdout: out/app %v, bin/busybox %v, out/tmp %v", seen["out/app"], seen["bin/busybox"], seen["out/tmp"])
	}
	tarFile := filepath.Join(t.TempDir(), "fs.tar")
	e.mustRun("build", "-o", "type=tar,dest="+tarFile, ctx)
	untar := t.TempDir()
	if out, err := exec.Command("tar", "-xf", tarFile, "-C", untar).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, out)
	}
	check(untar)
	if out := e.mustRun("images").stdout; strings.Count(out, "\n") > 2 { // header + busybox
		t.Errorf("file outputs stored an image:\n%s", out)
	}
}

// TestBuildQuiet: -q prints the image ID alone, nothing on stderr; a failure
// still says which step failed and what it printed.
func TestBuildQuiet(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo noisy\n"})
	r := e.mustRun("build", "-q", "-t", "quiet", ctx)
	if r.stderr != "" || !strings.HasPrefix(r.stdout, "sha256:") || strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("-q: stdout %q, stderr %q; want the image ID alone", r.stdout, r.stderr)
	}
	if id := strings.TrimSpace(r.stdout); len(id) == 71 && !strings.Contains(e.mustRun("images").stdout, id[7:19]) {
		t.Errorf("the printed ID %s is not the stored image's", id)
	}
	bad := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN echo the-tail; exit 4\n"})
	msg := e.mustFail("build", "-q", bad)
	mustContain(t, "-q failure", msg, "Dockerfile:2", "exit code 4", "the-tail")
}
