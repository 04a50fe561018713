// SPDX-License-Identifier: Apache-2.0
// The codecs the data-path suites run on: none (the chunk form), lz4 and
// zstd (frames). A suite derives from CodecTest and instantiates it with
// HF_INSTANTIATE_CODECS(Suite); its tests create files with Co().
#pragma once

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "hyperfile/options.h"

namespace hyperfile {
// gtest prints parameters with this (found by ADL) instead of raw bytes.
inline void PrintTo(const Compression& c, std::ostream* os) { *os << CompressionName(c); }
}  // namespace hyperfile

namespace hyperfile::testing {

inline std::vector<Compression> AllCodecs() {
  return {{Codec::kNone, 0}, {Codec::kLz4, 0}, {Codec::kZstd, 1}};
}

inline std::string CodecName(const ::testing::TestParamInfo<Compression>& info) {
  switch (info.param.codec) {
    case Codec::kNone:
      return "none";
    case Codec::kLz4:
      return "lz4";
    case Codec::kZstd:
      return "zstd" + std::to_string(info.param.level);
  }
  return "unknown";
}

class CodecTest : public ::testing::TestWithParam<Compression> {
 protected:
  CreateOptions Co(uint32_t block_size = 64 * 1024) const {
    CreateOptions c;
    c.block_size = block_size;
    c.compression = GetParam();
    return c;
  }
};

}  // namespace hyperfile::testing

#define HF_INSTANTIATE_CODECS(suite)                                                 \
  INSTANTIATE_TEST_SUITE_P(Codecs, suite, ::testing::ValuesIn(testing::AllCodecs()), \
                           testing::CodecName)
