#!/usr/bin/env bash
# Benchmark: the default network and published ports (issue 12), by hand, as root, never
# from tests.
#
#   bench/network.sh [N]     (N runs per case, default 10; the throughput cases: 5 rounds)
#
# (1) `run --rm IMAGE true` with each tool's default network: rbuild's and podman's bridge
#     (docker's engine of ../shared/bench/peers.sh has no bridge network: its default is a
#     loopback-only namespace, so its figure is printed but is not a peer of this case).
# (2) start to first HTTP response: `run -d -p PORT:80` of a busybox httpd, timed from the
#     command until a GET of 127.0.0.1:PORT answers 200 (the container removed, untimed,
#     after each run); rbuild vs podman (docker skipped: no bridge, so no -p).
# (3) throughput: 1 GiB from a server in a container's network namespace to a reader on the
#     host, through the published port on 127.0.0.1 and on the bridge's address, and to a
#     reader in another container; against the same transfer over loopback without
#     containers (and through podman's published port on 127.0.0.1, for comparison). Both
#     ends are bench/transfer.py (1 MiB per system call, see there); the paths take turns
#     in each round.
# Traffic stays on this machine. Medians and ratios come from bench/lib.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
n=${1:-10}
rootfs=${ROOTFS:-/var/lib/rbuild-peers/busybox-rootfs.tar}
image=localhost/busybox:latest
docker=${DOCKER:-/usr/bin/docker}
bridge=rbuildbench
subnet_octet=199
export RBUILD_BRIDGE=$bridge RBUILD_BRIDGE_SUBNET=10.$subnet_octet.0.0/16
gateway=10.$subnet_octet.0.1
python=$(python3 -c 'import sys; print(sys.executable)')
transfer=("$python" "$BENCH_DIR/transfer.py")

ensure_rbuild
[ -r "$rootfs" ] || { echo "bench: $rootfs missing: run $PEERS_SH first" >&2; exit 1; }
work=$(mktemp -d /var/tmp/rbuild-bench-network.XXXXXX)
R=("$RBUILD" --root "$work/root")
servers=()
cleanup() {
    local pid
    for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
    "${R[@]}" rm -f web src sink >/dev/null 2>&1 || true
    podman rm -f -t 0 rbuild-bench-web rbuild-bench-src >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
"${R[@]}" import "$rootfs" "$image" >/dev/null
mkdir -p "$work/www"
echo hello > "$work/www/index.html"
have_podman=false
if have podman && podman image exists "$image" 2>/dev/null; then have_podman=true; fi
docker_bridge=false
if [ -x "$docker" ] && "$docker" network inspect bridge >/dev/null 2>&1; then docker_bridge=true; fi

# free_port: a TCP port nothing listens on.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

# wait_http PORT: polls GET http://127.0.0.1:PORT/ until it answers 200. (Its counter is
# local: the callers' loops count with `i` too.)
wait_http() {
    local i
    for ((i = 0; i < 5000; i++)); do
        curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
        sleep 0.002
    done
    return 1
}

echo "(1) run --rm $image true, default network, median of $n:"
run_true() { "$@" run --rm "$image" true; }
run_true "${R[@]}" >/dev/null
record "run --rm true (default)" rbuild "$(median_of "$n" run_true "${R[@]}")"
if $have_podman; then
    run_true podman >/dev/null
    record "run --rm true (default)" podman "$(median_of "$n" run_true podman)"
else
    echo "  podman or $image in podman missing: skipped"
fi
if [ -x "$docker" ] && "$docker" image inspect "$image" >/dev/null 2>&1; then
    run_true "$docker" >/dev/null
    t=$(median_of "$n" run_true "$docker")
    if $docker_bridge; then
        record "run --rm true (default)" docker "$t"
    else
        printf '  %-28s %-10s %8.3f s  (no bridge in its engine: not a peer here)\n' \
            "run --rm true (default)" docker "$t"
    fi
fi

port=$(free_port)
rbuild_http() {
    "${R[@]}" run -d --name web -p "$port:80" -v "$work/www:/www:ro" "$image" \
        httpd -f -p 80 -h /www && wait_http "$port"
}
rbuild_rm() { "${R[@]}" rm -f web; }
podman_http() {
    podman run -d --name rbuild-bench-web -p "$port:80" -v "$work/www:/www:ro" "$image" \
        httpd -f -p 80 -h /www && wait_http "$port"
}
podman_rm() { podman rm -f -t 0 rbuild-bench-web; }

# timed_then N TEARDOWN CMD...: the median wall time of CMD over N runs, TEARDOWN (untimed)
# after each.
timed_then() {
    local n=$1 teardown=$2; shift 2
    local times=() i start end
    for ((i = 0; i < n; i++)); do
        start=$EPOCHREALTIME
        "$@" >/dev/null 2>&1 || { echo "bench: failed: $*" >&2; "$teardown" >/dev/null 2>&1; echo nan; return; }
        end=$EPOCHREALTIME
        "$teardown" >/dev/null 2>&1
        times+=("$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')")
    done
    printf '%s\n' "${times[@]}" | median
}

echo "(2) run -d -p $port:80 httpd until the first 200 on 127.0.0.1, median of $n:"
rbuild_http >/dev/null && rbuild_rm >/dev/null
record "first HTTP response" rbuild "$(timed_then "$n" rbuild_rm rbuild_http)"
if $have_podman; then
    podman_http >/dev/null && podman_rm >/dev/null
    record "first HTTP response" podman "$(timed_then "$n" podman_rm podman_http)"
fi
if $docker_bridge; then
    docker_http() {
        "$docker" run -d --name rbuild-bench-web -p "$port:80" -v "$work/www:/www:ro" "$image" \
            httpd -f -p 80 -h /www && wait_http "$port"
    }
    docker_rm() { "$docker" rm -f rbuild-bench-web; }
    docker_http >/dev/null && docker_rm >/dev/null
    record "first HTTP response" docker "$(timed_then "$n" docker_rm docker_http)"
else
    echo "  docker: its engine has no bridge network (no -p): skipped"
fi

# (3) 1 GiB through each path.
size=$((1024 * 1024 * 1024))
runs=5
# serve_in PID PORT: starts transfer.py's server in PID's network namespace (PID 0: on the
# host) and waits until it listens.
serve_in() {
    local ns=() fifo=$work/ready.$2 line
    [ "$1" = 0 ] || ns=(nsenter "--net=/proc/$1/ns/net")
    mkfifo "$fifo"
    "${ns[@]}" "${transfer[@]}" serve "$2" "$size" >"$fifo" &
    servers+=($!)
    read -r line <"$fifo"
    rm -f "$fifo"
    [ "$line" = ready ]
}
# read_from HOST PORT [PID]: one transfer to a reader on the host (or in PID's namespace).
read_from() {
    local ns=()
    [ -z "${3:-}" ] || ns=(nsenter "--net=/proc/$3/ns/net")
    "${ns[@]}" "${transfer[@]}" read "$1" "$2" "$size"
}
pid_of() { "${R[@]}" inspect -f '{{.State.Pid}}' "$1"; }
# One transfer per case and round, the cases interleaved (the machine's load moves: each
# round sees all paths under about the same load); medians over the rounds, in MiB/s.
# case_of NAME CMD...: adds a case (its command kept as one string, split again on \x1f).
CASES=() CMDS=() TIMES=()
case_of() { CASES+=("$1"); shift; local IFS=$'\x1f'; CMDS+=("$*"); TIMES+=(""); }
lport=$(free_port)
serve_in 0 "$lport"
case_of "loopback (no container)" read_from 127.0.0.1 "$lport"
pport=$(free_port)
"${R[@]}" run -d --name src -p "$pport:80" "$image" sleep 3600 >/dev/null
src_pid=$(pid_of src)
serve_in "$src_pid" 80
case_of "published, 127.0.0.1" read_from 127.0.0.1 "$pport"
case_of "published, $gateway" read_from "$gateway" "$pport"
src_ip=$(nsenter --net="/proc/$src_pid/ns/net" ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
"${R[@]}" run -d --name sink "$image" sleep 3600 >/dev/null
case_of "container to container" read_from "$src_ip" 80 "$(pid_of sink)"
if $have_podman; then
    # The same through podman's published port (netavark's rules), for comparison.
    ppport=$(free_port)
    podman run -d --name rbuild-bench-src -p "$ppport:80" "$image" sleep 3600 >/dev/null
    serve_in "$(podman inspect -f '{{.State.Pid}}' rbuild-bench-src)" 80
    case_of "podman published, 127.0.0.1" read_from 127.0.0.1 "$ppport"
fi

echo "(3) 1 GiB transfers, $runs rounds (after one untimed), medians:"
for ((round = 0; round <= runs; round++)); do
    for c in "${!CASES[@]}"; do
        IFS=$'\x1f' read -r -a cmd <<<"${CMDS[$c]}"
        start=$EPOCHREALTIME
        "${cmd[@]}" || { echo "bench: ${CASES[$c]}: the transfer failed" >&2; exit 1; }
        end=$EPOCHREALTIME
        ((round == 0)) || TIMES[c]+="$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}') "
    done
done
THROUGHPUT=()
for c in "${!CASES[@]}"; do
    t=$(printf '%s\n' ${TIMES[$c]} | median)
    printf '  %-34s %8.3f s  %8.0f MiB/s\n' "${CASES[$c]}" "$t" "$(awk -v t="$t" 'BEGIN {print 1024 / t}')"
    THROUGHPUT+=("${CASES[$c]}|$t")
done
"${R[@]}" rm -f src sink >/dev/null
podman rm -f -t 0 rbuild-bench-src >/dev/null 2>&1 || true

summary
echo
echo "throughput, ratio to loopback (goal >= 0.8):"
base=$(printf '%s\n' "${THROUGHPUT[@]}" | awk -F'|' 'NR == 1 {print $2}')
printf '%s\n' "${THROUGHPUT[@]}" | awk -F'|' -v b="$base" '{printf "  %-34s %6.3f\n", $1, b / $2}'
