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
