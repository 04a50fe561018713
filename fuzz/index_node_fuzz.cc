// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the index node decoder on arbitrary bytes. Input: 2
// bytes of segment id (little-endian), 6 ignored, then the node. The length
// field and the CRC are fixed up before decoding (a hostile store can write
// valid ones), so mutations reach the entry checks; without the fix-up only
// the CRC check would ever run.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "format/format.h"
#include "util/coding.h"
#include "util/crc32c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  hyperfile::format::NodeRef ref;
  ref.segment = data[0] | (uint64_t{data[1]} << 8);
  ref.offset = 0;
  ref.length = static_cast<uint32_t>(size - 8);
  std::string in(reinterpret_cast<const char*>(data) + 8, size - 8);
  if (in.size() >= hyperfile::format::kNodeHeaderBytes + 4) {
    hyperfile::EncodeFixed32(in.data() + 8, static_cast<uint32_t>(in.size()));
    hyperfile::EncodeFixed32(in.data() + in.size() - 4,
                             hyperfile::crc32c::Value(in.data(), in.size() - 4));
  }
  auto node = hyperfile::format::DecodeNode(in, ref, "fuzz");
  if (node.ok()) {
    std::string again;
    // The data area offset the node records (bytes 20..27): a decoded node
    // re-encodes to exactly its bytes (every node has one encoding).
    const uint64_t data_area = hyperfile::DecodeFixed64(in.data() + 20);
    if (!hyperfile::format::EncodeNode(*node, ref.segment, data_area, &again).ok()) std::abort();
    if (again != in) std::abort();
    if (hyperfile::format::EncodedNodeSize(*node, ref.segment, data_area) != in.size())
      std::abort();
  }
  return 0;
}
