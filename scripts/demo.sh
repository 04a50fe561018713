#!/usr/bin/env bash
# The main job on the embedded default (a local directory, no S3 needed):
# builds hyperfile and runs a short tour: create a file, write at random
# offsets, flush checkpoints, read an old checkpoint back, restore it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --build
cmake --preset dev >/dev/null
cmake --build --preset dev --target hyperfile_cli >/dev/null
dir="${1:-/tmp/hyperfile-demo}"
build/dev/hyperfile demo "$dir"
echo
echo "Try it yourself:  build/dev/hyperfile log $dir   |   build/dev/hyperfile read $dir --at 2 --length 64 --offset 1000"
