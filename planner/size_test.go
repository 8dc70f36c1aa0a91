package planner

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mybuild/mybuild/parser"
)

// bigDockerfile is a Dockerfile of n instructions over a few stages, mixing
// the kinds a plan treats differently (ARG and ENV feed later expansions,
// RUN and COPY are steps, the rest are metadata).
func bigDockerfile(n int) []byte {
	var b bytes.Buffer
	b.WriteString("ARG BASE=alpine\n")
	count := 1
	stage := 0
	for count < n {
		if count%5000 == 1 {
			fmt.Fprintf(&b, "FROM ${BASE} AS s%d\n", stage)
			stage++
			count++
			continue
		}
		switch count % 8 {
		case 0:
			fmt.Fprintf(&b, "ENV V%d=value-%d\n", count%50, count)
		case 1:
			fmt.Fprintf(&b, "ARG A%d=%d\n", count%50, count)
		case 2:
			fmt.Fprintf(&b, "RUN echo $V%d ${A%d} > /f%d\n", count%50, count%50, count)
		case 3:
			fmt.Fprintf(&b, "COPY src/%d /dst/%d\n", count, count)
		case 4:
			fmt.Fprintf(&b, "WORKDIR /w/%d\n", count%100)
		case 5:
			fmt.Fprintf(&b, "LABEL l%d=\"x %d\"\n", count%20, count)
		case 6:
			if stage > 1 {
				fmt.Fprintf(&b, "COPY --from=s%d /f%d /g%d\n", stage-2, count-4, count)
			} else {
				fmt.Fprintf(&b, "EXPOSE %d\n", 1000+count%1000)
			}
		default:
			fmt.Fprintf(&b, "USER u%d\n", count%10)
		}
		count++
	}
	return b.Bytes()
}

func sizeOptions() Options {
	return Options{Bases: map[string]*BaseImage{"alpine": {Ref: "alpine", Digest: hash('a'), Config: v1.ConfigFile{
		Architecture: "amd64", OS: "linux",
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{hash('1')}},
		Config: v1.Config{Env: []string{"PATH=/bin"}},
	}}}}
}

func parsePlan(tb testing.TB, data []byte) *Plan {
	df, err := parser.Parse(bytes.NewReader(data), "Dockerfile")
	if err != nil {
		tb.Fatal(err)
	}
	plan, err := New(df, sizeOptions())
	if err != nil {
		tb.Fatal(err)
	}
	return plan
}

// TestPlanTenThousandInstructions parses and plans a Dockerfile of 10,000
// instructions.
func TestPlanTenThousandInstructions(t *testing.T) {
	data := bigDockerfile(10_000)
	if n := strings.Count(string(data), "\n"); n != 10_000 {
		t.Fatalf("Dockerfile has %d instructions, want 10000", n)
	}
	plan := parsePlan(t, data)
	steps := 0
	for _, s := range plan.Stages {
		steps += len(s.Steps)
	}
	if len(plan.Stages) != 2 || steps < 9_000 {
		t.Errorf("plan has %d stages and %d steps, want 2 and most of the instructions", len(plan.Stages), steps)
	}
}

// BenchmarkPlanSize parses and plans Dockerfiles of growing size; the
// ns/instr metric should stay flat if planning is linear.
func BenchmarkPlanSize(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		data := bigDockerfile(n)
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				parsePlan(b, data)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/instr")
		})
	}
}
