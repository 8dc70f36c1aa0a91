package cache

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestNewKey(t *testing.T) {
	a := NewKey([]Input{{"x", "1"}, {"y", "2"}})
	if a != NewKey([]Input{{"x", "1"}, {"y", "2"}}) {
		t.Error("same inputs, different keys")
	}
	for _, other := range [][]Input{
		{{"y", "2"}, {"x", "1"}},
		{{"x", "12"}},
		{{"x1", ""}, {"y", "2"}},
		{{"x", "1"}, {"y", "2"}, {"z", ""}},
	} {
		if NewKey(other) == a {
			t.Errorf("%v shares the key of x=1,y=2", other)
		}
	}
	if !a.valid() {
		t.Errorf("key %q is not valid", a)
	}
}

func TestExplain(t *testing.T) {
	base := []Input{{InputParent, "p"}, {ArgPrefix + "FOO", "1"}, {FilePrefix + "a", "a"}, {FilePrefix + "b", "b"}, {InputInstruction, "i"}}
	with := func(f func(in []Input) []Input) []Input {
		return f(append([]Input(nil), base...))
	}
	tests := []struct {
		name string
		prev []Input
		cur  []Input
		want string
	}{
		{"none", nil, base, "no earlier result"},
		{"same", base, base, "earlier result no longer stored"},
		{"parent", base, with(func(in []Input) []Input { in[0].Digest = "q"; return in }), "parent step changed"},
		{"arg before parent", base, with(func(in []Input) []Input { in[0].Digest = "q"; in[1].Digest = "2"; return in }), "build arg FOO changed"},
		{"file", base, with(func(in []Input) []Input { in[3].Digest = "c"; return in }), "file b changed"},
		{"added", base, with(func(in []Input) []Input { return append(in[:4], Input{FilePrefix + "c", "c"}, in[4]) }), "file c added"},
		{"removed", base, with(func(in []Input) []Input { return append(in[:2], in[3:]...) }), "file a removed"},
		{"instruction", base, with(func(in []Input) []Input { in[4].Digest = "j"; return in }), "instruction changed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Explain(tc.prev, tc.cur); got != tc.want {
				t.Errorf("Explain = %q, want %q", got, tc.want)
			}
		})
	}
}

func testLayer(n byte) *Layer {
	h := func(c byte) v1.Hash {
		b := make([]byte, 64)
		for i := range b {
			b[i] = c
		}
		return v1.Hash{Algorithm: "sha256", Hex: string(b)}
	}
	return &Layer{Digest: h('a' + n), DiffID: h('0' + n), Size: int64(n)}
}

func TestStorePutGet(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := NewKey([]Input{{"x", "1"}})
	if _, err := s.Get(k); err == nil {
		t.Fatal("Get of an unknown key succeeded")
	}
	t0 := time.Unix(1000, 0).UTC()
	r := Record{Layer: testLayer(1), Created: t0}
	if got, err := s.Put(k, r); err != nil || !got.Created.Equal(t0) {
		t.Fatalf("Put = %v, %v", got, err)
	}
	// Same layer, later time: the first record stays.
	if got, err := s.Put(k, Record{Layer: testLayer(1), Created: t0.Add(time.Hour)}); err != nil || !got.Created.Equal(t0) {
		t.Fatalf("second Put = %v, %v; want the first record kept", got, err)
	}
	// Another layer replaces it.
	r2 := Record{Layer: testLayer(2), Created: t0.Add(time.Hour)}
	if got, err := s.Put(k, r2); err != nil || !got.Created.Equal(r2.Created) {
		t.Fatalf("Put of another layer = %v, %v", got, err)
	}
	got, err := s.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r2, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	ents, err := s.Records(context.Background())
	if err != nil || len(ents) != 1 || ents[0].Key != k {
		t.Fatalf("Records = %v, %v", ents, err)
	}
	if err := s.Remove(k); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(k); err == nil {
		t.Error("Get after Remove succeeded")
	}
}

func TestStoreConcurrentPut(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := NewKey([]Input{{"x", "1"}})
	const n = 16
	got := make([]Record, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.Put(k, Record{Layer: testLayer(3), Created: time.Unix(int64(i), 0).UTC()})
			if err != nil {
				t.Error(err)
			}
			got[i] = r
		}()
	}
	wg.Wait()
	for i := range got {
		if !got[i].Created.Equal(got[0].Created) {
			t.Fatalf("Put %d got created %v, Put 0 %v: want all to agree", i, got[i].Created, got[0].Created)
		}
	}
}

func TestRememberLast(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if s.Last("pos") != nil {
		t.Error("Last of an unknown position is not nil")
	}
	in := []Input{{"a", "1"}, {"b", "2"}}
	if err := s.Remember("pos", NewKey(in), in); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, s.Last("pos")); diff != "" {
		t.Errorf("Last (-want +got):\n%s", diff)
	}
}

func TestStatCache(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	time.Sleep(racyWindow + 100*time.Millisecond) // the change time must be old enough to trust
	ctx := context.Background()
	digest := func(c *StatCache) string {
		t.Helper()
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		d, err := c.FileDigest(ctx, p, fi, func() (io.ReadCloser, error) { return os.Open(p) })
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	c := s.StatCache(dir)
	d1 := digest(c)
	if d1 != Digest([]byte("one")) {
		t.Fatalf("digest %s, want that of the contents", d1)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	c = s.StatCache(dir)
	if _, ok := c.files[p]; !ok {
		t.Fatal("saved stat cache does not know the file")
	}
	// A changed file is read again, even with its old mtime restored.
	if err := os.WriteFile(p, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(p, old, old)
	if d := digest(c); d != Digest([]byte("two")) {
		t.Errorf("digest after change %s, want that of the new contents", d)
	}
	var nilCache *StatCache
	if d := digest(nilCache); d != Digest([]byte("two")) {
		t.Errorf("nil StatCache digest %s", d)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) (*Store, []Key) {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		var keys []Key
		for i := range 4 {
			k := NewKey([]Input{{"i", string(rune('a' + i))}})
			if _, err := s.Put(k, Record{Layer: testLayer(byte(i + 1))}); err != nil {
				t.Fatal(err)
			}
			// Used i hours ago: key 0 is the most recent.
			at := time.Now().Add(-time.Duration(i) * time.Hour)
			os.Chtimes(s.path("records", k.Hex()+".json"), at, at)
			keys = append(keys, k)
		}
		return s, keys
	}
	tests := []struct {
		name string
		o    PruneOptions
		kept []int
	}{
		{"nothing", PruneOptions{}, []int{0, 1, 2, 3}},
		{"all", PruneOptions{All: true}, nil},
		{"until", PruneOptions{UnusedFor: 90 * time.Minute}, []int{0, 1}},
		{"keep storage", PruneOptions{KeepBytes: 3}, []int{0, 1}}, // sizes 1..4, newest first
		{"dangling", PruneOptions{Dangling: func(l *Layer) bool { return l.Size == 3 }}, []int{0, 1, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, keys := setup(t)
			if _, _, err := s.Prune(ctx, tc.o); err != nil {
				t.Fatal(err)
			}
			var kept []int
			for i, k := range keys {
				if _, err := s.Get(k); err == nil {
					kept = append(kept, i)
				}
			}
			if diff := cmp.Diff(tc.kept, kept); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatCacheEncoding(t *testing.T) {
	files := map[string]statEntry{
		"/ctx/a":         {Size: 3, Mtime: 1700000000123456789, Ctime: -1, Ino: 42, Dev: 2049, Digest: Digest([]byte("one"))},
		"/ctx/dir/ü b":   {Size: 0, Mtime: 0, Ctime: 5, Ino: 1 << 40, Dev: 0, Digest: Digest(nil)},
		"/ctx/" + "long": {Size: 1 << 40, Mtime: 1, Ctime: 2, Ino: 3, Dev: 4, Digest: Digest([]byte("x"))},
	}
	b, err := encodeStat(files)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeStat(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(files, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// Every truncation and a foreign file are refused, never half-read.
	for n := len(statMagic) + 1; n < len(b); n++ {
		if m, err := decodeStat(b[:n]); err == nil && len(m) == len(files) {
			t.Errorf("truncated to %d bytes: decoded all %d entries", n, len(m))
		}
	}
	if _, err := decodeStat([]byte(`{"/ctx/a":{"s":3}}`)); err == nil {
		t.Error("a JSON stat cache of an earlier version decoded")
	}
	if _, err := encodeStat(map[string]statEntry{"/x": {Digest: "sha256:zz"}}); err == nil {
		t.Error("encoded an entry with a malformed digest")
	}
}
