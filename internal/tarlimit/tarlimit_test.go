package tarlimit

import (
	"archive/tar"
	"testing"
)

func TestCheckSparse(t *testing.T) {
	tests := []struct {
		name string
		hdr  tar.Header
		ok   bool
	}{
		{"regular huge", tar.Header{Typeflag: tar.TypeReg, Size: 1 << 40}, true},
		{"old GNU sparse small", tar.Header{Typeflag: tar.TypeGNUSparse, Size: 1 << 20}, true},
		{"old GNU sparse huge", tar.Header{Typeflag: tar.TypeGNUSparse, Size: 1 << 40}, false},
		{"PAX sparse huge", tar.Header{Typeflag: tar.TypeReg, Size: MaxSparseSize + 1, PAXRecords: map[string]string{"GNU.sparse.major": "1"}}, false},
		{"PAX sparse at the limit", tar.Header{Typeflag: tar.TypeReg, Size: MaxSparseSize, PAXRecords: map[string]string{"GNU.sparse.major": "1"}}, true},
	}
	for _, tt := range tests {
		if err := CheckSparse(&tt.hdr); (err == nil) != tt.ok {
			t.Errorf("%s: CheckSparse = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
