package copier

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRootKeepsItsDirectory opens a context as a Root, then moves the
// context away and puts a symbolic link to a host directory at its path, as
// a user owning the context's parent can: copies, selections and reads
// through the Root still see the context.
func TestRootKeepsItsDirectory(t *testing.T) {
	parent := t.TempDir()
	ctx, host := filepath.Join(parent, "ctx"), filepath.Join(parent, "host")
	build(t, ctx, dir("d"), file("d/f", "context"), file("Dockerfile", "context"))
	build(t, host, dir("d"), file("d/f", "host secret"), file("Dockerfile", "host secret"))
	r := openRoot(t, ctx)
	if err := os.Rename(ctx, filepath.Join(parent, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, ctx); err != nil {
		t.Fatal(err)
	}

	dest := t.TempDir()
	if err := Copy(context.Background(), Options{Root: r, SrcRoot: ctx, Sources: []string{"d"}, DestRoot: dest, Dest: "/out/"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "out/f")); err != nil || string(b) != "context" {
		t.Errorf("copied %q, %v; want the context's file", b, err)
	}
	err := Select(context.Background(), Options{Root: r, Sources: []string{"d/f"}}, func(e Entry) error {
		f, err := e.Open()
		if err != nil {
			return err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		if err == nil && string(b) != "context" {
			t.Errorf("selected %s reads %q; want the context's file", e.Rel, b)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := r.Sub("d")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for name, open := range map[string]func() (*os.File, error){
		"Dockerfile": func() (*os.File, error) { return r.OpenFile("Dockerfile") },
		"d/f":        func() (*os.File, error) { return sub.OpenFile("f") },
	} {
		f, err := open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != "context" {
			t.Errorf("%s reads %q, %v; want the context's file", name, b, err)
		}
	}
}

// TestRootOpenFile reads files of a root through symbolic links, followed
// inside the root only.
func TestRootOpenFile(t *testing.T) {
	parent := t.TempDir()
	root, host := filepath.Join(parent, "root"), filepath.Join(parent, "host")
	build(t, host, file("secret", "host secret"))
	build(t, root, dir("d"), file("d/f", "inside"), symlink("rel", "d/f"), symlink("abs", "/d/f"),
		symlink("out", filepath.Join(host, "secret")), symlink("up", "../host/secret"), symlink("dirout", host),
		symlink("dangling", "nope"))
	r := openRoot(t, root)
	for _, tc := range []struct {
		name string
		want string // "" for os.ErrNotExist
	}{
		{"d/f", "inside"}, {"rel", "inside"}, {"abs", "inside"}, {"/d/../d/f", "inside"},
		{"out", ""}, {"up", ""}, {"dirout/secret", ""}, {"../host/secret", ""}, {"dangling", ""},
	} {
		f, err := r.OpenFile(tc.name)
		if tc.want == "" {
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("OpenFile(%q) = %v, want os.ErrNotExist", tc.name, err)
			}
			if f != nil {
				f.Close()
			}
			continue
		}
		if err != nil {
			t.Errorf("OpenFile(%q): %v", tc.name, err)
			continue
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(b) != tc.want {
			t.Errorf("OpenFile(%q) reads %q, %v; want %q", tc.name, b, err, tc.want)
		}
	}
	if _, err := r.OpenFile("d"); err == nil {
		t.Error("OpenFile of a directory succeeded")
	}
}

// TestRootOpenPath: OpenPath resolves like OpenFile, and what it returns is
// never a symbolic link (a mounted link would be followed wherever its
// mount point is used), even when the name is swapped for a link after
// it was resolved.
func TestRootOpenPath(t *testing.T) {
	parent := t.TempDir()
	root, host := filepath.Join(parent, "root"), filepath.Join(parent, "host")
	build(t, host, file("secret", "host secret"))
	build(t, root, dir("d"), file("d/f", "inside"), symlink("rel", "d"), symlink("abs", "/d/f"), symlink("dirout", host))
	r := openRoot(t, root)
	for name, wantDir := range map[string]bool{"d": true, "rel": true, "d/f": false, "abs": false} {
		f, err := r.OpenPath(name)
		if err != nil {
			t.Errorf("OpenPath(%q): %v", name, err)
			continue
		}
		fi, err := f.Stat()
		f.Close()
		if err != nil || fi.Mode().Type()&os.ModeSymlink != 0 || fi.IsDir() != wantDir {
			t.Errorf("OpenPath(%q) = %v (%v), want a directory: %v", name, fi.Mode(), err, wantDir)
		}
	}
	if f, err := r.OpenPath("dirout/secret"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenPath through a link out of the root: %v, want os.ErrNotExist", err)
		if f != nil {
			f.Close()
		}
	}
	// The race, played out: "d" resolved, then swapped for a link to the
	// host, then opened.
	src, err := r.source()
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	if err := os.Rename(filepath.Join(root, "d"), filepath.Join(root, "d2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(root, "d")); err != nil {
		t.Fatal(err)
	}
	fd, err := src.open("d", unix.O_PATH)
	if err == nil {
		var st unix.Stat_t
		_ = unix.Fstat(fd, &st)
		unix.Close(fd)
		t.Errorf("opening a name swapped for a link to the host gave a handle (mode %o), want not found", st.Mode)
	}
}
