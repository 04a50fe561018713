#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The File-level benchmark (bench/hyperfile_bench.cc) in one command, from a
# fresh Debian 12 machine (root, or sudo for apt):
#   1. installs what is missing, s3backer and FUSE included (scripts/setup.sh --bench)
#   2. builds the dev preset (RelWithDebInfo)
#   3. starts a local S3 server (scripts/local-s3.sh) in a temporary folder,
#      stopped on exit
#   4. runs hyperfile_bench against it: raw store baseline, sequential and
#      random I/O through File, s3backer on the same gateway, open cost of a
#      file with 10,000 checkpoints, peak RSS on a 1 TiB sparse file
# and prints the table. The raw figures go to build/bench/hyperfile_bench.json.
#
# Usage: scripts/bench.sh [hyperfile_bench options]   e.g. --quick, --skip-s3backer
# AWS-like latency (the store's latency layer under every store the benchmark
# opens, raw baseline included): HYPERFILE_STORE_LATENCY=aws scripts/bench.sh ...
# (30 ms to first byte for GET/HEAD/LIST/DELETE, 60 ms for PUT, 100 MiB/s per
# request; see ParseLatencyOptions in include/hyperfile/object_store.h).
# A full run takes about 15 minutes on 2 cores; --quick about 3.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

bash scripts/setup.sh --bench || exit 1
mkdir -p build/bench
if ! { cmake --preset dev && cmake --build --preset dev --target hyperfile_bench; } \
  >build/bench/build.log 2>&1; then
  tail -n 40 build/bench/build.log >&2
  echo "bench.sh: the build failed (full log: build/bench/build.log)" >&2
  exit 1
fi

s3dir=$(mktemp -d /tmp/hyperfile-bench-s3.XXXXXX) || exit 1
cleanup() { bash scripts/local-s3.sh stop "$s3dir" >/dev/null 2>&1; rm -rf "$s3dir"; }
trap cleanup EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT TERM
# The benchmark writes a few GiB (the 1 GiB files, s3backer's copies).
HYPERFILE_S3_MEMORY_BYTES=${HYPERFILE_S3_MEMORY_BYTES:-$((8 << 30))} \
  bash scripts/local-s3.sh start "$s3dir" >/dev/null || exit 1
# shellcheck disable=SC1091
source "$s3dir/env"

build/dev/hyperfile_bench --json build/bench/hyperfile_bench.json "$@"
