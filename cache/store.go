package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNotFound is returned (wrapped) when the store has no result for a key.
var ErrNotFound = errors.New("no cached result")

// staleTemp is how old a temp file must be before Open deletes it.
const staleTemp = time.Hour

// Layer is the layer a step added: a blob of the image store.
type Layer struct {
	Digest    v1.Hash `json:"digest"`
	DiffID    v1.Hash `json:"diffID"`
	Size      int64   `json:"size"`
	MediaType string  `json:"mediaType,omitempty"`
}

// Record is the stored result of a step.
type Record struct {
	// Layer is nil for a step that changed no file (an empty_layer history
	// entry) or a metadata step.
	Layer *Layer `json:"layer,omitempty"`
	// Created is the time of the step's history entry.
	Created time.Time `json:"created"`
}

// Store keeps step results in a directory. Its methods are safe for
// concurrent use, also by several processes sharing the directory.
type Store struct {
	dir string
}

// Open opens (creating it if need be) the cache directory dir and deletes
// temp files older than an hour that a killed process left.
func Open(dir string) (*Store, error) {
	for _, d := range []string{"records", "inputs", "last", "stat", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("open cache: %w", err)
		}
	}
	s := &Store{dir: dir}
	if ents, err := os.ReadDir(s.path("tmp")); err == nil {
		for _, e := range ents {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
				os.Remove(s.path("tmp", e.Name()))
			}
		}
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

// Get returns the result of key and marks it used (for Prune's
// least-recently-used order).
func (s *Store) Get(key Key) (Record, error) {
	var r Record
	if !key.valid() {
		return r, fmt.Errorf("read cache record %q: %w", key, ErrNotFound)
	}
	p := s.path("records", key.Hex()+".json")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return r, fmt.Errorf("read cache record %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("read cache record %s: %w", key, err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("read cache record %s: %w", key, ErrNotFound) // a damaged record is no record
	}
	now := time.Now()
	os.Chtimes(p, now, now) // best effort: only the order of Prune depends on it
	return r, nil
}

// Put stores r as the result of key and returns what the store then holds.
// When a record with the same layer is there already (another build got
// there first, even at the same instant), that one is kept and returned, so
// that concurrent builds agree on the created time; otherwise r replaces it.
func (s *Store) Put(key Key, r Record) (Record, error) {
	if !key.valid() {
		return r, fmt.Errorf("write cache record: invalid key %q", key)
	}
	p := s.path("records", key.Hex()+".json")
	b, err := json.Marshal(r)
	if err != nil {
		return r, fmt.Errorf("write cache record %s: %w", key, err)
	}
	tmp, err := s.writeTemp(b)
	if err != nil {
		return r, fmt.Errorf("write cache record %s: %w", key, err)
	}
	defer os.Remove(tmp)
	// link(2) creates the record only if there is none: of two builds
	// writing at once, exactly one wins and the other adopts its record.
	if err := os.Link(tmp, p); err == nil {
		syncDir(filepath.Dir(p))
		return r, nil
	} else if !errors.Is(err, os.ErrExist) {
		return r, fmt.Errorf("write cache record %s: %w", key, err)
	}
	if old, err := s.Get(key); err == nil && sameLayer(old.Layer, r.Layer) {
		return old, nil
	}
	if err := os.Rename(tmp, p); err != nil {
		return r, fmt.Errorf("write cache record %s: %w", key, err)
	}
	syncDir(filepath.Dir(p))
	return r, nil
}

func sameLayer(a, b *Layer) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Digest == b.Digest && a.DiffID == b.DiffID && a.Size == b.Size
}

// Remember notes that the step at position pos (any string naming where a
// step stands, e.g. context, Dockerfile, stage and step index) had key,
// made of inputs, for Explain on a later miss.
func (s *Store) Remember(pos string, key Key, inputs []Input) error {
	if !key.valid() {
		return fmt.Errorf("remember cache inputs: invalid key %q", key)
	}
	lp := s.path("last", Digest([]byte(pos))[7:])
	if b, err := os.ReadFile(lp); err == nil && string(b) == string(key) {
		return nil
	}
	ip := s.path("inputs", key.Hex()+".json")
	if _, err := os.Stat(ip); err != nil {
		b, err := json.Marshal(inputs)
		if err != nil {
			return fmt.Errorf("remember cache inputs: %w", err)
		}
		if err := s.writeFile(ip, b); err != nil {
			return fmt.Errorf("remember cache inputs: %w", err)
		}
	}
	if err := s.writeFile(lp, []byte(key)); err != nil {
		return fmt.Errorf("remember cache inputs: %w", err)
	}
	return nil
}

// Last returns the inputs of the latest key remembered at pos, nil when
// there is none (or its inputs are no longer stored).
func (s *Store) Last(pos string) []Input {
	b, err := os.ReadFile(s.path("last", Digest([]byte(pos))[7:]))
	if err != nil || !Key(b).valid() {
		return nil
	}
	b, err = os.ReadFile(s.path("inputs", Key(b).Hex()+".json"))
	if err != nil {
		return nil
	}
	var in []Input
	if json.Unmarshal(b, &in) != nil {
		return nil
	}
	return in
}

// Entry is a stored result, as Records lists it.
type Entry struct {
	Key      Key
	Record   Record
	LastUsed time.Time
}

// Records lists the stored results, least recently used first.
func (s *Store) Records(ctx context.Context) ([]Entry, error) {
	ents, err := os.ReadDir(s.path("records"))
	if err != nil {
		return nil, fmt.Errorf("list cache records: %w", err)
	}
	var out []Entry
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		p := s.path("records", e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			continue // removed meanwhile
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		en := Entry{Key: Key("sha256:" + name), LastUsed: fi.ModTime()}
		if json.Unmarshal(b, &en.Record) != nil {
			en.Record = Record{}
		}
		out = append(out, en)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LastUsed.Equal(out[j].LastUsed) {
			return out[i].LastUsed.Before(out[j].LastUsed)
		}
		return out[i].Key < out[j].Key
	})
	return out, nil
}

// Remove deletes the result of key and the inputs remembered for it.
func (s *Store) Remove(key Key) error {
	if !key.valid() {
		return fmt.Errorf("remove cache record: invalid key %q", key)
	}
	for _, p := range []string{s.path("records", key.Hex()+".json"), s.path("inputs", key.Hex()+".json")} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove cache record %s: %w", key, err)
		}
	}
	return nil
}

// writeFile makes path hold data, atomically: a fsynced temp file renamed
// into place, then the directory synced.
func (s *Store) writeFile(path string, data []byte) error {
	tmp, err := s.writeTemp(data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(filepath.Dir(path))
	return nil
}

// writeTemp writes data to a fsynced temp file and returns its path.
func (s *Store) writeTemp(data []byte) (string, error) {
	f, err := os.CreateTemp(s.path("tmp"), "w-")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// syncDir makes a rename in dir durable; best effort.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
