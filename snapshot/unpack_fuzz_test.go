package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mybuild/mybuild/internal/tartest"
)

// hostileTars are archives in the spirit of containerd's TestBreakouts.
func hostileTars(f *testing.F) [][]byte {
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg} }
	dir := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755} }
	sym := func(name, to string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to}
	}
	link := func(name, to string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: to}
	}
	return [][]byte{
		tartest.Build(f, dir("./"), dir("etc/"), reg("etc/passwd"), sym("bin", "usr/bin"), reg("usr/bin/sh"), link("etc/hard", "etc/passwd")),
		tartest.Build(f, reg("../marker/file")),
		tartest.Build(f, reg("../../escape")),
		tartest.Build(f, reg("/abs/file"), reg("/../marker/file")),
		tartest.Build(f, sym("esc", "../marker"), reg("esc/file")),
		tartest.Build(f, sym("esc", "../../"), reg("esc/marker/file")),
		tartest.Build(f, sym("abs", "/"), reg("abs/marker/file"), reg("abs/../marker/file")),
		tartest.Build(f, link("hard", "../marker/file")),
		tartest.Build(f, sym("s", "../marker/file"), link("hard", "s"), reg("hard")),
		tartest.Build(f, sym("a", "b"), sym("b", "a"), reg("a/x")),
		tartest.Build(f, sym("a", "b"), sym("b", "c"), sym("c", "../marker"), reg("a/file")),
		tartest.Build(f, dir("d/"), reg("d/f"), sym("d", "../marker"), reg("d/file")),
		tartest.Build(f, &tar.Header{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}, &tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}),
		tartest.Build(f, &tar.Header{Name: "suid", Typeflag: tar.TypeReg, Mode: 0o4755}),
		tartest.Build(f, reg("bad\xff\xfename"), reg(strings.Repeat("d/", 2000)+"f")),
		tartest.Build(f, dir("w/"), reg("w/.wh.gone"), reg("w/.wh..wh..opq"), reg(".wh...")),
		tartest.Build(f, &tar.Header{Name: "x", Typeflag: tar.TypeReg, PAXRecords: map[string]string{"SCHILY.xattr.trusted.overlay.opaque": "y", "SCHILY.xattr.user.a": "b"}}),
	}
}

// FuzzUnpack unpacks arbitrary tar streams into a directory next to a marker
// directory: whatever the archive holds, nothing outside the target
// directory may change. Needs root (owners, device nodes).
func FuzzUnpack(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root")
	}
	for _, tb := range hostileTars(f) {
		f.Add(tb, false)
		f.Add(tb, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, overlay bool) {
		if tartest.TooBig(data) {
			t.Skip("entry over 1MiB")
		}
		c := tartest.NewContainment(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = Unpack(ctx, bytes.NewReader(data), c.Root, UnpackOptions{OverlayWhiteouts: overlay})
		c.Check(t)
	})
}
