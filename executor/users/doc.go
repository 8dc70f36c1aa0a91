// Package users resolves the user and group specifications of a Dockerfile
// (USER, COPY --chown, ADD --chown) against the /etc/passwd and /etc/group
// files of an image's root filesystem.
//
// The files are opened inside the root: a symbolic link among them is
// resolved as if the root were "/", so an image cannot make the builder read
// a file of the host. Numeric ids need no entry in the files, and the files
// may then be missing altogether.
//
// Two functions follow the two sets of rules Docker and BuildKit apply:
// [Lookup] for USER (the process of RUN, the owner of a WORKDIR), where a
// user without a group takes the primary group of its passwd entry (0 when
// the uid has none) and the supplementary groups it is listed in; and
// [LookupChown] for --chown, where a numeric uid without a group is also the
// gid and no supplementary groups apply.
package users
