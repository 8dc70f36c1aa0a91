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
// Copy writes only what the instruction adds, so that the overlay upper
// directory the destination root sits on is the instruction's layer: the
// directories it creates get a fixed time, and the existing directories it
// writes into get their times back, so an unchanged instruction gives the
// same layer every time.
package copier
