// SPDX-License-Identifier: Apache-2.0
// Incompressible test data: n pseudo-random bytes from `seed`, never an
// all-zero 8-byte word (so no block of it is ever stored as a hole).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>

namespace hyperfile::testing {

inline std::string RandomBytes(uint64_t seed, size_t n) {
  std::string s(n, '\0');
  std::mt19937_64 r(seed);
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = r() | 1;
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

}  // namespace hyperfile::testing
