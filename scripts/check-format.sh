#!/usr/bin/env bash
# clang-format check of every C++ file (--fix rewrites them in place).
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cc' '*.h' 2>/dev/null || find include src tools nbd tests bench fuzz -name '*.cc' -o -name '*.h')
[ -z "$files" ] && exit 0
if [ "${1:-}" = "--fix" ]; then
  clang-format -i $files
else
  clang-format --dry-run -Werror $files
fi
