#!/usr/bin/env bash
# Times ContextSnapshot::scan on a generated 100,000-file context (release build):
# the first scan (empty digest cache: every file read and hashed) and a re-scan (filled cache:
# only stat). Prints every run and the median of each.
#
# usage: bench/context.sh [FILES] [RUNS]      (defaults: 100000 files, 5 runs)
set -euo pipefail
files=${1:-100000}
runs=${2:-5}
cd "$(dirname "$0")/.."

cargo bench --bench context_scan --no-run >&2
run() { cargo bench --quiet --bench context_scan -- "$@"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "generating $files files in $work/ctx" >&2
start=$(date +%s%N)
run generate "$work/ctx" "$files"
echo "generated in $((($(date +%s%N) - start) / 1000000)) ms ($(du -sh "$work/ctx" | cut -f1))" >&2
# Files changed within the racy window are not remembered by the cache; let them age.
sleep 2.5

run first "$work/ctx" "$work/cache" "$runs"
run rescan "$work/ctx" "$work/cache" "$runs"
