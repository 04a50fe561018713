#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Makes the documentation of the `hyperfile` command from its own help, so
# the two never disagree (run by the build; installed by cmake --install):
#   OUT/man/man1/hyperfile.1.gz            help2man from `hyperfile --help`
#   OUT/man/man1/hyperfile-SUB[-SUB2].1.gz  one page per subcommand
#   OUT/bash-completion/completions/hyperfile   `hyperfile --print-bash-completion`
# usage: gen-cli-docs.sh PATH/TO/hyperfile OUT
set -euo pipefail
bin=$1
out=$2
command -v help2man >/dev/null || { echo "gen-cli-docs.sh: help2man is not installed (scripts/setup.sh)" >&2; exit 1; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
man="$out/man/man1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$man"
mkdir -p "$man" "$out/bash-completion/completions"
"$bin" --print-bash-completion >"$out/bash-completion/completions/hyperfile"
version=$("$bin" --version | awk '{print $2}')

# The subcommands listed in the "Subcommands:" section of a help text.
subcommands() {
  awk '/^Subcommands:/ {on = 1; next} on && /^[^ ]/ {on = 0} on && NF {print $1}'
}
# The one-line description of subcommand $2 in help text $1.
describe() {
  awk -v name="$2" '/^Subcommands:/ {on = 1; next} on && $1 == name {
    $1 = ""; sub(/^ +/, ""); print; exit }' <<<"$1"
}

# page NAME DESCRIPTION ARGS...: a man page for `hyperfile ARGS...`.
page() {
  local name=$1 description=$2
  shift 2
  local wrapper="$tmp/$name"
  printf '#!/bin/sh\nexec %q %s "$@"\n' "$bin" "$*" >"$wrapper"
  chmod +x "$wrapper"
  help2man --no-info --no-discard-stderr --version-string="$version" \
    --name="$description" --section=1 --source="hyperfile $version" \
    ${include:+--include="$include"} --output="$man/$name.1" "$wrapper"
  gzip -9n "$man/$name.1"
}

top=$("$bin" --help)
include="$tmp/top.h2m"
{
  echo "[SEE ALSO]"
  for sub in $(subcommands <<<"$top"); do echo ".BR hyperfile-$sub (1)"; done
  echo ".PP"
  echo "The README (/usr/share/doc/hyperfile/README.md) explains the format, the conventions and the AWS configuration."
} >"$include"
page hyperfile "random read/write files on object storage, with a checkpoint at every flush"
include="$tmp/sub.h2m"
printf '[SEE ALSO]\n.BR hyperfile (1)\n' >"$include"
for sub in $(subcommands <<<"$top"); do
  page "hyperfile-$sub" "$(describe "$top" "$sub")" "$sub"
  help=$("$bin" "$sub" --help)
  for child in $(subcommands <<<"$help"); do
    page "hyperfile-$sub-$child" "$(describe "$help" "$child")" "$sub" "$child"
  done
done
echo "gen-cli-docs.sh: $(ls "$man" | wc -l) man pages and the bash completion in $out"
