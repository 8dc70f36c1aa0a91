package ctxio

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := NewReader(ctx, strings.NewReader("abcdef"))
	b := make([]byte, 3)
	if n, err := r.Read(b); n != 3 || err != nil || string(b) != "abc" {
		t.Fatalf("read %d %q %v", n, b[:n], err)
	}
	cancel()
	if n, err := r.Read(b); n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: read %d, %v; want 0, context.Canceled", n, err)
	}
	if got, err := io.ReadAll(NewReader(context.Background(), strings.NewReader("xyz"))); err != nil || string(got) != "xyz" {
		t.Errorf("ReadAll = %q, %v", got, err)
	}
}
