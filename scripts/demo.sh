#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install prerequisites, build rbuild,
# then run it on the example in testdata/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
rb=target/release/rbuild
echo "== rbuild parse -f testdata/demo/Dockerfile"
"$rb" parse -f testdata/demo/Dockerfile
