package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"golang.org/x/sys/unix"
)

// fsckStore is a store with two images, "a" and "b", and one blob no image
// uses. It returns the store and the layers of "a".
func fsckStore(t *testing.T) (*Store, []v1.Hash, v1.Hash) {
	t.Helper()
	s := newStore(t)
	ctx := context.Background()
	a := ociImage(t, 2)
	if _, err := s.Put(ctx, a, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, ociImage(t, 1), []string{"b"}); err != nil {
		t.Fatal(err)
	}
	l, err := random.Layer(1000, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutLayer(ctx, l); err != nil {
		t.Fatal(err)
	}
	loose, _ := l.Digest()
	ls, err := a.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var hs []v1.Hash
	for _, l := range ls {
		d, _ := l.Digest()
		hs = append(hs, d)
	}
	return s, hs, loose
}

// kinds lists the findings as "kind object [images] repaired?".
func kinds(r *FsckReport) []string {
	var out []string
	for _, f := range r.Findings {
		s := f.Kind + " " + f.Object
		if len(f.Images) > 0 {
			s += " [" + strings.Join(f.Images, " ") + "]"
		}
		if f.Leftover {
			s += " leftover"
		}
		if f.Repaired {
			s += " repaired"
		}
		out = append(out, s)
	}
	return out
}

func fsck(t *testing.T, s *Store, repair bool) *FsckReport {
	t.Helper()
	r, err := s.Fsck(context.Background(), FsckOptions{Repair: repair})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func flipByte(t *testing.T, p string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x55
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFsckClean(t *testing.T) {
	s, _, _ := fsckStore(t)
	r := fsck(t, s, false)
	if len(r.Findings) != 0 {
		t.Fatalf("findings in a clean store: %q", kinds(r))
	}
	if len(r.DiffIDs) != 3 {
		t.Errorf("got %d diffIDs, want 3 (2 layers of a, 1 of b)", len(r.DiffIDs))
	}
}

func TestFsckDamage(t *testing.T) {
	manifestOf := func(t *testing.T, s *Store, name string) v1.Hash {
		_, h, err := s.Image(name)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, s *Store, layers []v1.Hash, loose v1.Hash) (check, repaired []string)
	}{
		{"corrupt used layer", func(t *testing.T, s *Store, layers []v1.Hash, _ v1.Hash) ([]string, []string) {
			flipByte(t, s.oci.blobs.path(layers[1]))
			want := []string{"corrupt-blob " + layers[1].String() + " [a:latest]"}
			return want, want // an image uses it: reported, not removed
		}},
		{"corrupt unused blob", func(t *testing.T, s *Store, _ []v1.Hash, loose v1.Hash) ([]string, []string) {
			flipByte(t, s.oci.blobs.path(loose))
			return []string{"corrupt-blob " + loose.String()}, []string{"corrupt-blob " + loose.String() + " repaired"}
		}},
		{"missing layer", func(t *testing.T, s *Store, layers []v1.Hash, _ v1.Hash) ([]string, []string) {
			m := manifestOf(t, s, "a")
			if err := os.Remove(s.oci.blobs.path(layers[0])); err != nil {
				t.Fatal(err)
			}
			return []string{"missing-blob " + m.String() + " [a:latest]"}, []string{"missing-blob " + m.String() + " [a:latest] repaired"}
		}},
		{"garbage index entry", func(t *testing.T, s *Store, _ []v1.Hash, _ v1.Hash) ([]string, []string) {
			bogus := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
			err := s.oci.update(context.Background(), func(idx *v1.IndexManifest) error {
				idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: bogus, Size: 10,
					Annotations: map[string]string{refNameAnnotation: "ghost:1"}})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return []string{"missing-manifest " + bogus.String() + " [ghost:1]"}, []string{"missing-manifest " + bogus.String() + " [ghost:1] repaired"}
		}},
		{"stale temp file", func(t *testing.T, s *Store, _ []v1.Hash, _ v1.Hash) ([]string, []string) {
			p := filepath.Join(s.root, "tmp", tempPrefix+"dead")
			if err := os.WriteFile(p, []byte("half a blob"), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"temp-file tmp/" + tempPrefix + "dead leftover"}, []string{"temp-file tmp/" + tempPrefix + "dead leftover repaired"}
		}},
		{"stray file", func(t *testing.T, s *Store, _ []v1.Hash, _ v1.Hash) ([]string, []string) {
			if err := os.WriteFile(filepath.Join(s.oci.blobs.dir, "notes.txt"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"stray-file oci/blobs/sha256/notes.txt"}, []string{"stray-file oci/blobs/sha256/notes.txt repaired"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, layers, loose := fsckStore(t)
			wantCheck, wantRepair := tc.damage(t, s, layers, loose)
			if diff := cmp.Diff(wantCheck, kinds(fsck(t, s, false))); diff != "" {
				t.Errorf("check (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantRepair, kinds(fsck(t, s, true))); diff != "" {
				t.Errorf("repair (-want +got):\n%s", diff)
			}
			after := kinds(fsck(t, s, false))
			unrepaired := 0
			for _, w := range wantRepair {
				if !strings.HasSuffix(w, " repaired") {
					unrepaired++
				}
			}
			if len(after) != unrepaired {
				t.Errorf("after repair: %q, want %d findings", after, unrepaired)
			}
			// The other image is intact and the store still takes images.
			if _, _, err := s.Image("b"); err != nil {
				t.Errorf("image b after repair: %v", err)
			}
			if _, err := s.Put(context.Background(), ociImage(t, 1), []string{"c"}); err != nil {
				t.Errorf("put after repair: %v", err)
			}
		})
	}
}

func TestFsckLockedTempFileIsInUse(t *testing.T) {
	s, _, _ := fsckStore(t)
	f, err := createTemp(filepath.Join(s.root, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer discard(f)
	if r := fsck(t, s, true); len(r.Findings) != 0 {
		t.Errorf("findings with a temp file in use: %q", kinds(r))
	}
	if _, err := os.Stat(f.Name()); err != nil {
		t.Errorf("temp file in use removed: %v", err)
	}
}

func TestFsckRepairBusy(t *testing.T) {
	s, _, _ := fsckStore(t)
	other, err := Open(s.root)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// A young unlocked temp file may be one its writer has yet to lock.
	p := filepath.Join(s.root, "tmp", tempPrefix+"young")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fsck(context.Background(), FsckOptions{Repair: true}); !errors.Is(err, ErrBusy) {
		t.Fatalf("repair with another store open: %v, want ErrBusy", err)
	}
	if r := fsck(t, s, false); len(r.Findings) != 0 {
		t.Errorf("findings: %q", kinds(r))
	}
	// The shared lock is kept: GC elsewhere still sees this store open.
	if _, err := other.GC(context.Background()); !errors.Is(err, ErrBusy) {
		t.Errorf("GC while a checked store is open: %v, want ErrBusy", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Errorf("young temp file removed: %v", err)
	}
}

func TestFsckBadIndex(t *testing.T) {
	s, _, loose := fsckStore(t)
	flipByte(t, s.oci.blobs.path(loose))
	if err := os.WriteFile(filepath.Join(s.oci.dir, "index.json"), []byte(`{"manifests": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	got := kinds(fsck(t, s, true))
	// Without the index nothing is known to be unused: nothing is removed.
	want := []string{"bad-index oci/index.json", "corrupt-blob " + loose.String()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
