package registry

import "testing"

// FuzzReference checks that ParseReference never panics and that a
// reference it accepts reads back the same from its String form.
func FuzzReference(f *testing.F) {
	for _, s := range []string{
		"alpine", "alpine:3.20", "library/alpine", "docker.io/library/alpine:latest",
		"index.docker.io/library/alpine", "localhost:5000/app:v1", "127.0.0.1:5000/a/b/c:tag",
		"[::1]:5000/app", "ghcr.io/owner/repo@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"repo:tag@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"UPPER/case", "a:b:c", "", ":", "@", "host:99999/x", "scratch",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, insecure bool) {
		var o Options
		if insecure {
			o.Insecure = []string{"localhost:5000", "registry.example"}
		}
		ref, err := ParseReference(s, o)
		if err != nil {
			return
		}
		str := ref.String()
		again, err := ParseReference(str, o)
		if err != nil {
			t.Fatalf("ParseReference(%q) = %q, which does not parse: %v", s, str, err)
		}
		if again.String() != str || again.Name() != ref.Name() {
			t.Fatalf("ParseReference(%q) = %q, read back as %q", s, str, again.String())
		}
		if again.Context().Scheme() != ref.Context().Scheme() {
			t.Fatalf("ParseReference(%q): scheme %s, read back as %s", s, ref.Context().Scheme(), again.Context().Scheme())
		}
	})
}
