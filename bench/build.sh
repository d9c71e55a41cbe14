#!/usr/bin/env bash
# rbuild build vs BuildKit (docker), podman build and buildah bud --layers.
# Run by hand as root after ../shared/bench/peers.sh has installed and started the peers:
#   bash bench/build.sh [RUNS]        (default 5 runs per case; medians and ratios printed)
# Cases: a cold build (--no-cache) of a ~10-instruction Dockerfile on a 10,000-file context,
# the same build on a fresh store (rbuild and BuildKit), a no-op rebuild, a rebuild after one
# file changed, and a Dockerfile of 10 trivial RUN steps (--no-cache). Every tool builds on
# the same busybox rootfs (peers.sh imports it as localhost/busybox:latest; rbuild imports the
# same tarball into a fresh store).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${1:-5}
ensure_rbuild

work=$(mktemp -d /tmp/rbuild-bench-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
export RBUILD_ROOT=$work/root
"$RBUILD" import /var/lib/rbuild-peers/busybox-rootfs.tar localhost/busybox:latest >/dev/null
RBUILD_ROOT=$work/base-root "$RBUILD" import /var/lib/rbuild-peers/busybox-rootfs.tar \
    localhost/busybox:latest >/dev/null

# The 10,000-file context and its Dockerfile.
ctx=$work/ctx
bench_context "$ctx"
runs=$work/runs
mkdir -p "$runs"
{
    echo "FROM localhost/busybox:latest"
    for i in $(seq 1 10); do echo "RUN echo step $i > /step$i"; done
} > "$runs/Dockerfile"

# Files changed in the last 2 s are hashed again on every scan (rbuild's racy window): let
# the fresh context age first, as any context in real use has.
sleep 2.5

# Before each case: write back what the previous one left dirty, so background writeback does
# not land in the next tool's or case's timings.
settle() { sync; sleep 1; }

tools=(rbuild)
have /usr/bin/docker && tools+=(buildkit)
have podman && tools+=(podman)
have buildah && tools+=(buildah)

# build TOOL CONTEXT [--no-cache]
build() {
    local tool=$1 dir=$2; shift 2
    case $tool in
        rbuild) "$RBUILD" build -q "$@" -t bench:latest "$dir" ;;
        buildkit) DOCKER_BUILDKIT=1 /usr/bin/docker build -q --network none "$@" -t bench:latest "$dir" ;;
        podman) podman build -q --network none "$@" -t bench:latest "$dir" ;;
        buildah) buildah bud -q --layers --isolation chroot --network host "$@" -t bench:latest "$dir" ;;
    esac
}

# The first build on a fresh store (as on a new CI machine): rbuild gets a new root holding
# only the base image; BuildKit's build cache (and its copy of the context) is pruned. Podman
# and buildah keep no separate build cache to drop, so they are not timed here.
# (Each rbuild run gets a new root, all removed at the end: deleting one between runs would
# slow the next run's file creation, see the README.)
fresh_n=0
fresh_setup() {
    case $tool in
        rbuild) fresh_n=$((fresh_n + 1)) && cp -a "$work/base-root" "$work/fresh-$fresh_n" ;;
        buildkit) /usr/bin/docker builder prune -af ;;
        *) return 1 ;;
    esac
}
fresh_build() {
    case $tool in
        rbuild) RBUILD_ROOT=$work/fresh-$fresh_n build rbuild "$ctx" ;;
        *) build "$tool" "$ctx" ;;
    esac
}

change_one_file() { date +%s%N > "$ctx/d42/f42.txt"; }
build_after_change() { change_one_file; build "$@"; }

echo "rbuild build benchmark: $RUNS runs per case"
for tool in "${tools[@]}"; do
    build "$tool" "$ctx" >/dev/null 2>&1 || { echo "bench: $tool cannot build; skipped" >&2; continue; }
    settle
    record "cold-10k-files" "$tool" "$(median_of "$RUNS" build "$tool" "$ctx" --no-cache)"
    build "$tool" "$ctx" >/dev/null 2>&1
    settle
    record "noop-rebuild-10k" "$tool" "$(median_of "$RUNS" build "$tool" "$ctx")"
    settle
    record "one-file-changed-10k" "$tool" "$(median_of "$RUNS" build_after_change "$tool" "$ctx")"
    settle
    record "10-trivial-runs" "$tool" "$(median_of "$RUNS" build "$tool" "$runs" --no-cache)"
    # Last: pruning BuildKit's cache deletes many files, which slows file creation after it.
    settle
    case $tool in rbuild | buildkit)
        record "first-build-fresh-store" "$tool" "$(median_after "$RUNS" fresh_setup fresh_build)" ;;
    esac
done
summary
