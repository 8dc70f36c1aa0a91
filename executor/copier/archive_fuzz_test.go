package copier

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mybuild/mybuild/internal/tartest"
)

// FuzzADDArchive unpacks arbitrary archives (plain or compressed) with ADD
// into a root filesystem next to a marker directory: nothing outside the
// root may change, whatever the archive holds. Needs root.
func FuzzADDArchive(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root")
	}
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg} }
	dir := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755} }
	sym := func(name, to string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: to}
	}
	link := func(name, to string) *tar.Header {
		return &tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: to}
	}
	seeds := [][]byte{
		tartest.Build(f, dir("./"), dir("etc/"), reg("etc/passwd"), sym("bin", "usr/bin"), reg("usr/bin/sh"), link("etc/hard", "etc/passwd")),
		tartest.Build(f, reg("../../marker/file")),
		tartest.Build(f, reg("/abs/file"), reg("/../../marker/file")),
		tartest.Build(f, sym("esc", "../../marker"), reg("esc/file")),
		tartest.Build(f, sym("abs", "/"), reg("abs/../marker/file"), reg("abs/x")),
		tartest.Build(f, link("hard", "../../marker/file")),
		tartest.Build(f, sym("s", "/../../marker/file"), link("hard", "s"), reg("hard")),
		tartest.Build(f, sym("a", "b"), sym("b", "a"), reg("a/x")),
		tartest.Build(f, dir("d/"), reg("d/f"), sym("d", "/"), reg("d/marker/file")),
		tartest.Build(f, &tar.Header{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}, &tar.Header{Name: "suid", Typeflag: tar.TypeReg, Mode: 0o4755}),
		tartest.Build(f, reg("bad\xff\xfename"), reg(strings.Repeat("d/", 2000)+"f")),
		[]byte("not an archive"),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(seeds[3])
	zw.Close()
	f.Add(gz.Bytes())

	f.Fuzz(func(t *testing.T, data []byte) {
		if tartest.TooBig(data) {
			t.Skip("entry over 1MiB")
		}
		c := tartest.NewContainment(t, "src")
		src := filepath.Join(c.Parent, "src")
		if err := os.WriteFile(filepath.Join(src, "a.tar"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = Copy(ctx, Options{
			SrcRoot:  src,
			Sources:  []string{"a.tar"},
			DestRoot: c.Root,
			Dest:     "/out/",
			Add:      true,
			DirTime:  time.Unix(1, 0),
		})
		c.Check(t)
		if entries, err := os.ReadDir(src); err != nil || len(entries) != 1 {
			t.Fatalf("src changed: %d entries, %v", len(entries), err)
		}
		if got, err := os.ReadFile(filepath.Join(src, "a.tar")); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("source archive changed: %v", err)
		}
	})
}
