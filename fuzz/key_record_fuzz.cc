// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the key record decoder must never crash, assert or
// allocate on arbitrary bytes; a record it accepts re-encodes to the same
// bytes and has KDF parameters inside the bounds (so a reader never spends
// more than they allow).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "crypto/key_record.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hyperfile::crypto;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // The record number is taken from the bytes where a record keeps it, so
  // that the fuzzer can reach the accepting path.
  uint64_t number = 1;
  if (size >= 24) {
    number = 0;
    for (int i = 7; i >= 0; i--) number = number << 8 | data[16 + i];
  }
  auto r = DecodeKeyRecord(in, number, "fuzz");
  if (r.ok()) {
    if (EncodeKeyRecord(*r) != in) std::abort();
    if (r->kdf.mem_bytes > kMaxKdfMemBytes || r->kdf.ops > kMaxKdfOps) std::abort();
  }
  return 0;
}
