// Package tarlimit holds the limits that every tar extractor of mybuild
// applies to archive entries (layers and ADD archives alike).
package tarlimit

import (
	"archive/tar"
	"fmt"
	"strings"
)

// MaxSparseSize is the largest size a sparse archive entry may claim: its
// holes are written out as zeros, so a few bytes of archive could
// otherwise fill the disk.
const MaxSparseSize = 1 << 30

// IsSparse tells whether the entry is a GNU sparse file (old GNU or PAX).
func IsSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// CheckSparse refuses a sparse entry larger than MaxSparseSize.
func CheckSparse(hdr *tar.Header) error {
	if IsSparse(hdr) && hdr.Size > MaxSparseSize {
		return fmt.Errorf("sparse file of %d bytes is larger than the %d-byte limit for sparse entries", hdr.Size, int64(MaxSparseSize))
	}
	return nil
}
