// Package executor walks a build plan: it runs each step's filesystem work
// (COPY, ADD, WORKDIR; RUN comes with the sandbox) on an overlay mount of the
// stage's layers, turns the mount's upper directory into a layer, and
// assembles the resulting OCI image with go-containerregistry.
package executor
