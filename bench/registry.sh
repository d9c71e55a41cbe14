#!/usr/bin/env bash
# Benchmark: push and pull a generated ~500 MiB image to a local registry with rbuild and with
# `skopeo copy`, in one run; then re-push it unchanged.
#
#   bench/registry.sh [SIZE_MIB] [REGISTRY]      (by hand, never from tests)
#
# REGISTRY defaults to 127.0.0.1:5000 (the Distribution registry ../shared/bench/peers.sh
# starts). The image is busybox + SIZE_MIB (default 500) of incompressible data in 64 MiB
# files, imported by rbuild as one gzip layer; skopeo reads the very same blobs from rbuild's
# store (an OCI layout). Cases:
#   push       into a fresh, empty docker-registry (one started per run on a free port, so
#              nothing can be skipped or mounted): rbuild push / skopeo copy oci:STORE:TAG docker://…
#   push+mount to a new repository of REGISTRY that already holds the blob in another
#              repository (rbuild mounts it, skopeo too via its blob-info cache)
#   pull       rbuild pull into an empty --root / skopeo copy docker://… oci:EMPTY_DIR:img
#   re-push    the same image to the same repository again
# Prints medians (REPS runs, default 3) and rbuild's ratio to skopeo, via bench/lib.sh.
# (Counters here must not be called n, i or times: lib.sh's median_of has locals of those names.)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
size=${1:-500}
registry=${2:-127.0.0.1:5000}
reps=${REPS:-3}
have skopeo || { echo "bench: skopeo is not installed" >&2; exit 1; }
curl -fsS "http://$registry/v2/" >/dev/null || { echo "bench: no registry at http://$registry (run $PEERS_SH)" >&2; exit 1; }
ensure_rbuild

work=$(mktemp -d /var/tmp/rbuild-registry-bench.XXXXXX)
trap 'stop_registries; rm -rf "$work"' EXIT

# fresh_registries K: starts K empty docker-registry instances; their ports go into $ports.
ports=()
fresh_registries() {
    local k
    for ((k = 0; k < $1; k++)); do
        start_registry "$work/registry-$k"
        ports+=("${REGISTRY_ADDR#127.0.0.1:}")
    done
}
echo "generating a ${size} MiB rootfs in $work"
bash "$PROJECT_DIR/testdata/base/busybox-rootfs.sh" "$work/rootfs" >/dev/null
mkdir -p "$work/rootfs/data"
for i in $(seq $(( (size + 63) / 64 ))); do head -c 64M /dev/urandom >"$work/rootfs/data/blob$i"; done
tar --sort=name --mtime=@0 --numeric-owner -C "$work/rootfs" -cf "$work/rootfs.tar" .
rm -rf "$work/rootfs"

store=$work/store
R() { "$RBUILD" --root "$store" "$@"; }
R import "$work/rootfs.tar" rbuild-bench:1 >/dev/null
rm -f "$work/rootfs.tar"
du -sh "$store/blobs" | sed 's/^/store blobs: /'

run_id=$(date +%s)
fresh_registries $((2 * reps))
push_no=0
rbuild_push() {
    local ref=127.0.0.1:${ports[$push_no]}/bench/img:1
    push_no=$((push_no + 1))
    R tag rbuild-bench:1 "$ref" && R push -q "$ref"
}
skopeo_push() {
    local ref=127.0.0.1:${ports[$((reps + push_no))]}/bench/img:1
    push_no=$((push_no + 1))
    skopeo copy -q --dest-tls-verify=false "oci:$store:rbuild-bench:1" "docker://$ref"
}
# Seed REGISTRY with the blob (for the mount case and the pulls).
R tag rbuild-bench:1 "$registry/bench-$run_id/img:1"
R push -q "$registry/bench-$run_id/img:1" >/dev/null
skopeo copy -q --dest-tls-verify=false "oci:$store:rbuild-bench:1" "docker://$registry/bench-$run_id-sk/img:1"
mount_no=0
rbuild_mount() {
    mount_no=$((mount_no + 1))
    R tag rbuild-bench:1 "$registry/bench-$run_id-rbm-$mount_no/img:1" && R push -q "$registry/bench-$run_id-rbm-$mount_no/img:1"
}
skopeo_mount() {
    mount_no=$((mount_no + 1))
    skopeo copy -q --dest-tls-verify=false "oci:$store:rbuild-bench:1" "docker://$registry/bench-$run_id-skm-$mount_no/img:1"
}
rbuild_pull() { rm -rf "$work/pull"; "$RBUILD" --root "$work/pull" pull -q "$registry/bench-$run_id/img:1"; }
skopeo_pull() { rm -rf "$work/oci"; skopeo copy -q --src-tls-verify=false "docker://$registry/bench-$run_id/img:1" "oci:$work/oci:img"; }
rbuild_repush() { R push -q "$registry/bench-$run_id/img:1"; }
skopeo_repush() { skopeo copy -q --dest-tls-verify=false "oci:$store:rbuild-bench:1" "docker://$registry/bench-$run_id-sk/img:1"; }

echo "medians over $reps runs:"
record "push ${size}MiB (empty reg)" rbuild "$(median_of "$reps" rbuild_push)"
push_no=0
record "push ${size}MiB (empty reg)" skopeo "$(median_of "$reps" skopeo_push)"
record "push+mount (new repo)" rbuild "$(median_of "$reps" rbuild_mount)"
record "push+mount (new repo)" skopeo "$(median_of "$reps" skopeo_mount)"
record "pull ${size}MiB" rbuild "$(median_of "$reps" rbuild_pull)"
record "pull ${size}MiB" skopeo "$(median_of "$reps" skopeo_pull)"
record "re-push unchanged" rbuild "$(median_of "$reps" rbuild_repush)"
record "re-push unchanged" skopeo "$(median_of "$reps" skopeo_repush)"
summary
