// Package remotecontext brings a build context that is not a local
// directory onto the host, as `docker build` and `docker buildx build`
// accept them:
//
//   - a Git repository (https://HOST/PATH.git, git://…, ssh://…,
//     [USER@]HOST:PATH), optionally with a fragment #REF[:SUBDIR] or a query
//     ?ref=|branch=|tag=|subdir=|checksum=|keep-git-dir=|submodules=, checked
//     out by the git binary with the user's own configuration and
//     credential helpers, shallowly, submodules included, and without its
//     .git directory unless asked;
//   - any other http(s) URL: a tar archive (plain, gzip, bzip2, xz or zstd)
//     unpacked as the context, or a plain-text file taken as the Dockerfile
//     of an empty context.
//
// It knows nothing of builds: Fetch fills a scratch directory the caller
// owns and removes. Messages never carry the credentials a URL holds (see
// Redact).
package remotecontext
