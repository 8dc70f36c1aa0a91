// Package cache is the content-addressed step cache of mybuild.
//
// A step's Key is a sha256 over its named Inputs, in order: the parent
// step's key (or the stage's base), a canonical encoding of the expanded
// instruction, the build args and environment a RUN sees, and for COPY/ADD
// the digests of the source entries it reads. Modification times never
// enter a key, so a touch or a fresh clone does not miss.
//
// A Store keeps, under one directory:
//
//	records/<hex>.json  the result of a key: layer digest, diffID and size
//	                    (none for a step that changed no file) and the
//	                    history entry's created time
//	inputs/<hex>.json   the named inputs that made the key, to explain misses
//	last/<hex>          the latest key seen at a step position
//	stat/<hex>.json     the stat cache of a context directory
//	tmp/                temp files, renamed into place once fsynced
//
// Every file becomes visible by rename(2) of a fsynced temp file, so any
// number of builds may share a Store. Explain compares the inputs of a step
// that missed with those of the latest result at the same position and
// names the first that differs.
//
// Prune removes results, least recently used first (a hit marks a result
// used). Artifact and Import carry results between machines as an OCI
// artifact: an image manifest whose config (ConfigMediaType) lists the
// records and whose layers are their layers.
//
// The package knows nothing of Dockerfiles, the image store or the
// executor: the executor builds the Inputs and applies the Records, and
// the store is reached through the small LayerSource and LayerSink
// interfaces.
package cache
