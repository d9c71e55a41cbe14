#!/usr/bin/env bash
# rbuild with chroot isolation against `buildah bud --isolation chroot`, on the bench's
# 10,000-file Dockerfile (bench/build.sh's): a cold build (--no-cache), a no-op rebuild and a
# rebuild after one file changed, medians of RUNS (default 3), seconds.
#   1. on the host: rbuild --isolation chroot, rbuild --isolation namespaces, buildah (layers,
#      vfs-free default storage in a private root);
#   2. inside an unprivileged `podman run --rm` (default seccomp and capabilities) of the
#      busybox rootfs plus rbuild and its glibc libraries, the store and context on volumes:
#      rbuild only (buildah is not in that image; see the README for why it is not run there).
# Run by hand as root: bash bench/chroot.sh [RUNS]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${1:-3}
ensure_rbuild
base=${BASE_TAR:-/var/lib/rbuild-peers/busybox-rootfs.tar}
[ -f "$base" ] || base=$(mktemp -d)/busybox.tar && [ -f "$base" ] || bash "$PROJECT_DIR/testdata/base/busybox-rootfs.sh" --tar "$base" >/dev/null

work=$(mktemp -d /tmp/rbuild-bench-chroot.XXXXXX)
trap 'rm -rf "$work"' EXIT
ctx=$work/ctx
bench_context "$ctx"
sleep 2.5
change() { echo "changed $EPOCHREALTIME" > "$ctx/d0/f0.txt"; sleep 2.5; }

# case TOOL: prints "cold noop one-changed" medians.
cases() {
    local cold noop one
    cold=$(median_of "$RUNS" "$@" --no-cache)
    noop=$(median_of "$RUNS" "$@")
    one=$(median_after "$RUNS" change "$@")
    echo "$cold $noop $one"
}

rb() { "$RBUILD" --root "$work/rb-$1" build -q --isolation "$1" -t bench:latest "$ctx" "${@:2}"; }
for iso in chroot namespaces; do
    "$RBUILD" --root "$work/rb-$iso" import "$base" localhost/busybox:latest >/dev/null
    rb "$iso" >/dev/null
    echo "host rbuild $iso: $(cases rb "$iso")"
done
if have buildah; then
    B=(buildah --root "$work/buildah" --runroot "$work/buildah-run" --storage-driver overlay)
    "${B[@]}" pull -q "docker-archive:$(
        "$RBUILD" --root "$work/rb-chroot" save -o "$work/base.tar" localhost/busybox:latest && echo "$work/base.tar"
    )" >/dev/null
    "${B[@]}" tag "$("${B[@]}" images -q | head -1)" localhost/busybox:latest
    bb() { "${B[@]}" bud -q --layers --isolation chroot -t bench:latest "$@" "$ctx"; }
    bb >/dev/null
    echo "host buildah chroot: $(cases bb)"
fi

# Inside an unprivileged container.
img=$work/img
mkdir -p "$img/usr/local/bin"
tar -xf "$base" -C "$img"
cp "$RBUILD" "$img/usr/local/bin/rbuild"
for lib in $(ldd "$RBUILD" | grep -o '/[^ ]*'); do
    mkdir -p "$img$(dirname "$lib")"; cp -L "$lib" "$img$lib"
done
P=(podman --root "$work/podman" --runroot "$work/podman-run")
tar -C "$img" -cf "$work/img.tar" . && "${P[@]}" import -q "$work/img.tar" localhost/rbuild-bench:latest >/dev/null
cp "$base" "$work/base-in.tar"
mkdir -p "$work/store-in"
"${P[@]}" run --rm -v "$work:/w" localhost/rbuild-bench:latest \
    rbuild --root /w/store-in import /w/base-in.tar localhost/busybox:latest >/dev/null
# The timed command includes podman's own start (about 0.5 s here), measured alone too.
pod() { "${P[@]}" run --rm -v "$work:/w" localhost/rbuild-bench:latest rbuild --root /w/store-in build -q -t bench:latest /w/ctx "$@"; }
pod >/dev/null
empty() { "${P[@]}" run --rm localhost/rbuild-bench:latest true; }
echo "podman run of true: $(median_of "$RUNS" empty)"
echo "in podman rbuild (auto = chroot): $(cases pod)"
