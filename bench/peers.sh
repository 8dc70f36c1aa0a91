#!/usr/bin/env bash
# bench/peers.sh -- time mybuild against Buildah on the peers corpus
# (../shared/peers/corpus), both in the same run, and print a markdown table
# of medians and mybuild/Buildah ratios.
#
# Needs root (Buildah, overlay mounts and mybuild's RUN sandbox need it).
# It runs ../shared/peers/setup.sh first (apt installs, loopback registry on
# $PEERS_REGISTRY, base images busybox, debian:bookworm, debian:bookworm-gcc;
# idempotent) and corpus/gen-contexts.sh (the build contexts).
#
# Scenarios (definitions of ../shared/peers/README.md; hyperfine, $RUNS runs,
# median reported):
#   cold   the builder's whole store emptied before each run (base images
#          included): the base is pulled from the loopback registry and
#          every step executes.
#   noop   rebuild with nothing changed.
#   touch  only the mtime of one context file changed (EDIT of bench.conf).
#   edit   one line appended to that file.
#   push   Buildah only: `buildah push IMG oci:DIR` into an empty directory.
#          mybuild writes its OCI layout as part of the build, so its cold
#          figure is compared with Buildah's cold + push.
# Every mybuild run writes an OCI layout (-o type=oci,dest=DIR, the directory
# removed before each run), as BuildKit's figures in RESULTS.md do; with
# STORE=1 each mybuild scenario is also timed without -o (image into the
# store only), for a like-for-like comparison with Buildah's build.
#
# Env: RUNS=3  SCENARIOS="cold noop touch edit"  ONLY="01 05" (name prefixes)
#      STORE=1  MYBUILD=bin/mybuild (built by `make build` if missing)
#      MYBUILD_ARGS="" (extra `mybuild build` flags, e.g. "--jobs 2")
#      PROFILE=1 (one extra mybuild run per scenario with MYBUILD_CPUPROFILE)
#      SKIP_SETUP=1  PEERS=../shared/peers  PEERS_STATE=/tmp/peers
#      BENCH_FS=loop (default) | host: where both builders keep their stores
#        and outputs. "loop": a new journaled ext4 made for this run
#        ($PEERS_STATE/benchfs.img, sparse, mounted on $PEERS_STATE/benchfs
#        and removed at the end). This VM's root ext4 has no journal, and
#        without one ext4 skips every inode freed in the last minute when it
#        allocates (fs/ext4/ialloc.c, recently_deleted()): each cold run's
#        wipe made the next run's file creation 3-10x slower, by a luck of
#        placement that changed ratios from run to run. "host": the stores
#        under $PEERS_STATE on the host filesystem, as before.
#      PEERS_REGISTRY=127.0.0.1:5000
#      `bench/peers.sh _table RESULTS_DIR` reprints the table of a run.
# Output: table on stdout; hyperfine JSON, build logs, table.md (and
#         profiles) under $PEERS_STATE/results/mybuild-vs-buildah-<time>/
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
REPO=$(cd "$HERE/.." && pwd)
PEERS=$(cd "${PEERS:-$REPO/../shared/peers}" && pwd)
STATE=${PEERS_STATE:-/tmp/peers}
REG=${PEERS_REGISTRY:-127.0.0.1:5000}
RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-cold noop touch edit}
ONLY=${ONLY:-}
STORE=${STORE:-}
PROFILE=${PROFILE:-}
MYBUILD=${MYBUILD:-$REPO/bin/mybuild}
read -r -a MYBUILD_EXTRA <<<"${MYBUILD_ARGS:-}"
BENCH_FS=${BENCH_FS:-loop}
CTXS="$STATE/contexts"
case $BENCH_FS in
  loop) FSROOT="$STATE/benchfs" ;;
  host) FSROOT="$STATE" ;;
  *) echo "bench/peers.sh: BENCH_FS must be loop or host, not $BENCH_FS" >&2; exit 2 ;;
esac
BSROOT="$FSROOT/buildah/chroot"   # with BENCH_FS=host: the storage of peers/bench-buildah.sh
B=(buildah --root "$BSROOT/storage" --runroot "$BSROOT/run" --storage-driver overlay)
MROOT="$FSROOT/mybuild/store"
OUT="$FSROOT/out"

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---- helpers for hyperfine --prepare ("$SELF _name ..."); each ends with
# sync so write-back of one run does not land in the next timed run.
case "${1:-}" in
  _bwipe)  # empty Buildah's whole storage (containers, images, layer cache)
    "${B[@]}" rm --all >/dev/null 2>&1 || true
    "${B[@]}" rmi --all --force >/dev/null 2>&1 || true
    n=$("${B[@]}" images --all --quiet | wc -l)
    [ "$n" = 0 ] || { echo "wipe left $n images" >&2; exit 1; }
    sync; exit 0 ;;
  _mwipe)  rm -rf "$2" "$3"; sync; exit 0 ;;      # store, output dir
  _rm)     rm -rf "$2"; sync; exit 0 ;;
  _touch)  touch -m "$2"; rm -rf "$3"; sync; exit 0 ;;
  _edit)   printf '%s edit %s\n' "$3" "$(date +%s%N)" >>"$2"; rm -rf "$4"; sync; exit 0 ;;
  _table)  TABLE_ONLY=$2 ;;   # reprint the table of an earlier run's results dir
esac

if [ -z "${TABLE_ONLY:-}" ]; then
[ "$(id -u)" = 0 ] || { echo "bench/peers.sh: run as root (buildah, overlay and the RUN sandbox need it)" >&2; exit 1; }

if [ -z "${SKIP_SETUP:-}" ]; then
  log "peers setup (first time: apt + 2x debootstrap, a few minutes)"
  "$PEERS/setup.sh" >&2
fi
curl -fsS -o /dev/null "http://$REG/v2/" || { echo "registry $REG not up: run $PEERS/setup.sh" >&2; exit 1; }
[ -x "$MYBUILD" ] || make -C "$REPO" build >&2

if [ "$BENCH_FS" = loop ]; then
  # A fresh journaled ext4 for both builders' stores (see BENCH_FS above).
  mkdir -p "$FSROOT"
  if mountpoint -q "$FSROOT"; then umount -R "$FSROOT"; fi
  rm -f "$STATE/benchfs.img"
  truncate -s 64G "$STATE/benchfs.img"
  mkfs.ext4 -q -F -E nodiscard "$STATE/benchfs.img"
  mount -o loop "$STATE/benchfs.img" "$FSROOT"
  benchfs_cleanup() {
    "${B[@]}" rm --all >/dev/null 2>&1 || true
    umount -R "$FSROOT" 2>/dev/null || umount -R -l "$FSROOT" 2>/dev/null || true
    rm -f "$STATE/benchfs.img"
  }
  trap benchfs_cleanup EXIT
fi

RES="$STATE/results/mybuild-vs-buildah-$(date +%Y%m%dT%H%M%S)"
mkdir -p "$RES" "$OUT" "$BSROOT" "$(dirname "$MROOT")"
bash "$PEERS/corpus/gen-contexts.sh" "$CTXS" 2>"$RES/contexts.txt"

q() { printf '%q ' "$@"; }   # quote an argv into one shell string for hyperfine

names=()
for d in "$PEERS"/corpus/[0-9][0-9]-*/; do
  n=$(basename "$d")
  if [ -n "$ONLY" ]; then
    keep=; for p in $ONLY; do [[ $n == "$p"* ]] && keep=1; done
    [ -n "$keep" ] || continue
  fi
  names+=("$n")
done

{
  echo "mybuild: $MYBUILD ${MYBUILD_EXTRA[*]} (built $(date -u -r "$MYBUILD" +%FT%TZ); tree now $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'))"
  echo "buildah: $(buildah --version) (--layers, chroot isolation, overlay)"
  echo "host: $(nproc) cpus, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(uname -r), $(date -u +%FT%TZ), runs=$RUNS"
  echo "stores on: $FSROOT (BENCH_FS=$BENCH_FS: $(findmnt -n -o FSTYPE,SOURCE --target "$FSROOT"))"
} | tee "$RES/env.txt" >&2

# hf NAME SCENARIO PREPARE CMD: time CMD with hyperfine into $RES/NAME.SCENARIO.json
hf() {
  local out="$RES/$1.$2.json" warm=()
  [[ $2 == *noop* ]] && warm=(--warmup 1)
  hyperfine --runs "$RUNS" "${warm[@]}" --style basic --export-json "$out" \
    --command-name "$1/$2" --prepare "$3" "$4" >>"$RES/hyperfine.log" 2>&1 \
    || { log "$1/$2 FAILED (see $RES/hyperfine.log)"; rm -f "$out"; }
}

for n in "${names[@]}"; do
  ctx="$CTXS/$n"
  EDIT=; EDIT_COMMENT='#'
  # shellcheck disable=SC1090
  . "$PEERS/corpus/$n/bench.conf"
  img="peers/$n:bench"
  bout="$OUT/buildah-chroot/$n" mout="$OUT/mybuild/$n"
  mkdir -p "$(dirname "$bout")" "$(dirname "$mout")"
  bbuild=$(q "${B[@]}" build --layers --quiet --isolation chroot --pull=true \
             --tls-verify=false --build-arg "REGISTRY=$REG" -f "$ctx/Dockerfile" -t "$img" "$ctx")
  mbase=("$MYBUILD" --root "$MROOT" build --progress=plain "${MYBUILD_EXTRA[@]}" \
         --build-arg "REGISTRY=$REG" -f "$ctx/Dockerfile" -t "$img")
  mbuild="$(q "${mbase[@]}" -o "type=oci,dest=$mout" "$ctx") >/dev/null 2>&1"
  mstore="$(q "${mbase[@]}" "$ctx") >/dev/null 2>&1"

  # ---- Buildah (one untimed build first, log kept, so a failure is loud)
  log "$n: buildah check build"
  if eval "$bbuild" >"$RES/$n.buildah.log" 2>&1; then
    for s in $SCENARIOS push; do
      log "$n: buildah $s x$RUNS"
      case $s in
        cold)  hf "$n" buildah.cold  "$(q "$SELF" _bwipe)" "$bbuild" ;;
        noop)  hf "$n" buildah.noop  "sync" "$bbuild" ;;
        touch) hf "$n" buildah.touch "$(q "$SELF" _touch "$ctx/$EDIT" /nonexistent)" "$bbuild" ;;
        edit)  hf "$n" buildah.edit  "$(q "$SELF" _edit "$ctx/$EDIT" "$EDIT_COMMENT" /nonexistent)" "$bbuild" ;;
        push)  eval "$bbuild" >/dev/null 2>&1
               hf "$n" buildah.push "$(q "$SELF" _rm "$bout")" "$(q "${B[@]}" push --quiet "$img" "oci:$bout:latest")" ;;
      esac
    done
  else
    tail -5 "$RES/$n.buildah.log" >&2; log "$n: buildah build FAILED"
  fi

  # ---- mybuild
  log "$n: mybuild check build"
  rm -rf "$mout"
  if ! "${mbase[@]}" -o "type=oci,dest=$mout" "$ctx" >"$RES/$n.mybuild.log" 2>&1; then
    tail -5 "$RES/$n.mybuild.log" >&2; log "$n: mybuild build FAILED"; continue
  fi
  for s in $SCENARIOS; do
    log "$n: mybuild $s x$RUNS"
    case $s in
      cold)  hf "$n" mybuild.cold  "$(q "$SELF" _mwipe "$MROOT" "$mout")" "$mbuild" ;;
      noop)  hf "$n" mybuild.noop  "$(q "$SELF" _rm "$mout")" "$mbuild" ;;
      touch) hf "$n" mybuild.touch "$(q "$SELF" _touch "$ctx/$EDIT" "$mout")" "$mbuild" ;;
      edit)  hf "$n" mybuild.edit  "$(q "$SELF" _edit "$ctx/$EDIT" "$EDIT_COMMENT" "$mout")" "$mbuild" ;;
    esac
    if [ -n "$STORE" ]; then
      case $s in
        cold)  hf "$n" store.cold  "$(q "$SELF" _mwipe "$MROOT" /nonexistent)" "$mstore" ;;
        noop)  hf "$n" store.noop  "sync" "$mstore" ;;
        touch) hf "$n" store.touch "$(q "$SELF" _touch "$ctx/$EDIT" /nonexistent)" "$mstore" ;;
        edit)  hf "$n" store.edit  "$(q "$SELF" _edit "$ctx/$EDIT" "$EDIT_COMMENT" /nonexistent)" "$mstore" ;;
      esac
    fi
    if [ -n "$PROFILE" ]; then
      case $s in
        cold)  "$SELF" _mwipe "$MROOT" "$mout" ;;
        noop)  "$SELF" _rm "$mout" ;;
        touch) "$SELF" _touch "$ctx/$EDIT" "$mout" ;;
        edit)  "$SELF" _edit "$ctx/$EDIT" "$EDIT_COMMENT" "$mout" ;;
      esac
      MYBUILD_CPUPROFILE="$RES/$n.$s.prof" "${mbase[@]}" -o "type=oci,dest=$mout" "$ctx" >/dev/null 2>&1 || true
    fi
  done
done

else
  RES=$TABLE_ONLY; names=()
  for f in "$RES"/*.json; do n=$(basename "$f"); n=${n%%.*}; [[ " ${names[*]} " == *" $n "* ]] || names+=("$n"); done
  STORE=; ls "$RES"/*.store.*.json >/dev/null 2>&1 && STORE=1
fi

# ---- table: medians (s) and ratios mybuild/Buildah. Targets (issues 5, 6):
# noop and touch <= 0.25, edit < 1, cold (with OCI output) <= 0.8 x Buildah
# cold + push. A ratio that misses its target is marked with "!".
med() { [ -f "$RES/$1.json" ] && jq '.results[0].median' "$RES/$1.json" || echo; }
cell() { [ -n "$1" ] && printf ' %.2f |' "$1" || printf ' FAIL |'; }
ratio() { # ratio NUM DEN TARGET
  if [ -z "$1" ] || [ -z "$2" ]; then printf ' - |'; return; fi
  awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { r = a / b; printf " %.2f%s |", r, (r > t ? " !" : "") }'
}
target() { case $1 in cold) echo 0.8 ;; noop|touch) echo 0.25 ;; edit) echo 0.9999 ;; esac; }
{
  printf '| entry |'
  for s in $SCENARIOS; do
    [ "$s" = cold ] && printf ' mybuild cold | Buildah cold | +push | ratio¹ | ratio² |' && continue
    printf ' mybuild %s | Buildah %s | ratio |' "$s" "$s"
  done
  printf '\n|---|'
  for s in $SCENARIOS; do [ "$s" = cold ] && printf -- '---:|---:|'; printf -- '---:|---:|---:|'; done
  printf '\n'
  for n in "${names[@]}"; do
    printf '| %s |' "$n"
    for s in $SCENARIOS; do
      m=$(med "$n.mybuild.$s"); b=$(med "$n.buildah.$s")
      cell "$m"; cell "$b"
      if [ "$s" = cold ]; then
        p=$(med "$n.buildah.push"); cell "$p"
        bp=; [ -n "$b" ] && [ -n "$p" ] && bp=$(awk -v a="$b" -v c="$p" 'BEGIN { print a + c }')
        ratio "$m" "$bp" "$(target cold)"
        ratio "$m" "$b" 0.9999
      else
        ratio "$m" "$b" "$(target "$s")"
      fi
    done
    printf '\n'
  done
  echo
  echo "Median of $RUNS runs, seconds. mybuild figures include writing an OCI layout (-o type=oci,dest=DIR)."
  echo "¹ cold ratio = mybuild cold / (Buildah cold + Buildah push to an OCI layout). ² mybuild cold / Buildah cold (build only). Targets: cold ≤ 0.8 (¹), 06 cold < 1 (²), noop and touch ≤ 0.25, edit < 1; \"!\" marks a miss."
  if [ -n "$STORE" ]; then
    echo
    printf '| entry (mybuild without -o, store only) |'
    for s in $SCENARIOS; do printf ' %s | ratio |' "$s"; done
    printf '\n|---|'; for _ in $SCENARIOS; do printf -- '---:|---:|'; done; printf '\n'
    for n in "${names[@]}"; do
      printf '| %s |' "$n"
      for s in $SCENARIOS; do
        m=$(med "$n.store.$s"); b=$(med "$n.buildah.$s"); cell "$m"; ratio "$m" "$b" "$(target "$s")"
      done
      printf '\n'
    done
  fi
} | tee "$RES/table.md"
[ -n "${TABLE_ONLY:-}" ] || log "results in $RES"
