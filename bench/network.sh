#!/usr/bin/env bash
# Benchmark: published ports (issue 12), by hand, as root, never from tests.
#
#   bench/network.sh [N]     (N runs per case, default 10; the throughput cases run 3 times)
#
# (a) start to first HTTP response: `run -d -p PORT:80` of a busybox httpd, timed from the
#     command until a GET of 127.0.0.1:PORT answers 200 (the container removed, untimed,
#     after each run); rbuild vs podman (its default bridge; docker is skipped when its
#     engine has no bridge network, as the engine of ../shared/bench/peers.sh).
# (b) throughput: 1 GiB from a busybox `nc -l` to a reader (bash's /dev/tcp and cat) on the
#     host, through the published port on 127.0.0.1 (userland proxy) and on the bridge's
#     address (DNAT), and from container to container on the bridge; against the same
#     transfer over loopback without containers.
# Traffic stays on this machine. Medians and ratios come from bench/lib.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
n=${1:-10}
rootfs=${ROOTFS:-/var/lib/rbuild-peers/busybox-rootfs.tar}
image=localhost/busybox:latest
bridge=rbuildbench
subnet_octet=199
export RBUILD_BRIDGE=$bridge RBUILD_BRIDGE_SUBNET=10.$subnet_octet.0.0/16
gateway=10.$subnet_octet.0.1

ensure_rbuild
[ -r "$rootfs" ] || { echo "bench: $rootfs missing: run $PEERS_SH first" >&2; exit 1; }
work=$(mktemp -d /var/tmp/rbuild-bench-network.XXXXXX)
R=("$RBUILD" --root "$work/root")
cleanup() {
    "${R[@]}" rm -f web src sink >/dev/null 2>&1 || true
    podman rm -f rbuild-bench-web >/dev/null 2>&1 || true
    [ -n "${loop_pid:-}" ] && kill "$loop_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
"${R[@]}" import "$rootfs" "$image" >/dev/null
mkdir -p "$work/www"
echo hello > "$work/www/index.html"

# free_port: a TCP port nothing listens on.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

# wait_http PORT: polls GET http://127.0.0.1:PORT/ until it answers 200.
wait_http() {
    for ((i = 0; i < 5000; i++)); do
        curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
        sleep 0.002
    done
    return 1
}

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
    printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

echo "(a) run -d -p $port:80 httpd until the first 200 on 127.0.0.1, median of $n:"
rbuild_http >/dev/null && rbuild_rm >/dev/null
record "first HTTP response" rbuild "$(timed_then "$n" rbuild_rm rbuild_http)"
if have podman && podman image exists "$image" 2>/dev/null; then
    podman_http >/dev/null && podman_rm >/dev/null
    record "first HTTP response" podman "$(timed_then "$n" podman_rm podman_http)"
else
    echo "  podman or $image in podman missing: skipped"
fi
docker=${DOCKER:-/usr/bin/docker}
if [ -x "$docker" ] && "$docker" network inspect bridge >/dev/null 2>&1; then
    docker_http() {
        "$docker" run -d --name rbuild-bench-web -p "$port:80" -v "$work/www:/www:ro" "$image" \
            httpd -f -p 80 -h /www && wait_http "$port"
    }
    docker_rm() { "$docker" rm -f rbuild-bench-web; }
    record "first HTTP response" docker "$(timed_then "$n" docker_rm docker_http)"
else
    echo "  docker: its engine has no bridge network (no -p): skipped"
fi

# (b) 1 GiB through each path; the server sends, bash's /dev/tcp + cat reads.
size=$((1024 * 1024 * 1024))
serve='while true; do head -c '$size' /dev/zero | nc -l -p 80; done'
# read_from IP PORT: reads everything the server sends (in a subshell: a failed /dev/tcp
# redirection ends the shell); tries again while the server is not ready (short read).
read_from() {
    local got
    for ((i = 0; i < 100; i++)); do
        got=$( (cat <"/dev/tcp/$1/$2") 2>/dev/null | wc -c)
        [ "$got" -eq "$size" ] && return 0
        sleep 0.05
    done
    return 1
}
throughput() { # CASE CMD...: median of 3 transfers, recorded as MiB/s (higher is better)
    local case=$1; shift
    local t
    t=$(median_of 3 "$@")
    printf '  %-28s %8.3f s  %8.0f MiB/s\n' "$case" "$t" "$(awk -v t="$t" 'BEGIN {print 1024 / t}')"
    THROUGHPUT+=("$case|$t")
}
THROUGHPUT=()
echo "(b) 1 GiB transfers, median of 3:"
lport=$(free_port)
(while true; do head -c $size /dev/zero | busybox nc -l -p "$lport"; done) >/dev/null 2>&1 &
loop_pid=$!
read_from 127.0.0.1 "$lport" # warm-up, and the server is ready
throughput "loopback (no container)" read_from 127.0.0.1 "$lport"
kill "$loop_pid" 2>/dev/null; loop_pid=
pport=$(free_port)
"${R[@]}" run -d --name src -p "$pport:80" "$image" sh -c "$serve" >/dev/null
read_from 127.0.0.1 "$pport"
throughput "published, 127.0.0.1 (proxy)" read_from 127.0.0.1 "$pport"
throughput "published, $gateway (DNAT)" read_from "$gateway" "$pport"
src_ip=$("${R[@]}" exec src sh -c "ip -o -4 addr show eth0 | awk '{print \$4}' | cut -d/ -f1")
"${R[@]}" run -d --name sink "$image" sleep 3600 >/dev/null
c2c() { "${R[@]}" exec sink sh -c "nc $src_ip 80 | wc -c | grep -qx $size"; }
throughput "container to container" c2c
"${R[@]}" rm -f src sink >/dev/null

summary
echo
echo "throughput ratios to loopback (goal >= 0.8):"
base=$(printf '%s\n' "${THROUGHPUT[@]}" | awk -F'|' 'NR == 1 {print $2}')
printf '%s\n' "${THROUGHPUT[@]}" | awk -F'|' -v b="$base" '{printf "  %-32s %6.3f\n", $1, b / $2}'
