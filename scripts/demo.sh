#!/usr/bin/env bash
# make demo: bake a sample image end to end on a fresh Debian 12 machine.
# Builds a small Debian test image once (cached), copies it, runs
# examples/demo.yaml on the copy in one appliance boot, and shows the result.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=./bin/imgbake
OUT=demo-out
mkdir -p "$OUT"

echo "==> building the sample image (cached after the first time)"
bash testimages/build.sh debian-gpt.qcow2
CACHE=${IMGBAKE_TESTIMAGES_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imgbake/testimages}
rm -f "$OUT/demo.qcow2" "$OUT/BUILD-INFO"
cp --sparse=always "$CACHE/debian-gpt.qcow2" "$OUT/demo.qcow2"

echo "==> imgbake appliance build"
$BIN appliance build
echo
echo "==> imgbake inspect -a $OUT/demo.qcow2"
$BIN inspect -a "$OUT/demo.qcow2"
echo
echo "==> imgbake run -v -a $OUT/demo.qcow2 examples/demo.yaml"
$BIN run -v -a "$OUT/demo.qcow2" examples/demo.yaml
echo
echo "==> copied out of the image: $OUT/BUILD-INFO"
cat "$OUT/BUILD-INFO"
echo
echo "==> the baked image, inspected again"
$BIN inspect -a "$OUT/demo.qcow2" | head -5
echo
echo "demo image: $OUT/demo.qcow2"
