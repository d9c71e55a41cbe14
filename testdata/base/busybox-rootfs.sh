#!/usr/bin/env bash
# Lays out a minimal busybox root filesystem, the base image of rbuild's tests (no network needed).
#   busybox-rootfs.sh DIR            populate DIR
#   busybox-rootfs.sh --tar FILE     write a deterministic tar of it to FILE ("-" for stdout)
# Needs Debian's busybox-static (/bin/busybox).
set -euo pipefail
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "busybox-rootfs.sh: $bb not found (apt-get install busybox-static)" >&2; exit 1; }

populate() {
    local d=$1
    mkdir -p "$d"/{bin,etc,root,tmp,home,var/tmp,proc,sys,dev,usr/bin,sbin,usr/sbin}
    chmod 1777 "$d/tmp" "$d/var/tmp"
    chmod 700 "$d/root"
    cp "$bb" "$d/bin/busybox"
    local applet
    for applet in $("$bb" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$d/bin/$applet"
    done
    cat > "$d/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
    cat > "$d/etc/group" <<'G'
root:x:0:
daemon:x:1:
bin:x:2:
tty:x:5:
www-data:x:33:
staff:x:50:app
app:x:1000:
nogroup:x:65534:
G
    mkdir -p "$d/home/app" && chown 1000:1000 "$d/home/app"
    echo "rbuild-test-busybox" > "$d/etc/issue"
}

if [ "${1:-}" = "--tar" ]; then
    out=${2:?usage: busybox-rootfs.sh --tar FILE}
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    populate "$tmp/rootfs"
    tar --sort=name --mtime=@0 --numeric-owner -C "$tmp/rootfs" -cf "$out" .

else
    populate "${1:?usage: busybox-rootfs.sh DIR | --tar FILE}"
fi
