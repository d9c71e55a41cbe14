#!/usr/bin/env bash
# Benchmark (issue 14): gzip vs zstd layers, uncompressed as the reference, on a ~1 GiB
# compressible image: time and size of writing, saving, pushing and pulling it.
#
#   bench/compression.sh [SIZE_MIB]            (by hand, never from tests)
#       REPS=N                 runs per case (default 3), medians printed
#       COMPRESSIONS="gzip zstd uncompressed"  the formats measured (the default)
#
# The image is busybox plus SIZE_MIB (default 1024) of log-like text that a RUN step makes
# with busybox awk (random words and numbers: gzip and zstd shrink it about 3.5x, as text in
# real images), in 64 MiB files (one generated chunk written again under each name; copies
# are 64 MiB apart, beyond gzip's and zstd's match windows, so they compress as fresh text).
# Per compression C, each in its own store with only busybox imported:
#   build      `build --no-cache -o type=image,compression=C`: the RUN step and the layer
#              written in C (the uncompressed row is the step plus writing the plain tar: the
#              difference to it is the compression's cost)
#   save       `save` (docker-archive: layer tars always uncompressed, as docker writes them)
#              and `save --format oci-archive` (the blobs as stored), time and archive size
#   push       `build -o type=registry,name=REG/bench:C` again (a cache hit: the push is the
#              work) into a fresh docker-registry per run; pushed size = the registry's storage
#   pull       `pull` from that registry into an empty store
# Runs are interleaved (each round times every compression once, in turn) so that the load
# of a shared machine falls on all of them alike. Then the ratios zstd/gzip (and
# uncompressed/gzip) of every time and size.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
size=${1:-1024}
reps=${REPS:-3}
compressions=${COMPRESSIONS:-gzip zstd uncompressed}
ensure_rbuild
base=/var/lib/rbuild-peers/busybox-rootfs.tar

work=$(mktemp -d /var/tmp/rbuild-compression-bench.XXXXXX)
trap 'stop_registries; rm -rf "$work"' EXIT
[ -f "$base" ] || { base=$work/busybox.tar; bash "$PROJECT_DIR/testdata/base/busybox-rootfs.sh" --tar "$base"; }

parts=$(((size + 63) / 64))
mkdir -p "$work/ctx"
cat >"$work/ctx/Dockerfile" <<EOF
FROM localhost/busybox:latest
RUN mkdir /data && awk 'BEGIN { srand(1); n = split("the quick brown fox jumps over lazy dog image layer build cache registry push pull save load error warning info debug request response GET POST /api/v1/items user session token", w, " "); for (i = 0; i < 900000; i++) printf "2026-12-04T%02d:%02d:%02d.%03dZ %s %s id=%d %s %s %s bytes=%d\\n", i % 24, i % 60, (i * 7) % 60, i % 1000, w[int(rand() * n) + 1], w[int(rand() * n) + 1], i * 31, w[int(rand() * n) + 1], w[int(rand() * n) + 1], w[int(rand() * n) + 1], int(rand() * 100000) }' | head -c 67108864 > /data/part-1 \\
    && for i in \$(seq 2 $parts); do cp /data/part-1 /data/part-\$i; done
EOF

declare -A T S RUNS # T[case|C]: median seconds; S[what|C]: bytes; RUNS[case|C]: each run's seconds
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
R() { local c=$1; shift; "$RBUILD" --root "$work/root-$c" "$@"; }
# timed CASE C CMD...: runs CMD once (output discarded) and keeps its wall time.
timed() {
    local t
    t=$(median_of 1 "${@:3}") || { echo "bench: $1 $2 failed" >&2; exit 1; }
    RUNS[$1|$2]+=" $t"
}
# done_case CASE LABEL: the medians of CASE, printed.
done_case() {
    local c
    for c in $compressions; do
        T[$1|$c]=$(median ${RUNS[$1|$c]})
        record "$2" "$c" "${T[$1|$c]}"
    done
}
fresh_store() { rm -rf "$work/root-$1" && R "$1" import "$base" localhost/busybox:latest >/dev/null 2>&1; }
build_c() { R "$1" build -q --network none --no-cache -o "type=image,name=bench:$1,compression=$1" "$work/ctx"; }
push_c() { R "$1" build -q --network none -o "type=registry,name=$2/bench:$1,compression=$1" "$work/ctx"; }

echo "compression benchmark: ${size} MiB image ($parts files of 64 MiB), $reps rounds, in $work"
for ((r = 0; r < reps; r++)); do
    for c in $compressions; do
        fresh_store "$c"
        timed build "$c" build_c "$c"
    done
done
done_case build "build (RUN + write layer)"
for c in $compressions; do
    # Sizes as the store keeps them: the layer blobs of the manifest.
    S[layers|$c]=$(skopeo inspect --raw "oci:$work/root-$c:bench:$c" |
        python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')
done

for ((r = 0; r < reps; r++)); do
    for c in $compressions; do
        timed save "$c" R "$c" save -o "$work/docker.tar" "bench:$c"
        S[save|$c]=$(stat -c %s "$work/docker.tar")
        rm -f "$work/docker.tar"
        timed save-oci "$c" R "$c" save --format oci-archive -o "$work/oci.tar" "bench:$c"
        S[save-oci|$c]=$(stat -c %s "$work/oci.tar")
        rm -f "$work/oci.tar"
    done
done
done_case save "save (docker-archive)"
done_case save-oci "save --format oci-archive"

# Each push into a fresh registry (nothing there to skip); the first round's stay for the
# pulls, the others are emptied at once (disk).
declare -A REG
for ((r = 0; r < reps; r++)); do
    for c in $compressions; do
        start_registry "$work/registry-$c-$r"
        REG[$c|$r]=$REGISTRY_ADDR
        timed push "$c" push_c "$c" "$REGISTRY_ADDR"
        S[push|$c]=$(du -sb "$work/registry-$c-$r/data" | cut -f1)
        ((r == 0)) || rm -rf "$work/registry-$c-$r/data"
    done
done
done_case push "build -o type=registry"
for c in $compressions; do rm -rf "$work/root-$c"; done

for ((r = 0; r < reps; r++)); do
    for c in $compressions; do
        rm -rf "$work/pull-$c"
        timed pull "$c" "$RBUILD" --root "$work/pull-$c" pull -q "${REG[$c|0]}/bench:$c"
    done
done
done_case pull "pull (empty store)"
for c in $compressions; do
    rm -rf "$work/pull-$c" "$work/registry-$c-0/data"
    printf '  %-28s %-12s layers %s MiB, docker-archive %s MiB, oci-archive %s MiB, pushed %s MiB\n' \
        "sizes" "$c" "$(mib "${S[layers|$c]}")" "$(mib "${S[save|$c]}")" "$(mib "${S[save-oci|$c]}")" \
        "$(mib "${S[push|$c]}")"
done

# ratio X Y: X / Y with 2 decimals, "-" when either is missing.
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || a == "nan" || b == 0) print "-"; else printf "%.2f", a / b }'; }
echo
printf '%-28s %10s %10s %14s %12s %18s\n' CASE GZIP ZSTD UNCOMPRESSED ZSTD/GZIP UNCOMPRESSED/GZIP
for k in build save save-oci push pull; do
    printf '%-28s %10.2f %10.2f %14.2f %12s %18s\n' "$k (s)" "${T[$k|gzip]:-0}" "${T[$k|zstd]:-0}" \
        "${T[$k|uncompressed]:-0}" "$(ratio "${T[$k|zstd]:-}" "${T[$k|gzip]:-}")" \
        "$(ratio "${T[$k|uncompressed]:-}" "${T[$k|gzip]:-}")"
done
for k in layers save save-oci push; do
    printf '%-28s %10s %10s %14s %12s %18s\n' "$k (MiB)" "$(mib "${S[$k|gzip]:-0}")" \
        "$(mib "${S[$k|zstd]:-0}")" "$(mib "${S[$k|uncompressed]:-0}")" \
        "$(ratio "${S[$k|zstd]:-}" "${S[$k|gzip]:-}")" "$(ratio "${S[$k|uncompressed]:-}" "${S[$k|gzip]:-}")"
done
