// Package snapshot keeps a build's root filesystems: extracted image layers
// stored once by diffID, overlayfs mounts stacked on them (or copies, where
// overlayfs cannot be mounted), and the layer tars written back from an
// overlay upper directory.
//
// A [Store] lives under one root directory:
//
//	<root>/layers/<diffid-hex>/   extracted or committed layers, in overlay lower format
//	<root>/mounts/<id>/           one active mount: owner, upper/, work/, merged/
//	                              (naive: owner, merged/ a copy, upper/ made by Changes)
//	<root>/tmp/                   layers and mounts being made (name encodes the owner)
//	<root>/l/                     short symlinks to lower dirs for the mount(2) fallback
//	<root>/empty/                 empty lower directories for scratch and read-only mounts
//
// Layers are made atomically (temporary directory, then rename), so a crash
// leaves nothing half made in layers/, and [Store.Sweep] removes what a dead
// process left in mounts/ and tmp/.
//
// In the layer store OCI whiteouts are kept in overlayfs form: a deleted name
// is a character device 0/0 and an opaque directory carries the xattr
// trusted.overlay.opaque=y. [WriteDiff] turns an upper directory back into
// an OCI layer tar, walking only the upper, so a diff costs what the step
// changed, not the size of the image.
//
// Where overlayfs cannot be mounted (an old kernel, some nested
// containers), the naive snapshotter keeps builds correct, only slower: a
// [Mount] is then a plain directory holding a copy of the merged layers
// (whiteouts and opaque directories honoured; modes, owners, times, xattrs,
// hard links, symlinks and devices kept), and [Mount.Changes] walks it after
// the step, compares it with the layers and writes what differs as an
// overlay upper directory, so that [IsEmpty], [WriteDiff] and
// [Store.Commit] work as they do for overlay. [Options].Driver chooses:
// "auto" (the default) probes an overlay mount once when the store is
// opened and falls back to "naive", which [Store.Driver] and
// [Store.Notice] then report; "overlay" and "naive" force one.
//
// [Unpack] is the one tar extractor: every name is resolved inside the target
// directory (a path of plain directories by one openat2 with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, anything else with RESOLVE_IN_ROOT
// through filepath-securejoin's pathrs-lite), and the final component of
// each entry is never followed.
//
// Everything here needs root (CAP_SYS_ADMIN for overlay mounts, CAP_MKNOD,
// CAP_CHOWN, trusted.* xattrs) on Linux.
package snapshot
