#!/usr/bin/env bash
# The main job, end to end on a fresh machine: install prerequisites, build rbuild,
# then build the example in testdata/demo with it and show the result.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
cargo build --release
rb=$PWD/target/release/rbuild
# A throwaway store unless RBUILD_ROOT says otherwise.
export RBUILD_ROOT=${RBUILD_ROOT:-$(mktemp -d /tmp/rbuild-demo.XXXXXX)/root}
echo "== store: $RBUILD_ROOT"

echo "== rbuild parse -f testdata/demo/Dockerfile"
"$rb" parse -f testdata/demo/Dockerfile

echo "== base image: busybox:latest (imported from Debian's busybox-static, no network needed)"
base_tar=$(mktemp /tmp/busybox-rootfs.XXXXXX.tar)
bash testdata/base/busybox-rootfs.sh --tar "$base_tar"
"$rb" import "$base_tar" busybox:latest
rm -f "$base_tar"

echo "== rbuild build -t demo:latest testdata/demo"
"$rb" build -t demo:latest testdata/demo
echo "== again: every step is a cache hit"
"$rb" build -t demo:latest testdata/demo

echo "== rbuild images / inspect / history"
"$rb" images
"$rb" inspect --format '{{json .Config}}' demo:latest
"$rb" history demo:latest

echo "== rbuild run: serve the site with the image's busybox httpd and fetch it"
"$rb" run --rm demo:latest sh -c 'httpd -p 80 -h /srv/www && sleep 0.2 && wget -q -O - http://127.0.0.1/ && wget -q -O - http://127.0.0.1/greeting.txt'
