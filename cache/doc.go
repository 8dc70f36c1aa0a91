// Package cache will hold the content-addressed step cache: keys over a
// step's parent, expanded instruction, visible build args and source
// content, and the stored results (layer + config delta) they map to.
//
// Nothing is cached yet: every build runs every step, and --no-cache is
// accepted for compatibility. The cache issue fills this package in.
package cache
