// SPDX-License-Identifier: Apache-2.0
// The reference model of a file's bytes for randomized tests: what a
// sequence of writes, zeroings, punches and truncates must leave behind.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

namespace hyperfile::testing {

struct ByteModel {
  std::string bytes;
  void Write(uint64_t off, const std::string& d) {
    if (bytes.size() < off + d.size()) bytes.resize(off + d.size(), '\0');
    bytes.replace(off, d.size(), d);
  }
  // WriteZeroes (extend) or PunchHole (never past the end).
  void Zero(uint64_t off, uint64_t len, bool extend) {
    if (!extend) {
      if (off >= bytes.size()) return;
      len = std::min<uint64_t>(len, bytes.size() - off);
    }
    Write(off, std::string(len, '\0'));
  }
  void Truncate(uint64_t size) { bytes.resize(size, '\0'); }
};

}  // namespace hyperfile::testing
