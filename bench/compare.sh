#!/usr/bin/env bash
# bench/compare.sh -- build every peers corpus entry with mybuild and with
# Buildah into OCI layouts and compare the images: config (Env, Cmd,
# Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels, StopSignal),
# the file tree of every layer (path, type, mode, uid/gid, size, link target,
# whiteouts and opaque markers) and the final filesystem (bench/ocidiff.py).
# Differences that come from Buildah deviating from Docker/BuildKit are
# printed as EXPECTED with the reason (bench/README.md lists them); anything
# else as DIFF, and the exit status is 1.
#
# Needs root and the peers environment (bench/peers.sh or
# ../shared/peers/setup.sh make it; SKIP_SETUP=1 skips running setup.sh).
# Env: ONLY="01 05"  MYBUILD=bin/mybuild  PEERS=../shared/peers
#      PEERS_STATE=/tmp/peers  PEERS_REGISTRY=127.0.0.1:5000
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PEERS=$(cd "${PEERS:-$REPO/../shared/peers}" && pwd)
STATE=${PEERS_STATE:-/tmp/peers}
REG=${PEERS_REGISTRY:-127.0.0.1:5000}
ONLY=${ONLY:-}
MYBUILD=${MYBUILD:-$REPO/bin/mybuild}
CTXS="$STATE/contexts"
BSROOT="$STATE/buildah/chroot"
B=(buildah --root "$BSROOT/storage" --runroot "$BSROOT/run" --storage-driver overlay)
MROOT="$STATE/mybuild/store"
OUT="$STATE/compare"

log() { printf '[compare %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "bench/compare.sh: run as root" >&2; exit 1; }
if [ -z "${SKIP_SETUP:-}" ]; then "$PEERS/setup.sh" >&2; fi
curl -fsS -o /dev/null "http://$REG/v2/" || { echo "registry $REG not up: run $PEERS/setup.sh" >&2; exit 1; }
[ -x "$MYBUILD" ] || make -C "$REPO" build >&2
# fresh contexts: the benchmark's edit scenario appends lines to them
bash "$PEERS/corpus/gen-contexts.sh" "$CTXS" 2>/dev/null
mkdir -p "$OUT"

fail=0
for d in "$PEERS"/corpus/[0-9][0-9]-*/; do
  n=$(basename "$d")
  if [ -n "$ONLY" ]; then
    keep=; for p in $ONLY; do [[ $n == "$p"* ]] && keep=1; done
    [ -n "$keep" ] || continue
  fi
  ctx="$CTXS/$n" img="peers/$n:compare"
  echo "== $n"
  rm -rf "$OUT/$n"; mkdir -p "$OUT/$n"
  if ! "${B[@]}" build --layers --quiet --isolation chroot --tls-verify=false \
         --build-arg "REGISTRY=$REG" -f "$ctx/Dockerfile" -t "$img" "$ctx" >"$OUT/$n/buildah.log" 2>&1 ||
     ! "${B[@]}" push --quiet "$img" "oci:$OUT/$n/buildah:latest" >>"$OUT/$n/buildah.log" 2>&1; then
    echo "  buildah build FAILED:"; tail -5 "$OUT/$n/buildah.log" | sed 's/^/    /'; fail=1; continue
  fi
  if ! "$MYBUILD" --root "$MROOT" build --progress=plain --build-arg "REGISTRY=$REG" \
         -f "$ctx/Dockerfile" -t "$img" -o "type=oci,dest=$OUT/$n/mybuild" "$ctx" >"$OUT/$n/mybuild.log" 2>&1; then
    echo "  mybuild build FAILED:"; tail -5 "$OUT/$n/mybuild.log" | sed 's/^/    /'; fail=1; continue
  fi
  # files a RUN makes with build-time timestamps inside: content differs
  # between any two builds, by any builder
  volatile=()
  case $n in
    06-*) volatile=(--volatile "usr/share/app/assets.tgz=tar -czf in a RUN stores build-time mtimes") ;;
  esac
  python3 "$HERE/ocidiff.py" "${volatile[@]}" "$OUT/$n/buildah" "$OUT/$n/mybuild" || fail=1
done
log "layouts in $OUT"
exit $fail
