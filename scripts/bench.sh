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
#   5. runs gc_bench (space reclamation; HYPERFILE_BENCH_GC=0 skips it)
# and prints the table. The raw figures go to build/bench/hyperfile_bench.json.
# Then bench/log_bench.cc (log collection: `append --flush-every` to
# `read --follow` latency, requests per hour, stored bytes / log bytes) on the
# same gateway; figures in build/bench/log_bench.json.
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
status=$?
# The log-collection benchmark (bench/log_bench.cc, about 2 minutes): line to
# follower latency, requests per hour, stored bytes / log bytes. Skip it with
# HYPERFILE_BENCH_LOGS=0.
if [ "${HYPERFILE_BENCH_LOGS:-1}" != 0 ]; then
  if ! cmake --build --preset dev --target log_bench hyperfile_cli >>build/bench/build.log 2>&1; then
    echo "bench.sh: building log_bench failed (build/bench/build.log)" >&2
    exit 1
  fi
  build/dev/log_bench --json build/bench/log_bench.json || status=1
fi
# Compression and encryption (bench/compression_bench.cc, issue 12): each
# codec, plain and encrypted, on a tar of /usr/share and /usr/lib of this
# machine (data no one here wrote), capped at HYPERFILE_BENCH_COMPRESS_BYTES
# (256 MiB), on the same gateway; stored bytes against what the `zstd`
# command makes at the same level; then s3backer plain, --compress and
# --encrypt (64 KiB blocks, zlib's default level) on the same data and
# gateway ("s3backer: skipped (why)" without s3backer or FUSE). About 4
# minutes. Figures in build/bench/compression_bench.json;
# HYPERFILE_BENCH_COMPRESS=0 skips it, HYPERFILE_BENCH_COMPRESS_ARGS passes
# options (e.g. --skip-s3backer, --encrypt no).
if [ "${HYPERFILE_BENCH_COMPRESS:-1}" != 0 ]; then
  cmake --build --preset dev --target compression_bench >>build/bench/build.log 2>&1 || exit 1
  corpus=build/bench/usr-corpus.tar
  if [ ! -s "$corpus" ]; then
    tar -cf - /usr/share /usr/lib 2>/dev/null |
      head -c "${HYPERFILE_BENCH_COMPRESS_BYTES:-268435456}" >"$corpus"
  fi
  refs=()
  for level in 1 3; do refs+=(--reference "zstd:$level=$(zstd -"$level" -q -c "$corpus" | wc -c)"); done
  # shellcheck disable=SC2086
  build/dev/compression_bench --input "$corpus" --uri "$HYPERFILE_TEST_S3_URI/compression-bench" \
    "${refs[@]}" --json build/bench/compression_bench.json ${HYPERFILE_BENCH_COMPRESS_ARGS:-} ||
    status=1
  # The other corpus the issue names, the workload the product is for: a
  # disk image. An ext4 image (768 MiB, mkfs.ext4 -d, no root needed) of
  # the first 400 MiB of the same tar stream, files and free space as a
  # real filesystem has them; stored bytes only (no encryption, no s3backer).
  image=build/bench/usr-fs.img
  mkfs=$(command -v mkfs.ext4 || echo /sbin/mkfs.ext4)
  if [ ! -s "$image" ] && [ -x "$mkfs" ]; then
    rm -rf build/bench/usr-fs && mkdir -p build/bench/usr-fs
    tar -cf - /usr/share /usr/lib 2>/dev/null | head -c 419430400 |
      tar -xf - -C build/bench/usr-fs 2>/dev/null
    truncate -s 768M "$image.tmp" && "$mkfs" -q -F -i 4096 -d build/bench/usr-fs "$image.tmp" &&
      mv "$image.tmp" "$image"
    rm -rf build/bench/usr-fs "$image.tmp"
  fi
  if [ -s "$image" ]; then
    build/dev/compression_bench --input "$image" --uri "$HYPERFILE_TEST_S3_URI/compression-bench-img" \
      --codecs none zstd:1 --encrypt no --skip-s3backer \
      --reference "zstd:1=$(zstd -1 -q -c "$image" | wc -c)" \
      --json build/bench/compression_bench_image.json || status=1
  else
    echo "compression on a filesystem image: skipped (no mkfs.ext4)"
  fi
fi
# Space reclamation (bench/gc_bench.cc): stored / live under random and
# sequential overwrites with collection and compaction, compaction's write
# amplification, requests per collection, write p99 with a background
# collector. On memory:// (the algorithm, not the network); HYPERFILE_BENCH_GC=0
# skips it, HYPERFILE_BENCH_GC_ARGS passes options (e.g. --size 268435456).
if [ "${HYPERFILE_BENCH_GC:-1}" != 0 ]; then
  cmake --build --preset dev --target gc_bench >>build/bench/build.log 2>&1 || exit 1
  # shellcheck disable=SC2086
  build/dev/gc_bench --json build/bench/gc_bench.json ${HYPERFILE_BENCH_GC_ARGS:-} || status=1
fi
exit $status
