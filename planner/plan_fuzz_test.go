package planner

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mybuild/mybuild/parser"
)

// FuzzPlan parses and plans arbitrary Dockerfiles. Every image BaseRefs asks
// for is given as a fake base whose ONBUILD triggers are the lines of
// onbuild. Planning must never panic, and its errors must be
// *parser.Error values.
func FuzzPlan(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.Dockerfile"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "", "")
	}
	f.Add([]byte("FROM alpine\nRUN echo hi\n"), "RUN echo triggered\nCOPY --from=other / /", "")
	f.Add([]byte("ARG BASE=alpine\nFROM ${BASE} AS a\nFROM a\nCOPY --from=a / /x\n"), "", "a")
	f.Add([]byte("FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\nRUN echo $TARGETARCH\n"), "ONBUILD RUN x", "")

	f.Fuzz(func(t *testing.T, data []byte, onbuild, target string) {
		df, err := parser.Parse(bytes.NewReader(data), "Dockerfile")
		if err != nil {
			return
		}
		var triggers []string
		if onbuild != "" {
			triggers = strings.Split(onbuild, "\n")
		}
		opts := Options{Target: target, Bases: map[string]*BaseImage{}, BuildArgs: map[string]string{"A": "1"}}
		for range 4 {
			refs, err := BaseRefs(df, opts)
			if err != nil {
				checkPlanErr(t, "BaseRefs", err)
				return
			}
			added := false
			for _, r := range refs {
				if opts.Bases[r.Ref] != nil {
					continue
				}
				added = true
				opts.Bases[r.Ref] = &BaseImage{Ref: r.Ref, Digest: hash('f'), Config: v1.ConfigFile{
					Architecture: "amd64", OS: "linux",
					RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{hash('1')}},
					Config: v1.Config{Env: []string{"PATH=/bin"}, OnBuild: triggers},
				}}
			}
			if !added {
				break
			}
		}
		plan, err := New(df, opts)
		if err != nil {
			checkPlanErr(t, "New", err)
			return
		}
		if len(plan.Stages) == 0 || plan.Target != plan.Stages[len(plan.Stages)-1] {
			t.Fatalf("target is not the last stage")
		}
	})
}

func checkPlanErr(t *testing.T, what string, err error) {
	t.Helper()
	var pe *parser.Error
	if !errors.As(err, &pe) {
		t.Fatalf("%s: error %T is not a *parser.Error: %v", what, err, err)
	}
}
