package users

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// maxFileBytes bounds what is read of /etc/passwd or /etc/group.
const maxFileBytes = 10 << 20

type passwdEntry struct {
	name     string
	uid, gid int
}

type groupEntry struct {
	name    string
	gid     int
	members []string
}

// readPasswd returns the entries of root's /etc/passwd; none when the file
// is missing.
func readPasswd(root string) ([]passwdEntry, error) {
	var out []passwdEntry
	err := readLines(root, "/etc/passwd", func(f []string) {
		// name:password:uid:gid:gecos:home:shell
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			return
		}
		out = append(out, passwdEntry{name: f[0], uid: uid, gid: gid})
	})
	return out, err
}

// readGroup returns the entries of root's /etc/group; none when the file is
// missing.
func readGroup(root string) ([]groupEntry, error) {
	var out []groupEntry
	err := readLines(root, "/etc/group", func(f []string) {
		// name:password:gid:member,member
		if len(f) < 3 {
			return
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil {
			return
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		out = append(out, g)
	})
	return out, err
}

// readLines calls fn with the colon-separated fields of each non-empty line
// of the file name, opened inside root. A missing file is no error.
func readLines(root, name string, fn func([]string)) error {
	f, err := openInRoot(root, name)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	r := &io.LimitedReader{R: f, N: maxFileBytes + 1}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxFileBytes)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	if r.N == 0 {
		return fmt.Errorf("read %s: larger than %d bytes", name, maxFileBytes)
	}
	if err := sc.Err(); err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			err = errno
		}
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// openInRoot opens the regular file name for reading, resolving it inside
// root. Errors name the file as seen inside the root, never the host path.
func openInRoot(root, name string) (*os.File, error) {
	h, err := pathrs.OpenInRoot(root, name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, bare(err))
	}
	defer h.Close()
	fi, err := h.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", name, bare(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open %s: not a regular file", name)
	}
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, bare(err))
	}
	return f, nil
}

// bare strips the host path from err, keeping the errno where there is one.
func bare(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return errors.New("cannot be opened inside the root")
}
