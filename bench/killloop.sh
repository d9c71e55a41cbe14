#!/usr/bin/env bash
# Crash loop: SIGKILLs rbuild commands at random moments and checks the store after each kill.
#
#   bench/killloop.sh [KILLS] [FILES]          (by hand, never from tests; needs root)
#
# RBUILD=/path/to/rbuild runs that binary (default: target/release/rbuild, built first).
#
# Repeats build / load / save / pull / push / rmi / image prune / builder prune / run, each
# started in the background and sent SIGKILL after a random delay (0 to 0.9x that command's
# usual duration), until KILLS (default 200) commands were really killed (a command that
# finished first does not count). After every attempt:
#   - `rbuild system check` must pass (index.json = database, blobs intact, every snapshot
#     complete, no leftovers of dead processes once cleaned);
#   - the image many:1 (busybox + FILES files in /many, default 10000) must run and have all
#     its files (it is loaded again, unkilled, when an rmi/prune removed it).
# Pull and push go to a docker-registry this script starts on 127.0.0.1 (a free port).
# Prints: attempts, kills, check failures, functional failures, bytes the kills left behind
# (cleaned by the next command) and bytes still left after cleaning (should be 0).
set -uo pipefail
kills_wanted=${1:-200}
files=${2:-10000}
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(dirname "$BENCH_DIR")
if [ -z "${RBUILD:-}" ]; then
    (cd "$PROJECT_DIR" && cargo build --release -q) || { echo "killloop: cargo build failed" >&2; exit 1; }
    RBUILD=$PROJECT_DIR/target/release/rbuild
fi

work=$(mktemp -d /var/tmp/rbuild-killloop.XXXXXX)
root=$work/root
registry_pid=
cleanup() {
    [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
rb() { "$RBUILD" --root "$root" "$@"; }

# A local registry (loopback only).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$work/registry/data" "$port" >"$work/registry/config.yml"
/usr/bin/docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
reg=127.0.0.1:$port

# The image: busybox + $files small files in /many, one layer.
echo "preparing many:1 ($files files) in $work"
bash "$PROJECT_DIR/testdata/base/busybox-rootfs.sh" "$work/rootfs" >/dev/null
mkdir -p "$work/rootfs/many"
(cd "$work/rootfs/many" && seq "$files" | xargs -n 1000 touch)
for f in $(seq 1 97 "$files"); do echo "$f" >"$work/rootfs/many/$f"; done
tar --sort=name --mtime=@0 --numeric-owner -C "$work/rootfs" -cf "$work/many.tar" .
rm -rf "$work/rootfs"
rb import "$work/many.tar" many:1 >/dev/null
rb save -o "$work/many-save.tar" many:1
rb tag many:1 "$reg/many:1"
rb push "$reg/many:1" >/dev/null 2>&1 || { echo "killloop: push to $reg failed" >&2; exit 1; }
mkdir -p "$work/ctx" "$work/out"
cat >"$work/ctx/Dockerfile" <<'EOF'
FROM many:1
RUN mkdir /built && for i in $(seq 2000); do echo $i > /built/$i; done
COPY Dockerfile /copied
EOF

ensure_image() {
    rb images -q many:1 2>/dev/null | grep -q . || rb load -i "$work/many-save.tar" >/dev/null
}

# The operations. prep OP: readies the store for OP (the image is there, tagged; for pull,
# not there, so its blobs are downloaded) and sets $cmd to OP's command line.
ops=(build load save pull push rmi prune builder-prune run)
n_push=0
prep() {
    ensure_image
    rb tag many:1 "$reg/many:1" >/dev/null 2>&1
    case $1 in
        build) cmd="build --no-cache -q -t app:1 $work/ctx" ;;
        load) cmd="load -i $work/many-save.tar" ;;
        save) cmd="save -o $work/out/many.tar many:1" ;;
        pull) rb rmi -f many:1 "$reg/many:1" >/dev/null 2>&1; rb image prune -a -f >/dev/null 2>&1
              cmd="pull $reg/many:1" ;;
        push) n_push=$((n_push + 1)); rb tag many:1 "$reg/push$n_push:1" >/dev/null 2>&1
              cmd="push $reg/push$n_push:1" ;;
        rmi) cmd="rmi -f many:1 $reg/many:1" ;;
        prune) cmd="image prune -a -f" ;;
        builder-prune) cmd="builder prune -a -f" ;;
        run) cmd="run --rm many:1 ls -R /many" ;;
    esac
}
run_op() { # run_op OP: runs it in the foreground
    prep "$1"
    # shellcheck disable=SC2086
    rb $cmd >/dev/null 2>&1
    rb tag "$reg/many:1" many:1 >/dev/null 2>&1
}

# Each operation's usual duration (ms), to spread the kills over it.
declare -A dur
for op in "${ops[@]}"; do
    run_op "$op"
    s=$EPOCHREALTIME; run_op "$op"; e=$EPOCHREALTIME
    dur[$op]=$(awk -v a="$s" -v b="$e" 'BEGIN {printf "%d", (b - a) * 1000 + 20}')
    echo "  $op: ~${dur[$op]} ms"
done

attempts=0 kills=0 bad_checks=0 bad_runs=0 left_bytes=0 after_bytes=0
declare -A killed_by
leftover_bytes() { # bytes of temp files rbuild keeps, and of save temp files
    { find "$root/tmp" -type f -printf '%s\n'; find "$work/out" -name '.rbuild-save-*' -printf '%s\n'; } 2>/dev/null |
        awk '{s+=$1} END {print s+0}'
}
while [ "$kills" -lt "$kills_wanted" ]; do
    op=${ops[RANDOM % ${#ops[@]}]}
    prep "$op"
    # shellcheck disable=SC2086
    "$RBUILD" --root "$root" $cmd >/dev/null 2>&1 &
    pid=$!
    delay=$((RANDOM % (dur[$op] * 9 / 10 + 1)))
    sleep "$(awk -v d="$delay" 'BEGIN {printf "%.3f", d / 1000}')"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    status=$?
    attempts=$((attempts + 1))
    if [ "$status" -eq 137 ]; then
        kills=$((kills + 1))
        killed_by[$op]=$(( ${killed_by[$op]:-0} + 1 ))
    fi
    left_bytes=$((left_bytes + $(leftover_bytes)))
    # A save into the same dir cleans dead save temp files; the check cleans the store.
    out=$(rb system check 2>&1)
    if [ $? -ne 0 ]; then
        bad_checks=$((bad_checks + 1))
        echo "CHECK FAILED after $op killed at ${delay} ms:"; echo "$out" | sed 's/^/    /'
    fi
    rb tag "$reg/many:1" many:1 >/dev/null 2>&1 # a pulled image serves as many:1
    ensure_image
    count=$(rb run --rm many:1 sh -c "find /many -type f | wc -l" 2>&1)
    if [ "$count" != "$files" ]; then
        bad_runs=$((bad_runs + 1))
        echo "RUN FAILED after $op killed at ${delay} ms: $count"
    fi
    rb save -o "$work/out/check.tar" many:1 >/dev/null 2>&1
    after_bytes=$((after_bytes + $(leftover_bytes)))
    [ $((attempts % 20)) -eq 0 ] && echo "  $attempts attempts, $kills kills, $bad_checks bad checks, $bad_runs bad runs"
done

echo
echo "attempts:                   $attempts"
echo "kills:                      $kills"
for op in "${ops[@]}"; do printf '  %-14s %d\n' "$op" "${killed_by[$op]:-0}"; done
echo "check failures:             $bad_checks"
echo "functional failures:        $bad_runs"
echo "bytes left by kills:        $left_bytes (removed by the next command)"
echo "bytes left after cleaning:  $after_bytes"
[ "$bad_checks" -eq 0 ] && [ "$bad_runs" -eq 0 ] && [ "$after_bytes" -eq 0 ]
