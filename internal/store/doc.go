// Package store is mybuild's local image store.
//
// A store lives in one directory, its root:
//
//	<root>/oci        an OCI image layout (oci-layout, index.json, blobs/sha256/…)
//	<root>/tmp        temp files and directories, on the same filesystem as oci/
//	<root>/lock       flock(2)ed exclusively around every read-modify-write of index.json
//	<root>/open.lock  flock(2)ed shared by every open Store, exclusively by GC
//
// The layout is readable by other tools as it is: `skopeo inspect
// oci:<root>/oci:busybox:latest`, `umoci ls --layout <root>/oci`, crane.
//
// # Names
//
// A name is a tag reference normalised to its short, docker-like form
// "repo:tag" (see NormalizeName) and stored as the
// org.opencontainers.image.ref.name annotation of a manifest descriptor in
// index.json. An image with several names has one descriptor per name. An
// image that lost its last name to another image (a rebuilt tag) keeps one
// descriptor without annotations, shown as "<none>" like docker's dangling
// images, until it is removed by digest or ID. Every stored manifest is an
// OCI manifest: Put converts Docker schema 2 manifests (same blobs, OCI media
// types), which changes their digest but not the image ID (config digest).
//
// # Crash safety
//
// Every file becomes visible by rename(2) of a fsynced temp file: blobs are
// verified against their digest while they are copied, and index.json is
// rewritten under <root>/lock, so concurrent builds in any number of
// processes never lose a name. A killed process leaves at most temp files
// under <root>/tmp. Each temp file or directory is flock(2)ed by its writer
// for as long as it is in use; Open and Sweep delete the ones nobody holds
// any more that are older than a minute (the minute covers the instant
// between creating a temp file and locking it). Holding a lock, unlike
// recording a PID, survives PID reuse and PID namespaces.
//
// # Garbage collection
//
// Remove only edits index.json; blobs stay until GC deletes those no stored
// manifest refers to. GC runs only when no other Store is open on the same
// root (in any process) and skips blobs this Store wrote itself, so a layer
// written for a build in progress is never collected before its image is
// stored.
package store
