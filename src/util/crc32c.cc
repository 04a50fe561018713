// SPDX-License-Identifier: Apache-2.0
#include "util/crc32c.h"

#include <isa-l/crc.h>

#include <climits>

namespace hyperfile::crc32c {

uint32_t Extend(uint32_t crc, const void* data, size_t n) {
  // ISA-L's crc32_iscsi takes and returns the raw (non-inverted) register;
  // the standard CRC32C pre- and post-inverts it.
  uint32_t reg = ~crc;
  const unsigned char* p = static_cast<const unsigned char*>(data);
  while (n > 0) {
    int chunk = n > static_cast<size_t>(INT_MAX / 2) ? INT_MAX / 2 : static_cast<int>(n);
    reg = crc32_iscsi(const_cast<unsigned char*>(p), chunk, reg);
    p += chunk;
    n -= static_cast<size_t>(chunk);
  }
  return ~reg;
}

}  // namespace hyperfile::crc32c
