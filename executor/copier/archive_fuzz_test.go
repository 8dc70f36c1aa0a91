package copier

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fuzzTar builds a tar from headers; a regular file's content is its name.
func fuzzTar(f *testing.F, hdrs ...*tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			f.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(h.Name)); err != nil {
				f.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

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
		fuzzTar(f, dir("./"), dir("etc/"), reg("etc/passwd"), sym("bin", "usr/bin"), reg("usr/bin/sh"), link("etc/hard", "etc/passwd")),
		fuzzTar(f, reg("../../marker/file")),
		fuzzTar(f, reg("/abs/file"), reg("/../../marker/file")),
		fuzzTar(f, sym("esc", "../../marker"), reg("esc/file")),
		fuzzTar(f, sym("abs", "/"), reg("abs/../marker/file"), reg("abs/x")),
		fuzzTar(f, link("hard", "../../marker/file")),
		fuzzTar(f, sym("s", "/../../marker/file"), link("hard", "s"), reg("hard")),
		fuzzTar(f, sym("a", "b"), sym("b", "a"), reg("a/x")),
		fuzzTar(f, dir("d/"), reg("d/f"), sym("d", "/"), reg("d/marker/file")),
		fuzzTar(f, &tar.Header{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}, &tar.Header{Name: "suid", Typeflag: tar.TypeReg, Mode: 0o4755}),
		fuzzTar(f, reg("bad\xff\xfename"), reg(strings.Repeat("d/", 2000)+"f")),
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
		if tooBig(data) {
			t.Skip("entry over 1MiB")
		}
		parent := t.TempDir()
		for _, d := range []string{"marker", "src", "root"} {
			if err := os.Mkdir(filepath.Join(parent, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		markerFile := filepath.Join(parent, "marker", "file")
		if err := os.WriteFile(markerFile, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(parent, "src", "a.tar"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		before, err := os.Lstat(markerFile)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = Copy(ctx, Options{
			SrcRoot:  filepath.Join(parent, "src"),
			Sources:  []string{"a.tar"},
			DestRoot: filepath.Join(parent, "root"),
			Dest:     "/out/",
			Add:      true,
			DirTime:  time.Unix(1, 0),
		})

		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, []string{"marker", "root", "src"}) {
			t.Fatalf("entries outside the root: %q", names)
		}
		for _, d := range []string{"marker", "src"} {
			if entries, err := os.ReadDir(filepath.Join(parent, d)); err != nil || len(entries) != 1 {
				t.Fatalf("%s changed: %d entries, %v", d, len(entries), err)
			}
		}
		if got, err := os.ReadFile(filepath.Join(parent, "src", "a.tar")); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("source archive changed: %v", err)
		}
		fi, err := os.Lstat(markerFile)
		if err != nil {
			t.Fatalf("marker file: %v", err)
		}
		if got, err := os.ReadFile(markerFile); err != nil || string(got) != "keep" {
			t.Fatalf("marker file content %q, %v", got, err)
		}
		a, b := before.Sys().(*syscall.Stat_t), fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != before.Mode() || !fi.ModTime().Equal(before.ModTime()) || a.Uid != b.Uid || a.Gid != b.Gid || b.Nlink != 1 {
			t.Fatalf("marker file metadata changed: %v %v -> %v %v (links %d)", before.Mode(), before.ModTime(), fi.Mode(), fi.ModTime(), b.Nlink)
		}
	})
}

// tooBig tells whether the (uncompressed) archive declares an entry over
// 1MiB: a sparse file of terabytes would fill the disk, legitimately.
func tooBig(data []byte) bool {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err != nil {
			return false
		}
		if hdr.Size > 1<<20 {
			return true
		}
	}
}
