package planner

import (
	"encoding/csv"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mybuild/mybuild/parser"
)

// runStep plans a RUN: its argv (heredocs and SHELL applied), mounts and
// history, as BuildKit's dispatchRun does.
func (d *dispatcher) runStep(ins *parser.Run) error {
	args := slices.Clone(ins.Args)
	var script *parser.Heredoc
	if len(ins.Heredocs) > 0 {
		if len(args) != 1 || !ins.PrependShell {
			return fmt.Errorf("parsing produced an invalid run command: %v", args)
		}
		if isBareHeredoc(args[0]) {
			h := ins.Heredocs[0]
			if d.rs.img.OS != "windows" && strings.HasPrefix(h.Data, "#!") {
				// A script with a shebang: BuildKit mounts it as a file and runs it.
				script = &h
				args = []string{"/dev/pipes/" + h.Name}
			} else {
				args = []string{h.Data}
			}
		} else {
			var b strings.Builder
			b.WriteString(args[0])
			for _, h := range ins.Heredocs {
				b.WriteString("\n" + h.Data + h.Name)
			}
			args = []string{b.String()}
		}
	}
	if ins.PrependShell {
		args = shellArgs(d.rs, args)
	}
	mounts := make([]RunMount, 0, len(ins.Mounts))
	for i, raw := range ins.Mounts {
		m, err := parser.ParseMount(raw, d.x)
		if err != nil {
			return err
		}
		rm := RunMount{Spec: m, From: CopySource{Context: true}}
		switch src := d.c.mounts[i]; {
		case src != nil:
			rm.From, err = d.copySource(src)
			if err != nil {
				return fmt.Errorf("cannot mount from stage %q to %q, stage needs to be defined before current command", src.name, m.Target)
			}
		case m.Type == "cache":
			rm.From = CopySource{Scratch: true}
		}
		mounts = append(mounts, rm)
	}
	wd := d.rs.dir
	if wd == "" {
		wd = "/"
	}
	d.step.Kind = StepRun
	d.step.Run = &RunStep{
		Args:       args,
		Heredocs:   slices.Clone(ins.Heredocs),
		Script:     script,
		Mounts:     slices.Clone(ins.Mounts),
		MountSpecs: mounts,
		Devices:    slices.Clone(ins.Devices),
		Network:    ins.Network,
		Security:   ins.Security,
		User:       d.rs.img.Config.User,
		Workdir:    wd,
		ProxyEnv:   proxyEnv(d.p.opts.BuildArgs),
	}
	d.history("RUN " + strings.Join(append(prefixArgs(d.step.UsedArgs), args...), " ") + " # buildkit")
	return nil
}

var heredocRe = regexp.MustCompile(`^(\d*)<<(-?)\s*([^<]*)$`)

// isBareHeredoc reports whether a RUN's command is only a heredoc, e.g. `<<EOF`.
func isBareHeredoc(s string) bool {
	m := heredocRe.FindStringSubmatch(s)
	return m != nil && len(strings.Fields(m[3])) == 1
}

// copySource turns a resolved --from source into a CopySource; the stage
// must have been planned already.
func (d *dispatcher) copySource(src *source) (CopySource, error) {
	switch src.kind {
	case srcScratch:
		return CopySource{Scratch: true}, nil
	case srcImage:
		return CopySource{Image: src.image}, nil
	case srcNamed:
		return CopySource{Named: src.name}, nil
	}
	if !src.stage.dispatched {
		return CopySource{}, fmt.Errorf("stage %s not dispatched", src.stage.label())
	}
	return CopySource{Stage: src.stage.index}, nil
}

// copyStep plans a COPY (cp != nil) or an ADD (add != nil).
func (d *dispatcher) copyStep(sd parser.SourcesAndDest, add *parser.Add, cp *parser.Copy) error {
	var err error
	srcs := make([]string, len(sd.Sources))
	for i, s := range sd.Sources {
		if srcs[i], err = d.x(s); err != nil {
			return err
		}
	}
	dest, err := d.x(sd.Dest)
	if err != nil {
		return err
	}
	chown, err := d.x(sd.Chown)
	if err != nil {
		return err
	}
	chmod, err := d.x(sd.Chmod)
	if err != nil {
		return err
	}
	var checksum string
	if add != nil {
		if checksum, err = d.x(add.Checksum); err != nil {
			return err
		}
	}
	docs := slices.Clone(sd.Heredocs)
	for i, h := range docs {
		if !h.Expand {
			continue
		}
		v, _, err := d.p.exp.ExpandHeredoc(h.Data, d.step.Env)
		if err != nil {
			return fmt.Errorf("%s", errMsg(err))
		}
		docs[i].Data = v
	}

	from := CopySource{Context: true}
	if cp != nil && d.c.from != nil {
		if from, err = d.copySource(d.c.from); err != nil {
			return fmt.Errorf("cannot copy from stage %q, it needs to be defined before current stage %q", cp.From, d.s.label())
		}
	}
	if chown != "" && sd.Link && chownByName(chown) {
		return fmt.Errorf("--chown=%s: user and group names can't be resolved when used with --link, use numeric uid[:gid] instead", chown)
	}
	if err := checkChmod(chmod); err != nil {
		return err
	}
	if checksum != "" {
		if len(srcs) != 1 {
			return fmt.Errorf("checksum can't be specified for multiple sources")
		}
		if !isHTTPSource(srcs[0]) && !isGitSource(srcs[0]) {
			return fmt.Errorf("checksum requires HTTP(S) or Git sources")
		}
		if isHTTPSource(srcs[0]) {
			if err := checkDigest(checksum); err != nil {
				return err
			}
		}
	}
	if add == nil {
		for _, s := range srcs {
			if isGitSource(s) {
				return fmt.Errorf("source can't be a git ref for COPY")
			}
			if isHTTPSource(s) {
				return fmt.Errorf("source can't be a URL for COPY")
			}
		}
	}

	msg := "COPY"
	if add != nil {
		msg = "ADD"
	}
	if cp != nil && cp.Parents {
		msg += " --parents"
	}
	if chown != "" {
		msg += " --chown=" + chown
	}
	if chmod != "" {
		msg += " --chmod=" + chmod
	}
	for _, s := range srcs {
		msg += " " + s
	}
	for _, h := range docs {
		msg += " <<" + h.Name
	}
	d.history(msg + " " + dest + " # buildkit")

	cs := &CopyStep{
		Add:      add != nil,
		From:     from,
		Sources:  srcs,
		Heredocs: docs,
		Dest:     destPath(d.rs.dir, dest),
		Chown:    chown,
		Chmod:    chmod,
		Link:     sd.Link,
		Excludes: slices.Clone(sd.Excludes),
		Checksum: checksum,
	}
	if cp != nil {
		cs.Parents = cp.Parents
	}
	if add != nil {
		cs.Unpack = cloneBool(add.Unpack)
		cs.KeepGitDir = cloneBool(add.KeepGitDir)
	}
	d.step.Kind = StepCopy
	d.step.Copy = cs
	return nil
}

func cloneBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	v := *b
	return &v
}

// destPath makes a COPY destination absolute against the working
// directory, keeping a trailing "/" (BuildKit's pathRelativeToWorkingDir).
func destPath(dir, p string) string {
	if path.IsAbs(p) {
		return normalizePath("/", p, true)
	}
	if p == "." || p == "" {
		p = "./"
	}
	return normalizePath(dir, p, true)
}

// normalizePath joins a relative p to parent (or "/"); an absolute p is
// kept as written. With keepSlash a trailing "/" or "/." survives. This is
// BuildKit's system.NormalizePath for Linux.
func normalizePath(parent, p string, keepSlash bool) string {
	orig := p
	if parent == "" {
		parent = "/"
	}
	if !path.IsAbs(parent) {
		parent = path.Join("/", parent)
	}
	if p == "" {
		p = parent
	}
	if !path.IsAbs(p) {
		p = path.Join(parent, p)
	}
	if keepSlash {
		if strings.HasSuffix(orig, "/") && !strings.HasSuffix(p, "/") {
			p += "/"
		} else if strings.HasSuffix(orig, "/.") {
			if p != "/" {
				p += "/"
			}
			p += "."
		}
	}
	return p
}

// chownByName reports whether a --chown names a user or group rather than
// numeric ids.
func chownByName(chown string) bool {
	for _, part := range strings.SplitN(chown, ":", 2) {
		if part == "" {
			continue
		}
		if _, err := strconv.ParseUint(part, 10, 32); err != nil {
			return true
		}
	}
	return false
}

var symbolicMode = regexp.MustCompile(`^[ugoa]*([-+=]([rwxXst]*|[ugo]))+(,[ugoa]*([-+=]([rwxXst]*|[ugo]))+)*$`)

// checkChmod validates a --chmod: octal up to 07777, or a symbolic mode.
func checkChmod(chmod string) error {
	if chmod == "" {
		return nil
	}
	nonOctal := fmt.Errorf("invalid chmod parameter: '%v'. it should be octal string and between 0 and 07777", chmod)
	if n, err := strconv.ParseUint(chmod, 8, 32); err == nil {
		if n > 0o7777 {
			return nonOctal
		}
		return nil
	}
	if strings.Trim(chmod, "0123456789") == "" {
		return nonOctal
	}
	if !symbolicMode.MatchString(chmod) {
		return fmt.Errorf("invalid chmod parameter: '%v'", chmod)
	}
	return nil
}

func isHTTPSource(s string) bool {
	return (strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")) && !isGitSource(s)
}

// isGitSource recognizes the git references ADD accepts: git@host:repo,
// git:// and ssh:// URLs, and http(s) URLs of a .git repository.
func isGitSource(s string) bool {
	switch {
	case strings.HasPrefix(s, "git@"), strings.HasPrefix(s, "git://"), strings.HasPrefix(s, "ssh://"):
		return true
	case strings.HasPrefix(s, "http://"), strings.HasPrefix(s, "https://"):
		u, _, _ := strings.Cut(s, "#")
		u, _, _ = strings.Cut(u, "?")
		return strings.HasSuffix(u, ".git")
	}
	return false
}

// mountFrom reads the from= of a raw --mount value, which cannot use
// variables since it decides the stage graph.
func mountFrom(raw string) (string, error) {
	r := csv.NewReader(strings.NewReader(raw))
	r.LazyQuotes = true
	fields, err := r.Read()
	if err != nil {
		return "", fmt.Errorf("parse mount %q: %w", raw, err)
	}
	from := ""
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok || strings.ToLower(k) != "from" {
			continue
		}
		if i := strings.IndexByte(v, '$'); i != -1 && i != len(v)-1 {
			return "", fmt.Errorf("'from' doesn't support variable expansion, define alias stage instead")
		}
		from = v
	}
	return from, nil
}

// digestLengths are the hex lengths of the digest algorithms ADD
// --checksum accepts.
var digestLengths = map[string]int{"sha256": 64, "sha384": 96, "sha512": 128}

// checkDigest validates an ADD --checksum of a URL: "algorithm:hex".
func checkDigest(d string) error {
	alg, hexDigest, ok := strings.Cut(d, ":")
	n, known := digestLengths[alg]
	switch {
	case !ok:
		return fmt.Errorf("invalid checksum %q: invalid checksum digest format", d)
	case !known:
		return fmt.Errorf("invalid checksum %q: unsupported digest algorithm", d)
	case len(hexDigest) != n || strings.Trim(hexDigest, "0123456789abcdef") != "":
		return fmt.Errorf("invalid checksum %q: invalid checksum digest length", d)
	}
	return nil
}
