#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine:
#   installs what is missing, builds (warnings as errors) and tests the dev
#   build and an ASan+UBSan build, checks formatting, runs each libFuzzer
#   target briefly, and starts/stops the local S3 server for the S3 tests
#   once the S3 backend is built.
# Usage: scripts/test.sh [--quick]   (--quick: dev build only)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
start=$(date +%s)
step() { printf '\n==> %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "install dependencies"
bash scripts/setup.sh

step "format check"
bash scripts/check-format.sh

step "build dev (-Werror)"
cmake --preset dev >/dev/null
cmake --build --preset dev

# The local S3 server (Ceph RGW) is started only for S3 tests, i.e. when
# scripts/local-s3.sh exists; its trap stops every daemon it started.
s3dir=""
cleanup() { if [ -n "$s3dir" ]; then bash scripts/local-s3.sh stop "$s3dir" || true; fi; }
trap cleanup EXIT INT TERM
if [ -x scripts/local-s3.sh ] && [ "${HYPERFILE_NO_S3:-0}" != 1 ]; then
  step "start local S3 server"
  s3dir=$(mktemp -d /tmp/hyperfile-s3.XXXXXX)
  bash scripts/local-s3.sh start "$s3dir"
  # shellcheck disable=SC1091
  source "$s3dir/env"
  export HYPERFILE_REQUIRE_S3=1
fi

step "tests (dev)"
ctest --preset dev

if [ "$quick" = 0 ]; then
  step "build asan (ASan + UBSan)"
  cmake --preset asan >/dev/null
  cmake --build --preset asan
  step "tests (asan)"
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset asan

  if command -v clang++-14 >/dev/null; then
    step "fuzz the decoders"
    cmake --preset fuzz >/dev/null
    cmake --build --preset fuzz
    for bin in build/fuzz/*_fuzz; do
      name=$(basename "$bin")
      corpus=$(mktemp -d)
      cp -r "fuzz/corpus/$name/." "$corpus/" 2>/dev/null || true
      ASAN_OPTIONS=detect_leaks=0 "$bin" -max_total_time="${HYPERFILE_FUZZ_SECONDS:-20}" "$corpus" 2>&1 | tail -1
      rm -rf "$corpus"
    done
  fi
fi
step "all tests passed"
