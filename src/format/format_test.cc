// The v2 byte layout and the decoders' checks on hostile input.
#include <random>
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

TEST(FormatV3, LeafEntryIs36BytesAndCarriesTheWriterEpoch) {
  NodeData n = OneExtentLeaf(10, 3, 5, 4096, 0x1122334455667788ull);
  n.extents.push_back({20, 1, 4, 100, 42});
  std::string enc;
  EncodeNode(n, 7, &enc);
  EXPECT_EQ(enc.size(), 16u + 2 * 36 + 4);
  EXPECT_EQ(EncodedNodeSize(n), enc.size());
  EXPECT_EQ(EncodedNodeSize(0, 2), enc.size());
  EXPECT_EQ(static_cast<uint8_t>(enc[4]), 3);  // version
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

TEST(FormatV3, OtherVersionsAreNotSupportedNotCorrupt) {
  SegmentHeader h;
  h.self.id = 1;
  h.first_id = 1;
  h.node_area_offset = h.data_area_offset = EncodeHeader(h).size();
  std::string enc = EncodeHeader(h);
  EXPECT_EQ(DecodeFixed32(enc.data() + 8), 3u);
  ASSERT_TRUE(DecodeHeader(enc, "seg", nullptr).ok());
  for (uint32_t v : {1u, 2u, 4u}) {
    std::string old = enc;
    EncodeFixed32(old.data() + 8, v);
    EncodeFixed32(old.data() + old.size() - 4, crc32c::Value(old.data(), old.size() - 4));
    auto d = DecodeHeader(old, "seg", nullptr);
    ASSERT_FALSE(d.ok());
    EXPECT_TRUE(d.status().IsNotSupported()) << d.status().ToString();
    EXPECT_NE(d.status().message().find("unsupported format version " + std::to_string(v) +
                                        " (this build reads 3)"),
              std::string::npos)
        << d.status().ToString();
  }
  std::string node;
  EncodeNode(OneExtentLeaf(0, 1, 1, 0, 9), 1, &node);
  node[4] = 2;
  FixNodeCrc(&node);
  auto d = DecodeNode(node, {1, 0, static_cast<uint32_t>(node.size())}, "node");
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(d.status().IsNotSupported()) << d.status().ToString();
  EXPECT_NE(d.status().message().find("(this build reads 3)"), std::string::npos);
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


TEST(FormatV3, DataObjectKeysNameOneUploadAndParseStrictly) {
  const std::string key = DataObjectKey(5, 0xabcdef0123456789ull);
  EXPECT_EQ(key, "dat/fffffffffffffffa-abcdef0123456789");
  auto parsed = ParseDataObjectKey(key);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->first, 5u);
  EXPECT_EQ(parsed->second, 0xabcdef0123456789ull);
  for (const char* bad : {"dat/fffffffffffffffa", "dat/fffffffffffffffa-abcdef012345678",
                          "dat/fffffffffffffffa-abcdef01234567890", "dat/FFFFFFFFFFFFFFFA-abcdef0123456789",
                          "dat/ffffffffffffffff-abcdef0123456789",  // id 0
                          "dat/fffffffffffffffa_abcdef0123456789", "seg/fffffffffffffffa-abcdef0123456789",
                          "dat/fffffffffffffffa-abcdef0123456789/x"}) {
    EXPECT_FALSE(ParseDataObjectKey(bad).has_value()) << bad;
  }
}

TEST(FormatV3, HeaderSizeIsKnownBeforeEncodingAndCarriesTheDataObjectLength) {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 200; round++) {
    SegmentHeader h;
    h.self.id = 1000 + rng() % 100000;
    h.first_id = 1;
    h.self.time_ms = static_cast<int64_t>(rng() % (1ull << 45));
    h.writer = std::string(rng() % 256, 'w');
    for (size_t i = 0, n = rng() % 4; i < n; i++) {
      h.origins.push_back({i + 1, std::string(rng() % 300, 'u')});
    }
    for (size_t i = 0, n = rng() % 65; i < n; i++) {
      Descriptor d;
      d.id = h.self.id - 1 - i;
      h.recent.push_back(d);
    }
    if (rng() % 2) {
      h.sample_ids.push_back(64);
      h.sample_times.push_back(h.self.time_ms / 2);
    }
    h.data_object_length = rng();
    const size_t expect = EncodedHeaderSize(h);
    h.node_area_offset = h.data_area_offset = expect;
    std::string enc = EncodeHeader(h);
    ASSERT_EQ(enc.size(), expect) << "round " << round;
    auto d = DecodeHeader(enc, "seg", nullptr);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->data_object_length, h.data_object_length);
  }
}

TEST(FormatV3, ExtentsInTheDataObjectKeepTheirFlagAndAreBounded) {
  NodeData n = OneExtentLeaf(10, 3, 5, kInDataObject | 8200, 9);
  std::string enc;
  EncodeNode(n, 7, &enc);
  auto d = DecodeNode(enc, {7, 0, static_cast<uint32_t>(enc.size())}, "node");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(d->extents[0].in_data_object());
  EXPECT_EQ(d->extents[0].object_offset(), 8200u);
  // An offset whose end would pass 2^63 is out of range, flagged or not.
  for (uint64_t flag : {uint64_t{0}, kInDataObject}) {
    std::string bad;
    EncodeNode(OneExtentLeaf(10, 3, 5, flag | (kInDataObject - 4096), 9), 7, &bad);
    auto r = DecodeNode(bad, {7, 0, static_cast<uint32_t>(bad.size())}, "node");
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsCorrupt());
  }
}

TEST(FormatV3, StoredBlocksAreChunksEachFollowedByItsPlacedCrc) {
  const uint32_t bs = 8192;
  std::string a(bs, 'a'), b(bs, 'b');
  StoredBlocks stored(bs);
  stored.Add(a.data(), 3 * bs);
  stored.Add(b.data(), 9 * bs);
  EXPECT_EQ(stored.bytes(), 2 * StoredBlockSize(bs));
  std::vector<std::string_view> pieces;
  stored.AppendTo(&pieces);
  std::string out;
  for (auto p : pieces) out.append(p);
  ASSERT_EQ(out.size(), stored.bytes());
  for (int blk = 0; blk < 2; blk++) {
    for (int c = 0; c < 2; c++) {
      const char* chunk = out.data() + blk * StoredBlockSize(bs) + c * (kChunkSize + kChunkCrcSize);
      const uint64_t logical = (blk == 0 ? 3 : 9) * uint64_t{bs} + c * kChunkSize;
      EXPECT_EQ(DecodeFixed32(chunk + kChunkSize), ChunkCrc(chunk, logical));
      EXPECT_EQ(chunk[0], blk == 0 ? 'a' : 'b');
    }
  }
}

}  // namespace
}  // namespace hyperfile::format
