package snapshot

import (
	"errors"
	"hash"
	"io"
)

const (
	hashChunks    = 4
	hashChunkSize = 256 << 10
)

// hashingReader passes a stream through while a goroutine of its own hashes
// it, so that hashing a layer (its diffID) runs beside unpacking it instead
// of in turn. The source is only read on the caller's goroutine, in chunks;
// the hasher gets each chunk as it is read, and a chunk is filled again
// once it is hashed and served, so at most hashChunks of hashChunkSize are
// in use. Close (or Sum) stops the hasher. Like most readers, it is for
// one goroutine.
type hashingReader struct {
	r      io.Reader
	h      hash.Hash
	todo   chan []byte   // read, to be hashed
	free   chan []byte   // hashed, to be filled again
	done   chan struct{} // closed once the hasher has stopped
	chunk  []byte        // being served
	off    int
	err    error // from r, once chunk is served
	closed bool
}

var errHashingReaderClosed = errors.New("read after close")

func newHashingReader(r io.Reader, h hash.Hash) *hashingReader {
	hr := &hashingReader{
		r:    r,
		h:    h,
		todo: make(chan []byte, hashChunks),
		free: make(chan []byte, hashChunks),
		done: make(chan struct{}),
	}
	for range hashChunks {
		hr.free <- make([]byte, hashChunkSize)
	}
	go hr.hash()
	return hr
}

// hash runs on the hasher's goroutine. free never blocks: it holds all the
// chunks there are.
func (hr *hashingReader) hash() {
	defer close(hr.done)
	for b := range hr.todo {
		hr.h.Write(b)
		hr.free <- b[:cap(b)]
	}
}

// Read implements io.Reader.
func (hr *hashingReader) Read(p []byte) (int, error) {
	if hr.off == len(hr.chunk) {
		if hr.err != nil {
			return 0, hr.err
		}
		if hr.closed {
			return 0, errHashingReaderClosed
		}
		// A chunk comes back once hashed; the one just served is not
		// read from again after this point.
		b := <-hr.free
		n, err := hr.r.Read(b)
		hr.chunk, hr.off, hr.err = b[:n], 0, err
		if n == 0 {
			hr.free <- b
			if err == nil {
				return 0, nil
			}
			return 0, err
		}
		hr.todo <- hr.chunk
	}
	n := copy(p, hr.chunk[hr.off:])
	hr.off += n
	return n, nil
}

// Sum stops the hasher and returns the hash of what was read.
func (hr *hashingReader) Sum() []byte {
	hr.Close()
	return hr.h.Sum(nil)
}

// Close stops the hasher and waits for it; it does not close the source.
func (hr *hashingReader) Close() error {
	if !hr.closed {
		hr.closed = true
		close(hr.todo)
	}
	<-hr.done
	return nil
}
