package copier

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// makeTar builds an archive from headers; a regular file's content is its
// header's Linkname field, moved out before writing.
func makeTar(t *testing.T, hdrs ...tar.Header) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		var data string
		if h.Typeflag == tar.TypeReg {
			data, h.Linkname = h.Linkname, ""
			h.Size = int64(len(data))
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(tTar, 0)
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func tdir(name string, mode int64, uid, gid int) tar.Header {
	return tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: gid}
}

func treg(name, data string, mode int64, uid, gid int) tar.Header {
	return tar.Header{Typeflag: tar.TypeReg, Name: name, Linkname: data, Mode: mode, Uid: uid, Gid: gid}
}

func tsym(name, target string) tar.Header {
	return tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}
}

func tlink(name, target string) tar.Header {
	return tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}
}

func compress(t *testing.T, kind, data string) string {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case "gzip":
		w := gzip.NewWriter(&buf)
		w.Write([]byte(data))
		w.Close()
	case "xz":
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(data))
		w.Close()
	case "zstd":
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(data))
		w.Close()
	default:
		return data
	}
	return buf.String()
}

func TestAddArchives(t *testing.T) {
	archive := makeTar(t,
		tdir("top/", 0o750, 10, 20),
		treg("top/file", "data", 0o640, 10, 20),
		tsym("top/link", "file"),
		tlink("top/hard", "top/file"),
		treg("top/sub/deep.txt", "deep", 0o600, 0, 0),
		tar.Header{Typeflag: tar.TypeFifo, Name: "top/fifo", Mode: 0o600},
	)
	unpacked := func(owner *Owner) []node {
		o := func(n node, uid, gid int) node {
			if owner != nil {
				return n.own(owner.UID, owner.GID)
			}
			return n.own(uid, gid)
		}
		return []node{
			o(dirNode("/x", "0755", tDir), 0, 0),
			o(dirNode("/x/top", "0750", tTar), 10, 20),
			o(node{Path: "/x/top/fifo", Type: "fifo", Mode: "0600", MTime: tTar}, 0, 0),
			o(fileNode("/x/top/file", "data", "0640", tTar), 10, 20),
			o(fileNode("/x/top/hard", "data", "0640", tTar), 10, 20),
			o(linkNode("/x/top/link", "file", tTar), 0, 0),
			o(dirNode("/x/top/sub", "0755", tDir), 0, 0),
			o(fileNode("/x/top/sub/deep.txt", "deep", "0600", tTar), 0, 0),
		}
	}
	bz2, err := os.ReadFile(filepath.Join("..", "..", "testdata", "copier", "hello.tar.bz2"))
	if err != nil {
		t.Fatal(err)
	}
	no, yes := false, true
	var cases []copyCase
	for _, kind := range []string{"plain", "gzip", "xz", "zstd"} {
		cases = append(cases, copyCase{
			name: kind,
			src:  []entry{file("a.pkg", compress(t, kind, archive))},
			opts: Options{Sources: []string{"a.pkg"}, Dest: "/x", Add: true},
			want: unpacked(nil),
		})
	}
	cases = append(cases, []copyCase{
		{
			name: "bzip2",
			src:  []entry{file("hello.tar.bz2", string(bz2))},
			opts: Options{Sources: []string{"hello.tar.bz2"}, Dest: "/x/", Add: true},
			want: []node{
				dirNode("/x", "0755", tDir), dirNode("/x/bz", "0755", tTar),
				fileNode("/x/bz/hello.txt", "hello bzip2\n", "0644", tTar),
			},
		},
		{
			name: "chown overrides the archive's owners",
			src:  []entry{file("a.tgz", compress(t, "gzip", archive))},
			opts: Options{Sources: []string{"a.tgz"}, Dest: "/x", Add: true, Owner: &Owner{UID: 7, GID: 8}, Chmod: "600"},
			want: unpacked(&Owner{UID: 7, GID: 8}),
		},
		{
			name: "unpack false copies the file",
			src:  []entry{file("a.tar", archive)},
			opts: Options{Sources: []string{"a.tar"}, Dest: "/x/", Add: true, Unpack: &no},
			want: []node{dirNode("/x", "0755", tDir), fileNode("/x/a.tar", archive, "0644", tSrc)},
		},
		{
			name: "COPY copies the file",
			src:  []entry{file("a.tar", archive)},
			opts: Options{Sources: []string{"a.tar"}, Dest: "/a.tar"},
			want: []node{fileNode("/a.tar", archive, "0644", tSrc)},
		},
		{
			name: "unpack true unpacks for COPY too",
			src:  []entry{file("a.tar", archive)},
			opts: Options{Sources: []string{"a.tar"}, Dest: "/x", Unpack: &yes},
			want: unpacked(nil),
		},
		{
			name: "not an archive despite its name",
			src:  []entry{file("fake.tar.gz", "just text"), file("empty.tar", "")},
			opts: Options{Sources: []string{"fake.tar.gz", "empty.tar"}, Dest: "/x/", Add: true},
			want: []node{dirNode("/x", "0755", tDir), fileNode("/x/empty.tar", "", "0644", tSrc), fileNode("/x/fake.tar.gz", "just text", "0644", tSrc)},
		},
		{
			name: "archives inside a directory are copied",
			src:  []entry{dir("d"), file("d/a.tar", archive)},
			opts: Options{Sources: []string{"d"}, Dest: "/x", Add: true},
			want: []node{dirNode("/x", "0755", tSrc), fileNode("/x/a.tar", archive, "0644", tSrc)},
		},
		{
			name: "the root entry applies to the destination; entries replace others",
			src: []entry{file("a.tar", makeTar(t,
				tdir("./", 0o711, 3, 3),
				treg("was-dir", "f", 0o644, 0, 0),
				tdir("was-file/", 0o755, 0, 0),
			))},
			dest: []entry{dir("x").at(tOld), dir("x/was-dir"), file("x/was-dir/inner", "i"), file("x/was-file", "f")},
			opts: Options{Sources: []string{"a.tar"}, Dest: "/x", Add: true},
			want: []node{
				dirNode("/x", "0711", tTar).own(3, 3),
				fileNode("/x/was-dir", "f", "0644", tTar),
				dirNode("/x/was-file", "0755", tTar),
			},
		},
		{
			name:    "ADD from a URL",
			opts:    Options{Sources: []string{"https://example.com/a.tar"}, Dest: "/x", Add: true},
			wantErr: "ADD from URL is not supported yet",
		},
		{
			name:    "COPY from a URL",
			opts:    Options{Sources: []string{"http://example.com/a"}, Dest: "/x"},
			wantErr: "source can't be a URL for COPY",
		},
		{
			name:    "ADD from Git",
			opts:    Options{Sources: []string{"git@github.com:a/b.git"}, Dest: "/x", Add: true},
			wantErr: "not supported yet",
		},
	}...)
	runCases(t, cases)
}
