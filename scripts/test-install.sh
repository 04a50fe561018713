#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Uses hyperfile as an application developer would, from outside the tree:
#   1. `cmake --install` of a build (default build/dev, which has a shared
#      libhyperfile) into a temporary prefix; checks the installed files
#   2. the examples/ project built with CMake find_package(hyperfile) and run
#      (C++ and C)
#   3. examples/hello.cc and examples/hello.c built with pkg-config and run
#   4. the Python module pip-installed into a venv and its tests (pytest) and
#      examples/hello.py run against the installed library
#   5. a .deb made with CPack; its file list and dependencies checked
#   6. the library alone configures without CLI11 and GoogleTest, and builds
#      and works without the S3 backend (-DHYPERFILE_S3=OFF)
# With HYPERFILE_TEST_DEB_INSTALL=1 (CI, a throwaway machine) step 5 also
# installs the .deb with apt-get, uses it, and removes it.
# These are the commands of the README's "Use the library" section.
#
# Usage: scripts/test-install.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
build=$(realpath "${1:-build/dev}")
PYTHON=${PYTHON:-/usr/bin/python3}
[ -x "$PYTHON" ] || PYTHON=python3

fail() { echo "test-install: FAILED: $*" >&2; exit 1; }
say() { printf '  %s\n' "$*"; }
grep -q '^BUILD_SHARED_LIBS:BOOL=ON' "$build/CMakeCache.txt" ||
  fail "$build is not configured with -DBUILD_SHARED_LIBS=ON (the Python module needs libhyperfile.so)"
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")

tmp=$(mktemp -d /tmp/hyperfile-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
PREFIX=$tmp/prefix
data=$tmp/data
mkdir -p "$data"

# ---- 1. install ------------------------------------------------------------
cmake --install "$build" --prefix "$PREFIX" >"$tmp/install.log"
libdir=$(dirname "$(find "$PREFIX" -name 'libhyperfile.so' -print -quit)")
[ -n "$libdir" ] && [ "$libdir" != . ] || fail "no libhyperfile.so under $PREFIX"
for f in include/hyperfile/hyperfile.h include/hyperfile/file.h include/hyperfile/version.h \
  include/hyperfile/export.h include/hyperfile/log.h bin/hyperfile \
  share/man/man1/hyperfile.1.gz share/man/man1/hyperfile-cp.1.gz \
  share/man/man1/hyperfile-snapshot-create.1.gz share/bash-completion/completions/hyperfile; do
  [ -f "$PREFIX/$f" ] || fail "$f not installed"
done
[ -f "$libdir/cmake/hyperfile/hyperfileConfig.cmake" ] || fail "no hyperfileConfig.cmake"
[ -f "$libdir/cmake/hyperfile/hyperfileConfigVersion.cmake" ] || fail "no hyperfileConfigVersion.cmake"
[ -f "$libdir/pkgconfig/hyperfile.pc" ] || fail "no hyperfile.pc"
soname=$(objdump -p "$libdir/libhyperfile.so" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = "libhyperfile.so.${version%.*}" ] || fail "SONAME is '$soname'"
# Hidden visibility: the C API and the C++ API are exported, internals are not.
nm -DC --defined-only "$libdir/libhyperfile.so" >"$tmp/symbols"
grep -q ' T hf_open$' "$tmp/symbols" || fail "hf_open not exported"
grep -q 'hyperfile::File::Open(' "$tmp/symbols" || fail "hyperfile::File::Open not exported"
if grep -q 'hyperfile::FileImpl' "$tmp/symbols"; then fail "internal symbols (FileImpl) are exported"; fi
"$PREFIX/bin/hyperfile" --version | grep -x "hyperfile $version" >/dev/null || fail "hyperfile --version"
# The man pages are the command's help: every subcommand has one, naming its options.
for sub in $("$PREFIX/bin/hyperfile" --help | awk '/^Subcommands:/ {on = 1; next} on && /^[^ ]/ {on = 0} on && NF {print $1}'); do
  [ -f "$PREFIX/share/man/man1/hyperfile-$sub.1.gz" ] || fail "no man page for hyperfile $sub"
done
zcat "$PREFIX/share/man/man1/hyperfile-cp.1.gz" | grep -q -- 'block\\-size' || fail "hyperfile-cp.1 lacks --block-size"
zcat "$PREFIX/share/man/man1/hyperfile.1.gz" | grep -q -- 'endpoint\\-url' || fail "hyperfile.1 lacks --endpoint-url"
bash -c "source '$PREFIX/share/bash-completion/completions/hyperfile' && COMP_WORDS=(hyperfile cp --bl) COMP_CWORD=2 && _hyperfile && [[ \" \${COMPREPLY[*]} \" == *' --block-size '* ]]" ||
  fail "the installed bash completion does not complete 'hyperfile cp --bl'"
if pkg-config --exists nbdkit; then
  plugindir=$(pkg-config --variable=plugindir nbdkit)
  nbdkit_prefix=$(pkg-config --variable=prefix nbdkit)
  plugin=$PREFIX/${plugindir#"$nbdkit_prefix"/}/nbdkit-hyperfile-plugin.so
  [ -f "$plugin" ] || fail "the nbdkit plugin is not at $plugin"
  nbdkit --dump-plugin "$plugin" | grep -x "version=$version" >/dev/null || fail "the installed plugin's version"
fi
say "installed into a temporary prefix: $(find "$PREFIX" -type f | wc -l) files," \
  "libhyperfile.so $(du -k "$(realpath "$libdir/libhyperfile.so")" | cut -f1) KiB ($soname)"

# ---- 2. CMake find_package -------------------------------------------------
cmake -S examples -B "$tmp/examples" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" \
  >"$tmp/examples.log" || { cat "$tmp/examples.log"; fail "configure of examples/ with find_package"; }
cmake --build "$tmp/examples" >>"$tmp/examples.log" || { cat "$tmp/examples.log"; fail "build of examples/"; }
"$tmp/examples/hello_cpp" "$data/cpp" | grep 'holds "hello"' >/dev/null || fail "hello_cpp (CMake)"
"$tmp/examples/hello_cpp" "$data/cpp" >/dev/null || fail "hello_cpp a second time"
"$tmp/examples/hello_c" "$data/c" | grep 'hello from C' >/dev/null || fail "hello_c (CMake)"
say "find_package(hyperfile): hello_cpp and hello_c built and ran"

# ---- 3. pkg-config ---------------------------------------------------------
export PKG_CONFIG_PATH="$libdir/pkgconfig"
[ "$(pkg-config --modversion hyperfile)" = "$version" ] || fail "pkg-config --modversion"
# shellcheck disable=SC2046
c++ -std=c++20 examples/hello.cc $(pkg-config --cflags --libs hyperfile) -o "$tmp/hello_cpp_pc"
# shellcheck disable=SC2046
cc examples/hello.c $(pkg-config --cflags --libs hyperfile) -o "$tmp/hello_c_pc"
LD_LIBRARY_PATH="$libdir" "$tmp/hello_cpp_pc" "$data/cpp-pc" | grep 'holds "hello"' >/dev/null || fail "hello_cpp (pkg-config)"
LD_LIBRARY_PATH="$libdir" "$tmp/hello_c_pc" "$data/c-pc" | grep 'hello from C' >/dev/null || fail "hello_c (pkg-config)"
say "pkg-config hyperfile: C++ and C examples built and ran"

# ---- 4. Python ---------------------------------------------------------------
"$PYTHON" -m venv --system-site-packages "$tmp/venv"
cp -r python "$tmp/python-src" # pip builds in the source folder: keep the tree clean
"$tmp/venv/bin/pip" install -q --no-build-isolation --no-index "$tmp/python-src" >"$tmp/pip.log" 2>&1 ||
  { cat "$tmp/pip.log"; fail "pip install ./python"; }
(cd "$tmp" && HYPERFILE_PREFIX="$PREFIX" "$tmp/venv/bin/python" -c \
  'import hyperfile, sys; assert "site-packages" in hyperfile.__file__, hyperfile.__file__') ||
  fail "the venv does not import the installed module"
(cd "$tmp" && HYPERFILE_PREFIX="$PREFIX" "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider \
  "$tmp/python-src/tests") >"$tmp/pytest.log" 2>&1 || { cat "$tmp/pytest.log"; fail "Python tests"; }
say "python: $(tail -n 1 "$tmp/pytest.log")"
HYPERFILE_PREFIX="$PREFIX" "$tmp/venv/bin/python" examples/hello.py "file://$data/py" | grep 'checkpoints' >/dev/null ||
  fail "examples/hello.py"
say "python: examples/hello.py ran"

# ---- 5. Debian package ---------------------------------------------------------
(cd "$build" && cpack -G DEB -B "$tmp/deb" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; fail "cpack -G DEB"; }
deb=$(find "$tmp/deb" -maxdepth 1 -name 'hyperfile_*.deb' -print -quit)
[ -n "$deb" ] || fail "cpack made no hyperfile_*.deb"
dpkg-deb --contents "$deb" | awk '{print $6}' | sed 's|^\./|/|' | sort >"$tmp/deb.files"
for f in /usr/bin/hyperfile /usr/include/hyperfile/hyperfile.h /usr/include/hyperfile/version.h \
  "/usr/lib/libhyperfile.so.$version" /usr/lib/pkgconfig/hyperfile.pc \
  /usr/lib/cmake/hyperfile/hyperfileConfig.cmake /usr/share/doc/hyperfile/LICENSE \
  /usr/share/man/man1/hyperfile.1.gz /usr/share/man/man1/hyperfile-read.1.gz \
  /usr/share/bash-completion/completions/hyperfile; do
  grep -qx "$f" "$tmp/deb.files" || fail "$f is not in the .deb"
done
if [ -n "${plugindir:-}" ]; then
  grep -qx "$plugindir/nbdkit-hyperfile-plugin.so" "$tmp/deb.files" ||
    fail "the plugin is not in nbdkit's plugindir ($plugindir) in the .deb"
fi
depends=$(dpkg-deb --field "$deb" Depends)
for d in libcurl4 libssl3 libtinyxml2 libisal2 libsodium23; do
  [[ "$depends" == *"$d"* ]] || fail ".deb Depends lacks $d: $depends"
done
say ".deb $(basename "$deb"), $(du -k "$deb" | cut -f1) KiB, $(grep -vc '/$' "$tmp/deb.files") files; Depends: $depends"
if [ -n "${HYPERFILE_DEB_FILES:-}" ]; then cp "$tmp/deb.files" "$HYPERFILE_DEB_FILES"; fi
# `apt install ./x.deb` for real, as a user would — on a throwaway machine
# only (CI sets HYPERFILE_TEST_DEB_INSTALL=1; it changes /usr), and removed
# again afterwards.
if [ "${HYPERFILE_TEST_DEB_INSTALL:-0}" = 1 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  if dpkg-query -W -f='${Status}' hyperfile 2>/dev/null | grep -q "install ok installed"; then
    fail "a hyperfile package is installed already; not replacing it"
  fi
  remove_deb() { $SUDO apt-get remove -y -qq hyperfile >/dev/null 2>&1 || true; }
  trap 'remove_deb; rm -rf "$tmp"' EXIT
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$deb" >"$tmp/apt.log" 2>&1 ||
    { cat "$tmp/apt.log"; fail "apt-get install $deb"; }
  /usr/bin/hyperfile --version | grep -x "hyperfile $version" >/dev/null || fail "installed /usr/bin/hyperfile --version"
  /usr/bin/hyperfile create "$data/apt" >/dev/null && echo hi | /usr/bin/hyperfile append "$data/apt" >/dev/null &&
    [ "$(/usr/bin/hyperfile read "$data/apt")" = hi ] ||
    fail "the installed hyperfile command does not work"
  if [ -n "${plugindir:-}" ]; then
    nbdkit --dump-plugin hyperfile | grep -x "version=$version" >/dev/null || fail "nbdkit does not find the installed plugin"
  fi
  # shellcheck disable=SC2046
  cc examples/hello.c $(PKG_CONFIG_PATH= pkg-config --cflags --libs hyperfile) -o "$tmp/hello_c_sys" ||
    fail "hello.c against the installed package (pkg-config)"
  "$tmp/hello_c_sys" "$data/c-sys" | grep 'hello from C' >/dev/null || fail "hello_c against the installed package"
  remove_deb
  [ ! -e /usr/bin/hyperfile ] || fail "apt-get remove left /usr/bin/hyperfile"
  say "apt-get install ./$(basename "$deb"): the command, the plugin and pkg-config work; removed again"
fi

# ---- 6. the library alone --------------------------------------------------------
cmake -S "$src" -B "$tmp/libonly" -G Ninja -DHYPERFILE_CLI=OFF -DHYPERFILE_BENCH=OFF -DHYPERFILE_TESTS=OFF \
  -DHYPERFILE_NBD=OFF >"$tmp/libonly.log" || { cat "$tmp/libonly.log"; fail "library-only configure"; }
if grep -qE '^(CLI11_DIR|GTest_DIR):' "$tmp/libonly/CMakeCache.txt"; then
  fail "the library-only configure looked for CLI11 or GoogleTest"
fi
say "library alone: configures without CLI11 and GoogleTest"
# ... and builds without the S3 backend: no libcurl, no tinyxml2; local
# directories work, s3:// says why it does not.
cmake -S "$src" -B "$tmp/nos3" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DHYPERFILE_S3=OFF \
  -DHYPERFILE_CLI=OFF -DHYPERFILE_BENCH=OFF -DHYPERFILE_TESTS=OFF -DHYPERFILE_NBD=OFF \
  ${CMAKE_CXX_COMPILER_LAUNCHER:+-DCMAKE_CXX_COMPILER_LAUNCHER=$CMAKE_CXX_COMPILER_LAUNCHER} \
  >"$tmp/nos3.log" || { cat "$tmp/nos3.log"; fail "configure with -DHYPERFILE_S3=OFF"; }
if grep -qE '^(CURL_DIR|CURL_INCLUDE_DIR|TINYXML2_FOUND):' "$tmp/nos3/CMakeCache.txt"; then
  fail "-DHYPERFILE_S3=OFF still looked for libcurl or tinyxml2"
fi
cmake --build "$tmp/nos3" >>"$tmp/nos3.log" 2>&1 || { tail -n 40 "$tmp/nos3.log"; fail "build with -DHYPERFILE_S3=OFF"; }
cmake --install "$tmp/nos3" --prefix "$tmp/nos3-prefix" >>"$tmp/nos3.log" || fail "install of the S3-less build"
nos3lib=$(find "$tmp/nos3-prefix" -name 'libhyperfile.so' -print -quit)
if ldd "$nos3lib" | grep -qE 'libcurl|libtinyxml2'; then fail "the S3-less libhyperfile links libcurl or tinyxml2"; fi
# shellcheck disable=SC2046
cc examples/hello.c $(PKG_CONFIG_PATH=$(dirname "$nos3lib")/pkgconfig pkg-config --cflags --libs hyperfile) \
  -o "$tmp/hello_c_nos3" || fail "hello.c against the S3-less library"
LD_LIBRARY_PATH=$(dirname "$nos3lib") "$tmp/hello_c_nos3" "$data/c-nos3" | grep 'hello from C' >/dev/null ||
  fail "hello_c on a local directory with the S3-less library"
if LD_LIBRARY_PATH=$(dirname "$nos3lib") "$tmp/hello_c_nos3" s3://bucket/x >"$tmp/nos3.out" 2>&1 ||
  ! grep -q 'built without the S3 backend' "$tmp/nos3.out"; then
  cat "$tmp/nos3.out"
  fail "s3:// with the S3-less library does not say it was built without S3"
fi
say "library alone without S3 (-DHYPERFILE_S3=OFF): builds, links no libcurl/tinyxml2, works on a local directory"
echo "test-install: all passed"
