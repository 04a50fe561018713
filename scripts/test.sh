#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The whole test suite, from a fresh Debian 12 machine (root, or sudo for apt):
#   1. installs what is missing (scripts/setup.sh)
#   2. builds the dev preset (RelWithDebInfo, -Werror) and the asan preset
#      (ASan + UBSan)
#   3. checks formatting (scripts/check-format.sh)
#   4. starts a local S3 server (scripts/local-s3.sh: Ceph RGW) in a temporary
#      folder, which is always stopped on exit, and runs every test of both
#      builds against it with HYPERFILE_REQUIRE_S3=1 (S3 tests must not skip)
#   5. installs the dev build into a temporary prefix and builds and runs
#      consumers of it from outside the tree (CMake, pkg-config, C API,
#      Python, the .deb): scripts/test-install.sh
#   6. builds the libFuzzer targets (clang-14) and runs each one briefly
# and prints a summary. Exits non-zero if any step failed.
#
# Usage: scripts/test.sh [--quick] [--no-fuzz] [-R REGEX] [-E REGEX]
#   --quick      dev build and its tests only (no asan, no fuzz)
#   --no-fuzz    skip the fuzz step
#   -R/-E REGEX  passed to ctest (include / exclude tests); skips the fuzz step
# Environment: HYPERFILE_FUZZ_SECONDS (per fuzz target, default 20),
#              and the HYPERFILE_S3_* variables of scripts/local-s3.sh.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

usage() { sed -n '3,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "$1"; }
quick=0 fuzz=1 filter=()
while [ $# -gt 0 ]; do
  case "$1" in
  --quick) quick=1 fuzz=0 ;;
  --no-fuzz) fuzz=0 ;;
  -R | -E)
    [ $# -ge 2 ] || usage 2
    filter+=("$1" "$2") fuzz=0
    shift
    ;;
  -h | --help) usage 0 ;;
  *) echo "test.sh: unknown argument $1" >&2; usage 2 ;;
  esac
  shift
done

t_start=$SECONDS
summary=() failures=0
step() { printf '\n==> %s  [%ss]\n' "$*" "$((SECONDS - t_start))"; }
# run NAME COMMAND...: runs a step, records PASS/FAIL and its duration.
run() {
  local name=$1 t=$SECONDS rc=0
  shift
  step "$name"
  "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    summary+=("$(printf 'PASS  %-34s %5ss' "$name" "$((SECONDS - t))")")
  else
    summary+=("$(printf 'FAIL  %-34s %5ss  (exit %s)' "$name" "$((SECONDS - t))" "$rc")")
    failures=$((failures + 1))
  fi
  return "$rc"
}
skip() { summary+=("$(printf 'SKIP  %-34s        %s' "$1" "$2")"); }
print_summary() {
  printf '\n==> summary  [%ss total]\n' "$((SECONDS - t_start))"
  printf '    %s\n' "${summary[@]}"
  if [ "$failures" -eq 0 ]; then echo "all passed"; else echo "$failures step(s) FAILED"; fi
}
# A step the rest depends on (install, build, server): stop at its failure.
must() { run "$@" || { print_summary; exit 1; }; }

# The local S3 server is stopped whatever happens, Ctrl-C included.
s3dir=""
cleanup() {
  if [ -n "$s3dir" ]; then
    bash scripts/local-s3.sh stop "$s3dir" || true
    if [ "$failures" -eq 0 ]; then rm -rf "$s3dir"; else echo "test.sh: S3 server logs kept in $s3dir/log" >&2; fi
    s3dir=""
  fi
}
trap cleanup EXIT
trap 'echo "test.sh: interrupted" >&2; exit 130' INT TERM

build() { cmake --preset "$1" >/dev/null && cmake --build --preset "$1"; }

# LeakSanitizer stops the world with ptrace, which some sandboxes forbid; it
# then fails every test. Probe it once with the compiler of the asan build.
lsan_works() {
  local d rc=0
  d=$(mktemp -d)
  printf 'int main() { return 0; }\n' >"$d/probe.cc"
  if "${CXX:-c++}" -fsanitize=address "$d/probe.cc" -o "$d/probe" 2>/dev/null; then
    ASAN_OPTIONS=detect_leaks=1 "$d/probe" >/dev/null 2>&1 || rc=1
  else
    rc=1
  fi
  rm -rf "$d"
  return "$rc"
}

start_s3() {
  s3dir=$(mktemp -d /tmp/hyperfile-test-s3.XXXXXX) || return 1
  bash scripts/local-s3.sh start "$s3dir" || return 1
  # shellcheck disable=SC1091
  source "$s3dir/env"
  export HYPERFILE_REQUIRE_S3=1
}

leaks=""
leak_setting() {
  if [ -z "$leaks" ]; then
    if lsan_works; then
      leaks=1
    else
      leaks=0
      echo "test.sh: LeakSanitizer does not work here (ptrace restricted?); leak checks off" >&2
    fi
  fi
}

ctest_run() { ctest --preset "$1" -j2 --output-on-failure --no-tests=error "${filter[@]}"; }

# Each executable build/fuzz/*_fuzz for a while, seeded from fuzz/corpus/<name>;
# new inputs go to build/fuzz/work-corpus/<name>, crashes to build/fuzz/artifacts/.
fuzz_all() {
  local bin name rc=0 n=0 log
  leak_setting
  mkdir -p build/fuzz/artifacts
  for bin in build/fuzz/*_fuzz; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=$(basename "$bin")
    n=$((n + 1))
    log="build/fuzz/$name.log"
    mkdir -p "build/fuzz/work-corpus/$name"
    local seeds=()
    [ -d "fuzz/corpus/$name" ] && seeds=("fuzz/corpus/$name")
    if ASAN_OPTIONS="detect_leaks=$leaks" "$bin" -max_total_time="${HYPERFILE_FUZZ_SECONDS:-20}" \
      -detect_leaks="$leaks" -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$name-" \
      "build/fuzz/work-corpus/$name" "${seeds[@]}" >"$log" 2>&1; then
      echo "  $name: ok, $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs"
    else
      echo "  $name: FAILED (log $log, inputs in build/fuzz/artifacts/)"
      tail -n 40 "$log"
      rc=1
    fi
  done
  [ "$n" -gt 0 ] || echo "  no *_fuzz executables in build/fuzz"
  return "$rc"
}

must "install dependencies" bash scripts/setup.sh
must "build dev (-Werror)" build dev
if [ "$quick" = 0 ]; then
  must "build asan (ASan+UBSan)" build asan
fi
run "format check" bash scripts/check-format.sh
must "start local S3 server" start_s3

run "tests dev" ctest_run dev
if [ "$quick" = 0 ]; then
  leak_setting
  ASAN_OPTIONS="detect_leaks=$leaks${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
    UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
    run "tests asan (leak checks: $leaks)" ctest_run asan
fi
cleanup
if [ "${#filter[@]}" -eq 0 ]; then
  run "install and use the library" bash scripts/test-install.sh build/dev
fi

if [ "$fuzz" = 1 ]; then
  if command -v clang++-14 >/dev/null; then
    if run "build fuzz (clang-14)" build fuzz; then
      run "fuzz ${HYPERFILE_FUZZ_SECONDS:-20}s per target" fuzz_all
    fi
  else
    skip "fuzz" "(clang++-14 not installed)"
  fi
fi

print_summary
[ "$failures" -eq 0 ]
