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
# Then the ratios zstd/gzip (and uncompressed/gzip) of every time and size.
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

declare -A T S # T[case|C]: median seconds; S[what|C]: bytes
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
echo "compression benchmark: ${size} MiB image ($parts files of 64 MiB), $reps runs per case, in $work"
for c in $compressions; do
    root=$work/root-$c
    R() { "$RBUILD" --root "$root" "$@"; }
    fresh_store() { rm -rf "$root" && R import "$base" localhost/busybox:latest; }
    build_c() { R build -q --network none --no-cache -o "type=image,name=bench:$c,compression=$c" "$work/ctx"; }
    T[build|$c]=$(median_after "$reps" fresh_store build_c)
    record "build (RUN + write layer)" "$c" "${T[build|$c]}"
    # Sizes as the store keeps them: the layer blobs of the manifest.
    S[layers|$c]=$(skopeo inspect --raw "oci:$root:bench:$c" |
        python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')

    T[save|$c]=$(median_of "$reps" R save -o "$work/docker.tar" "bench:$c")
    record "save (docker-archive)" "$c" "${T[save|$c]}"
    S[save|$c]=$(stat -c %s "$work/docker.tar")
    rm -f "$work/docker.tar"
    T[save-oci|$c]=$(median_of "$reps" R save --format oci-archive -o "$work/oci.tar" "bench:$c")
    record "save --format oci-archive" "$c" "${T[save-oci|$c]}"
    S[save-oci|$c]=$(stat -c %s "$work/oci.tar")
    rm -f "$work/oci.tar"

    # One fresh registry per push (nothing there to skip); the first one stays for the pulls.
    regs=()
    for ((k = 0; k < reps; k++)); do
        start_registry "$work/registry-$c-$k"
        regs+=("$REGISTRY_ADDR")
    done
    push_no=0
    push_c() {
        local reg=${regs[$push_no]}
        push_no=$((push_no + 1))
        R build -q --network none -o "type=registry,name=$reg/bench:$c,compression=$c" "$work/ctx"
    }
    T[push|$c]=$(median_of "$reps" push_c)
    record "build -o type=registry" "$c" "${T[push|$c]}"
    S[push|$c]=$(du -sb "$work/registry-$c-0/data" | cut -f1)
    for ((k = 1; k < reps; k++)); do rm -rf "$work/registry-$c-$k/data"; done
    rm -rf "$root"

    pull_root=$work/pull-$c
    empty_store() { rm -rf "$pull_root"; }
    pull_c() { "$RBUILD" --root "$pull_root" pull -q "${regs[0]}/bench:$c"; }
    T[pull|$c]=$(median_after "$reps" empty_store pull_c)
    record "pull (empty store)" "$c" "${T[pull|$c]}"
    rm -rf "$pull_root" "$work/registry-$c-0/data"
    printf '  %-28s %-12s layers %s MiB, docker-archive %s MiB, oci-archive %s MiB, pushed %s MiB\n' \
        "sizes" "$c" "$(mib "${S[layers|$c]}")" "$(mib "${S[save|$c]}")" "$(mib "${S[save-oci|$c]}")" \
        "$(mib "${S[push|$c]}")"
done

# ratio X Y: X / Y with 2 decimals, "-" when either is missing.
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || a == "nan" || b == 0) print "-"; else printf "%.2f", a / b }'; }
echo
printf '%-28s %10s %10s %14s %12s %18s\n' CASE GZIP ZSTD UNCOMPRESSED ZSTD/GZIP UNCOMPRESSED/GZIP
for k in build save save-oci push pull; do
    printf '%-28s %10s %10s %14s %12s %18s\n' "$k (s)" "${T[$k|gzip]:--}" "${T[$k|zstd]:--}" \
        "${T[$k|uncompressed]:--}" "$(ratio "${T[$k|zstd]:-}" "${T[$k|gzip]:-}")" \
        "$(ratio "${T[$k|uncompressed]:-}" "${T[$k|gzip]:-}")"
done
for k in layers save save-oci push; do
    printf '%-28s %10s %10s %14s %12s %18s\n' "$k (MiB)" "$(mib "${S[$k|gzip]:-0}")" \
        "$(mib "${S[$k|zstd]:-0}")" "$(mib "${S[$k|uncompressed]:-0}")" \
        "$(ratio "${S[$k|zstd]:-}" "${S[$k|gzip]:-}")" "$(ratio "${S[$k|uncompressed]:-}" "${S[$k|gzip]:-}")"
done
