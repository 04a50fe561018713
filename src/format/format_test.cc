// The v2 byte layout and the decoders' checks on hostile input.
#include "format/format.h"

#include <gtest/gtest.h>

#include "util/coding.h"
#include "util/crc32c.h"

namespace hyperfile::format {
namespace {

NodeData OneExtentLeaf(uint64_t start, uint32_t count, uint64_t segment, uint64_t offset,
                       uint64_t epoch) {
  NodeData n;
  n.level = 0;
  n.extents.push_back({start, count, segment, offset, epoch});
  return n;
}

// Re-computes a node's trailing CRC after its bytes were edited.
void FixNodeCrc(std::string* node) {
  EncodeFixed32(node->data() + node->size() - 4, crc32c::Value(node->data(), node->size() - 4));
}

TEST(FormatV2, LeafEntryIs36BytesAndCarriesTheWriterEpoch) {
  NodeData n = OneExtentLeaf(10, 3, 5, 4096, 0x1122334455667788ull);
  n.extents.push_back({20, 1, 4, 100, 42});
  std::string enc;
  EncodeNode(n, 7, &enc);
  EXPECT_EQ(enc.size(), 16u + 2 * 36 + 4);
  EXPECT_EQ(EncodedNodeSize(n), enc.size());
  EXPECT_EQ(EncodedNodeSize(0, 2), enc.size());
  EXPECT_EQ(static_cast<uint8_t>(enc[4]), 2);  // version
  // Entry layout: start u64, count u32, segment u64, epoch u64, offset u64.
  EXPECT_EQ(DecodeFixed64(enc.data() + 16), 10u);
  EXPECT_EQ(DecodeFixed32(enc.data() + 24), 3u);
  EXPECT_EQ(DecodeFixed64(enc.data() + 28), 5u);
  EXPECT_EQ(DecodeFixed64(enc.data() + 36), 0x1122334455667788ull);
  EXPECT_EQ(DecodeFixed64(enc.data() + 44), 4096u);
  auto d = DecodeNode(enc, {7, 0, static_cast<uint32_t>(enc.size())}, "node");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->extents.size(), 2u);
  EXPECT_EQ(d->extents[0].epoch, 0x1122334455667788ull);
  EXPECT_EQ(d->extents[1].epoch, 42u);
  EXPECT_EQ(d->extents[1].offset, 100u);
  // A full leaf still fits a 4 KiB node.
  EXPECT_LE(EncodedNodeSize(0, kNodeCapacity), 4096u);
}

TEST(FormatV2, OtherVersionsAreNotSupportedNotCorrupt) {
  SegmentHeader h;
  h.self.id = 1;
  h.first_id = 1;
  h.node_area_offset = h.data_area_offset = EncodeHeader(h).size();
  std::string enc = EncodeHeader(h);
  EXPECT_EQ(DecodeFixed32(enc.data() + 8), 2u);
  ASSERT_TRUE(DecodeHeader(enc, "seg", nullptr).ok());
  for (uint32_t v : {1u, 3u}) {
    std::string old = enc;
    EncodeFixed32(old.data() + 8, v);
    EncodeFixed32(old.data() + old.size() - 4, crc32c::Value(old.data(), old.size() - 4));
    auto d = DecodeHeader(old, "seg", nullptr);
    ASSERT_FALSE(d.ok());
    EXPECT_TRUE(d.status().IsNotSupported()) << d.status().ToString();
    EXPECT_NE(d.status().message().find("unsupported format version " + std::to_string(v) +
                                        " (this build reads 2)"),
              std::string::npos)
        << d.status().ToString();
  }
  std::string node;
  EncodeNode(OneExtentLeaf(0, 1, 1, 0, 9), 1, &node);
  node[4] = 1;
  FixNodeCrc(&node);
  auto d = DecodeNode(node, {1, 0, static_cast<uint32_t>(node.size())}, "node");
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(d.status().IsNotSupported()) << d.status().ToString();
  EXPECT_NE(d.status().message().find("(this build reads 2)"), std::string::npos);
}

TEST(FormatHostile, ExtentsPastTheMaximumFileSizeAreCorrupt) {
  const NodeRef ref{9, 0, 16 + 36 + 4};
  auto decode = [&](const NodeData& n) {
    std::string enc;
    EncodeNode(n, 9, &enc);
    return DecodeNode(enc, ref, "seg/x");
  };
  // The largest extent anywhere in the block space is fine for the decoder.
  EXPECT_TRUE(decode(OneExtentLeaf(0, 0xFFFFFFFFu, 3, 0, 1)).ok());
  // Past 2^60 bytes at the smallest block size: Corrupt, naming the object.
  for (uint64_t start : {kMaxBlocksAnySize - 10, kMaxBlocksAnySize, ~uint64_t{0} - 5}) {
    auto d = decode(OneExtentLeaf(start, 0xFFFFFFFFu, 3, 0, 1));
    ASSERT_FALSE(d.ok()) << start;
    EXPECT_TRUE(d.status().IsCorrupt());
    EXPECT_NE(d.status().message().find("seg/x at offset 16"), std::string::npos)
        << d.status().ToString();
  }
  EXPECT_FALSE(decode(OneExtentLeaf(0, 0, 3, 0, 1)).ok());  // count 0
  // A data offset that overflows with count * stored block size.
  EXPECT_FALSE(decode(OneExtentLeaf(0, 0xFFFFFFFFu, 3, ~uint64_t{0} - 100, 1)).ok());
  // An interior key past the block space.
  NodeData in;
  in.level = 1;
  in.children.push_back({kMaxBlocksAnySize, {9, 100, 56}, 1});
  std::string enc;
  EncodeNode(in, 9, &enc);
  EXPECT_FALSE(DecodeNode(enc, {9, 0, static_cast<uint32_t>(enc.size())}, "seg/x").ok());
}

TEST(FormatKeys, SegmentKeyRange) {
  EXPECT_EQ(SegmentKey(1), "seg/fffffffffffffffe");
  EXPECT_EQ(SegmentKey(kMaxCheckpointId), "seg/bfffffffffffffff");
  EXPECT_EQ(ParseSegmentKey("seg/fffffffffffffffe"), 1u);
  for (const char* k : {"seg/README", "seg/.DS_Store", "seg/zzz", "seg/ffffffffffffffff",
                        "seg/fffffffffffffffe/x", "seg/bffffffffffffffe", "seg/FFFFFFFFFFFFFFFE"}) {
    EXPECT_FALSE(ParseSegmentKey(k).has_value()) << k;
  }
}

}  // namespace
}  // namespace hyperfile::format
