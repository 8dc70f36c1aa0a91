package parser

import (
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

// newBase is the Base of the instruction parsed from n, located at loc.
func newBase(n *bkparser.Node, loc Location) Base {
	return Base{Loc: loc, Text: strings.TrimSpace(n.Original), Name: strings.ToUpper(n.Value)}
}

// convert turns BuildKit's typed instruction v, parsed from n, into ours.
// FROM is handled by the caller.
func convert(n *bkparser.Node, v any, loc Location) (Instruction, error) {
	b := newBase(n, loc)
	switch c := v.(type) {
	case *instructions.ArgCommand:
		return convertArg(b, c), nil
	case *instructions.RunCommand:
		return convertRun(b, n, c)
	case *instructions.CopyCommand:
		return &Copy{
			Base:           b,
			SourcesAndDest: sourcesAndDest(n, c.SourcesAndDest, c.Chown, c.Chmod, c.Link, c.ExcludePatterns),
			From:           c.From,
			Parents:        c.Parents,
		}, nil
	case *instructions.AddCommand:
		return &Add{
			Base:           b,
			SourcesAndDest: sourcesAndDest(n, c.SourcesAndDest, c.Chown, c.Chmod, c.Link, c.ExcludePatterns),
			Checksum:       c.Checksum,
			KeepGitDir:     cloneBool(c.KeepGitDir),
			Unpack:         cloneBool(c.Unpack),
		}, nil
	case *instructions.EnvCommand:
		return &Env{Base: b, Env: keyValues(c.Env)}, nil
	case *instructions.LabelCommand:
		return &Label{Base: b, Labels: keyValues(c.Labels)}, nil
	case *instructions.ExposeCommand:
		return &Expose{Base: b, Ports: c.Ports}, nil
	case *instructions.VolumeCommand:
		return &Volume{Base: b, Volumes: c.Volumes}, nil
	case *instructions.UserCommand:
		return &User{Base: b, User: c.User}, nil
	case *instructions.WorkdirCommand:
		return &Workdir{Base: b, Path: c.Path}, nil
	case *instructions.CmdCommand:
		return &Cmd{Base: b, Cmdline: cmdline(n, c.ShellDependantCmdLine)}, nil
	case *instructions.EntrypointCommand:
		return &Entrypoint{Base: b, Cmdline: cmdline(n, c.ShellDependantCmdLine)}, nil
	case *instructions.ShellCommand:
		return &Shell{Base: b, Shell: c.Shell}, nil
	case *instructions.StopSignalCommand:
		return &StopSignal{Base: b, Signal: c.Signal}, nil
	case *instructions.HealthCheckCommand:
		return convertHealthcheck(b, c), nil
	case *instructions.OnbuildCommand:
		return &Onbuild{Base: b, Expression: c.Expression}, nil
	case *instructions.MaintainerCommand:
		return &Maintainer{Base: b, Maintainer: c.Maintainer}, nil
	}
	return nil, fmt.Errorf("unsupported instruction %s", b.Name)
}

func convertArg(b Base, c *instructions.ArgCommand) *Arg {
	a := &Arg{Base: b}
	for _, kv := range c.Args {
		d := ArgDef{Key: kv.Key}
		if kv.Value != nil {
			v := *kv.Value
			d.Default = &v
		}
		a.Args = append(a.Args, d)
	}
	return a
}

func convertRun(b Base, n *bkparser.Node, c *instructions.RunCommand) (*Run, error) {
	// BuildKit keeps the raw flag values private; read them again from the
	// node. BuildKit has already validated them.
	flags := instructions.NewBFlagsWithArgs(n.Flags)
	mounts := flags.AddStrings("mount")
	devices := flags.AddStrings("device")
	network := flags.AddString("network", "")
	security := flags.AddString("security", "")
	if err := flags.Parse(); err != nil {
		return nil, err
	}
	return &Run{
		Base:     b,
		Cmdline:  cmdline(n, c.ShellDependantCmdLine),
		Mounts:   mounts.StringValues,
		Devices:  devices.StringValues,
		Network:  network.Value,
		Security: security.Value,
	}, nil
}

func convertHealthcheck(b Base, c *instructions.HealthCheckCommand) *Healthcheck {
	h := &Healthcheck{Base: b}
	if c.Health == nil {
		return h
	}
	h.Test = c.Health.Test
	h.Interval = c.Health.Interval
	h.Timeout = c.Health.Timeout
	h.StartPeriod = c.Health.StartPeriod
	h.StartInterval = c.Health.StartInterval
	h.Retries = c.Health.Retries
	return h
}

// cmdline converts the shared shape of RUN, CMD and ENTRYPOINT. Heredoc
// contents are taken from the node, which also knows whether to expand them.
func cmdline(n *bkparser.Node, c instructions.ShellDependantCmdLine) Cmdline {
	return Cmdline{
		Args:         c.CmdLine,
		PrependShell: c.PrependShell,
		Heredocs:     heredocs(n.Heredocs),
	}
}

// heredocs converts BuildKit's heredocs, removing leading tabs for <<- the way
// the shell would.
func heredocs(hs []bkparser.Heredoc) []Heredoc {
	var out []Heredoc
	for _, h := range hs {
		data := h.Content
		if h.Chomp {
			data = bkparser.ChompHeredocContent(data)
		}
		out = append(out, Heredoc{Name: h.Name, Data: data, Chomp: h.Chomp, Expand: h.Expand})
	}
	return out
}

func sourcesAndDest(n *bkparser.Node, s instructions.SourcesAndDest, chown, chmod string, link bool, excludes []string) SourcesAndDest {
	chomp := map[string]bool{}
	for _, h := range n.Heredocs {
		chomp[h.Name] = h.Chomp
	}
	var docs []Heredoc
	for _, sc := range s.SourceContents {
		// BuildKit has already removed the leading tabs of <<- documents.
		docs = append(docs, Heredoc{Name: sc.Path, Data: sc.Data, Chomp: chomp[sc.Path], Expand: sc.Expand})
	}
	return SourcesAndDest{
		Sources:  s.SourcePaths,
		Dest:     s.DestPath,
		Heredocs: docs,
		Chown:    chown,
		Chmod:    chmod,
		Link:     link,
		Excludes: excludes,
	}
}

func keyValues(kvs instructions.KeyValuePairs) []KeyValue {
	out := make([]KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, KeyValue{Key: kv.Key, Value: kv.Value})
	}
	return out
}

func cloneBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	v := *b
	return &v
}
