package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mybuild/mybuild/executor"
	"github.com/mybuild/mybuild/internal/store"
)

// mountsDir is where RUN --mount keeps cache mounts under the store root.
func mountsDir(g *globals) string { return filepath.Join(g.root, "mounts") }

// mountFlags are the --secret and --ssh flags of `mybuild build`.
type mountFlags struct {
	secrets []string
	ssh     []string
}

func (m *mountFlags) add(fs *pflag.FlagSet) {
	fs.StringArrayVar(&m.secrets, "secret", nil, "a secret for RUN --mount=type=secret: id=ID,src=FILE | id=ID,env=VAR | id=ID (the variable ID if set, else the file ID); repeatable")
	fs.StringArrayVar(&m.ssh, "ssh", nil, "an SSH agent for RUN --mount=type=ssh: default (=$SSH_AUTH_SOCK) | ID=SOCKET | ID=KEYFILE[,KEYFILE...] (unencrypted private keys, served as an agent); repeatable")
}

// parseSecrets decodes --secret values as buildx does. Secrets from files
// are read when a step mounts them; secrets from the environment now.
// Messages never show a secret's value.
func parseSecrets(vals []string, getenv func(string) string) (map[string]executor.Secret, error) {
	out := map[string]executor.Secret{}
	for _, v := range vals {
		var id, src, env, typ string
		for _, field := range strings.Split(v, ",") {
			key, val, ok := strings.Cut(field, "=")
			if !ok {
				return nil, fmt.Errorf("parse --secret %q: want KEY=VALUE fields", v)
			}
			switch strings.ToLower(key) {
			case "type":
				if val != "file" && val != "env" {
					return nil, fmt.Errorf("parse --secret %q: type must be file or env", v)
				}
				typ = val
			case "id":
				id = val
			case "src", "source":
				src = val
			case "env":
				env = val
			default:
				return nil, fmt.Errorf("parse --secret %q: unknown key %q", v, key)
			}
		}
		if typ == "env" && env == "" {
			env, src = src, ""
		}
		if id == "" {
			return nil, fmt.Errorf("parse --secret %q: no id", v)
		}
		if src == "" && env == "" {
			if typ != "file" && getenv(id) != "" {
				env = id
			} else {
				src = id
			}
		}
		switch {
		case env != "":
			val := getenv(env)
			if val == "" {
				return nil, fmt.Errorf("secret %s: environment variable %s is not set", id, env)
			}
			out[id] = executor.Secret{Data: []byte(val)}
		default:
			abs, err := filepath.Abs(src)
			if err != nil {
				return nil, fmt.Errorf("secret %s: %w", id, err)
			}
			if fi, err := os.Stat(abs); err != nil || !fi.Mode().IsRegular() {
				return nil, fmt.Errorf("secret %s: %s is not a readable file", id, src)
			}
			out[id] = executor.Secret{File: abs}
		}
	}
	return out, nil
}

// sshSource is what one --ssh id forwards: an agent socket, or private
// key files this process serves as an agent.
type sshSource struct {
	sock string
	keys []string
}

// parseSSH decodes --ssh values as BuildKit does: ID[=PATH[,PATH…]], PATH
// defaulting to $SSH_AUTH_SOCK. A single path that is a socket is an agent
// to forward; otherwise every path is an unencrypted private key file.
func parseSSH(vals []string, getenv func(string) string) (map[string]sshSource, error) {
	out := map[string]sshSource{}
	for _, v := range vals {
		id, list, _ := strings.Cut(v, "=")
		if id == "" {
			return nil, fmt.Errorf("parse --ssh %q: no id", v)
		}
		if list == "" {
			if list = getenv("SSH_AUTH_SOCK"); list == "" {
				return nil, fmt.Errorf("parse --ssh %q: no socket given and SSH_AUTH_SOCK is not set", v)
			}
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("parse --ssh %q: id %s given twice", v, id)
		}
		paths := strings.Split(list, ",")
		var src sshSource
		for _, p := range paths {
			if p == "" {
				return nil, fmt.Errorf("parse --ssh %q: empty path", v)
			}
			fi, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("--ssh %s: %w", id, errors.Unwrap(err))
			}
			switch {
			case fi.Mode()&os.ModeSocket != 0 && len(paths) == 1:
				src.sock = p
			case fi.Mode()&os.ModeSocket != 0:
				return nil, fmt.Errorf("--ssh %s: %s is an agent socket: give it alone, not with other paths", id, p)
			case fi.Mode().IsRegular():
				abs, err := filepath.Abs(p)
				if err != nil {
					return nil, fmt.Errorf("--ssh %s: %w", id, err)
				}
				src.keys = append(src.keys, abs)
			default:
				return nil, fmt.Errorf("--ssh %s: %s is neither an agent socket nor a key file", id, p)
			}
		}
		out[id] = src
	}
	return out, nil
}

// sshSockets makes the agent sockets the executor forwards: sockets as
// given, key files served by agents of this process on sockets in a temp
// dir of st. stop ends those agents; it is never nil.
func sshSockets(srcs map[string]sshSource, st *store.Store) (socks map[string]string, stop func(), err error) {
	var agents []*keyAgent
	var releases []func()
	stop = func() {
		for _, a := range agents {
			a.close()
		}
		for _, r := range releases {
			r()
		}
	}
	socks = map[string]string{}
	for _, id := range slices.Sorted(maps.Keys(srcs)) {
		src := srcs[id]
		if src.sock != "" {
			socks[id] = src.sock
			continue
		}
		dir, release, err := st.TempDir()
		if err != nil {
			stop()
			return nil, func() {}, fmt.Errorf("--ssh %s: %w", id, err)
		}
		releases = append(releases, release)
		a, err := startKeyAgent(filepath.Join(dir, "agent"), src.keys)
		if err != nil {
			stop()
			return nil, func() {}, fmt.Errorf("--ssh %s: %w", id, err)
		}
		agents = append(agents, a)
		socks[id] = filepath.Join(dir, "agent")
	}
	return socks, stop, nil
}
