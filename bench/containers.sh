#!/usr/bin/env bash
# Benchmark: container start/stop/exec latency, rbuild vs podman vs docker (issues 13 and 12):
#
#   1. `run -d IMAGE sleep 1000` + `stop -t 0` + `rm`, every tool with `--network none`;
#   2. the same cycle with each tool's default network (rbuild's and podman's bridge;
#      docker's engine here runs with --bridge=none, so its default is a loopback-only
#      namespace: its figure is shown but is not a like-for-like peer);
#   3. `exec CTR true` into a running container (`--network none`);
#   4. `run --rm IMAGE true` with each tool's default network (issue 12's case 1).
#
#   bench/containers.sh [N]   (root; by hand, never from tests; N runs per case and tool,
#                              default 10)
#
# Needs the peers set up by ../shared/bench/peers.sh (see bench/run.sh); a peer that is not
# there is skipped. `stop -t 0` kills at once (sleep as PID 1 ignores SIGTERM), so the time
# is the tools' own: create, start, detach, stop, remove. Every case runs once untimed per
# tool first (warm caches), then N times; medians and ratios come from bench/lib.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
n=${1:-10}
docker=${DOCKER:-/usr/bin/docker}
rootfs=${ROOTFS:-/var/lib/rbuild-peers/busybox-rootfs.tar}
image=localhost/busybox:latest

ensure_rbuild
work=$(mktemp -d /var/tmp/rbuild-bench-containers.XXXXXX)
RB=("$RBUILD" --root "$work/root")
running=()
cleanup() {
    local c
    for c in "${running[@]}"; do eval "$c" >/dev/null 2>&1 || true; done
    rm -rf "$work"
}
trap cleanup EXIT
if [ -r "$rootfs" ]; then
    "${RB[@]}" import "$rootfs" "$image" >/dev/null
else
    echo "bench: $rootfs missing: using testdata's busybox rootfs for rbuild" >&2
    bash "$PROJECT_DIR/testdata/base/busybox-rootfs.sh" --tar "$work/bb.tar" >/dev/null
    "${RB[@]}" import "$work/bb.tar" "$image" >/dev/null
fi

# The tools present: name, then the command line (one string, split by `read -a`).
TOOLS=("rbuild|${RB[*]}")
if have podman && podman image exists "$image" 2>/dev/null; then
    TOOLS+=("podman|podman")
else
    echo "  podman or $image in podman missing: skipped"
fi
if [ -x "$docker" ] && "$docker" image inspect "$image" >/dev/null 2>&1; then
    TOOLS+=("docker|$docker")
else
    echo "  docker or $image in docker missing: skipped"
fi

# cycle TOOL...: one run -d / stop -t 0 / rm with the tool's command line and $NET.
cycle() {
    local id
    id=$("$@" run -d "${NET[@]}" "$image" sleep 1000)
    "$@" stop -t 0 "$id" >/dev/null
    "$@" rm "$id" >/dev/null
}

# run_rm TOOL...: one `run --rm IMAGE true` with $NET.
run_rm() { "$@" run --rm "${NET[@]}" "$image" true; }

# exec_true TOOL...: one `exec $CTR true`.
exec_true() { "$@" exec "$CTR" true; }

# each CASE FUNCTION NET...: times FUNCTION for every tool with NET as its network flags
# (empty: the tool's default network).
each() {
    local case=$1 fn=$2 name cmd tool
    shift 2
    NET=("$@")
    for tool in "${TOOLS[@]}"; do
        name=${tool%%|*}
        read -r -a cmd <<<"${tool#*|}"
        "$fn" "${cmd[@]}" >/dev/null 2>&1 || { echo "  $case: $name failed: skipped" >&2; continue; }
        record "$case" "$name" "$(median_of "$n" "$fn" "${cmd[@]}")"
    done
}

echo "medians of $n:"
each "run -d/stop/rm (none)" cycle --network none
each "run -d/stop/rm (default)" cycle
for tool in "${TOOLS[@]}"; do
    name=${tool%%|*}
    read -r -a cmd <<<"${tool#*|}"
    CTR=$("${cmd[@]}" run -d --network none "$image" sleep 1000)
    running+=("${tool#*|} rm -f $CTR")
    exec_true "${cmd[@]}" >/dev/null 2>&1 || { echo "  exec: $name failed: skipped" >&2; continue; }
    record "exec true" "$name" "$(median_of "$n" exec_true "${cmd[@]}")"
    "${cmd[@]}" rm -f "$CTR" >/dev/null 2>&1 || true
done
each "run --rm true (default)" run_rm
summary
