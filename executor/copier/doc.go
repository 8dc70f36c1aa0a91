// Package copier carries out the file work of COPY and ADD: it copies files
// from a source root (the build context, or the mounted filesystem of a
// stage or image) into the mounted root filesystem of a step, with the
// semantics of Docker and BuildKit, and unpacks local archives for ADD (and,
// through Unpack, the archives of remote build contexts).
//
// Every path is resolved inside its root: ".." and symbolic links, absolute
// or relative, never lead out of the source root or the destination root,
// and a symbolic link is never written through. Errors name paths as the
// Dockerfile wrote them or as they are inside the image, never host paths.
//
// Sources are read through descriptors, never through host paths looked up
// again later: the source root is opened once, a source is reached from it
// with openat2 (RESOLVE_IN_ROOT), and a walk goes down from the descriptor
// of each directory it lists, never following a symbolic link. A local user
// who swaps a directory of the build context for a symbolic link while a
// build runs gets an error, or an entry of the context, never a host file.
//
// Copy writes only what the instruction adds, so that the overlay upper
// directory the destination root sits on is the instruction's layer: the
// directories it creates get a fixed time, and the existing directories it
// writes into get their times back, so an unchanged instruction gives the
// same layer every time.
package copier
