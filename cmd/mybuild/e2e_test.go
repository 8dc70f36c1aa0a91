package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// baseLayers is the number of layers of the busybox base image.
const baseLayers = 1

func TestBuildConfigAndHistory(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{
		"Dockerfile": `FROM busybox
LABEL maintainer.team=core version="1.0"
ENV APP_HOME=/srv/app PATH=/srv/app/bin:$PATH
WORKDIR $APP_HOME
USER app:app
WORKDIR logs
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGQUIT
SHELL ["/bin/sh", "-ec"]
HEALTHCHECK --interval=30s --timeout=5s --retries=2 CMD wget -q localhost:8080
ONBUILD COPY . /src
ENTRYPOINT ["/bin/echo"]
CMD ["hello"]
`,
	})
	e.mustRun("build", "-t", "meta", "--label", "extra=yes", ctx)
	img := e.image("meta:latest")
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	c := configFile(t, img).Config
	want := v1.Config{
		Env:          []string{"PATH=/srv/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "APP_HOME=/srv/app"},
		WorkingDir:   "/srv/app/logs",
		User:         "app:app",
		ExposedPorts: map[string]struct{}{"8080/tcp": {}, "53/udp": {}},
		Volumes:      map[string]struct{}{"/data": {}},
		StopSignal:   "SIGQUIT",
		Shell:        []string{"/bin/sh", "-ec"},
		Healthcheck: &v1.HealthConfig{
			Test:     []string{"CMD-SHELL", "wget -q localhost:8080"},
			Interval: 30 * time.Second,
			Timeout:  5 * time.Second,
			Retries:  2,
		},
		OnBuild:    []string{"COPY . /src"},
		Entrypoint: []string{"/bin/echo"},
		Cmd:        []string{"hello"},
		Labels:     map[string]string{"maintainer.team": "core", "version": "1.0", "extra": "yes"},
		// BuildKit sets it with every CMD/ENTRYPOINT, for Docker's sake.
		ArgsEscaped: true,
	}
	// Env order: PATH is inherited from the base (first), APP_HOME new.
	ignoreOrder := cmp.Transformer("sortEnv", func(in []string) []string { return in })
	if diff := cmp.Diff(want, c, ignoreOrder); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	cf := configFile(t, img)
	var got []string
	for _, h := range cf.History[baseLayers+1:] { // the base's COPY and CMD
		got = append(got, h.CreatedBy)
	}
	wantHist := []string{
		`LABEL maintainer.team=core version=1.0`,
		`ENV APP_HOME=/srv/app PATH=/srv/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
		`WORKDIR /srv/app`,
		`USER app:app`,
		`WORKDIR /srv/app/logs`,
		`EXPOSE [53/udp 8080/tcp]`,
		`VOLUME [/data]`,
		`STOPSIGNAL SIGQUIT`,
		`SHELL [/bin/sh -ec]`,
	}
	if len(got) < len(wantHist) {
		t.Fatalf("history too short: %q", got)
	}
	if diff := cmp.Diff(wantHist, got[:len(wantHist)]); diff != "" {
		t.Errorf("history created_by (-want +got):\n%s", diff)
	}
	// Each WORKDIR created its directory: one layer each. The second comes
	// after USER, so the new directory is the user's, as BuildKit makes it.
	ls := lastLayers(t, img, baseLayers)
	if len(ls) != 2 {
		t.Fatalf("got %d new layers, want 2 (WORKDIR, WORKDIR)", len(ls))
	}
	wantEntries := [][]entry{{
		{Path: "srv/", Type: "dir", Mode: "0755"},
		{Path: "srv/app/", Type: "dir", Mode: "0755"},
	}, {
		{Path: "srv/", Type: "dir", Mode: "0755"},
		{Path: "srv/app/", Type: "dir", Mode: "0755"},
		{Path: "srv/app/logs/", Type: "dir", Mode: "0755", UID: 1000, GID: 1000},
	}}
	for i, l := range ls {
		if diff := cmp.Diff(wantEntries[i], layerEntries(t, l)); diff != "" {
			t.Errorf("WORKDIR layer %d (-want +got):\n%s", i, diff)
		}
	}
	for _, h := range cf.History {
		if h.Comment != "" && h.Comment != "buildkit.dockerfile.v0" {
			t.Errorf("history comment %q", h.Comment)
		}
	}
}

// copySemanticsFiles is the build context of TestBuildCopySemantics.
var copySemanticsFiles = map[string]string{
	"Dockerfile": `FROM busybox
COPY a.txt /one
COPY a.txt b.txt /many/
COPY dir /contents/
COPY --chown=app:staff --chmod=0640 a.txt /owned/
COPY *.md /docs/
COPY link-to-a /followed
COPY dir/ /tree
`,
	"a.txt":         "alpha\n",
	"b.txt":         "beta\n",
	"dir/sub/c.txt": "gamma\n",
	"dir/rel-link":  "->sub/c.txt",
	"x.md":          "# x\n",
	"y.md":          "# y\n",
	"link-to-a":     "->a.txt",
	"ignored.md":    "should not be copied\n",
	".dockerignore": "ignored.md\n",
}

func TestBuildCopySemantics(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, copySemanticsFiles)
	e.mustRun("build", "-t", "copies", ctx)
	img := e.image("copies:latest")
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	ls := lastLayers(t, img, baseLayers)
	var got [][]string
	for _, l := range ls {
		var s []string
		for _, en := range layerEntries(t, l) {
			s = append(s, en.String())
		}
		got = append(got, s)
	}
	sum := func(s string) string { return sha12(s) }
	want := [][]string{
		{"file 0644 one 0:0 6 " + sum("alpha\n") + " "},
		{"dir 0755 many/ 0:0 0  ", "file 0644 many/a.txt 0:0 6 " + sum("alpha\n") + " ", "file 0644 many/b.txt 0:0 5 " + sum("beta\n") + " "},
		{"dir 0755 contents/ 0:0 0  ", "symlink 0777 contents/rel-link 0:0 0  sub/c.txt", "dir 0755 contents/sub/ 0:0 0  ", "file 0644 contents/sub/c.txt 0:0 6 " + sum("gamma\n") + " "},
		// BuildKit applies an octal --chmod to the directories it creates too.
		{"dir 0640 owned/ 1000:50 0  ", "file 0640 owned/a.txt 1000:50 6 " + sum("alpha\n") + " "},
		{"dir 0755 docs/ 0:0 0  ", "file 0644 docs/x.md 0:0 4 " + sum("# x\n") + " ", "file 0644 docs/y.md 0:0 4 " + sum("# y\n") + " "},
		{"file 0644 followed 0:0 6 " + sum("alpha\n") + " "},
		{"dir 0755 tree/ 0:0 0  ", "symlink 0777 tree/rel-link 0:0 0  sub/c.txt", "dir 0755 tree/sub/ 0:0 0  ", "file 0644 tree/sub/c.txt 0:0 6 " + sum("gamma\n") + " "},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layers (-want +got):\n%s", diff)
	}
	hist := configFile(t, img).History
	if last := hist[len(hist)-1].CreatedBy; last != "COPY dir/ /tree # buildkit" {
		t.Errorf("last created_by = %q", last)
	}
}

func TestBuildAddArchive(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nADD files.tar.gz /opt/\nADD plain.txt /opt/plain.txt\n", "plain.txt": "p\n"})
	makeTarGz(t, filepath.Join(ctx, "files.tar.gz"), map[string]string{"pkg/bin/tool": "#!/bin/sh\n", "pkg/README": "readme\n"})
	e.mustRun("build", "-t", "add", ctx)
	ls := lastLayers(t, e.image("add:latest"), baseLayers)
	var paths []string
	for _, en := range layerEntries(t, ls[0]) {
		paths = append(paths, en.Path)
	}
	want := []string{"opt/", "opt/pkg/", "opt/pkg/README", "opt/pkg/bin/", "opt/pkg/bin/tool"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("ADD archive layer (-want +got):\n%s", diff)
	}
}

func TestBuildMultiStageTarget(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{
		"Dockerfile": `ARG VERSION=1.2
FROM busybox AS Builder
ARG VERSION
COPY src/ /build/
ENV BUILT=$VERSION

FROM busybox AS unused
COPY does-not-exist /x

FROM scratch AS final
COPY --from=builder /build/main.txt /main.txt
COPY --from=0 /bin/busybox /busybox

FROM final AS extra
LABEL extra=1
`,
		"src/main.txt": "main\n",
	})
	e.mustRun("build", "-t", "ms", "--target", "FINAL", "--build-arg", "VERSION=2.0", ctx)
	img := e.image("ms:latest")
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	ls, _ := img.Layers()
	if len(ls) != 2 {
		t.Fatalf("got %d layers, want 2", len(ls))
	}
	en := layerEntries(t, ls[0])
	if len(en) != 1 || en[0].Path != "main.txt" || en[0].Digest != sha12("main\n") {
		t.Errorf("first layer = %v", en)
	}
	if l := configFile(t, img).Config.Labels; l["extra"] != "" {
		t.Errorf("stage after the target was built: labels %v", l)
	}
	stderr := e.mustFail("build", "--target", "nope", ctx)
	if !strings.Contains(stderr, "nope") {
		t.Errorf("unknown target error does not name it: %s", stderr)
	}
}

func TestBuildOnbuildFromStage(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox AS base\nONBUILD COPY a.txt /from-trigger.txt\n\nFROM base\nLABEL child=1\n",
		"a.txt":      "a\n",
	})
	e.mustRun("build", "-t", "onb", ctx)
	img := e.image("onb:latest")
	ls := lastLayers(t, img, baseLayers)
	if len(ls) != 1 {
		t.Fatalf("got %d layers after the base, want 1 (the trigger's COPY)", len(ls))
	}
	if en := layerEntries(t, ls[0]); len(en) != 1 || en[0].Path != "from-trigger.txt" {
		t.Errorf("trigger layer = %v", en)
	}
	if ob := configFile(t, img).Config.OnBuild; len(ob) != 0 {
		t.Errorf("child image keeps the triggers: %q", ob)
	}
}

func TestBuildReproducible(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox\nWORKDIR /app/data\nCOPY . /app/\nCOPY a.txt /etc/\nENV X=1\n",
		"a.txt":      "a\n",
		"d/b.txt":    "b\n",
	})
	digest := func(extraEnv ...string) (string, []string) {
		iid := filepath.Join(t.TempDir(), "iid")
		out := filepath.Join(t.TempDir(), "oci")
		args := []string{"--root", e.root, "build", "--iidfile", iid, "-o", "type=oci,dest=" + out, ctx}
		r := runWithEnv(t, extraEnv, args...)
		if r.err != nil {
			t.Fatalf("build: %v\n%s", r.err, r.stderr)
		}
		img := layoutImage(t, out, "")
		d, _ := img.Digest()
		ls, _ := img.Layers()
		var lds []string
		for _, l := range ls {
			ld, _ := l.Digest()
			lds = append(lds, ld.String())
		}
		b, _ := os.ReadFile(iid)
		if !strings.HasPrefix(string(b), "sha256:") {
			t.Errorf("iidfile holds %q", b)
		}
		return d.String(), lds
	}
	d1, l1 := digest("SOURCE_DATE_EPOCH=1700000000")
	time.Sleep(1100 * time.Millisecond)
	d2, l2 := digest("SOURCE_DATE_EPOCH=1700000000")
	if d1 != d2 {
		t.Errorf("image digests differ with SOURCE_DATE_EPOCH: %s vs %s", d1, d2)
	}
	if diff := cmp.Diff(l1, l2); diff != "" {
		t.Errorf("layer digests differ with SOURCE_DATE_EPOCH:\n%s", diff)
	}
	_, l3 := digest()
	time.Sleep(1100 * time.Millisecond)
	_, l4 := digest()
	if diff := cmp.Diff(l3, l4); diff != "" {
		t.Errorf("layer digests differ between two plain builds:\n%s", diff)
	}
}

func sha12(s string) string {
	return sha256hex([]byte(s))[:12]
}
