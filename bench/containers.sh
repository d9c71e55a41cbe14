#!/usr/bin/env bash
# Benchmark: a detached container's life cycle, `run -d IMAGE sleep 1000` + `stop -t 0` +
# `rm`, rbuild vs podman vs docker.
#
#   bench/containers.sh [N]   (root; by hand, never from tests; N cycles per tool, default 10)
#
# Needs the peers set up by ../shared/bench/peers.sh (see bench/run.sh); a peer that is not
# there is skipped. `stop -t 0` kills at once (sleep as PID 1 ignores SIGTERM), so the time
# is the tools' own: create, start, detach, stop, remove. No network for any tool.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
n=${1:-10}
docker=${DOCKER:-/usr/bin/docker}
rootfs=${ROOTFS:-/var/lib/rbuild-peers/busybox-rootfs.tar}
image=localhost/busybox:latest

ensure_rbuild
work=$(mktemp -d /var/tmp/rbuild-bench-containers.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ -r "$rootfs" ]; then
    "$RBUILD" --root "$work/root" import "$rootfs" "$image" >/dev/null
else
    echo "bench: $rootfs missing: using testdata's busybox rootfs for rbuild" >&2
    bash "$PROJECT_DIR/testdata/base/busybox-rootfs.sh" --tar "$work/bb.tar" >/dev/null
    "$RBUILD" --root "$work/root" import "$work/bb.tar" "$image" >/dev/null
fi

# cycle TOOL...: one run -d / stop -t 0 / rm with the tool's command line.
cycle() {
    local id
    id=$("$@" run -d "${NET[@]}" "$image" sleep 1000)
    "$@" stop -t 0 "$id" >/dev/null
    "$@" rm "$id" >/dev/null
}

echo "run -d + stop -t 0 + rm, median of $n:"
NET=()
cycle "$RBUILD" --root "$work/root"
record "run -d/stop/rm" rbuild "$(median_of "$n" cycle "$RBUILD" --root "$work/root")"
NET=(--network none)
if have podman && podman image exists "$image" 2>/dev/null; then
    cycle podman
    record "run -d/stop/rm" podman "$(median_of "$n" cycle podman)"
else
    echo "  podman or $image in podman missing: skipped"
fi
if [ -x "$docker" ] && "$docker" image inspect "$image" >/dev/null 2>&1; then
    cycle "$docker"
    record "run -d/stop/rm" docker "$(median_of "$n" cycle "$docker")"
else
    echo "  docker or $image in docker missing: skipped"
fi
summary
