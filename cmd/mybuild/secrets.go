package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/mybuild/mybuild/executor"
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
	fs.StringArrayVar(&m.ssh, "ssh", nil, "an SSH agent socket for RUN --mount=type=ssh: default (=$SSH_AUTH_SOCK) | ID=SOCKET; repeatable")
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

// parseSSH decodes --ssh values: ID[=SOCKET], SOCKET defaulting to
// $SSH_AUTH_SOCK. Only agent sockets are forwarded, not key files.
func parseSSH(vals []string, getenv func(string) string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range vals {
		id, sock, _ := strings.Cut(v, "=")
		if id == "" {
			return nil, fmt.Errorf("parse --ssh %q: no id", v)
		}
		if sock == "" {
			if sock = getenv("SSH_AUTH_SOCK"); sock == "" {
				return nil, fmt.Errorf("parse --ssh %q: no socket given and SSH_AUTH_SOCK is not set", v)
			}
		}
		if strings.Contains(sock, ",") {
			return nil, fmt.Errorf("parse --ssh %q: only one agent socket per id is supported", v)
		}
		fi, err := os.Stat(sock)
		if err != nil {
			return nil, fmt.Errorf("--ssh %s: %w", id, errors.Unwrap(err))
		}
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("--ssh %s: %s is not an agent socket (key files are not supported)", id, sock)
		}
		out[id] = sock
	}
	return out, nil
}
