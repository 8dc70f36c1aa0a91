package users

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

const passwd = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

# a comment
app:x:1000:1001:App:/home/app:/bin/sh
other:x:1002:1002::/home/other:/bin/sh
broken:x:notanumber:1
`

const group = `root:x:0:
daemon:x:1:
staff:x:50:app,other
appgrp:x:1001:
wheel:x:10:root,app
audio:x:29:other
`

// newRoot makes a root filesystem with the given files (name → content).
func newRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestLookup(t *testing.T) {
	full := newRoot(t, map[string]string{"etc/passwd": passwd, "etc/group": group})
	empty := newRoot(t, nil)
	noGroup := newRoot(t, map[string]string{"etc/passwd": passwd})
	tests := []struct {
		name    string
		root    string
		spec    string
		want    Owner
		wantErr string
	}{
		{name: "empty is root", root: empty, spec: "", want: Owner{}},
		{name: "name", root: full, spec: "app", want: Owner{UID: 1000, GID: 1001, Groups: []int{50, 10}}},
		{name: "root name", root: full, spec: "root", want: Owner{Groups: []int{10}}},
		{name: "uid in passwd", root: full, spec: "1000", want: Owner{UID: 1000, GID: 1001, Groups: []int{50, 10}}},
		{name: "uid not in passwd", root: full, spec: "4242", want: Owner{UID: 4242}},
		{name: "uid without files", root: empty, spec: "4242", want: Owner{UID: 4242}},
		{name: "uid:gid without files", root: empty, spec: "12:34", want: Owner{UID: 12, GID: 34}},
		{name: "root:root without files", root: empty, spec: "root:root", want: Owner{}},
		{name: "name:group", root: full, spec: "app:staff", want: Owner{UID: 1000, GID: 50}},
		{name: "name:gid", root: full, spec: "app:77", want: Owner{UID: 1000, GID: 77}},
		{name: "uid:group", root: full, spec: "77:wheel", want: Owner{UID: 77, GID: 10}},
		{name: "name: empty group", root: full, spec: "other:", want: Owner{UID: 1002, GID: 1002, Groups: []int{50, 29}}},
		{name: "name without group file", root: noGroup, spec: "app", want: Owner{UID: 1000, GID: 1001}},
		{name: "unknown name", root: full, spec: "nobody", wantErr: "unable to find user nobody: no matching entries in passwd file"},
		{name: "name without passwd", root: empty, spec: "app", wantErr: "unable to find user app: no matching entries in passwd file"},
		{name: "unknown group", root: full, spec: "app:nogroup", wantErr: "unable to find group nogroup: no matching entries in group file"},
		{name: "group name without group file", root: noGroup, spec: "app:staff", wantErr: "unable to find group staff: no matching entries in group file"},
		{name: "malformed entry is not root", root: full, spec: "broken", wantErr: "unable to find user broken"},
		{name: "out of range", root: full, spec: "3000000000", wantErr: "uids and gids must be in range"},
		{name: "negative", root: full, spec: "-1", wantErr: "uids and gids must be in range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Lookup(tt.root, tt.spec)
			checkResult(t, got, err, tt.want, tt.wantErr, tt.root)
		})
	}
}

func TestLookupChown(t *testing.T) {
	full := newRoot(t, map[string]string{"etc/passwd": passwd, "etc/group": group})
	empty := newRoot(t, nil)
	tests := []struct {
		name    string
		root    string
		spec    string
		want    Owner
		wantErr string
	}{
		{name: "uid is also gid", root: full, spec: "1000", want: Owner{UID: 1000, GID: 1000}},
		{name: "uid: is also gid", root: empty, spec: "55:", want: Owner{UID: 55, GID: 55}},
		{name: "root", root: empty, spec: "root", want: Owner{}},
		{name: "uid:gid", root: empty, spec: "10:11", want: Owner{UID: 10, GID: 11}},
		{name: "name", root: full, spec: "app", want: Owner{UID: 1000, GID: 1001}},
		{name: "name:", root: full, spec: "app:", want: Owner{UID: 1000, GID: 1001}},
		{name: "name:group", root: full, spec: "app:staff", want: Owner{UID: 1000, GID: 50}},
		{name: "uid:group", root: full, spec: "55:wheel", want: Owner{UID: 55, GID: 10}},
		{name: "name:gid", root: full, spec: "other:7", want: Owner{UID: 1002, GID: 7}},
		{name: "unknown name", root: full, spec: "ghost", wantErr: "unable to find user ghost: no matching entries in passwd file"},
		{name: "name without files", root: empty, spec: "app", wantErr: "unable to find user app"},
		{name: "unknown group", root: full, spec: "app:ghosts", wantErr: "unable to find group ghosts: no matching entries in group file"},
		{name: "negative", root: full, spec: "-3", wantErr: "unable to find user -3"},
		{name: "empty user", root: full, spec: ":staff", wantErr: "empty user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LookupChown(tt.root, tt.spec)
			checkResult(t, got, err, tt.want, tt.wantErr, tt.root)
		})
	}
}

func checkResult(t *testing.T, got Owner, err error, want Owner, wantErr, root string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error = %v, want it to contain %q", err, wantErr)
		}
		if strings.Contains(err.Error(), root) {
			t.Errorf("error %q shows the host path", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("owner mismatch (-want +got):\n%s", diff)
	}
}

// TestLookupContained checks that symbolic links among the user files never
// make Lookup read a file of the host.
func TestLookupContained(t *testing.T) {
	host := t.TempDir()
	hostPasswd := filepath.Join(host, "passwd")
	if err := os.WriteFile(hostPasswd, []byte("evil:x:666:666::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		target string
	}{
		{name: "absolute", target: hostPasswd},
		{name: "relative climb", target: "../../../../../../../../.." + hostPasswd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newRoot(t, map[string]string{"etc/group": group})
			if err := os.Symlink(tt.target, filepath.Join(root, "etc/passwd")); err != nil {
				t.Fatal(err)
			}
			if o, err := Lookup(root, "evil"); err == nil {
				t.Fatalf("Lookup read the host file: %+v", o)
			}
			if o, err := LookupChown(root, "evil"); err == nil {
				t.Fatalf("LookupChown read the host file: %+v", o)
			}
		})
	}

	t.Run("symlink inside root is followed", func(t *testing.T) {
		root := newRoot(t, map[string]string{"usr/share/passwd": passwd})
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/usr/share/passwd", filepath.Join(root, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		got, err := Lookup(root, "app")
		checkResult(t, got, err, Owner{UID: 1000, GID: 1001}, "", root)
	})

	t.Run("fifo is refused", func(t *testing.T) {
		root := newRoot(t, map[string]string{"etc/group": group})
		if err := unix.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		_, err := Lookup(root, "app")
		checkResult(t, Owner{}, err, Owner{}, "not a regular file", root)
	})
}
