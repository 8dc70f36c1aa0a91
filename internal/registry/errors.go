package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrUnauthorized means the registry refused the credentials (or their
	// absence): 401 or 403.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotFound means the repository, tag or digest does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnreachable means the registry could not be reached at all.
	ErrUnreachable = errors.New("registry unreachable")
	// ErrNoPlatform means a multi-platform index has no image for the
	// wanted platform.
	ErrNoPlatform = errors.New("no image for platform")
)

// Error is a classified registry failure.
type Error struct {
	Op       string // "pull", "push", "login"
	Ref      string // the reference (or registry) as the user wrote it
	Registry string // the registry host
	Kind     error  // one of the sentinels, or nil when unclassified
	Err      error  // the underlying error
}

// Error reads like "pull "x/y:1": registry 127.0.0.1:5000 requires
// authentication (401 Unauthorized): run 'mybuild login 127.0.0.1:5000'".
func (e *Error) Error() string {
	switch e.Kind {
	case ErrUnauthorized:
		return fmt.Sprintf("%s %q: registry %s denied access (%s): run 'mybuild login %s' with an account that may %s it",
			e.Op, e.Ref, e.Registry, statusText(e.Err), e.Registry, e.Op)
	case ErrNotFound:
		return fmt.Sprintf("%s %q: image not found in registry %s (%v)", e.Op, e.Ref, e.Registry, e.Err)
	case ErrUnreachable:
		return fmt.Sprintf("%s %q: registry %s unreachable: %v", e.Op, e.Ref, e.Registry, netCause(e.Err))
	}
	return fmt.Sprintf("%s %q: %v", e.Op, e.Ref, e.Err)
}

// Unwrap returns the sentinel and the underlying error.
func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}

// classify wraps err from an operation on ref at registry into an *Error.
func classify(op, ref, registry string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	e := &Error{Op: op, Ref: ref, Registry: registry, Err: err}
	var te *transport.Error
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	switch {
	case errors.Is(err, ErrNoPlatform):
		e.Kind = ErrNoPlatform
	case errors.As(err, &te):
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			e.Kind = ErrUnauthorized
		case http.StatusNotFound:
			e.Kind = ErrNotFound
		default:
			for _, d := range te.Errors {
				switch d.Code {
				case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
					e.Kind = ErrUnauthorized
				case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode:
					e.Kind = ErrNotFound
				}
			}
		}
	case errors.As(err, &oe), errors.As(err, &de):
		e.Kind = ErrUnreachable
	case errors.As(err, &ne) && ne.Timeout():
		e.Kind = ErrUnreachable
	}
	return e
}

// statusText is "401 Unauthorized" for a transport error.
func statusText(err error) string {
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode != 0 {
		return fmt.Sprintf("%d %s", te.StatusCode, http.StatusText(te.StatusCode))
	}
	return err.Error()
}

// netCause strips the URL (which names the API path, not useful to the user)
// from a network error.
func netCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
