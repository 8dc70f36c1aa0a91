package planner

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/mybuild/mybuild/parser"
)

// envList is an ordered KEY=VALUE list where setting a key moves it to the
// end, like BuildKit's llb.EnvList: the environment of a build state.
type envList struct {
	keys []string
	vals map[string]string
}

func (e *envList) set(k, v string) {
	if e.vals == nil {
		e.vals = map[string]string{}
	}
	if _, ok := e.vals[k]; ok {
		e.keys = slices.DeleteFunc(e.keys, func(s string) bool { return s == k })
	}
	e.keys = append(e.keys, k)
	e.vals[k] = v
}

func (e *envList) get(k string) (string, bool) {
	v, ok := e.vals[k]
	return v, ok
}

func (e *envList) clone() envList {
	c := envList{keys: slices.Clone(e.keys), vals: make(map[string]string, len(e.vals))}
	for k, v := range e.vals {
		c.vals[k] = v
	}
	return c
}

// slice returns the list as KEY=VALUE strings, oldest key first.
func (e *envList) slice() []string {
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

// splitKV splits "K=V" into K and V ("" when there is no "=").
func splitKV(s string) (string, string) {
	k, v, _ := strings.Cut(s, "=")
	return k, v
}

// addEnv sets k in an image config's Env, replacing an existing entry in
// place or appending a new one.
func addEnv(env []string, k, v string) []string {
	for i, kv := range env {
		if key, _ := splitKV(kv); key == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// platform is a parsed "os/arch[/variant]".
type platform struct {
	OS, Arch, Variant string
}

func (p platform) String() string {
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// parsePlatform parses a platform specifier and normalizes it the way
// containerd does ("x86_64" is "amd64", "arm" means "arm/v7", ...).
// An empty string is linux/amd64.
func parsePlatform(s string) (platform, error) {
	if s == "" {
		return platform{OS: "linux", Arch: "amd64"}, nil
	}
	parts := strings.Split(strings.ToLower(s), "/")
	var p platform
	switch len(parts) {
	case 1:
		switch parts[0] {
		case "linux", "windows", "darwin", "freebsd":
			p = platform{OS: parts[0], Arch: "amd64"}
		default:
			p = platform{OS: "linux", Arch: parts[0]}
		}
	case 2:
		p = platform{OS: parts[0], Arch: parts[1]}
	case 3:
		p = platform{OS: parts[0], Arch: parts[1], Variant: parts[2]}
	default:
		return platform{}, fmt.Errorf("invalid platform %q", s)
	}
	for _, f := range parts {
		if f == "" {
			return platform{}, fmt.Errorf("invalid platform %q", s)
		}
	}
	if p.OS == "macos" {
		p.OS = "darwin"
	}
	switch p.Arch {
	case "i386":
		p.Arch, p.Variant = "386", ""
	case "x86_64", "x86-64", "amd64":
		p.Arch = "amd64"
		if p.Variant == "v1" {
			p.Variant = ""
		}
	case "aarch64", "arm64":
		p.Arch = "arm64"
		switch p.Variant {
		case "8", "v8", "v8.0":
			p.Variant = ""
		case "9", "9.0", "v9.0":
			p.Variant = "v9"
		}
	case "armhf":
		p.Arch, p.Variant = "arm", "v7"
	case "armel":
		p.Arch, p.Variant = "arm", "v6"
	case "arm":
		switch p.Variant {
		case "", "7":
			p.Variant = "v7"
		case "5", "6", "8":
			p.Variant = "v" + p.Variant
		}
	}
	return p, nil
}

// platformArgNames are the automatic build args BuildKit defines, in the
// order it defines them.
var platformArgNames = []string{
	"BUILDPLATFORM", "BUILDOS", "BUILDOSVERSION", "BUILDARCH", "BUILDVARIANT",
	"TARGETPLATFORM", "TARGETOS", "TARGETOSVERSION", "TARGETARCH", "TARGETVARIANT",
	"TARGETSTAGE",
}

// defaultArgs returns the automatic platform args for a build on p (which
// is both the build and the target platform), overridden by build args of
// the same name. target is the target stage's name.
func defaultArgs(p platform, overrides map[string]string, target string) envList {
	if target == "" {
		target = "default"
	}
	vals := []string{
		p.String(), p.OS, "", p.Arch, p.Variant,
		p.String(), p.OS, "", p.Arch, p.Variant,
		target,
	}
	var env envList
	for i, k := range platformArgNames {
		v := vals[i]
		if ov, ok := overrides[k]; ok {
			v = ov
		}
		env.set(k, v)
	}
	return env
}

// globalArgs evaluates the ARGs before the first FROM on top of the
// automatic platform args: a build arg wins over the default, defaults are
// expanded with the args declared so far.
func (p *planner) globalArgs() error {
	for _, a := range p.df.MetaArgs {
		for _, d := range a.Args {
			p.declared[d.Key] = true
			if v, ok := p.opts.BuildArgs[d.Key]; ok {
				p.global.set(d.Key, v)
				continue
			}
			if d.Default == nil {
				continue
			}
			v, err := p.expand(*d.Default, p.global.slice())
			if err != nil {
				return p.errAt(a, "%s", errMsg(err))
			}
			p.global.set(d.Key, v)
		}
	}
	return nil
}

// argValue is an ARG in scope in a stage: its name and value (nil when it
// was declared without one).
type argValue struct {
	Key   string
	Value *string
}

// nonEnvArgs are args BuildKit never puts in the environment.
var nonEnvArgs = map[string]bool{
	"BUILDKIT_SBOM_SCAN_CONTEXT": true,
	"BUILDKIT_SBOM_SCAN_STAGE":   true,
}

// builtinArgs are build args that need no ARG to be consumed.
var builtinArgs = map[string]bool{
	"HTTP_PROXY": true, "http_proxy": true,
	"HTTPS_PROXY": true, "https_proxy": true,
	"FTP_PROXY": true, "ftp_proxy": true,
	"NO_PROXY": true, "no_proxy": true,
	"ALL_PROXY": true, "all_proxy": true,
	"SOURCE_DATE_EPOCH": true,
}

// usedArgs lists the args in scope as KEY=VALUE, each key once at its
// first position, as BuildKit writes them before a RUN's command in its
// history: the value is the one in the environment when the key is set
// there (so an ENV of the same name wins), else the ARG's own, "" for none.
func usedArgs(args []argValue, env *envList) []string {
	var out []string
	idx := map[string]int{}
	for _, a := range args {
		v, ok := env.get(a.Key)
		if !ok && a.Value != nil {
			v = *a.Value
		}
		if i, ok := idx[a.Key]; ok {
			out[i] = a.Key + "=" + v
			continue
		}
		idx[a.Key] = len(out)
		out = append(out, a.Key+"="+v)
	}
	return out
}

// unusedArgsWarning reports build args that no ARG declared.
func (p *planner) unusedArgsWarning() string {
	var left []string
	for k := range p.opts.BuildArgs {
		if p.declared[k] || builtinArgs[k] || slices.Contains(platformArgNames, k) || strings.HasPrefix(k, "BUILDKIT_") {
			continue
		}
		left = append(left, k)
	}
	if len(left) == 0 {
		return ""
	}
	sort.Strings(left)
	return fmt.Sprintf("[Warning] One or more build-args %v were not consumed", left)
}

// proxyEnv returns the proxy variables a RUN gets from build args, as
// BuildKit passes them (both spellings), outside the cache key.
func proxyEnv(args map[string]string) []string {
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	names := []string{"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"}
	vals := make([]string, len(names))
	for _, k := range keys {
		for i, n := range names {
			if strings.EqualFold(k, n) {
				vals[i] = args[k]
			}
		}
	}
	var out []string
	for i, n := range names {
		if vals[i] != "" {
			out = append(out, n+"="+vals[i], strings.ToLower(n)+"="+vals[i])
		}
	}
	return out
}

// expand expands word against env with the Dockerfile's escape token.
func (p *planner) expand(word string, env []string) (string, error) {
	s, _, err := p.exp.Expand(word, env)
	return s, err
}

// errMsg is the message of an expansion error, without a location the
// expander may have put in front.
func errMsg(err error) string {
	if e, ok := err.(*parser.Error); ok {
		return e.Msg
	}
	return err.Error()
}
