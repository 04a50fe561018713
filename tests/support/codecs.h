// SPDX-License-Identifier: Apache-2.0
// The codecs the data-path suites run on: none (the chunk form), lz4 and
// zstd (frames). A suite derives from CodecTest and instantiates it with
// HF_INSTANTIATE_CODECS(Suite); its tests create files with Co(). The model,
// crash and corruption suites use HF_INSTANTIATE_DATA_PATHS instead, which
// adds encrypted files (raw frames, and zstd frames, sealed): their tests
// create with Co() and open with Oo() (which carries the key).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "hyperfile/encryption.h"
#include "hyperfile/options.h"

namespace hyperfile {
// gtest prints parameters with this (found by ADL) instead of raw bytes.
inline void PrintTo(const Compression& c, std::ostream* os) { *os << CompressionName(c); }
}  // namespace hyperfile

namespace hyperfile::testing {

// A codec, and for an encrypted file its key (null: not encrypted).
struct DataPath : Compression {
  DataPath(Compression c, std::shared_ptr<const KeySource> k = nullptr)
      : Compression(c), key(std::move(k)) {}
  std::shared_ptr<const KeySource> key;
};
inline void PrintTo(const DataPath& p, std::ostream* os) {
  *os << CompressionName(p) << (p.key ? "+encrypted" : "");
}

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

// The key text of the encrypted data paths (for a command: HYPERFILE_KEY).
inline std::string DataPathKeyText() { return std::string(64, '7'); }

inline std::vector<DataPath> AllDataPaths() {
  std::vector<DataPath> out;
  for (const Compression& c : AllCodecs()) out.emplace_back(c);
  auto key = KeySource::FromKeyText(DataPathKeyText()).value();
  out.emplace_back(Compression{Codec::kNone, 0}, key);
  out.emplace_back(Compression{Codec::kZstd, 1}, key);
  return out;
}

inline std::string DataPathName(const ::testing::TestParamInfo<DataPath>& info) {
  ::testing::TestParamInfo<Compression> c(info.param, info.index);
  return CodecName(c) + (info.param.key ? "_encrypted" : "");
}

template <typename Param>
class CodecTestOf : public ::testing::TestWithParam<Param> {
 protected:
  CreateOptions Co(uint32_t block_size = 64 * 1024) const {
    CreateOptions c;
    c.block_size = block_size;
    c.compression = this->GetParam();
    if constexpr (std::is_same_v<Param, DataPath>) c.encryption_key = this->GetParam().key;
    return c;
  }
  // `o` with the key of an encrypted file's path.
  OpenOptions Oo(OpenOptions o = {}) const {
    if constexpr (std::is_same_v<Param, DataPath>) o.key = this->GetParam().key;
    return o;
  }
};
using CodecTest = CodecTestOf<Compression>;
using DataPathTest = CodecTestOf<DataPath>;

}  // namespace hyperfile::testing

#define HF_INSTANTIATE_CODECS(suite)                                                 \
  INSTANTIATE_TEST_SUITE_P(Codecs, suite, ::testing::ValuesIn(testing::AllCodecs()), \
                           testing::CodecName)
#define HF_INSTANTIATE_DATA_PATHS(suite)                                                   \
  INSTANTIATE_TEST_SUITE_P(DataPaths, suite, ::testing::ValuesIn(testing::AllDataPaths()), \
                           testing::DataPathName)
