// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the segment header decoder must never crash, assert or
// allocate absurdly on arbitrary bytes; a header it accepts must re-encode
// to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "format/format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  uint64_t needed = 0;
  auto h = hyperfile::format::DecodeHeader(in, "fuzz", &needed);
  if (h.ok()) {
    std::string again = hyperfile::format::EncodeHeader(*h);
    if (in.substr(0, again.size()) != again) std::abort();
  }
  return 0;
}
