package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"
)

// keyVersion changes whenever the encoding of keys does, so that results of
// older binaries are never mistaken for current ones.
const keyVersion = "mybuild-cache-v1"

// Names of the inputs Explain knows how to word; any other name is reported
// as "NAME changed".
const (
	InputParent      = "parent step"       // the key of the step before
	InputBaseImage   = "base image digest" // the manifest digest of FROM's image
	InputBaseStage   = "base stage"        // the final key of FROM's stage
	InputInstruction = "instruction"       // the canonical encoding of the expanded step
	InputSource      = "source"            // COPY --from: the stage's key or the image's digest
	ArgPrefix        = "build arg "        // followed by the arg's name
	EnvPrefix        = "env "              // followed by the variable's name
	FilePrefix       = "file "             // followed by the path inside the context
)

// Input is one named input of a key.
type Input struct {
	Name   string `json:"n"`
	Digest string `json:"d"`
}

// Key is a step's cache key: "sha256:" and 64 hex digits.
type Key string

// Hex returns the key's hex digits.
func (k Key) Hex() string { return strings.TrimPrefix(string(k), "sha256:") }

// valid tells whether k is a well-formed key, safe to use in a file name.
func (k Key) valid() bool {
	h := k.Hex()
	if len(h) != 64 || !strings.HasPrefix(string(k), "sha256:") {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

// NewKey computes the key of inputs, taken in order. Names and digests are
// length-prefixed, so no two lists share a key.
func NewKey(inputs []Input) Key {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put(keyVersion)
	for _, in := range inputs {
		put(in.Name)
		put(in.Digest)
	}
	return Key("sha256:" + hex.EncodeToString(h.Sum(nil)))
}

// Digest returns the sha256 of b, "sha256:<hex>".
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// DigestJSON returns the digest of v's JSON encoding. Struct fields encode
// in declaration order and map keys sorted, so the encoding is canonical for
// the types a step is made of.
func DigestJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return Digest(b), nil
}

// Explain says why a step whose inputs are cur missed, given the inputs
// prev of the latest earlier result at the same position (nil when there is
// none). The step's own inputs come first: the first of cur[1:], in order,
// that prev lacks or has with another digest, then one prev had that cur
// lacks. Only when they all agree is the first input, the parent (or the
// stage's base), named.
func Explain(prev, cur []Input) string {
	if prev == nil {
		return "no earlier result"
	}
	if len(cur) == 0 {
		return "earlier result no longer stored"
	}
	old := make(map[string]string, len(prev))
	for _, in := range prev {
		old[in.Name] = in.Digest
	}
	seen := make(map[string]bool, len(cur))
	for _, in := range cur[1:] {
		seen[in.Name] = true
		d, ok := old[in.Name]
		switch {
		case !ok && strings.HasPrefix(in.Name, FilePrefix):
			return in.Name + " added"
		case !ok || d != in.Digest:
			return in.Name + " changed"
		}
	}
	seen[cur[0].Name] = true
	for _, in := range prev {
		if seen[in.Name] {
			continue
		}
		if strings.HasPrefix(in.Name, FilePrefix) {
			return in.Name + " removed"
		}
		return in.Name + " changed"
	}
	if old[cur[0].Name] != cur[0].Digest {
		return cur[0].Name + " changed"
	}
	return "earlier result no longer stored"
}
