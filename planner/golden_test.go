package planner

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mybuild/mybuild/parser"
)

var update = flag.Bool("update", false, "rewrite testdata/plan/*.golden")

const goldenDir = "../testdata/plan"

// TestGolden plans every testdata/plan/NAME.Dockerfile and compares a text
// rendering of the plan with NAME.golden. Options come from comment lines
// "# plan: target=NAME", "# plan: platform=OS/ARCH", "# plan: build-arg=K=V",
// "# plan: context=NAME" (a --build-context directory), "# plan:
// image-context=NAME=REF" (a --build-context image: fakeBases' REF);
// base images from fakeBases.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 15 {
		t.Errorf("found %d golden cases, want at least 15", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".Dockerfile")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			df, err := parser.Parse(bytes.NewReader(data), "Dockerfile")
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			opts := optionsFrom(t, string(data))
			refs, err := BaseRefs(df, opts)
			if err != nil {
				t.Fatalf("BaseRefs: %v", err)
			}
			plan, err := New(df, opts)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			checkPlan(t, plan)
			got := renderRefs(refs) + renderPlan(plan)

			// Planning is deterministic.
			again, err := New(df, opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, renderRefs(refs)+renderPlan(again)); diff != "" {
				t.Fatalf("second plan differs (-first +second):\n%s", diff)
			}

			golden := filepath.Join(goldenDir, name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./planner -update)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("plan mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// checkPlan asserts the invariants every plan keeps.
func checkPlan(t *testing.T, p *Plan) {
	t.Helper()
	if len(p.Stages) == 0 || p.Target != p.Stages[len(p.Stages)-1] {
		t.Fatalf("target is not the last stage")
	}
	done := map[int]bool{}
	for _, st := range p.Stages {
		for _, d := range st.Deps {
			if !done[d] {
				t.Errorf("stage %d depends on stage %d, which is not planned before it", st.Index, d)
			}
		}
		done[st.Index] = true
		for _, step := range st.Steps {
			if step.Comment != historyComment {
				t.Errorf("stage %d %s: comment %q", st.Index, step.Instruction, step.Comment)
			}
			if step.NoHistory != (step.CreatedBy == "") {
				t.Errorf("stage %d %s: NoHistory=%v with created_by %q", st.Index, step.Instruction, step.NoHistory, step.CreatedBy)
			}
		}
	}
}

func optionsFrom(t *testing.T, data string) Options {
	opts := Options{Bases: fakeBases()}
	for _, line := range strings.Split(data, "\n") {
		rest, ok := strings.CutPrefix(line, "# plan: ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(rest, "=")
		switch k {
		case "target":
			opts.Target = v
		case "platform":
			opts.Platform = v
		case "context":
			opts.LocalContexts = append(opts.LocalContexts, v)
		case "image-context":
			name, ref, _ := strings.Cut(v, "=")
			img := *opts.Bases[ref]
			img.Ref = name
			opts.Bases[name] = &img
			opts.ImageContexts = append(opts.ImageContexts, name)
		case "build-arg":
			if opts.BuildArgs == nil {
				opts.BuildArgs = map[string]string{}
			}
			bk, bv, _ := strings.Cut(v, "=")
			opts.BuildArgs[bk] = bv
		default:
			t.Fatalf("unknown plan option %q", line)
		}
	}
	return opts
}

func hash(c byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(string(c), 64)}
}

// fakeBases are the base images the golden Dockerfiles may use.
func fakeBases() map[string]*BaseImage {
	imgs := []*BaseImage{
		{Ref: "alpine:3.20", Digest: hash('a'), Config: v1.ConfigFile{
			Architecture: "amd64", OS: "linux",
			RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{hash('1')}},
			History: []v1.History{{CreatedBy: "ADD alpine-minirootfs.tar.gz / # buildkit"}, {CreatedBy: `CMD ["/bin/sh"]`, EmptyLayer: true}},
			Config: v1.Config{
				Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
				Cmd: []string{"/bin/sh"},
			},
		}},
		{Ref: "golang:1.22", Digest: hash('b'), Config: v1.ConfigFile{
			Architecture: "amd64", OS: "linux", Container: "abc", DockerVersion: "20.10",
			RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{hash('2'), hash('3')}},
			Config: v1.Config{
				Env:        []string{"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOLANG_VERSION=1.22.0", "GOPATH=/go"},
				WorkingDir: "/go",
				Cmd:        []string{"bash"},
			},
		}},
		// busybox has no PATH, and fields BuildKit does not carry over.
		{Ref: "busybox", Digest: hash('c'), Config: v1.ConfigFile{
			Architecture: "amd64", OS: "linux",
			RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{hash('4')}},
			Config: v1.Config{Cmd: []string{"sh"}, Hostname: "build-host", Tty: true, Image: "sha256:old"},
		}},
		{Ref: "node:20", Digest: hash('d'), Config: v1.ConfigFile{
			Architecture: "amd64", OS: "linux",
			RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{hash('5')}},
			Config: v1.Config{
				Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "NODE_VERSION=20.11.0"},
				Entrypoint: []string{"docker-entrypoint.sh"},
				Cmd:        []string{"node"},
				User:       "node",
				Labels:     map[string]string{"maintainer": "node"},
			},
		}},
		{Ref: "example/onbuild:1", Digest: hash('e'), Config: v1.ConfigFile{
			Architecture: "amd64", OS: "linux",
			RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{hash('6')}},
			Config: v1.Config{
				Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
				WorkingDir: "/app",
				OnBuild:    []string{"ARG VERSION=dev", "COPY . /app/src", "RUN make -C /app/src VERSION=$VERSION"},
			},
		}},
		{Ref: "example/onbuild-from:1", Digest: hash('f'), Config: v1.ConfigFile{
			Architecture: "amd64", OS: "linux",
			RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{hash('7')}},
			Config: v1.Config{
				Env:     []string{"PATH=/usr/bin:/bin"},
				OnBuild: []string{"COPY --from=assets /dist /srv/www"},
			},
		}},
	}
	m := map[string]*BaseImage{}
	for _, img := range imgs {
		m[img.Ref] = img
	}
	return m
}

func renderRefs(refs []BaseRef) string {
	var b strings.Builder
	b.WriteString("base refs:\n")
	for _, r := range refs {
		fmt.Fprintf(&b, "  %s at %s", r.Ref, r.Loc)
		if r.Platform != "" {
			fmt.Fprintf(&b, " platform %s", r.Platform)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// renderPlan renders a plan as stable, readable text: each stage's base
// and full starting config, each step with what it changed in the config.
func renderPlan(p *Plan) string {
	var b strings.Builder
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	for _, st := range p.Stages {
		fmt.Fprintf(&b, "\nstage %d %q at %s\n", st.Index, st.Name, st.Loc)
		switch st.BaseKind {
		case BaseScratch:
			b.WriteString("  base: scratch\n")
		case BaseImageRef:
			fmt.Fprintf(&b, "  base: image %s@%s\n", st.BaseImage.Ref, st.BaseImage.Digest)
		case BaseStage:
			fmt.Fprintf(&b, "  base: stage %d\n", st.BaseStage)
		case BaseContext:
			fmt.Fprintf(&b, "  base: build context %s\n", st.BaseContext)
		}
		if st.Platform != "" {
			fmt.Fprintf(&b, "  platform: %s\n", st.Platform)
		}
		fmt.Fprintf(&b, "  deps: %v\n", st.Deps)
		fmt.Fprintf(&b, "  image: os=%s arch=%s variant=%q author=%q rootfs=%q layers=%d history=%d\n",
			st.Config.OS, st.Config.Architecture, st.Config.Variant, st.Config.Author,
			st.Config.RootFS.Type, len(st.Config.RootFS.DiffIDs), len(st.Config.History))
		b.WriteString("  config:\n")
		prev := configFields(st.Config.Config)
		for _, k := range sortedFieldKeys(prev) {
			fmt.Fprintf(&b, "    %s: %s\n", k, prev[k])
		}
		author := st.Config.Author
		for i, step := range st.Steps {
			fmt.Fprintf(&b, "  step %d: %s at %s\n", i+1, step.Kind, step.Loc)
			fmt.Fprintf(&b, "    instruction: %s\n", step.Instruction)
			if step.NoHistory {
				b.WriteString("    no history\n")
			} else {
				cb := step.CreatedBy
				if strings.Contains(cb, "\n") {
					cb = strconv.Quote(cb)
				}
				fmt.Fprintf(&b, "    created_by: %s\n", cb)
			}
			fmt.Fprintf(&b, "    env: %s\n", js(step.Env))
			if len(step.UsedArgs) > 0 {
				fmt.Fprintf(&b, "    args: %s\n", js(step.UsedArgs))
			}
			if step.Workdir != "" {
				fmt.Fprintf(&b, "    workdir: %s\n", step.Workdir)
			}
			if c := step.Copy; c != nil {
				renderCopy(&b, c)
			}
			if r := step.Run; r != nil {
				renderRun(&b, r)
			}
			cur := configFields(step.Config)
			for _, k := range sortedFieldKeys(prev, cur) {
				if prev[k] != cur[k] {
					v := cur[k]
					if v == "" {
						v = "(unset)"
					}
					fmt.Fprintf(&b, "    config %s: %s\n", k, v)
				}
			}
			prev = cur
			if step.Author != author {
				fmt.Fprintf(&b, "    author: %s\n", step.Author)
				author = step.Author
			}
		}
	}
	fmt.Fprintf(&b, "\ntarget: stage %d\n", p.Target.Index)
	return b.String()
}

func renderCopy(b *strings.Builder, c *CopyStep) {
	fmt.Fprintf(b, "    copy: add=%v from=%s sources=%s dest=%s\n", c.Add, sourceString(c.From), js(c.Sources), c.Dest)
	if c.Chown != "" || c.Chmod != "" || c.Link || c.Parents || len(c.Excludes) > 0 {
		fmt.Fprintf(b, "    copy opts: chown=%q chmod=%q link=%v parents=%v excludes=%s\n", c.Chown, c.Chmod, c.Link, c.Parents, js(c.Excludes))
	}
	if c.Checksum != "" || c.Unpack != nil || c.KeepGitDir != nil {
		fmt.Fprintf(b, "    add opts: checksum=%q unpack=%s keep-git-dir=%s\n", c.Checksum, js(c.Unpack), js(c.KeepGitDir))
	}
	for _, h := range c.Heredocs {
		fmt.Fprintf(b, "    heredoc %s: %q\n", h.Name, h.Data)
	}
}

func renderRun(b *strings.Builder, r *RunStep) {
	fmt.Fprintf(b, "    run: args=%s user=%q workdir=%s\n", js(r.Args), r.User, r.Workdir)
	if r.Network != "" || r.Security != "" || len(r.Devices) > 0 {
		fmt.Fprintf(b, "    run opts: network=%q security=%q devices=%s\n", r.Network, r.Security, js(r.Devices))
	}
	if r.Script != nil {
		fmt.Fprintf(b, "    script %s: %q\n", r.Script.Name, r.Script.Data)
	}
	for i, m := range r.MountSpecs {
		fmt.Fprintf(b, "    mount %q: type=%s from=%s target=%s id=%q source=%q\n",
			r.Mounts[i], m.Spec.Type, sourceString(m.From), m.Spec.Target, m.Spec.CacheID, m.Spec.Source)
	}
	if len(r.ProxyEnv) > 0 {
		fmt.Fprintf(b, "    proxy env: %s\n", js(r.ProxyEnv))
	}
}

func sourceString(s CopySource) string {
	switch {
	case s.Context:
		return "context"
	case s.Scratch:
		return "scratch"
	case s.Image != nil:
		return "image " + s.Image.Ref
	case s.Named != "":
		return "build context " + s.Named
	}
	return fmt.Sprintf("stage %d", s.Stage)
}

// configFields renders each set field of a config as JSON.
func configFields(c v1.Config) map[string]string {
	data := []byte(js(c))
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		panic(err)
	}
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func sortedFieldKeys(ms ...map[string]string) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// js is v as compact JSON, without HTML escaping.
func js(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
