#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# clang-format check of every C++ file (*.h, *.cc) under include/ src/ tools/
# nbd/ tests/ bench/ fuzz/, against .clang-format.
#   scripts/check-format.sh         report files that need formatting (exit 1 if any)
#   scripts/check-format.sh --fix   rewrite them in place
set -euo pipefail
cd "$(dirname "$0")/.."
fix=0
case "${1:-}" in
"") ;;
--fix) fix=1 ;;
*) echo "usage: check-format.sh [--fix]" >&2; exit 2 ;;
esac
command -v clang-format >/dev/null || { echo "check-format: clang-format is missing (run scripts/setup.sh)" >&2; exit 1; }

dirs=()
for d in include src tools nbd tests bench fuzz; do [ -d "$d" ] && dirs+=("$d"); done
files=()
if [ "${#dirs[@]}" -gt 0 ]; then
  mapfile -d '' files < <(find "${dirs[@]}" -type f \( -name '*.h' -o -name '*.cc' \) -print0 | sort -z)
fi
[ "${#files[@]}" -gt 0 ] || { echo "check-format: no C++ files"; exit 0; }

if [ "$fix" = 1 ]; then
  clang-format -i "${files[@]}"
  echo "check-format: formatted ${#files[@]} files"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run -Werror "$f" 2>/dev/null || bad+=("$f")
done
if [ "${#bad[@]}" -eq 0 ]; then
  echo "check-format: ${#files[@]} files ok"
  exit 0
fi
# Show what would change (the first few diagnostics of each file).
for f in "${bad[@]}"; do clang-format --dry-run "$f" 2>&1 | head -n 12; done
echo "check-format: ${#bad[@]} of ${#files[@]} files need formatting:" >&2
printf '  %s\n' "${bad[@]}" >&2
echo "run: scripts/check-format.sh --fix" >&2
exit 1
