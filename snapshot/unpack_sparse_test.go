package snapshot

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

// gnuSparseTar is an archive of one old-GNU sparse file ('S') of real size
// size, all hole but its last byte.
func gnuSparseTar(size int64) []byte {
	h := make([]byte, 512)
	copy(h, "big")
	copy(h[100:], "0000644\x00")
	copy(h[108:], "0000000\x00")
	copy(h[116:], "0000000\x00")
	copy(h[124:], fmt.Sprintf("%011o\x00", 1))
	copy(h[136:], "00000000000\x00")
	h[156] = 'S'
	copy(h[257:], "ustar  \x00")
	copy(h[386:], fmt.Sprintf("%011o\x00", size-1))
	copy(h[398:], fmt.Sprintf("%011o\x00", 1))
	copy(h[483:], fmt.Sprintf("%011o\x00", size))
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:], fmt.Sprintf("%06o\x00 ", sum))
	data := make([]byte, 512)
	data[0] = 'x'
	return append(append(h, data...), make([]byte, 1024)...)
}

// TestUnpackSparseLimit: a sparse entry may not claim more than
// MaxSparseSize, whose holes would be written out as zeros.
func TestUnpackSparseLimit(t *testing.T) {
	dir := t.TempDir()
	err := Unpack(context.Background(), bytes.NewReader(gnuSparseTar(8<<30-1)), dir, UnpackOptions{})
	if err == nil || !strings.Contains(err.Error(), "limit for sparse entries") {
		t.Fatalf("huge sparse file: got %v, want the sparse limit", err)
	}
	if err := Unpack(context.Background(), bytes.NewReader(gnuSparseTar(1<<20)), dir, UnpackOptions{}); err != nil {
		t.Fatalf("small sparse file: %v", err)
	}
}
