#!/usr/bin/env bash
# busybox-rootfs.sh DIR: make a minimal root filesystem from Debian's
# busybox-static in DIR/rootfs, plus DIR/Dockerfile that turns it into an
# image (FROM scratch + COPY), so `mybuild build -t busybox DIR` makes the
# base image the examples and tests start from. No registry needed.
set -euo pipefail

out=${1:?usage: busybox-rootfs.sh DIR}
bb=/bin/busybox
[ -x "$bb" ] || { echo "busybox-rootfs: $bb missing (apt-get install busybox-static)" >&2; exit 1; }

rm -rf "$out/rootfs"
root="$out/rootfs"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home,var,proc,sys,dev}
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
cp "$bb" "$root/bin/busybox"
chmod 0755 "$root/bin/busybox"
# One symlink per applet, at the place busybox says it belongs.
"$bb" --list-full | while read -r applet; do
	[ "$applet" = bin/busybox ] && continue
	mkdir -p "$root/$(dirname "$applet")"
	ln -sf /bin/busybox "$root/$applet"
done
cat >"$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat >"$root/etc/group" <<'G'
root:x:0:
daemon:x:1:
bin:x:2:
staff:x:50:app
app:x:1000:
nogroup:x:65534:
G
# Fixed times make the base image reproducible from one machine to the next.
find "$root" -exec touch -h -d @0 {} +
cat >"$out/Dockerfile" <<'D'
FROM scratch
COPY rootfs/ /
CMD ["sh"]
D
