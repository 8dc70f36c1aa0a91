package copier

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestHostile runs copies that try to read or write outside their roots,
// and checks that a marker directory on the host is left untouched and
// never shows in an error.
func TestHostile(t *testing.T) {
	parent := t.TempDir()
	marker := filepath.Join(parent, "marker")
	build(t, marker, file("secret", "host secret"), dir("sub"))
	before := tree(t, marker)
	climb := strings.Repeat("../", 20) + strings.TrimPrefix(marker, "/")

	tests := []struct {
		name    string
		src     []entry
		dest    []entry
		opts    Options
		wantErr error  // errors.Is
		errText string // or a substring
		check   func(t *testing.T, destRoot string)
	}{
		{
			name:    "context symlink to an absolute host file",
			src:     []entry{symlink("passwd", marker+"/secret"), symlink("etc", "/etc")},
			opts:    Options{Sources: []string{"passwd"}, Dest: "/x"},
			wantErr: ErrNotFound,
		},
		{
			name:    "context symlink to /etc/passwd",
			src:     []entry{symlink("passwd", "/etc/passwd")},
			opts:    Options{Sources: []string{"passwd"}, Dest: "/x"},
			wantErr: ErrNotFound,
		},
		{
			name:    "context symlink climbing out",
			src:     []entry{symlink("up", climb+"/secret")},
			opts:    Options{Sources: []string{"up"}, Dest: "/x"},
			wantErr: ErrNotFound,
		},
		{
			name:    "context directory symlink to the host",
			src:     []entry{symlink("ld", marker)},
			opts:    Options{Sources: []string{"ld/secret", "ld/*"}, Dest: "/x/"},
			wantErr: ErrNotFound,
		},
		{
			name:    "COPY ../ out of the context",
			src:     []entry{file("a", "a")},
			opts:    Options{Sources: []string{"../marker/secret"}, Dest: "/x"},
			wantErr: ErrNotFound,
		},
		{
			name: "symlinks inside a copied directory stay links",
			src:  []entry{dir("d"), symlink("d/escape", marker+"/secret")},
			opts: Options{Sources: []string{"d"}, Dest: "/d"},
			check: func(t *testing.T, destRoot string) {
				if target, err := os.Readlink(filepath.Join(destRoot, "d/escape")); err != nil || target != marker+"/secret" {
					t.Errorf("link = %q, %v", target, err)
				}
			},
		},
		{
			name: "destination symlink to an absolute host directory is re-rooted",
			src:  []entry{file("a", "a")},
			dest: []entry{symlink("out", marker)},
			opts: Options{Sources: []string{"a"}, Dest: "/out/"},
			check: func(t *testing.T, destRoot string) {
				if _, err := os.Stat(filepath.Join(destRoot, marker, "a")); err != nil {
					t.Errorf("file not written inside the root: %v", err)
				}
			},
		},
		{
			name: "destination symlink climbing out is clamped",
			src:  []entry{file("a", "a")},
			dest: []entry{symlink("out", climb)},
			opts: Options{Sources: []string{"a"}, Dest: "/out/sub/"},
			check: func(t *testing.T, destRoot string) {
				if _, err := os.Stat(filepath.Join(destRoot, marker, "sub/a")); err != nil {
					t.Errorf("file not written inside the root: %v", err)
				}
			},
		},
		{
			name:    "nested destination symlink is not followed",
			src:     []entry{dir("d"), dir("d/sub"), file("d/sub/secret", "evil")},
			dest:    []entry{dir("app"), symlink("app/sub", marker)},
			opts:    Options{Sources: []string{"d"}, Dest: "/app"},
			errText: "cannot copy a directory onto a non-directory",
		},
		{
			name: "destination file symlink is replaced",
			src:  []entry{dir("d"), file("d/secret", "evil")},
			dest: []entry{dir("app"), symlink("app/secret", marker+"/secret")},
			opts: Options{Sources: []string{"d"}, Dest: "/app"},
			check: func(t *testing.T, destRoot string) {
				fi, err := os.Lstat(filepath.Join(destRoot, "app/secret"))
				if err != nil || !fi.Mode().IsRegular() {
					t.Errorf("symlink not replaced: %v", err)
				}
			},
		},
		{
			name:    "tar climbing with ..",
			src:     []entry{file("a.tar", makeTar(t, treg("../../../../../../../../"+strings.TrimPrefix(marker, "/")+"/evil", "x", 0o644, 0, 0)))},
			opts:    Options{Sources: []string{"a.tar"}, Dest: "/x", Add: true},
			wantErr: ErrUnsafeArchive,
		},
		{
			name:    "tar climbing after a directory",
			src:     []entry{file("a.tar", makeTar(t, treg("a/../../evil", "x", 0o644, 0, 0)))},
			opts:    Options{Sources: []string{"a.tar"}, Dest: "/x", Add: true},
			wantErr: ErrUnsafeArchive,
		},
		{
			name: "tar absolute names are contained",
			src:  []entry{file("a.tar", makeTar(t, treg(marker+"/evil", "x", 0o644, 0, 0)))},
			opts: Options{Sources: []string{"a.tar"}, Dest: "/x", Add: true},
			check: func(t *testing.T, destRoot string) {
				if _, err := os.Stat(filepath.Join(destRoot, "x", marker, "evil")); err != nil {
					t.Errorf("entry not contained: %v", err)
				}
			},
		},
		{
			name: "tar symlink then write through it",
			src: []entry{file("a.tar", makeTar(t,
				tsym("link", marker),
				treg("link/evil", "x", 0o644, 0, 0),
				tsym("root", "/"),
				treg("root/etc/evil", "x", 0o644, 0, 0),
			))},
			opts: Options{Sources: []string{"a.tar"}, Dest: "/x", Add: true},
			check: func(t *testing.T, destRoot string) {
				for _, p := range []string{filepath.Join("x", marker, "evil"), "x/etc/evil"} {
					if _, err := os.Stat(filepath.Join(destRoot, p)); err != nil {
						t.Errorf("entry not contained: %v", err)
					}
				}
			},
		},
		{
			name:    "tar relative symlink out",
			src:     []entry{file("a.tar", makeTar(t, tsym("a/link", "../../../../.."+marker)))},
			opts:    Options{Sources: []string{"a.tar"}, Dest: "/x", Add: true},
			wantErr: ErrUnsafeArchive,
		},
		{
			name:    "tar hard link out",
			src:     []entry{file("a.tar", makeTar(t, tlink("h", "../../../../.."+marker+"/secret")))},
			opts:    Options{Sources: []string{"a.tar"}, Dest: "/x", Add: true},
			wantErr: ErrUnsafeArchive,
		},
		{
			name:    "tar absolute hard link stays inside",
			src:     []entry{file("a.tar", makeTar(t, tlink("h", marker+"/secret")))},
			opts:    Options{Sources: []string{"a.tar"}, Dest: "/x", Add: true},
			errText: "no such file in the archive",
		},
		{
			name:    "tar replacing its destination with a link",
			src:     []entry{file("a.tar", makeTar(t, tsym("./", marker)))},
			opts:    Options{Sources: []string{"a.tar"}, Dest: "/x", Add: true},
			errText: "cannot replace the destination directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The context sits next to the marker: "../marker" would reach it.
			srcRoot, err := os.MkdirTemp(parent, "ctx")
			if err != nil {
				t.Fatal(err)
			}
			destRoot := t.TempDir()
			build(t, srcRoot, tt.src...)
			build(t, destRoot, tt.dest...)
			o := tt.opts
			o.SrcRoot, o.DestRoot, o.DirTime = srcRoot, destRoot, time.Unix(tDir, 0)
			err = Copy(context.Background(), o)
			t.Logf("error: %v", err)
			switch {
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			case tt.errText != "" && (err == nil || !strings.Contains(err.Error(), tt.errText)):
				t.Errorf("error = %v, want %q", err, tt.errText)
			case tt.wantErr == nil && tt.errText == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			}
			if err != nil {
				for _, host := range []string{srcRoot, destRoot, marker} {
					if strings.Contains(err.Error(), host) && !strings.Contains(tt.name, "tar") {
						t.Errorf("error %q shows host path %s", err, host)
					}
				}
			}
			if tt.check != nil {
				tt.check(t, destRoot)
			}
			if diff := cmp.Diff(before, tree(t, marker)); diff != "" {
				t.Errorf("host marker changed (-before +after):\n%s", diff)
			}
			got := tree(t, destRoot)
			for _, n := range got {
				if n.Data == "host secret" {
					t.Errorf("host file copied to %s", n.Path)
				}
			}
		})
	}
}
