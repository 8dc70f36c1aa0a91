package parser

import (
	"fmt"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Mount is a decoded RUN --mount value. Defaults that depend on the build
// (the cache id, the target of a secret) are left to the caller.
type Mount struct {
	Type         string // bind, cache, tmpfs, secret or ssh
	From         string
	Source       string
	Target       string
	ReadOnly     bool
	SizeLimit    int64  // tmpfs size in bytes, 0 for no limit
	CacheID      string // cache id=
	CacheSharing string // shared, private, locked or "" (default)
	Required     bool
	Env          *string // secret env=, nil when not given
	Mode         *uint64
	UID          *uint64
	GID          *uint64
}

// ParseMount decodes a raw --mount value of a [Run] with BuildKit's rules,
// expanding each value with expand (nil keeps values as written).
func ParseMount(raw string, expand func(string) (string, error)) (*Mount, error) {
	if expand == nil {
		expand = func(s string) (string, error) { return s, nil }
	}
	n := &bkparser.Node{Value: "run", Original: "RUN --mount=" + raw + " true", Flags: []string{"--mount=" + raw}, Next: &bkparser.Node{Value: "true"}}
	v, err := instructions.ParseInstruction(n)
	if err != nil {
		return nil, fmt.Errorf("parse mount %q: %w", raw, err)
	}
	run, ok := v.(*instructions.RunCommand)
	if !ok {
		return nil, fmt.Errorf("parse mount %q: unexpected %T", raw, v)
	}
	if err := run.Expand(expand); err != nil {
		return nil, fmt.Errorf("parse mount %q: %w", raw, err)
	}
	ms := instructions.GetMounts(run)
	if len(ms) != 1 {
		return nil, fmt.Errorf("parse mount %q: got %d mounts", raw, len(ms))
	}
	m := ms[0]
	return &Mount{
		Type:         string(m.Type),
		From:         m.From,
		Source:       m.Source,
		Target:       m.Target,
		ReadOnly:     m.ReadOnly,
		SizeLimit:    m.SizeLimit,
		CacheID:      m.CacheID,
		CacheSharing: string(m.CacheSharing),
		Required:     m.Required,
		Env:          m.Env,
		Mode:         m.Mode,
		UID:          m.UID,
		GID:          m.GID,
	}, nil
}
