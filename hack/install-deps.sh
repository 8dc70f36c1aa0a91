#!/usr/bin/env bash
# install-deps.sh: install the Debian packages mybuild's demo and tests use,
# when they are missing. Idempotent; needs root (or sudo) for apt-get.
set -euo pipefail

# libseccomp-dev and pkg-config build mybuild (its seccomp filters are
# compiled with libseccomp, as runc's); runc and crun are the OCI runtimes
# that --runtime takes and the sandbox tests compare the built-in one with.
PKGS=(busybox-static skopeo umoci jq docker-registry apache2-utils git
	libseccomp-dev pkg-config gcc runc crun keyutils)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "install-deps: apt-get install ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
