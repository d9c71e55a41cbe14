#!/usr/bin/env bash
# Benchmark: gzip vs zstd layers (`build -o …,compression=`, issue 14) on a ~1 GiB compressible
# image: writing the layer (build), save (oci-archive: blobs as stored; docker-archive:
# layers decompressed), push to a fresh local registry and pull back, with sizes.
#
#   bench/compression.sh [SIZE_MIB]            (by hand, never from tests)
#
# The data is real files (a tar of the host's /usr/share, then /usr/lib, cut at SIZE_MIB,
# default 1024, as one file): text, binaries and already-compressed files, as in a typical
# image. Each
# compression builds `FROM scratch` + `COPY data /data` in its own empty store (no cache
# shared), so the build time is the COPY with its layer compression. One docker-registry per
# compression on a free 127.0.0.1 port. Times are medians of REPS runs (default 1: each run
# moves 1 GiB several times on a shared machine). COMPRESSIONS="zstd" runs one of them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
size=${1:-1024}
reps=${REPS:-1}
ensure_rbuild

work=$(mktemp -d /var/tmp/rbuild-compression-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start_registry: a fresh docker-registry on a free port; its address goes into $registry.
start_registry() {
    local port dir
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    dir=$work/registry-$port
    mkdir -p "$dir"
    printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' "$dir/data" "$port" >"$dir/config.yml"
    /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
    registry=127.0.0.1:$port
}

echo "collecting ${size} MiB of /usr in $work"
mkdir -p "$work/ctx/data"
# One stream of real files (a tar of /usr/share then /usr/lib), cut at SIZE_MIB.
tar -C /usr -cf - share lib 2>/dev/null | head -c "$((size << 20))" >"$work/ctx/data/usr.tar" || true
printf 'FROM scratch\nCOPY data /data\n' >"$work/ctx/Dockerfile"
echo "data: $(du -sm "$work/ctx/data" | cut -f1) MiB in $(find "$work/ctx/data" -type f | wc -l) files"

blob_size() { # ROOT NAME: the compressed size of the image's layers, from the store
    "$RBUILD" --root "$1" inspect -f '{{.Id}}' "$2" >/dev/null
    skopeo inspect --raw "oci:$1:$2" | python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))'
}

for c in ${COMPRESSIONS:-gzip zstd}; do
    root=$work/root-$c
    build_once() { rm -rf "$root"; "$RBUILD" --root "$root" build -q -o "type=image,name=bench:$c,compression=$c" "$work/ctx"; }
    t_build=$(median_of "$reps" build_once)
    record "build (write layer)" "$c" "$t_build"
    t_save=$(median_of "$reps" "$RBUILD" --root "$root" save --format oci-archive -o "$work/$c.oci.tar" "bench:$c")
    record "save oci-archive" "$c" "$t_save"
    t_saved=$(median_of "$reps" "$RBUILD" --root "$root" save -o "$work/$c.docker.tar" "bench:$c")
    record "save docker-archive" "$c" "$t_saved"
    # A fresh registry (started here: median_of runs in a subshell, whose variables are
    # lost); with REPS > 1 the later pushes find the blobs there already.
    start_registry
    "$RBUILD" --root "$root" tag "bench:$c" "$registry/bench:$c"
    t_push=$(median_of "$reps" "$RBUILD" --root "$root" push "$registry/bench:$c")
    record "push (fresh registry)" "$c" "$t_push"
    pull_once() { rm -rf "$work/pull-$c"; "$RBUILD" --root "$work/pull-$c" pull "$registry/bench:$c"; }
    t_pull=$(median_of "$reps" pull_once)
    record "pull (empty store)" "$c" "$t_pull"
    printf '  %-28s %-10s %8d MiB (layer blobs), oci-archive %d MiB\n' "size" "$c" \
        $(( $(blob_size "$root" "bench:$c") >> 20 )) $(( $(stat -c %s "$work/$c.oci.tar") >> 20 ))
    rm -f "$work/$c.oci.tar" "$work/$c.docker.tar"
    rm -rf "$work/pull-$c" "$root"
done
