package snapshot

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// TestMain fails the run if a test left a mount under the temp directory.
// The tests get a temp directory of their own, so that mounts of other
// packages' tests running at the same time do not count.
func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "mybuild-snapshot-tests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("TMPDIR", tmp) // test binary only: t.TempDir and os.MkdirTemp follow it
	code := m.Run()
	if left := leftoverMounts(tmp); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "mounts left after tests:\n%s\n", strings.Join(left, "\n"))
		code = 1
	}
	os.RemoveAll(tmp)
	os.Exit(code)
}

func leftoverMounts(tmp string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var left []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], tmp+"/") {
			left = append(left, fields[4])
		}
	}
	return left
}

var (
	probeOnce     sync.Once
	privReason    string // why the store cannot work here at all
	overlayReason string // why overlay mounts cannot be made here
)

func probe() {
	probeOnce.Do(func() {
		if os.Geteuid() != 0 {
			privReason = "needs root"
			return
		}
		dir, err := os.MkdirTemp("", "snapshot-probe-")
		if err != nil {
			privReason = err.Error()
			return
		}
		defer os.RemoveAll(dir)
		if err := unix.Mknod(filepath.Join(dir, "wh"), unix.S_IFCHR, 0); err != nil {
			privReason = "mknod refused: " + err.Error()
			return
		}
		if err := unix.Setxattr(dir, "trusted.probe", []byte("y"), 0); err != nil {
			privReason = "trusted xattrs refused: " + err.Error()
			return
		}
		s, err := New(filepath.Join(dir, "store"), Options{Driver: DriverOverlay})
		if err != nil {
			overlayReason = err.Error()
			return
		}
		m, err := s.Mount(context.Background(), nil)
		if err != nil {
			overlayReason = "overlay mount refused: " + err.Error()
			return
		}
		if err := m.Release(); err != nil {
			overlayReason = err.Error()
		}
	})
}

// requirePrivileges skips the test unless this process can make device
// nodes and trusted xattrs (root on a kernel and filesystem that allow it).
func requirePrivileges(t *testing.T) {
	t.Helper()
	probe()
	if privReason != "" {
		t.Skip(privReason)
	}
}

// requireOverlay skips the test unless this process also can mount
// overlayfs.
func requireOverlay(t *testing.T) {
	t.Helper()
	requirePrivileges(t)
	if overlayReason != "" {
		t.Skip(overlayReason)
	}
}

// drivers are the snapshotters the driver-independent tests run against.
var drivers = []string{DriverOverlay, DriverNaive}

// newStore opens a store with the overlay snapshotter.
func newStore(t *testing.T) *Store {
	t.Helper()
	return newDriverStore(t, DriverOverlay)
}

// newDriverStore opens a store with the snapshotter driver, skipping the
// test if this machine cannot run it.
func newDriverStore(t *testing.T, driver string) *Store {
	t.Helper()
	if driver == DriverNaive {
		requirePrivileges(t)
	} else {
		requireOverlay(t)
	}
	s, err := New(filepath.Join(t.TempDir(), "store"), Options{Driver: driver})
	if err != nil {
		t.Fatal(err)
	}
	if s.Driver() != driver {
		t.Fatalf("store driver %q, want %q", s.Driver(), driver)
	}
	return s
}

// changes returns the upper directory of m's changes.
func changes(t *testing.T, m *Mount) string {
	t.Helper()
	upper, err := m.Changes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return upper
}

// mount mounts lowers and releases the mount when the test ends.
func mount(t *testing.T, s *Store, readOnly bool, lowers ...string) *Mount {
	t.Helper()
	f := s.Mount
	if readOnly {
		f = s.MountReadOnly
	}
	m, err := f(context.Background(), lowers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Release(); err != nil {
			t.Error(err)
		}
	})
	return m
}

var testTime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// ent describes a tar entry to build.
type ent struct {
	Name   string
	Type   byte // default: TypeReg, or TypeDir for names ending in "/"
	Mode   int64
	UID    int
	GID    int
	Body   string
	Link   string
	Major  int64
	Minor  int64
	MTime  time.Time
	ATime  time.Time
	Xattrs map[string]string
}

func buildTar(t *testing.T, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{
			Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Uid: e.UID, Gid: e.GID,
			Linkname: e.Link, Devmajor: e.Major, Devminor: e.Minor,
			ModTime: e.MTime, AccessTime: e.ATime, Format: tar.FormatPAX,
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
			if strings.HasSuffix(e.Name, "/") {
				h.Typeflag = tar.TypeDir
			}
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.ModTime.IsZero() {
			h.ModTime = testTime
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		for k, v := range e.Xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.Body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func diffIDOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// extract stores the layer tar b and returns its directory.
func extract(t *testing.T, s *Store, b []byte) string {
	t.Helper()
	dir, err := s.Extract(context.Background(), diffIDOf(b), func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// got is a tar entry as read back, the fields a diff is compared on.
type got struct {
	Name   string
	Type   byte
	Mode   int64
	UID    int
	GID    int
	Size   int64
	Link   string
	Xattrs map[string]string
}

func readTar(t *testing.T, b []byte) []got {
	t.Helper()
	var out []got
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		g := got{Name: h.Name, Type: h.Typeflag, Mode: h.Mode, UID: h.Uid, GID: h.Gid, Size: h.Size, Link: h.Linkname}
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				if g.Xattrs == nil {
					g.Xattrs = map[string]string{}
				}
				g.Xattrs[x] = v
			}
		}
		out = append(out, g)
	}
}

// node is one file of a tree listing.
type node struct {
	Type   uint32
	Mode   uint32
	UID    uint32
	GID    uint32
	Size   int64
	Link   string
	Rdev   uint64
	Digest string
}

// tree lists dir recursively, root included as ".".
func tree(t *testing.T, dir string) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := node{Type: st.Mode & unix.S_IFMT, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Rdev: st.Rdev}
		switch n.Type {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.Size = int64(len(b))
			sum := sha256.Sum256(b)
			n.Digest = hex.EncodeToString(sum[:8])
		case unix.S_IFLNK:
			n.Link, _ = os.Readlink(p)
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func names(m map[string]node) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// capNetRaw is a security.capability value (VFS_CAP_REVISION_2) granting
// cap_net_raw+ep.
func capNetRaw() string {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<13)
	return string(b)
}

func writeFile(t *testing.T, p, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(p, uint32(mode)); err != nil { // os.Chmod would drop 0o7000
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
