#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs every Debian package hyperfile needs to build, test and benchmark.
# Idempotent: runs apt-get only for packages that are missing.
#   scripts/setup.sh          build + test dependencies (incl. the local S3 server)
#   scripts/setup.sh --build  only what building the library and tools needs
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake ninja-build pkg-config clang-format help2man
  libcurl4-openssl-dev libssl-dev libtinyxml2-dev nlohmann-json3-dev
  libcli11-dev libzstd-dev liblz4-dev libxxhash-dev libisal-dev libsodium-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nbdkit nbdkit-plugin-dev libmicrohttpd-dev
)
TEST_PKGS=(
  clang-14 libclang-rt-14-dev
  ceph-mon ceph-osd radosgw ceph-common
  libnbd-bin python3-libnbd qemu-utils fio curl python3 fuse3 e2fsprogs
  python3-pytest python3-venv python3-pip python3-setuptools python3-wheel dpkg-dev
)
BENCH_PKGS=(s3backer fuse3 awscli)

pkgs=("${BUILD_PKGS[@]}")
case "${1:-}" in
  --build) ;;
  --bench) pkgs+=("${TEST_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
  *) pkgs+=("${TEST_PKGS[@]}") ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
