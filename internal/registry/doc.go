// Package registry pulls images from and pushes images to OCI distribution
// (Docker) registries, and keeps the Docker-style credentials file that
// `mybuild login` writes.
//
// It is glue over go-containerregistry: references are parsed with its name
// package (Docker Hub normalisation, host:port/repo:tag, @sha256 digests),
// transfers go through its remote package with authn.DefaultKeychain
// ($DOCKER_CONFIG/config.json or ~/.docker/config.json, credential helpers,
// Podman's auth.json), retries with backoff on 5xx and connection resets,
// parallel blob transfers, and digest verification of every blob read.
//
// Registries on loopback addresses are tried over HTTPS and then plain HTTP,
// as Docker and BuildKit allow for localhost; others only when named in
// Options.Insecure.
//
// Errors are classified for the user and wrap the package's sentinels:
// ErrUnauthorized (401/403: names the registry and says to run
// `mybuild login`), ErrNotFound (quotes the reference), ErrUnreachable
// (connection refused, DNS, timeouts: reported within seconds) and
// ErrNoPlatform (an index without the wanted platform).
//
// The package knows nothing of the local image store or of builds: Pull
// returns a lazy v1.Image whose layers are fetched (and verified) when the
// caller reads them, for example by store.Put.
package registry
