// SPDX-License-Identifier: Apache-2.0
// CRC32C (Castagnoli), the checksum of every hyperfile header, node and data
// chunk. Backed by Intel ISA-L (hardware-accelerated where available).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace hyperfile::crc32c {

// Standard CRC32C of data, continuing from a previous Value() (0 to start):
// Extend(Extend(0, a), b) == Value(a + b). Value("123456789") == 0xE3069283.
uint32_t Extend(uint32_t crc, const void* data, size_t n);
inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }
inline uint32_t Value(std::string_view s) { return Extend(0, s.data(), s.size()); }

}  // namespace hyperfile::crc32c
