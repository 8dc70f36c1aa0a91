package planner

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/mybuild/mybuild/parser"
)

// defaultPath is the PATH BuildKit puts in an image config that has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// runState is what BuildKit keeps while it dispatches a stage: the image
// config and the build state's environment, directory and args.
type runState struct {
	img    v1.ConfigFile
	env    envList // the state's environment: config Env and ARG values
	dir    string  // the state's working directory
	args   []argValue
	cmdSet bool   // a CMD was dispatched in this stage
	os     string // the stage's platform OS
}

func (r *runState) clone() *runState {
	c := *r
	c.img = cloneConfigFile(r.img)
	c.env = r.env.clone()
	c.args = slices.Clone(r.args)
	return &c
}

// dispatchStage plans the steps of stage s, whose base and sources are
// planned already.
func (p *planner) dispatchStage(s *stageState) (*Stage, error) {
	st := &Stage{Index: s.index, Name: s.name, Loc: s.src.Loc, Platform: s.platform}
	rs, err := p.initStage(s, st)
	if err != nil {
		return nil, err
	}
	for _, c := range s.cmds {
		step, err := p.dispatch(s, rs, c)
		if err != nil {
			return nil, err
		}
		st.Steps = append(st.Steps, step)
	}
	s.final = rs
	s.dispatched = true
	s.out = st
	return st, nil
}

// initStage sets up the state a stage starts from and fills in the
// stage's base, starting config and dependencies.
func (p *planner) initStage(s *stageState, st *Stage) (*runState, error) {
	var rs *runState
	switch {
	case s.base != nil:
		rs = s.base.final.clone()
		rs.cmdSet = false
		// History and layers are the built base stage's: only execution
		// knows which of its steps made a layer.
		rs.img.History = nil
		rs.img.RootFS = v1.RootFS{}
		st.BaseKind, st.BaseStage = BaseStage, s.base.index
	case s.scratch:
		rs = &runState{img: emptyImage(p.plat)}
		st.BaseKind = BaseScratch
	case s.named != "":
		// As BuildKit: the directory's files, and the config of scratch.
		rs = &runState{img: emptyImage(p.plat)}
		st.BaseKind, st.BaseContext = BaseContext, s.named
	default:
		rs = &runState{img: normalizeImage(s.image.Config)}
		st.BaseKind, st.BaseImage = BaseImageRef, s.image
	}
	// The triggers of the base run as this stage's first steps.
	rs.img.Config.OnBuild = nil
	rs.os = p.plat.OS
	if s.platform != "" {
		if pl, err := parsePlatform(s.platform); err == nil {
			rs.os = pl.OS
		}
	}
	if !hasEnv(rs.img.Config.Env, "PATH") && rs.os != "windows" {
		rs.img.Config.Env = append(rs.img.Config.Env, "PATH="+defaultPath)
	}
	for _, kv := range rs.img.Config.Env {
		rs.env.set(splitKV(kv))
	}
	if wd := rs.img.Config.WorkingDir; wd != "" {
		wd = normalizePath(wd, wd, false)
		rs.img.Config.WorkingDir = wd
		rs.dir = wd
	}
	st.Config = cloneConfigFile(rs.img)

	deps := map[int]bool{}
	if s.base != nil {
		deps[s.base.index] = true
	}
	for _, d := range s.deps {
		deps[d.stage.index] = true
	}
	st.Deps = slices.Sorted(maps.Keys(deps))
	return rs, nil
}

// dispatch plans one command of stage s, updating rs.
func (p *planner) dispatch(s *stageState, rs *runState, c *command) (*Step, error) {
	step := &Step{
		Loc:         c.ins.Location(),
		Instruction: c.ins.Original(),
		Comment:     historyComment,
		Env:         rs.env.slice(),
		UsedArgs:    usedArgs(rs.args, &rs.env),
		OnBuild:     c.onbuild,
	}
	if c.onbuild {
		step.Instruction = "ONBUILD " + step.Instruction
	}
	d := &dispatcher{p: p, s: s, rs: rs, c: c, step: step}
	if err := d.run(); err != nil {
		if pe, ok := err.(*parser.Error); ok {
			return nil, pe
		}
		return nil, p.errAt(c.ins, "%s", err)
	}
	step.Config = cloneConfig(rs.img.Config)
	step.Author = rs.img.Author
	return step, nil
}

// dispatcher applies one command.
type dispatcher struct {
	p    *planner
	s    *stageState
	rs   *runState
	c    *command
	step *Step
}

// x expands a word against the environment the command starts with.
func (d *dispatcher) x(word string) (string, error) {
	v, err := d.p.expand(word, d.step.Env)
	if err != nil {
		return "", fmt.Errorf("%s", errMsg(err))
	}
	return v, nil
}

func (d *dispatcher) run() error {
	cfg := &d.rs.img.Config
	switch ins := d.c.ins.(type) {
	case *parser.Env:
		return d.env(ins)
	case *parser.Label:
		return d.label(ins)
	case *parser.Arg:
		return d.arg(ins)
	case *parser.Workdir:
		return d.workdir(ins)
	case *parser.User:
		u, err := d.x(ins.User)
		if err != nil {
			return err
		}
		cfg.User = u
		d.history("USER " + u)
	case *parser.Volume:
		vols := make([]string, 0, len(ins.Volumes))
		for _, v := range ins.Volumes {
			v, err := d.x(v)
			if err != nil {
				return err
			}
			vols = append(vols, v)
		}
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range vols {
			if v == "" {
				return fmt.Errorf("VOLUME specified can not be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
		d.history(fmt.Sprintf("VOLUME %v", vols))
	case *parser.StopSignal:
		sig, err := d.x(ins.Signal)
		if err != nil {
			return err
		}
		if err := checkSignal(sig); err != nil {
			return err
		}
		cfg.StopSignal = sig
		d.history("STOPSIGNAL " + sig)
	case *parser.Expose:
		return d.expose(ins)
	case *parser.Cmd:
		args := d.withShell(ins.Cmdline)
		cfg.Cmd = args
		cfg.ArgsEscaped = true
		d.rs.cmdSet = true
		d.history(fmt.Sprintf("CMD %q", args))
	case *parser.Entrypoint:
		args := d.withShell(ins.Cmdline)
		cfg.Entrypoint = args
		if !d.rs.cmdSet {
			cfg.Cmd = nil
		}
		d.history(fmt.Sprintf("ENTRYPOINT %q", args))
	case *parser.Shell:
		cfg.Shell = slices.Clone(ins.Shell)
		d.history(fmt.Sprintf("SHELL %v", ins.Shell))
	case *parser.Healthcheck:
		cfg.Healthcheck = &v1.HealthConfig{
			Test:        slices.Clone(ins.Test),
			Interval:    ins.Interval,
			Timeout:     ins.Timeout,
			StartPeriod: ins.StartPeriod,
			Retries:     ins.Retries,
		}
		d.history("HEALTHCHECK " + healthcheckString(ins))
	case *parser.Onbuild:
		cfg.OnBuild = append(cfg.OnBuild, ins.Expression)
		d.step.NoHistory = true
	case *parser.Maintainer:
		d.rs.img.Author = ins.Maintainer
		d.history("MAINTAINER " + ins.Maintainer)
	case *parser.Run:
		return d.runStep(ins)
	case *parser.Copy:
		return d.copyStep(ins.SourcesAndDest, nil, ins)
	case *parser.Add:
		return d.copyStep(ins.SourcesAndDest, ins, nil)
	default:
		return fmt.Errorf("unsupported instruction %s", d.c.ins.Keyword())
	}
	return nil
}

// history sets the step's created_by.
func (d *dispatcher) history(createdBy string) {
	d.step.CreatedBy = createdBy
}

func (d *dispatcher) env(ins *parser.Env) error {
	var kvs []parser.KeyValue
	for _, kv := range ins.Env {
		k, err := d.x(kv.Key)
		if err != nil {
			return err
		}
		v, err := d.x(kv.Value)
		if err != nil {
			return err
		}
		kvs = append(kvs, parser.KeyValue{Key: k, Value: v})
	}
	msg := "ENV"
	for _, kv := range kvs {
		msg += " " + kv.Key + "=" + kv.Value
		d.rs.env.set(kv.Key, kv.Value)
		d.rs.img.Config.Env = addEnv(d.rs.img.Config.Env, kv.Key, kv.Value)
	}
	d.history(msg)
	return nil
}

func (d *dispatcher) label(ins *parser.Label) error {
	cfg := &d.rs.img.Config
	if cfg.Labels == nil {
		cfg.Labels = make(map[string]string, len(ins.Labels))
	}
	var kvs []parser.KeyValue
	for _, kv := range ins.Labels {
		k, err := d.x(kv.Key)
		if err != nil {
			return err
		}
		v, err := d.x(kv.Value)
		if err != nil {
			return err
		}
		kvs = append(kvs, parser.KeyValue{Key: k, Value: v})
	}
	msg := "LABEL"
	for _, kv := range kvs {
		cfg.Labels[kv.Key] = kv.Value
		msg += " " + kv.Key + "=" + kv.Value
	}
	d.history(msg)
	return nil
}

// arg declares build args: a --build-arg wins, then the default (expanded
// with the args declared before it, in this instruction too), then for a
// bare `ARG NAME` the global value of NAME.
func (d *dispatcher) arg(ins *parser.Arg) error {
	parts := make([]string, 0, len(ins.Args))
	for _, a := range ins.Args {
		d.p.declared[a.Key] = true
		bv, hasValue := d.p.opts.BuildArgs[a.Key]
		var val *string
		switch {
		case hasValue:
			val = &bv
		case a.Default != nil:
			v, err := d.p.expand(*a.Default, d.rs.env.slice())
			if err != nil {
				return fmt.Errorf("%s", errMsg(err))
			}
			val = &v
		default:
			if g, ok := d.p.global.get(a.Key); ok {
				val = &g
			}
		}
		if val != nil && !nonEnvArgs[a.Key] {
			d.rs.env.set(a.Key, *val)
		}
		d.rs.args = append(d.rs.args, argValue{Key: a.Key, Value: val})
		part := a.Key
		if val != nil {
			part += "=" + *val
		}
		parts = append(parts, part)
	}
	d.history("ARG " + strings.Join(parts, " "))
	return nil
}

func (d *dispatcher) workdir(ins *parser.Workdir) error {
	p, err := d.x(ins.Path)
	if err != nil {
		return err
	}
	wd := normalizePath(d.rs.img.Config.WorkingDir, p, false)
	d.rs.img.Config.WorkingDir = wd
	d.rs.dir = wd
	if wd != "/" {
		d.step.Kind = StepWorkdir
		d.step.Workdir = wd
	}
	d.history("WORKDIR " + wd)
	return nil
}

func (d *dispatcher) expose(ins *parser.Expose) error {
	var raw []string
	for _, p := range ins.Ports {
		ws, err := d.p.exp.ExpandWords(p, d.step.Env)
		if err != nil {
			return fmt.Errorf("%s", errMsg(err))
		}
		raw = append(raw, ws...)
	}
	var ports []string
	for _, r := range raw {
		ps, err := parsePort(r)
		if err != nil {
			return err
		}
		ports = append(ports, ps...)
	}
	cfg := &d.rs.img.Config
	if cfg.ExposedPorts == nil {
		cfg.ExposedPorts = map[string]struct{}{}
	}
	for _, p := range ports {
		cfg.ExposedPorts[p] = struct{}{}
	}
	d.history(fmt.Sprintf("EXPOSE %v", ports))
	return nil
}

// withShell returns the argv of a CMD, ENTRYPOINT or RUN: shell form runs
// the command with the config's SHELL (or the OS default).
func (d *dispatcher) withShell(c parser.Cmdline) []string {
	if !c.PrependShell {
		return slices.Clone(c.Args)
	}
	return shellArgs(d.rs, c.Args)
}

func shellArgs(rs *runState, args []string) []string {
	sh := slices.Clone(rs.img.Config.Shell)
	if len(sh) == 0 {
		sh = []string{"/bin/sh", "-c"}
		if rs.img.OS == "windows" {
			sh = []string{"cmd", "/S", "/C"}
		}
	}
	return append(sh, strings.Join(args, " "))
}
