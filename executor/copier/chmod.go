package copier

import (
	"fmt"
	"strconv"
	"strings"
)

// modeFunc turns the permission bits of a source into those of its copy.
type modeFunc func(mode uint32, isDir bool) uint32

// parseChmod parses --chmod: an octal mode up to 07777, which every copied
// entry gets, or a symbolic mode in the syntax of chmod(1) (BuildKit accepts
// it since Dockerfile syntax 1.14), applied to each entry's own mode as with
// a umask of 0. For an octal mode it also returns the mode itself, which
// BuildKit gives the directories it creates too.
func parseChmod(s string) (modeFunc, *uint32, error) {
	if n, err := strconv.ParseUint(s, 8, 32); err == nil {
		if n > 0o7777 {
			return nil, nil, invalidChmod(s)
		}
		m := uint32(n)
		return func(uint32, bool) uint32 { return m }, &m, nil
	}
	if strings.Trim(s, "0123456789") == "" {
		return nil, nil, invalidChmod(s) // looks numeric: not octal
	}
	var clauses []clause
	for _, text := range strings.Split(s, ",") {
		cl, err := parseClause(text)
		if err != nil {
			return nil, nil, fmt.Errorf("parse --chmod %q: %w", s, err)
		}
		clauses = append(clauses, cl)
	}
	return func(m uint32, dir bool) uint32 {
		for _, cl := range clauses {
			m = cl.apply(m, dir)
		}
		return m
	}, nil, nil
}

func invalidChmod(s string) error {
	return fmt.Errorf("invalid chmod parameter: '%s'. it should be octal string and between 0 and 07777", s)
}

// Classes of users a symbolic clause applies to.
const (
	classU = 1 << iota
	classG
	classO
	classAll = classU | classG | classO
)

// clause is one comma-separated part of a symbolic mode: "who" letters and
// one or more operations.
type clause struct {
	who uint8 // 0: all, as with a umask of 0
	ops []op
}

// op is one "+", "-" or "=" with its permission letters, or with the class
// its bits are copied from ("g=u").
type op struct {
	kind  byte
	perms string
	from  uint8
}

func parseClause(text string) (clause, error) {
	var cl clause
	i := 0
who:
	for ; i < len(text); i++ {
		switch text[i] {
		case 'u':
			cl.who |= classU
		case 'g':
			cl.who |= classG
		case 'o':
			cl.who |= classO
		case 'a':
			cl.who |= classAll
		default:
			break who
		}
	}
	for i < len(text) {
		o := op{kind: text[i]}
		if o.kind != '+' && o.kind != '-' && o.kind != '=' {
			return clause{}, fmt.Errorf("unexpected %q in %q", text[i], text)
		}
		i++
		if i < len(text) && strings.IndexByte("ugo", text[i]) >= 0 {
			o.from = map[byte]uint8{'u': classU, 'g': classG, 'o': classO}[text[i]]
			i++
		} else {
			start := i
			for i < len(text) && strings.IndexByte("rwxXst", text[i]) >= 0 {
				i++
			}
			o.perms = text[start:i]
		}
		cl.ops = append(cl.ops, o)
	}
	if len(cl.ops) == 0 {
		return clause{}, fmt.Errorf("no operation in %q", text)
	}
	return cl, nil
}

// apply applies the clause to mode m of a directory or not.
func (cl clause) apply(m uint32, dir bool) uint32 {
	who := cl.who
	if who == 0 {
		who = classAll
	}
	var rwx, special uint32 // the bits of the classes in who
	for _, c := range []struct {
		class        uint8
		rwx, special uint32
	}{{classU, 0o700, 0o4000}, {classG, 0o070, 0o2000}, {classO, 0o007, 0o1000}} {
		if who&c.class != 0 {
			rwx |= c.rwx
			special |= c.special
		}
	}
	for _, o := range cl.ops {
		var bits uint32
		if o.from != 0 {
			shift := map[uint8]uint{classU: 6, classG: 3, classO: 0}[o.from]
			v := (m >> shift) & 7
			bits = (v<<6 | v<<3 | v) & rwx
		}
		for _, p := range o.perms {
			switch p {
			case 'r':
				bits |= 0o444 & rwx
			case 'w':
				bits |= 0o222 & rwx
			case 'x':
				bits |= 0o111 & rwx
			case 'X':
				if dir || m&0o111 != 0 {
					bits |= 0o111 & rwx
				}
			case 's':
				bits |= special & 0o6000
			case 't':
				bits |= special & 0o1000
			}
		}
		switch o.kind {
		case '+':
			m |= bits
		case '-':
			m &^= bits
		case '=':
			m = m&^(rwx|special) | bits
		}
	}
	return m
}
