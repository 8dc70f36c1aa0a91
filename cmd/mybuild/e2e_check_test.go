package main

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const checkDockerfile = `FROM busybox as Builder
MAINTAINER someone
ARG API_TOKEN=x
env FOO bar
WORKDIR rel
COPY $UNDEFINED_SRC secret.txt /x/
CMD echo one
CMD echo two
FROM --platform=linux/amd64 $BASE AS scratch
FROM busybox AS builder
ENTRYPOINT ["sh"]
`

// TestCheck: --check reports BuildKit's lint rules as
// "Dockerfile:LINE: Rule: message" without building; exit status 0 unless
// `# check=error=true`; `# check=skip=` silences rules.
func TestCheck(t *testing.T) {
	e := newEnv(t)
	ctx := writeContext(t, map[string]string{
		"Dockerfile":    checkDockerfile,
		"secret.txt":    "s\n",
		".dockerignore": "secret.txt\n",
	})
	r := e.mustRun("build", "--check", "-t", "nope", ctx)
	want := []string{
		`Dockerfile:1: StageNameCasing: Stage name 'Builder' should be lowercase`,
		`Dockerfile:1: FromAsCasing: 'as' and 'FROM' keywords' casing do not match`,
		`Dockerfile:2: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label`,
		`Dockerfile:3: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for sensitive data (ARG "API_TOKEN")`,
		`Dockerfile:4: LegacyKeyValueFormat: "ENV key=value" should be used instead of legacy "ENV key value" format`,
		`Dockerfile:4: ConsistentInstructionCasing: Command 'env' should match the case of the command majority (uppercase)`,
		`Dockerfile:5: WorkdirRelativePath: Relative workdir "rel" can have unexpected results if the base image changes`,
		`Dockerfile:6: UndefinedVar: Usage of undefined variable '$UNDEFINED_SRC'`,
		`Dockerfile:6: CopyIgnoredFile: Attempting to Copy file "secret.txt" that is excluded by .dockerignore`,
		`Dockerfile:7: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals`,
		`Dockerfile:7: MultipleInstructionsDisallowed: Multiple CMD instructions should not be used in the same stage because only the last one will be used`,
		`Dockerfile:8: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals`,
		`Dockerfile:9: ReservedStageName: Stage name should not use the same name as reserved stage "scratch"`,
		`Dockerfile:9: UndefinedArgInFrom: FROM argument 'BASE' is not declared`,
		`Dockerfile:9: InvalidDefaultArgInFrom: Default value for ARG $BASE results in empty or invalid base image name`,
		`Dockerfile:9: FromPlatformFlagConstDisallowed: FROM --platform flag should not use constant value "linux/amd64"`,
		`Dockerfile:10: DuplicateStageName: Duplicate stage name "builder", stage names should be unique`,
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(r.stdout), "\n")); diff != "" {
		t.Errorf("--check output (-want +got):\n%s", diff)
	}
	if !strings.Contains(r.stderr, "17 warnings") {
		t.Errorf("stderr lacks the count:\n%s", r.stderr)
	}
	if out := e.mustRun("images"); strings.Contains(out.stdout, "nope") {
		t.Errorf("--check built an image:\n%s", out.stdout)
	}

	// error=true: a warning fails; skip= silences rules.
	write := func(df string) {
		if err := os.WriteFile(ctx+"/Dockerfile", []byte(df), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("# check=error=true\nFROM busybox\nCMD echo hi\n")
	res := e.run("build", "--check", ctx)
	if res.err == nil || !strings.Contains(res.stdout, "Dockerfile:3: JSONArgsRecommended:") {
		t.Errorf("error=true: err %v, stdout %q", res.err, res.stdout)
	}
	write("# check=skip=JSONArgsRecommended;error=true\nFROM busybox\nCMD echo hi\n")
	res = e.run("build", "--check", ctx)
	if res.err != nil || res.stdout != "" {
		t.Errorf("skip: err %v, stdout %q, stderr %q", res.err, res.stdout, res.stderr)
	}
	write("# check=skip=all\nFROM busybox as X\nCMD echo hi\n")
	if res = e.run("build", "--check", ctx); res.err != nil || res.stdout != "" {
		t.Errorf("skip=all: err %v, stdout %q", res.err, res.stdout)
	}
	// A clean Dockerfile: nothing reported, exit 0.
	write("FROM busybox AS build\nARG VERSION=1\nENV PATH=$PATH:/opt/bin V=$VERSION\nWORKDIR /src\nCMD [\"sh\"]\n")
	if res = e.run("build", "--check", ctx); res.err != nil || res.stdout != "" {
		t.Errorf("clean Dockerfile: err %v, stdout %q", res.err, res.stdout)
	}
}

// TestCheckResolvesBase: --check reads a base image's environment from the
// registry when the store lacks it (manifest and config only, no layer),
// so UndefinedVar knows the variables the base defines; a base it cannot
// resolve is named on stderr and only silences UndefinedVar.
func TestCheckResolvesBase(t *testing.T) {
	e := newEnv(t)
	reg := startRegistry(t, "", "")
	dc := t.TempDir()
	h := reg.host
	base := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nENV FROM_BASE=1\nRUN echo x > /x\n"})
	e.mustRunWith(e.root, dc, "", "build", "--push", "-t", h+"/envbase:1", base)

	ctx := writeContext(t, map[string]string{"Dockerfile": "FROM " + h + "/envbase:1\nENV A=$FROM_BASE B=$NOT_IN_BASE\n" +
		"FROM " + h + "/missing:1\nENV C=$ANYTHING\n"})
	fresh := t.TempDir()
	before := reg.requests(`"GET /v2/envbase/blobs/`)
	r := e.mustRunWith(fresh, dc, "", "build", "--check", ctx)
	if want := "Dockerfile:2: UndefinedVar: Usage of undefined variable '$NOT_IN_BASE'\n"; r.stdout != want {
		t.Errorf("--check stdout %q, want %q", r.stdout, want)
	}
	mustContain(t, "--check stderr", r.stderr, `base image "`+h+`/missing:1" not resolved`, "1 warning")
	// Only the config blob was fetched: the base has two layers.
	if n := reg.requests(`"GET /v2/envbase/blobs/`) - before; n != 1 {
		t.Errorf("--check fetched %d blobs of the base, want 1 (its config):\n%s", n, reg.log.String())
	}
	if out := e.mustRunWith(fresh, dc, "", "images"); strings.Contains(out.stdout, "envbase") {
		t.Errorf("--check stored the base image:\n%s", out.stdout)
	}
}
