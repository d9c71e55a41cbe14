#!/usr/bin/env bash
# Parse throughput: builds the release benchmark once, generates a Dockerfile with 10,000
# instructions, and prints MB/s for the raw parse and for parse + typed instructions.
# Usage: bench/parse.sh [INSTRUCTIONS]   (the generated file is left in $TMPDIR)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-10000}"
out="${TMPDIR:-/tmp}/rbuild-bench-Dockerfile"
cargo build --release --example parse_bench >&2
./target/release/examples/parse_bench "$count" "$out"
# The same file through the CLI, end to end (process start, read, parse, dump):
start=$(date +%s%N)
./target/release/rbuild parse -f "$out" > /dev/null 2>&1 || cargo build --release --bin rbuild >&2
./target/release/rbuild parse -f "$out" > /dev/null
end=$(date +%s%N)
echo "rbuild parse (CLI): $(( (end - start) / 1000000 )) ms for $(wc -c < "$out") bytes"
