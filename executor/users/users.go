package users

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Owner is a resolved user: the ids a process runs as or a file is given.
type Owner struct {
	UID int
	GID int
	// Groups are the supplementary groups: the gids of the /etc/group
	// entries that list the user's name. Only Lookup fills them, and only
	// when the specification names no group.
	Groups []int
}

// maxID is the largest uid or gid accepted, as runc and Docker do.
const maxID = 1<<31 - 1

// Lookup resolves the USER specification spec ("name", "uid", "name:group",
// "uid:gid", "name:gid", "uid:group"; "" is root) against the passwd and
// group files of the root filesystem at root, the way Docker starts a
// container's process:
//
//   - "uid:gid" (numbers, or "root") is taken as is, without reading a file;
//   - a user name must have a passwd entry; a uid may have none;
//   - without a group the user's primary gid from passwd applies (0 for a uid
//     with no entry), and Groups lists the groups naming the user;
//   - an explicit group is a gid, or a name that must be in the group file.
//
// An unknown name is an error such as "unable to find user app: no matching
// entries in passwd file".
func Lookup(root, spec string) (Owner, error) {
	if spec == "" {
		return Owner{}, nil
	}
	userArg, groupArg, _ := strings.Cut(spec, ":")
	if uid, ok := fastID(userArg); ok && groupArg != "" {
		if gid, ok := fastID(groupArg); ok {
			return Owner{UID: uid, GID: gid}, nil
		}
	}

	passwd, err := readPasswd(root)
	if err != nil {
		return Owner{}, err
	}
	var o Owner
	uidArg, uidErr := strconv.Atoi(userArg)
	matched := ""
	found := false
	for _, u := range passwd {
		if (userArg == "" && u.uid == 0) || (userArg != "" && uidErr == nil && u.uid == uidArg) ||
			(userArg != "" && uidErr != nil && u.name == userArg) {
			o.UID, o.GID, matched, found = u.uid, u.gid, u.name, true
			break
		}
	}
	if !found && userArg != "" {
		if uidErr != nil {
			return Owner{}, fmt.Errorf("unable to find user %s: %w", userArg, errNoPasswdEntries)
		}
		if uidArg < 0 || uidArg > maxID {
			return Owner{}, errRange
		}
		o.UID = uidArg
	}

	if groupArg == "" && matched == "" {
		return o, nil
	}
	groups, err := readGroup(root)
	if err != nil {
		return Owner{}, err
	}
	if groupArg == "" {
		for _, g := range groups {
			for _, m := range g.members {
				if m == matched {
					o.Groups = append(o.Groups, g.gid)
					break
				}
			}
		}
		return o, nil
	}
	gid, err := findGroup(groups, groupArg)
	if err != nil {
		return Owner{}, err
	}
	o.GID = gid
	return o, nil
}

// LookupChown resolves the --chown specification spec of COPY or ADD
// ("user", "user:group", "user:", with names or ids) against the passwd and
// group files of the root filesystem at root, as BuildKit does:
//
//   - a numeric uid (or "root") is also the gid when no group is given,
//     without reading passwd;
//   - a user name takes the uid and primary gid of its passwd entry;
//   - a group is a gid, or a name that must be in the group file.
//
// Names missing from the files, or files that are missing, are errors.
// Groups is always empty.
func LookupChown(root, spec string) (Owner, error) {
	if spec == "" {
		return Owner{}, nil
	}
	userArg, groupArg, _ := strings.Cut(spec, ":")
	var o Owner
	if id, ok := chownID(userArg); ok {
		o.UID, o.GID = id, id
	} else {
		if userArg == "" {
			return Owner{}, fmt.Errorf("parse --chown %q: empty user", spec)
		}
		passwd, err := readPasswd(root)
		if err != nil {
			return Owner{}, err
		}
		found := false
		for _, u := range passwd {
			if u.name == userArg {
				o.UID, o.GID, found = u.uid, u.gid, true
				break
			}
		}
		if !found {
			return Owner{}, fmt.Errorf("unable to find user %s: %w", userArg, errNoPasswdEntries)
		}
	}
	if groupArg == "" {
		return o, nil
	}
	if id, ok := chownID(groupArg); ok {
		o.GID = id
		return o, nil
	}
	groups, err := readGroup(root)
	if err != nil {
		return Owner{}, err
	}
	gid, err := findGroup(groups, groupArg)
	if err != nil {
		return Owner{}, err
	}
	o.GID = gid
	return o, nil
}

var (
	errNoPasswdEntries = errors.New("no matching entries in passwd file")
	errNoGroupEntries  = errors.New("no matching entries in group file")
	errRange           = fmt.Errorf("uids and gids must be in range 0-%d", maxID)
)

// findGroup returns the gid of the group named or numbered arg; a number
// missing from the file is accepted as it is.
func findGroup(groups []groupEntry, arg string) (int, error) {
	gidArg, gidErr := strconv.Atoi(arg)
	for _, g := range groups {
		if (gidErr == nil && g.gid == gidArg) || (gidErr != nil && g.name == arg) {
			return g.gid, nil
		}
	}
	if gidErr != nil {
		return 0, fmt.Errorf("unable to find group %s: %w", arg, errNoGroupEntries)
	}
	if gidArg < 0 || gidArg > maxID {
		return 0, errRange
	}
	return gidArg, nil
}

// fastID parses one half of a "uid:gid" USER that needs no lookup.
func fastID(s string) (int, bool) {
	if s == "root" {
		return 0, true
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > maxID {
		return 0, false
	}
	return int(n), true
}

// chownID parses an id of --chown: a decimal number or "root".
func chownID(s string) (int, bool) {
	if s == "root" {
		return 0, true
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return 0, false
	}
	return int(n), true
}
