#!/bin/bash
# Runs the whole test suite N times (default 3) with HOGS busy loops (default: one per core)
# beside it, to flush out tests that fail by timing on a loaded machine: the suite's tests
# wait on conditions, never on a machine being fast. Prints the failing tests of each run;
# exits 1 when any run failed. Logs: $LOGS (default /tmp/rbuild-stress)/run-N.log.
#
#   bash scripts/stress-tests.sh [N] [HOGS]
set -u
cd "$(dirname "$0")/.."
n=${1:-3}
hogs=${2:-$(nproc)}
logs=${LOGS:-/tmp/rbuild-stress}
mkdir -p "$logs"
cargo test --release --workspace --no-run >/dev/null 2>&1 || { echo "build failed" >&2; exit 2; }
failed=0
for i in $(seq 1 "$n"); do
    pids=()
    for _ in $(seq 1 "$hogs"); do
        (while :; do :; done) &
        pids+=($!)
    done
    start=$(date +%s)
    # Signals back to their defaults: a script started in the background inherits SIGINT
    # and SIGQUIT ignored, which tests that signal rbuild would otherwise see.
    env --default-signal cargo test --release --workspace --no-fail-fast >"$logs/run-$i.log" 2>&1
    rc=$?
    kill "${pids[@]}" 2>/dev/null
    wait "${pids[@]}" 2>/dev/null
    echo "run $i: exit $rc in $(($(date +%s) - start)) s"
    if [ "$rc" -ne 0 ]; then
        failed=1
        grep -E '^---- .* stdout ----$|^error: test failed' "$logs/run-$i.log" | sed 's/^/    /'
    fi
done
exit "$failed"
