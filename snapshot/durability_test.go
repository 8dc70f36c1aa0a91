package snapshot

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLayerFromEarlierBoot checks that a layer published without a sync in
// an earlier boot is not trusted: Lookup drops it, Extract makes it again.
func TestLayerFromEarlierBoot(t *testing.T) {
	if currentBootID() == nil {
		t.Skip("no boot ID here: layers are synced instead")
	}
	s := newStore(t)
	layer := buildTar(t, ent{Name: "f", Body: "data"})
	diffID := diffIDOf(layer)
	dir := extract(t, s, layer)
	marker := filepath.Join(s.path("unsynced"), diffID.Hex)
	b, err := os.ReadFile(marker)
	if err != nil || string(b) != string(currentBootID()) {
		t.Fatalf("marker = %q, %v; want this boot's ID", b, err)
	}
	if _, ok := s.Lookup(diffID); !ok {
		t.Fatal("a layer of this boot is not found")
	}
	must(t, os.WriteFile(marker, []byte("00000000-0000-0000-0000-000000000000"), 0o600))
	if _, ok := s.Lookup(diffID); ok {
		t.Fatal("a layer published unsynced in another boot was trusted")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the untrusted layer dir is still there: %v", err)
	}
	again := extract(t, s, layer)
	if again != dir {
		t.Errorf("re-extracted to %s, want %s", again, dir)
	}
	if b, _ := os.ReadFile(filepath.Join(again, "f")); string(b) != "data" {
		t.Errorf("re-extracted content %q", b)
	}
	if _, ok := s.Lookup(diffID); !ok {
		t.Error("the re-extracted layer is not found")
	}
}

// TestStaleLayerRaces covers the two orders in which a build dropping an
// untrusted layer and another re-making it can meet: a drop that finds the
// layer made again keeps it and its fresh marker, and publishing over a
// stale layer replaces it instead of giving it a fresh marker.
func TestStaleLayerRaces(t *testing.T) {
	if currentBootID() == nil {
		t.Skip("no boot ID here: layers are synced instead")
	}
	oldBoot := []byte("00000000-0000-0000-0000-000000000000")
	s := newStore(t)
	layer := buildTar(t, ent{Name: "f", Body: "data"})
	diffID := diffIDOf(layer)
	dir := extract(t, s, layer)
	marker := filepath.Join(s.path("unsynced"), diffID.Hex)

	// Made again (fresh marker) between the check and the drop.
	must(t, s.dropIfStale(diffID.Hex, dir))
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a layer of this boot was dropped: %v", err)
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != string(currentBootID()) {
		t.Fatalf("its marker = %q, %v; want this boot's ID", b, err)
	}

	// A stale layer still at its place when a fresh one is published.
	must(t, os.WriteFile(marker, oldBoot, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "f"), []byte("torn"), 0o644)) // what a crash may leave
	fresh := filepath.Join(t.TempDir(), "fresh")
	must(t, os.Mkdir(fresh, 0o755))
	must(t, os.WriteFile(filepath.Join(fresh, "f"), []byte("data"), 0o644))
	existed, err := s.publish(diffID.Hex, fresh, dir)
	must(t, err)
	if existed {
		t.Fatal("publish kept the stale layer as if it were current")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "data" {
		t.Errorf("layer content after publish = %q, want the fresh one", b)
	}
	if _, ok := s.Lookup(diffID); !ok {
		t.Error("the freshly published layer is not trusted")
	}

	// A current layer at its place: publish leaves it, reports it.
	other := filepath.Join(t.TempDir(), "other")
	must(t, os.Mkdir(other, 0o755))
	if existed, err := s.publish(diffID.Hex, other, dir); err != nil || !existed {
		t.Errorf("publish over a current layer: existed %v, err %v", existed, err)
	}
}
