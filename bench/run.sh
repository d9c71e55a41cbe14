#!/usr/bin/env bash
# Benchmark: container start-up and teardown, `run --rm IMAGE true`, rbuild vs podman vs docker.
#
#   bench/run.sh [N]          (root; by hand, never from tests; N runs per tool, default 20)
#
# Needs the peers set up by ../shared/bench/peers.sh: podman and docker have
# localhost/busybox:latest, and /var/lib/rbuild-peers/busybox-rootfs.tar is the same rootfs,
# imported here into a fresh rbuild store root. Each tool runs once to warm up, then N times;
# medians and ratios to the fastest peer come from bench/lib.sh. Every tool runs without a
# network (rbuild's default; docker --network none; podman --network none).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
n=${1:-20}
docker=${DOCKER:-/usr/bin/docker}
rootfs=${ROOTFS:-/var/lib/rbuild-peers/busybox-rootfs.tar}
image=localhost/busybox:latest

ensure_rbuild
[ -r "$rootfs" ] || { echo "bench: $rootfs missing: run $PEERS_SH first" >&2; exit 1; }
work=$(mktemp -d /var/tmp/rbuild-bench-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$RBUILD" --root "$work/root" import "$rootfs" "$image" >/dev/null

echo "run --rm $image true, median of $n:"
"$RBUILD" --root "$work/root" run --rm "$image" true
record "run --rm true" rbuild "$(median_of "$n" "$RBUILD" --root "$work/root" run --rm "$image" true)"
if have podman && podman image exists "$image" 2>/dev/null; then
    podman run --rm --network none "$image" true
    record "run --rm true" podman "$(median_of "$n" podman run --rm --network none "$image" true)"
else
    echo "  podman or $image in podman missing: skipped"
fi
if [ -x "$docker" ] && "$docker" image inspect "$image" >/dev/null 2>&1; then
    "$docker" run --rm --network none "$image" true
    record "run --rm true" docker "$(median_of "$n" "$docker" run --rm --network none "$image" true)"
else
    echo "  docker or $image in docker missing: skipped"
fi
summary
