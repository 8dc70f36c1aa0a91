package copier

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// dirContents is what copying the fixture's "dir" into /app gives below it.
func dirContents(app string) []node {
	return []node{
		linkNode(app+"/link", "one.txt", tSrc),
		fileNode(app+"/one.txt", "1", "0644", tSrc),
		dirNode(app+"/sub", "0700", tSrc),
		fileNode(app+"/sub/two.txt", "22", "0644", tSrc),
	}
}

func TestCopyPaths(t *testing.T) {
	runCases(t, []copyCase{
		{
			name: "file to a new name",
			opts: Options{Sources: []string{"a.txt"}, Dest: "/b.txt"},
			want: []node{fileNode("/b.txt", "A", "0644", tSrc)},
		},
		{
			name: "file into a directory ending with a slash",
			opts: Options{Sources: []string{"a.txt"}, Dest: "/d/"},
			want: []node{dirNode("/d", "0755", tDir), fileNode("/d/a.txt", "A", "0644", tSrc)},
		},
		{
			name: "file into an existing directory keeps its time",
			dest: []entry{dir("d").withMode(0o711).at(tOld)},
			opts: Options{Sources: []string{"a.txt"}, Dest: "/d"},
			want: []node{dirNode("/d", "0711", tOld), fileNode("/d/a.txt", "A", "0644", tSrc)},
		},
		{
			name: "file replaces a file",
			dest: []entry{file("x", "old").withMode(0o777).at(tOld)},
			opts: Options{Sources: []string{"b.txt"}, Dest: "/x"},
			want: []node{fileNode("/x", "bb", "0600", tSrc)},
		},
		{
			name:    "file onto a directory inside the destination",
			dest:    []entry{dir("d"), dir("d/a.txt")},
			opts:    Options{Sources: []string{"a.txt"}, Dest: "/d/"},
			wantErr: "copy to /d/a.txt: cannot replace a directory with a file",
		},
		{
			name: "parents of the destination are created",
			opts: Options{Sources: []string{"run.sh"}, Dest: "/x/y/z.sh"},
			want: []node{
				dirNode("/x", "0755", tDir), dirNode("/x/y", "0755", tDir),
				fileNode("/x/y/z.sh", "#!/bin/sh\n", "4755", tSrc),
			},
		},
		{
			name: "directory: its contents, the destination takes its time",
			opts: Options{Sources: []string{"dir"}, Dest: "/app"},
			want: append([]node{dirNode("/app", "0755", tSrc2)}, dirContents("/app")...),
		},
		{
			name: "directory merged into an existing one",
			dest: []entry{dir("app").withMode(0o711).at(tOld), file("app/keep", "k").at(tOld), dir("app/sub").withMode(0o777).at(tOld)},
			opts: Options{Sources: []string{"dir/"}, Dest: "/app"},
			want: []node{
				dirNode("/app", "0711", tSrc2),
				fileNode("/app/keep", "k", "0644", tOld),
				linkNode("/app/link", "one.txt", tSrc),
				fileNode("/app/one.txt", "1", "0644", tSrc),
				dirNode("/app/sub", "0700", tSrc),
				fileNode("/app/sub/two.txt", "22", "0644", tSrc),
			},
		},
		{
			name:    "directory onto a file",
			dest:    []entry{file("app", "f")},
			opts:    Options{Sources: []string{"dir"}, Dest: "/app"},
			wantErr: "mkdir /app: not a directory",
		},
		{
			name:    "nested directory onto a symbolic link",
			dest:    []entry{dir("app"), symlink("app/sub", "/tmp")},
			opts:    Options{Sources: []string{"dir"}, Dest: "/app"},
			wantErr: "copy to /app/sub: cannot copy a directory onto a non-directory",
		},
		{
			name: "a symbolic link named as source is followed",
			opts: Options{Sources: []string{"link.txt", "linkdir"}, Dest: "/d/"},
			want: append([]node{dirNode("/d", "0755", tSrc2), fileNode("/d/link.txt", "A", "0644", tSrc)}, dirContents("/d")...),
		},
		{
			name: "source climbing with .. stays in the root",
			opts: Options{Sources: []string{"../../a.txt"}, Dest: "/x"},
			want: []node{fileNode("/x", "A", "0644", tSrc)},
		},
		{
			name:  "missing source",
			opts:  Options{Sources: []string{"nope.txt"}, Dest: "/x"},
			errIs: ErrNotFound, wantErr: `resolve "nope.txt": not found`,
		},
		{
			name:  "dangling symbolic link",
			src:   []entry{symlink("dangling", "nowhere")},
			opts:  Options{Sources: []string{"dangling"}, Dest: "/x"},
			errIs: ErrNotFound,
		},
		{
			name:    "several sources need a directory",
			opts:    Options{Sources: []string{"a.txt", "b.txt"}, Dest: "/d"},
			wantErr: "When using COPY with more than one source file, the destination must be a directory and end with a /",
		},
		{
			name:    "several sources need a directory (ADD)",
			opts:    Options{Sources: []string{"a.txt"}, Heredocs: []Inline{{Name: "EOF"}}, Dest: "/d", Add: true},
			wantErr: "When using ADD with more than one source file",
		},
		{
			name: "several sources into an existing directory",
			dest: []entry{dir("d").at(tOld)},
			opts: Options{Sources: []string{"a.txt", "b.txt"}, Dest: "/d"},
			want: []node{dirNode("/d", "0755", tOld), fileNode("/d/a.txt", "A", "0644", tSrc), fileNode("/d/b.txt", "bb", "0600", tSrc)},
		},
		{
			name: "relative destination dot",
			dest: []entry{dir("w").at(tOld)},
			opts: Options{Sources: []string{"a.txt", "b.txt"}, Dest: "/w/."},
			want: []node{dirNode("/w", "0755", tOld), fileNode("/w/a.txt", "A", "0644", tSrc), fileNode("/w/b.txt", "bb", "0600", tSrc)},
		},
		{
			name: "destination through a relative symbolic link",
			dest: []entry{
				dir("usr").at(tOld), dir("usr/bin").at(tOld), dir("usr/local").at(tOld),
				symlink("usr/local/bin", "../bin").at(tOld),
			},
			opts: Options{Sources: []string{"run.sh"}, Dest: "/usr/local/bin/"},
			want: []node{
				dirNode("/usr", "0755", tOld), dirNode("/usr/bin", "0755", tOld),
				fileNode("/usr/bin/run.sh", "#!/bin/sh\n", "4755", tSrc),
				dirNode("/usr/local", "0755", tOld), linkNode("/usr/local/bin", "../bin", tOld),
			},
		},
		{
			name: "destination through an absolute symbolic link",
			dest: []entry{dir("srv").at(tOld), symlink("opt", "/srv").at(tOld)},
			opts: Options{Sources: []string{"a.txt"}, Dest: "/opt/app/"},
			want: []node{
				linkNode("/opt", "/srv", tOld), dirNode("/srv", "0755", tOld),
				dirNode("/srv/app", "0755", tDir), fileNode("/srv/app/a.txt", "A", "0644", tSrc),
			},
		},
		{
			name: "file replaces a symbolic link instead of writing through it",
			dest: []entry{dir("d").at(tOld), symlink("d/a.txt", "/etc/passwd")},
			opts: Options{Sources: []string{"a.txt"}, Dest: "/d/"},
			want: []node{dirNode("/d", "0755", tOld), fileNode("/d/a.txt", "A", "0644", tSrc)},
		},
	})
}

func TestCopyWildcards(t *testing.T) {
	runCases(t, []copyCase{
		{
			name: "several matches, links followed",
			opts: Options{Sources: []string{"*.txt"}, Dest: "/d/"},
			want: []node{
				dirNode("/d", "0755", tDir), fileNode("/d/a.txt", "A", "0644", tSrc),
				fileNode("/d/b.txt", "bb", "0600", tSrc), fileNode("/d/link.txt", "A", "0644", tSrc),
			},
		},
		{
			name:    "several matches need a directory",
			opts:    Options{Sources: []string{"*.txt"}, Dest: "/d"},
			wantErr: "the destination must be a directory and end with a /",
		},
		{
			name: "one match to a file name",
			opts: Options{Sources: []string{"b*"}, Dest: "/d"},
			want: []node{fileNode("/d", "bb", "0600", tSrc)},
		},
		{
			name: "wildcard in a directory component",
			opts: Options{Sources: []string{"d?/*.txt"}, Dest: "/o/"},
			want: []node{dirNode("/o", "0755", tDir), fileNode("/o/x.txt", "x", "0644", tSrc), fileNode("/o/y.txt", "y", "0644", tSrc)},
		},
		{
			name: "character class",
			opts: Options{Sources: []string{"d[2-9]/*"}, Dest: "/o/"},
			want: []node{dirNode("/o", "0755", tDir), fileNode("/o/y.txt", "y", "0644", tSrc), fileNode("/o/z.md", "z", "0644", tSrc)},
		},
		{
			name: "matched directories give their contents",
			opts: Options{Sources: []string{"d*"}, Dest: "/o/"},
			want: append([]node{
				dirNode("/o", "0755", tSrc2), fileNode("/o/x.txt", "x", "0644", tSrc),
				fileNode("/o/y.txt", "y", "0644", tSrc), fileNode("/o/z.md", "z", "0644", tSrc),
			}, dirContents("/o")...),
		},
		{
			name: "a wildcard matching nothing next to a source",
			opts: Options{Sources: []string{"*.none", "a.txt"}, Dest: "/d/"},
			want: []node{dirNode("/d", "0755", tDir), fileNode("/d/a.txt", "A", "0644", tSrc)},
		},
		{
			name: "only a wildcard matching nothing copies nothing",
			opts: Options{Sources: []string{"*.none"}, Dest: "/d/"},
			want: nil,
		},
		{
			name:  "wildcard below a missing directory",
			opts:  Options{Sources: []string{"nodir/*.txt"}, Dest: "/d/"},
			errIs: ErrNotFound,
		},
		{
			name:    "bad pattern",
			opts:    Options{Sources: []string{"a[.txt"}, Dest: "/d/"},
			wantErr: "syntax error in pattern",
		},
		{
			name: "escaped wildcard is literal",
			src:  []entry{file("a[1].txt", "lit")},
			opts: Options{Sources: []string{"a[[]1].txt"}, Dest: "/x"},
			want: []node{fileNode("/x", "lit", "0644", tSrc)},
		},
	})
}

func TestCopyHeredocs(t *testing.T) {
	runCases(t, []copyCase{
		{
			name: "to a file",
			opts: Options{Heredocs: []Inline{{Name: "EOF", Data: "hello\n"}}, Dest: "/etc/x.conf"},
			want: []node{dirNode("/etc", "0755", tDir), fileNode("/etc/x.conf", "hello\n", "0644", tDir)},
		},
		{
			name: "into a directory, after the sources",
			opts: Options{Sources: []string{"a.txt"}, Heredocs: []Inline{{Name: "EOF", Data: "e"}, {Name: "two", Data: "2"}}, Dest: "/d/"},
			want: []node{
				dirNode("/d", "0755", tDir), fileNode("/d/EOF", "e", "0644", tDir),
				fileNode("/d/a.txt", "A", "0644", tSrc), fileNode("/d/two", "2", "0644", tDir),
			},
		},
		{
			name: "with owner and mode",
			opts: Options{Heredocs: []Inline{{Name: "EOF", Data: "#!/bin/sh\n"}}, Dest: "/x", Owner: &Owner{UID: 7, GID: 8}, Chmod: "755"},
			want: []node{fileNode("/x", "#!/bin/sh\n", "0755", tDir).own(7, 8)},
		},
		{
			name:    "name with a slash",
			opts:    Options{Heredocs: []Inline{{Name: "a/b"}}, Dest: "/x"},
			wantErr: "invalid file name",
		},
	})
}

func TestCopyOwnersModes(t *testing.T) {
	owned := []entry{dir("src").owned(1234, 5678).withMode(0o2775), file("src/f", "f").owned(1234, 5678).withMode(0o640)}
	runCases(t, []copyCase{
		{
			name: "chown: every entry and the created directories",
			opts: Options{Sources: []string{"dir"}, Dest: "/a/b/", Owner: &Owner{UID: 1000, GID: 1001}},
			want: []node{
				dirNode("/a", "0755", tDir).own(1000, 1001), dirNode("/a/b", "0755", tSrc2).own(1000, 1001),
				linkNode("/a/b/link", "one.txt", tSrc).own(1000, 1001),
				fileNode("/a/b/one.txt", "1", "0644", tSrc).own(1000, 1001),
				dirNode("/a/b/sub", "0700", tSrc).own(1000, 1001),
				fileNode("/a/b/sub/two.txt", "22", "0644", tSrc).own(1000, 1001),
			},
		},
		{
			name: "owners reset to root by default",
			src:  owned,
			opts: Options{Sources: []string{"src"}, Dest: "/o"},
			want: []node{dirNode("/o", "0755", tSrc), fileNode("/o/f", "f", "0640", tSrc)},
		},
		{
			name: "owners kept for a stage source",
			src:  append(owned, dir("src/d").owned(42, 43)),
			opts: Options{Sources: []string{"src"}, Dest: "/n/o", KeepOwners: true},
			want: []node{
				dirNode("/n", "0755", tDir), dirNode("/n/o", "0755", tSrc),
				dirNode("/n/o/d", "0755", tSrc).own(42, 43), fileNode("/n/o/f", "f", "0640", tSrc).own(1234, 5678),
			},
		},
		{
			name: "octal chmod, created directories included (BuildKit)",
			opts: Options{Sources: []string{"dir"}, Dest: "/p/q", Chmod: "0640"},
			want: []node{
				dirNode("/p", "0640", tDir), dirNode("/p/q", "0640", tSrc2),
				linkNode("/p/q/link", "one.txt", tSrc), fileNode("/p/q/one.txt", "1", "0640", tSrc),
				dirNode("/p/q/sub", "0640", tSrc), fileNode("/p/q/sub/two.txt", "22", "0640", tSrc),
			},
		},
		{
			name: "octal chmod with special bits",
			opts: Options{Sources: []string{"a.txt"}, Dest: "/x", Chmod: "4711"},
			want: []node{fileNode("/x", "A", "4711", tSrc)},
		},
		{
			name: "symbolic chmod",
			opts: Options{Sources: []string{"a.txt", "b.txt", "run.sh"}, Dest: "/s/", Chmod: "u+x,g-w,o=r"},
			want: []node{
				dirNode("/s", "0755", tDir), fileNode("/s/a.txt", "A", "0744", tSrc),
				fileNode("/s/b.txt", "bb", "0704", tSrc), fileNode("/s/run.sh", "#!/bin/sh\n", "4754", tSrc),
			},
		},
		{
			name: "symbolic chmod with X",
			opts: Options{Sources: []string{"dir", "run.sh"}, Dest: "/s/", Chmod: "a=rX"},
			want: []node{
				dirNode("/s", "0755", tSrc2), linkNode("/s/link", "one.txt", tSrc),
				fileNode("/s/one.txt", "1", "0444", tSrc), fileNode("/s/run.sh", "#!/bin/sh\n", "0555", tSrc),
				dirNode("/s/sub", "0555", tSrc), fileNode("/s/sub/two.txt", "22", "0444", tSrc),
			},
		},
		{
			name:    "chmod not octal",
			opts:    Options{Sources: []string{"a.txt"}, Dest: "/x", Chmod: "888"},
			wantErr: "invalid chmod parameter: '888'. it should be octal string and between 0 and 07777",
		},
		{
			name:    "chmod too large",
			opts:    Options{Sources: []string{"a.txt"}, Dest: "/x", Chmod: "17777"},
			wantErr: "invalid chmod parameter",
		},
		{
			name:    "chmod bad symbol",
			opts:    Options{Sources: []string{"a.txt"}, Dest: "/x", Chmod: "u+q"},
			wantErr: `parse --chmod "u+q"`,
		},
	})
}

func TestCopySpecialFiles(t *testing.T) {
	runCases(t, []copyCase{
		{
			name: "fifo and device copied, socket skipped",
			src:  []entry{dir("s"), special("s/fifo", "fifo"), special("s/null", "char"), special("s/sock", "socket")},
			opts: Options{Sources: []string{"s"}, Dest: "/s"},
			want: []node{
				dirNode("/s", "0755", tSrc),
				{Path: "/s/fifo", Type: "fifo", Mode: "0640", MTime: tSrc},
				{Path: "/s/null", Type: "char 1:3", Mode: "0666", MTime: tSrc},
			},
		},
	})
}

func TestCopyHardLinks(t *testing.T) {
	srcRoot, destRoot := t.TempDir(), t.TempDir()
	build(t, srcRoot, dir("h"), file("h/one", "same"), hardlink("h/two", "h/one"), file("h/other", "o"))
	err := Copy(context.Background(), Options{SrcRoot: srcRoot, DestRoot: destRoot, Sources: []string{"h"}, Dest: "/h"})
	if err != nil {
		t.Fatal(err)
	}
	ino := func(p string) uint64 {
		fi, err := os.Stat(filepath.Join(destRoot, p))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	if ino("h/one") != ino("h/two") {
		t.Error("hard link not kept")
	}
	if ino("h/one") == ino("h/other") {
		t.Error("unrelated files linked")
	}
}

func TestCopyCancelled(t *testing.T) {
	srcRoot, destRoot := t.TempDir(), t.TempDir()
	build(t, srcRoot, defaultContext...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Copy(ctx, Options{SrcRoot: srcRoot, DestRoot: destRoot, Sources: []string{"dir"}, Dest: "/d"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

func TestCopyDefaultDirTime(t *testing.T) {
	srcRoot, destRoot := t.TempDir(), t.TempDir()
	build(t, srcRoot, file("a", "a"))
	before := time.Now().Add(-time.Second)
	if err := Copy(context.Background(), Options{SrcRoot: srcRoot, DestRoot: destRoot, Sources: []string{"a"}, Dest: "/d/"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(destRoot, "d"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.ModTime().Before(before) {
		t.Errorf("created directory time %v, want about now", fi.ModTime())
	}
}
