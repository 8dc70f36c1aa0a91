package remotecontext

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Kind is what a build context argument names.
type Kind int

const (
	// Local is anything that is not a URL this package fetches: a local
	// path, for the caller to check.
	Local Kind = iota
	// Git is a Git repository.
	Git
	// HTTP is a file to download: a tar archive or a Dockerfile.
	HTTP
)

var (
	// schemeRE matches the scheme of a URL, as BuildKit's gitutil does.
	schemeRE = regexp.MustCompile(`^[a-zA-Z0-9]+://`)
	// scpRE matches an scp-like SSH address, [USER@]HOST:PATH[#FRAGMENT].
	scpRE = regexp.MustCompile(`^(?:([a-zA-Z0-9-_]+)@)?([a-zA-Z0-9-.]+):(.*?)(?:#(.*))?$`)
)

// Detect tells what s names, by BuildKit's rules: git:// and ssh:// URLs,
// http(s) URLs whose path ends in ".git", and scp-like [USER@]HOST:PATH
// addresses are Git repositories; other http(s) URLs are downloads;
// anything else (other schemes included) is Local. "HOST:PATH" without a
// user is also a local name that contains a colon: a caller that has such
// a directory should prefer it.
func Detect(s string) Kind {
	if p := schemeRE.FindString(s); p != "" {
		switch strings.ToLower(strings.TrimSuffix(p, "://")) {
		case "git", "ssh":
			return Git
		case "http", "https":
			if u, err := url.Parse(s); err == nil && strings.HasSuffix(u.Path, ".git") {
				return Git
			}
			return HTTP
		}
		return Local
	}
	if isSCP(s) {
		return Git
	}
	return Local
}

// isSCP tells whether s is an scp-like address (and not a URL with a
// scheme, which url.Parse would take as one).
func isSCP(s string) bool {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Opaque == "" {
		return false
	}
	return scpRE.MatchString(s)
}

// GitRef is a Git build context.
type GitRef struct {
	// Remote is what git fetches from: the URL without its fragment and
	// query.
	Remote string
	// Ref is the branch, tag, commit or other ref to check out; "" is the
	// remote's HEAD.
	Ref string
	// SubDir is the directory of the repository that is the context; ""
	// is its root.
	SubDir string
	// Checksum, when set, is the commit (or a prefix of it) the checkout
	// must be.
	Checksum string
	// KeepGitDir and Submodules are the keep-git-dir and submodules query
	// options; nil when the URL does not say.
	KeepGitDir, Submodules *bool
}

// ParseGit parses a Git context: a URL Detect calls Git, with an optional
// fragment #REF[:SUBDIR] or query (ref, branch, tag, subdir, checksum or
// commit, keep-git-dir, submodules), as BuildKit reads them.
func ParseGit(s string) (*GitRef, error) {
	if Detect(s) != Git {
		return nil, errors.New("not a Git URL")
	}
	r := &GitRef{}
	var fragment string
	var query url.Values
	if schemeRE.MatchString(s) {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("parse URL: %w", unwrapURL(err))
		}
		fragment, query = u.Fragment, u.Query()
		u.Fragment, u.RawFragment, u.RawQuery, u.ForceQuery = "", "", "", false
		r.Remote = u.String()
	} else {
		rest, frag, _ := strings.Cut(s, "#")
		rest, q, hasQuery := strings.Cut(rest, "?")
		if hasQuery {
			var err error
			if query, err = url.ParseQuery(q); err != nil {
				return nil, fmt.Errorf("parse query: %w", err)
			}
		}
		fragment, r.Remote = frag, rest
	}
	r.Ref, r.SubDir, _ = strings.Cut(fragment, ":")
	if err := r.loadQuery(query); err != nil {
		return nil, err
	}
	// Neither may pass for an option on git's command line.
	if strings.HasPrefix(r.Ref, "-") {
		return nil, fmt.Errorf("invalid ref %q", r.Ref)
	}
	if strings.HasPrefix(r.Remote, "-") {
		return nil, fmt.Errorf("invalid remote %q", Redact(r.Remote))
	}
	return r, nil
}

// loadQuery applies the query options, refusing unknown, repeated and
// conflicting ones as BuildKit does.
func (r *GitRef) loadQuery(q url.Values) error {
	var tag, branch string
	for k, v := range q {
		if len(v) > 1 {
			return fmt.Errorf("query %q has multiple values", k)
		}
		val := v[0]
		if val == "" && k != "submodules" && k != "keep-git-dir" {
			return fmt.Errorf("query %q has no value", k)
		}
		switch k {
		case "ref":
			if r.Ref != "" && r.Ref != val {
				return fmt.Errorf("ref conflicts: %q vs %q", r.Ref, val)
			}
			r.Ref = val
		case "tag":
			tag = val
		case "branch":
			branch = val
		case "subdir":
			if r.SubDir != "" && r.SubDir != val {
				return fmt.Errorf("subdir conflicts: %q vs %q", r.SubDir, val)
			}
			r.SubDir = val
		case "checksum", "commit":
			r.Checksum = val
		case "keep-git-dir", "submodules":
			b := true
			if val != "" {
				var err error
				if b, err = strconv.ParseBool(val); err != nil {
					return fmt.Errorf("invalid %s value: %q", k, val)
				}
			}
			if k == "keep-git-dir" {
				r.KeepGitDir = &b
			} else {
				r.Submodules = &b
			}
		default:
			return fmt.Errorf("unexpected query %q", k)
		}
	}
	if tag != "" && branch != "" {
		return errors.New("branch conflicts with tag")
	}
	for prefix, name := range map[string]string{"refs/tags/": tag, "refs/heads/": branch} {
		if name == "" {
			continue
		}
		if !strings.HasPrefix(name, prefix) {
			name = prefix + name
		}
		if r.Ref != "" && r.Ref != name {
			return fmt.Errorf("ref conflicts: %q vs %q", r.Ref, name)
		}
		r.Ref = name
	}
	if r.Checksum != "" && r.Ref == "" {
		r.Ref = r.Checksum
	}
	return nil
}

// Redact returns s without the credentials a URL carries (user and
// password of scheme://USER:PASSWORD@HOST/…), for messages. The user of an
// scp-like address (git@host:path) is kept: it is no secret.
func Redact(s string) string {
	if !schemeRE.MatchString(s) {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		// Unparsable: cut whatever stands between "://" and the last "@"
		// of the authority.
		scheme, rest, _ := strings.Cut(s, "://")
		auth, path, _ := strings.Cut(rest, "/")
		if i := strings.LastIndex(auth, "@"); i >= 0 {
			auth = auth[i+1:]
		}
		if path != "" || strings.Contains(rest, "/") {
			return scheme + "://" + auth + "/" + path
		}
		return scheme + "://" + auth
	}
	if u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}

// secrets are the strings of s that messages must not show: the userinfo
// of its URL (as git quotes it, "USER:PASSWORD@") and the password alone.
func secrets(s string) []string {
	if !schemeRE.MatchString(s) {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return nil
	}
	out := []string{u.User.String() + "@"}
	if p, ok := u.User.Password(); ok && len(p) >= 4 {
		out = append(out, p)
		if esc := url.QueryEscape(p); esc != p {
			out = append(out, esc)
		}
	}
	return out
}

// scrub removes the secrets from a message (git's stderr may quote the URL
// it was given).
func scrub(msg string, secrets []string) string {
	for _, s := range secrets {
		if strings.HasSuffix(s, "@") {
			msg = strings.ReplaceAll(msg, s, "")
		} else {
			msg = strings.ReplaceAll(msg, s, "xxxxx")
		}
	}
	return msg
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
