// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the key record decoder must never crash, assert or
// allocate on arbitrary bytes; a record it accepts re-encodes to the same
// bytes and has KDF parameters inside the bounds (so a reader never spends
// more than they allow).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "crypto/key_record.h"
#include "util/coding.h"
#include "util/crc32c.h"

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
  auto check = [number](std::string_view bytes) {
    auto r = DecodeKeyRecord(bytes, number, "fuzz");
    if (r.ok()) {
      if (EncodeKeyRecord(*r) != bytes) std::abort();
      if (r->kdf.mem_bytes > kMaxKdfMemBytes || r->kdf.ops > kMaxKdfOps) std::abort();
    }
  };
  check(in);
  // The same bytes with a correct CRC, so the field checks behind it are
  // explored too (the fuzzer rarely finds a CRC32C by itself).
  if (size == kKeyRecordBytes) {
    std::string fixed(in.substr(0, kKeyRecordBytes - 4));
    hyperfile::PutFixed32(&fixed, hyperfile::crc32c::Value(fixed.data(), fixed.size()));
    check(fixed);
  }
  return 0;
}
