// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for opening sealed frames (crypto/aead.h). The input is
// XORed into a frame sealed under a fixed key and place (the first byte picks
// the frame's length, the rest is the mask; a longer mask appends bytes): the
// open must succeed exactly when the bytes are unchanged, and then return
// the plaintext; every other input must fail with Corrupt, without crashing.
// The raw input is also opened as is, which must fail.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "crypto/aead.h"

namespace {

using namespace hyperfile::crypto;

const SecretKey& Key() {
  static const SecretKey key = [] {
    auto k = SecretKey::FromBytes(std::string(32, '\x5a'), "fuzz");
    if (!k.ok()) std::abort();
    return std::move(*k);
  }();
  return key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  FramePlace place;
  place.file_id = 42;
  place.checkpoint = 7;
  place.offset = 4096;
  const std::string ad = FrameAssociatedData(place);
  const std::string plain(data[0], 'p');
  auto sealed = Seal(Key(), ad, plain);
  if (!sealed.ok()) std::abort();
  std::string frame = *sealed;
  bool changed = false;
  for (size_t i = 1; i < size; i++) {
    if (i - 1 < frame.size()) {
      frame[i - 1] = static_cast<char>(frame[i - 1] ^ data[i]);
      changed = changed || data[i] != 0;
    } else {
      frame.push_back(static_cast<char>(data[i]));
      changed = true;
    }
  }
  std::string out;
  hyperfile::Status st = OpenTo(Key(), ad, frame, &out, "fuzz");
  if (changed) {
    if (st.ok() || !st.IsCorrupt() || !out.empty()) std::abort();
  } else if (!st.ok() || out != plain) {
    std::abort();
  }
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  if (OpenTo(Key(), ad, raw, &out, "fuzz").ok()) std::abort();
  return 0;
}
