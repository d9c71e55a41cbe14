#!/usr/bin/env bash
# Benchmark: save and load a generated ~1 GiB image with rbuild, podman and docker, in one run.
#
#   bench/save_load.sh [SIZE_MIB]        (root; by hand, never from tests)
#   DATA=text bench/save_load.sh         compressible data (base64 text) instead of random bytes
#
# Needs the release binary (cargo build --release) and the peers: /work/shared/bench/peers.sh
# (installs docker.io, starts dockerd, configures podman). A peer that is not available is
# skipped with a message. Each tool imports the same rootfs tarball (busybox + SIZE_MIB of
# data in 64 MiB files: random bytes, or base64 text with DATA=text), then, REPS times (default 2, best time kept):
#   save  → <tool> save -o FILE IMAGE          (docker-archive, each tool's default)
#   load  → <tool> rmi IMAGE; <tool> load -i FILE
# Prints seconds per tool, rbuild's time / the fastest peer's, and rbuild's peak RSS (GNU time).
set -euo pipefail
size=${1:-1024}
reps=${REPS:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
rbuild=${RBUILD:-$here/target/release/rbuild}
docker=${DOCKER:-/usr/bin/docker}
[ -x "$rbuild" ] || { echo "build first: cargo build --release ($rbuild missing)" >&2; exit 1; }
work=$(mktemp -d /var/tmp/rbuild-bench.XXXXXX)
cleanup() {
    podman --root "$work/podman" --runroot "$work/podman-run" rmi -af >/dev/null 2>&1 || true
    "$docker" rmi rbuild-bench:1 >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "generating a ${size} MiB rootfs in $work"
bash "$here/testdata/base/busybox-rootfs.sh" "$work/rootfs"
mkdir -p "$work/rootfs/data"
for i in $(seq $((size / 64))); do
    if [ "${DATA:-random}" = text ]; then
        (set +o pipefail; base64 -w 76 /dev/urandom | head -c 64M) >"$work/rootfs/data/blob$i"
    else
        head -c 64M /dev/urandom >"$work/rootfs/data/blob$i"
    fi
done
tar --sort=name --mtime=@0 --numeric-owner -C "$work/rootfs" -cf "$work/rootfs.tar" .
rm -rf "$work/rootfs"
ls -l "$work/rootfs.tar"

# run LABEL CMD...: best wall time over $reps runs, and max RSS (KiB), into $best / $rss
best="" rss=""
run() {
    local label=$1; shift
    best="" rss=""
    for _ in $(seq "$reps"); do
        [ -n "${BEFORE:-}" ] && eval "$BEFORE" >/dev/null 2>&1
        sync
        /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" ||
            { echo "$label failed:"; cat "$work/err"; return 1; }
        read -r t m <"$work/time"
        if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
        if [ -z "$rss" ] || [ "$m" -gt "$rss" ]; then rss=$m; fi
    done
    printf '  %-22s %7.2fs  (peak RSS %d MiB)\n' "$label" "$best" $((rss / 1024))
}

declare -A save load
R() { "$rbuild" --root "$work/rbuild" "$@"; }
echo "rbuild:"
R import "$work/rootfs.tar" rbuild-bench:1 >/dev/null
BEFORE="rm -f $work/rbuild.tar" run "rbuild save" "$rbuild" --root "$work/rbuild" save -o "$work/rbuild.tar" rbuild-bench:1
save[rbuild]=$best; rbuild_save_rss=$rss
BEFORE="$rbuild --root $work/rbuild rmi rbuild-bench:1" run "rbuild load" "$rbuild" --root "$work/rbuild" load -i "$work/rbuild.tar"
load[rbuild]=$best; rbuild_load_rss=$rss

if command -v podman >/dev/null; then
    P="podman --root $work/podman --runroot $work/podman-run"
    echo "podman:"
    $P import -q "$work/rootfs.tar" localhost/rbuild-bench:1 >/dev/null
    BEFORE="rm -f $work/podman.tar" run "podman save" $P save -q -o "$work/podman.tar" localhost/rbuild-bench:1 && save[podman]=$best
    BEFORE="$P rmi -f localhost/rbuild-bench:1" run "podman load" $P load -q -i "$work/podman.tar" && load[podman]=$best
else
    echo "podman: not installed, skipped"
fi

if [ -x "$docker" ] && "$docker" info >/dev/null 2>&1; then
    echo "docker ($docker):"
    "$docker" import "$work/rootfs.tar" rbuild-bench:1 >/dev/null
    BEFORE="rm -f $work/docker.tar" run "docker save" "$docker" save -o "$work/docker.tar" rbuild-bench:1 && save[docker]=$best
    BEFORE="$docker rmi rbuild-bench:1" run "docker load" "$docker" load -q -i "$work/docker.tar" && load[docker]=$best
else
    echo "docker: no engine answers $docker info (run /work/shared/bench/peers.sh), skipped"
fi

echo
for op in save load; do
    declare -n times=$op
    fastest="" who=""
    for t in podman docker; do
        v=${times[$t]:-}
        [ -n "$v" ] || continue
        if [ -z "$fastest" ] || awk "BEGIN{exit !($v < $fastest)}"; then fastest=$v who=$t; fi
    done
    if [ -n "$fastest" ]; then
        ratio=$(awk "BEGIN{printf \"%.2f\", ${times[rbuild]} / $fastest}")
        echo "$op: rbuild ${times[rbuild]}s vs fastest peer $who ${fastest}s -> ratio $ratio (goal <= 0.50)"
    else
        echo "$op: rbuild ${times[rbuild]}s (no peer available)"
    fi
done
echo "rbuild peak RSS: save $((rbuild_save_rss / 1024)) MiB, load $((rbuild_load_rss / 1024)) MiB (goal < 100 MiB)"
