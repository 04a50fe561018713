#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job on the embedded default, a local directory (no S3 needed):
# installs the build dependencies, builds the dev preset and runs a short tour
# of the `hyperfile` command: create a sparse file, write, flush checkpoints,
# truncate, read an old checkpoint back (time travel), restore it, verify.
# Usage: scripts/demo.sh [DIR]   (default /tmp/hyperfile-demo; DIR must be missing, empty,
# or hold only a previous demo, which is replaced: other contents are refused)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-/tmp/hyperfile-demo}"

echo "demo: installing build dependencies (apt, needs root or sudo) and building build/dev ..."
bash scripts/setup.sh --build
mkdir -p build
log=build/demo-build.log
if ! { cmake --preset dev && cmake --build --preset dev; } >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "demo: the build failed (full log: $log)" >&2
  exit 1
fi

if [ -x build/dev/hyperfile ]; then
  build/dev/hyperfile demo "$dir"
  echo
  echo "Try it yourself:  build/dev/hyperfile log $dir"
  echo "                  build/dev/hyperfile read $dir --at 2 --offset 1000 --length 23"
  echo "                  build/dev/hyperfile --help"
elif [ -x build/dev/store_bench ]; then
  echo "demo: the hyperfile command is not built yet; running the store benchmark instead"
  build/dev/store_bench --uri "file://$dir-store" --count 8
else
  echo "demo: neither build/dev/hyperfile nor build/dev/store_bench was built; nothing to demonstrate yet" >&2
  exit 1
fi
