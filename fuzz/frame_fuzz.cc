// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the frame decoder must never crash, overrun or allocate
// beyond the block on arbitrary bytes. The first input byte picks the block
// size (4 KiB << (b % 5)) and the next 8 the logical offset; the rest is the
// frame. A frame it accepts must decode to exactly one block, and encoding
// that block again must decode to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "format/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 9) return 0;
  const uint32_t block_size = 4096u << (data[0] % 5);
  uint64_t logical = 0;
  std::memcpy(&logical, data + 1, 8);
  std::string_view frame(reinterpret_cast<const char*>(data) + 9, size - 9);
  std::string block(block_size, '\0');
  auto st = hyperfile::format::DecodeFrame(frame, logical, block_size, block.data(), "fuzz");
  if (!st.ok()) {
    if (!st.IsCorrupt() && !st.IsNotSupported()) std::abort();
    return 0;
  }
  for (uint8_t codec : {hyperfile::format::kFrameRaw, hyperfile::format::kFrameLz4,
                        hyperfile::format::kFrameZstd}) {
    std::string again;
    uint32_t n = hyperfile::format::EncodeFrame(codec, 1, block, logical, &again);
    if (n != again.size() || n > hyperfile::format::MaxFrameBytes(block_size)) std::abort();
    std::string back(block_size, '\0');
    if (!hyperfile::format::DecodeFrame(again, logical, block_size, back.data(), "fuzz").ok() ||
        back != block) {
      std::abort();
    }
  }
  return 0;
}
