// SPDX-License-Identifier: Apache-2.0
// The v3 byte layout and the decoders' checks on hostile input.
#include "format/format.h"

#include <gtest/gtest.h>

#include <random>

#include "format/frame.h"
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

std::string Encode(const NodeData& n, uint64_t segment, uint64_t data_area) {
  std::string enc;
  Status st = EncodeNode(n, segment, data_area, &enc);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return enc;
}

std::string Hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    if (!out.empty()) out += ' ';
    out += digits[static_cast<uint8_t>(c) >> 4];
    out += digits[static_cast<uint8_t>(c) & 15];
  }
  return out;
}

// The byte layout of docs/format.md "Index nodes", byte by byte.
TEST(FormatV3, LeafLayoutIsByteExact) {
  const uint64_t e1 = 0x1122334455667788ull, e2 = 42;
  NodeData n;
  n.extents.push_back({10, 3, 5, 4096, e1});                 // another segment
  n.extents.push_back({20, 1, 7, 1000 + 8200, e2});          // this segment's data area
  n.extents.push_back({21, 2, 7, kInDataObject | 300, e1});  // this segment's data object
  std::string enc = Encode(n, 7, 1000);
  ASSERT_EQ(enc.size(), 67u);
  EXPECT_EQ(EncodedNodeSize(n, 7, 1000), enc.size());
  EXPECT_EQ(Hex(enc.substr(0, 28)),
            "48 46 4e 44 03 00 03 00 43 00 00 00 07 00 00 00 00 00 00 00 e8 03 00 00 00 00 00 00");
  EXPECT_EQ(Hex(enc.substr(28, 2)), "07 02");  // base segment 7, 2 epochs
  EXPECT_EQ(DecodeFixed64(enc.data() + 30), e1);
  EXPECT_EQ(DecodeFixed64(enc.data() + 38), e2);
  EXPECT_EQ(Hex(enc.substr(46, 17)),
            "0a 09 00 02 80 20 "  // 3 blocks + gap, gap 10, epoch 0, segment 7-2, offset 4096
            "02 06 01 00 88 40 "  // 1 block + gap, gap 7, epoch 1, segment 7, data area + 8200
            "05 00 00 ac 02");    // 2 blocks in the data object, epoch 0, segment 7, 300
  EXPECT_EQ(DecodeFixed32(enc.data() + 63), crc32c::Value(enc.data(), 63));
  EXPECT_EQ(PeekNodeLength(enc), 67u);
  auto d = DecodeNode(enc, {7, 500, 67}, "node");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->extents.size(), 3u);
  for (size_t i = 0; i < 3; i++) {
    EXPECT_EQ(d->extents[i].start, n.extents[i].start);
    EXPECT_EQ(d->extents[i].count, n.extents[i].count);
    EXPECT_EQ(d->extents[i].segment, n.extents[i].segment);
    EXPECT_EQ(d->extents[i].offset, n.extents[i].offset);
    EXPECT_EQ(d->extents[i].epoch, n.extents[i].epoch);
  }
  // A node must end before the data area offset it records.
  EXPECT_TRUE(DecodeNode(enc, {7, 1000 - 67, 67}, "node").ok());
  EXPECT_TRUE(DecodeNode(enc, {7, 1000 - 66, 67}, "node").status().IsCorrupt());
  // Read as part of another segment: Corrupt.
  EXPECT_TRUE(DecodeNode(enc, {8, 0, 67}, "node").status().IsCorrupt());
  // With one epoch there is no epoch index: 1 block, 1 byte of offset.
  std::string one = Encode(OneExtentLeaf(0, 1, 7, 1000 + 5, 9), 7, 1000);
  ASSERT_EQ(one.size(), 28u + 2 + 8 + 3 + 4);
  EXPECT_EQ(Hex(one.substr(38, 3)), "00 00 05");
}

TEST(FormatV3, InteriorLayoutIsByteExact) {
  NodeData n;
  n.level = 1;
  n.children.push_back({0, {9, 200, 100}, 50});      // child in this segment
  n.children.push_back({64, {4, 70000, 1500}, 30});  // older segments
  n.children.push_back({100, {6, 10, 40}, 5});
  std::string enc = Encode(n, 9, 5000);
  ASSERT_EQ(enc.size(), 55u);
  EXPECT_EQ(EncodedNodeSize(n, 9, 5000), enc.size());
  EXPECT_EQ(Hex(enc.substr(0, 12)), "48 46 4e 44 03 01 03 00 37 00 00 00");
  EXPECT_EQ(Hex(enc.substr(28, 23)),
            "06 "                          // base segment 6 (largest not this one)
            "00 32 00 c8 00 00 00 64 00 "  // key 0, 50 blocks, this segment, u32 200, u16 100
            "40 1e 03 f0 a2 04 dc 0b "     // key +64, 30 blocks, segment 6+1-3, 70000, 1500
            "24 05 01 0a 28");             // key +36, 5 blocks, segment 6, 10, 40
  // Pending form (children of this segment not laid out yet): same size.
  NodeData pending = n;
  pending.children[0].ref = {};
  EXPECT_EQ(EncodedNodeSize(pending), enc.size());
  auto d = DecodeNode(enc, {9, 0, 55}, "node");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->children.size(), 3u);
  for (size_t i = 0; i < 3; i++) {
    EXPECT_EQ(d->children[i].first_key, n.children[i].first_key);
    EXPECT_EQ(d->children[i].ref, n.children[i].ref);
    EXPECT_EQ(d->children[i].blocks, n.children[i].blocks);
  }
}

TEST(FormatV3, FullNodesAreSmallAndBounded) {
  // A full leaf of single blocks scattered over older segments (3-byte
  // offsets, one epoch): about 9 bytes an entry instead of 36.
  NodeData leaf;
  for (uint64_t i = 0; i < kNodeCapacity; i++) {
    leaf.extents.push_back({i * 2, 1, 1000 - i, 300000 + i * 4100, 77});
  }
  EXPECT_LE(EncodedNodeSize(leaf, 1000, 0), 28u + 10 + 112 * 8 + 4);
  EXPECT_LE(EncodedNodeSize(leaf, 1000, 0), MaxEncodedNodeSize(0, kNodeCapacity));
  // Worst cases stay below the decode bound (also asserted statically).
  NodeData worst;
  for (uint64_t i = 0; i < kNodeCapacity; i++) {
    worst.extents.push_back({kMaxBlocksAnySize - 2 * (kNodeCapacity - i), 1, kMaxCheckpointId - i,
                             kMaxStoredOffset - (1ull << 40), ~uint64_t{0} - i});
  }
  EXPECT_LE(EncodedNodeSize(worst, kMaxCheckpointId, 0), MaxEncodedNodeSize(0, kNodeCapacity));
  EXPECT_LE(MaxEncodedNodeSize(0, kNodeCapacity), kMaxNodeBytes);
  EXPECT_TRUE(
      DecodeNode(Encode(worst, kMaxCheckpointId, 1ull << 20), {kMaxCheckpointId, 0, 0}, "node")
          .ok());
  // The same with every extent framed (version 4: one more varint each).
  for (uint64_t i = 0; i < kNodeCapacity; i++) {
    worst.extents[i].offset = kInDataObject | (kMaxFramedOffset - (1ull << 30) + i);
    worst.extents[i].stored_length = MaxFrameBytes(1u << kMaxBlockShift);
  }
  EXPECT_LE(EncodedNodeSize(worst, kMaxCheckpointId, 0), MaxEncodedNodeSize(0, kNodeCapacity));
  auto framed =
      DecodeNode(Encode(worst, kMaxCheckpointId, 1ull << 20), {kMaxCheckpointId, 0, 0}, "node");
  ASSERT_TRUE(framed.ok()) << framed.status().ToString();
  EXPECT_EQ(framed->extents.back().stored_length, MaxFrameBytes(1u << kMaxBlockShift));
}

TEST(FormatV3, EncodeRefusesExtentsOfItsSegmentBeforeTheDataArea) {
  std::string enc;
  Status st = EncodeNode(OneExtentLeaf(0, 1, 7, 999, 1), 7, 1000, &enc);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(enc.empty());
  EXPECT_TRUE(EncodeNode(OneExtentLeaf(0, 1, 7, 1000, 1), 7, 1000, &enc).ok());
  // Other segments' extents and data object extents are absolute.
  EXPECT_TRUE(EncodeNode(OneExtentLeaf(0, 1, 6, 5, 1), 7, 1000, &enc).ok());
  EXPECT_TRUE(EncodeNode(OneExtentLeaf(0, 1, 7, kInDataObject | 5, 1), 7, 1000, &enc).ok());
  // Empty, over-full, future segments, unset child refs.
  EXPECT_FALSE(EncodeNode(NodeData{}, 7, 1000, &enc).ok());
  EXPECT_FALSE(EncodeNode(OneExtentLeaf(0, 1, 8, 5, 1), 7, 1000, &enc).ok());
  NodeData in;
  in.level = 1;
  in.children.push_back({0, {}, 1});
  EXPECT_FALSE(EncodeNode(in, 7, 1000, &enc).ok());
}

// A random node as Tree::FinishLayout would encode it (refs set, extents of
// `segment` absolute) and its pending form (as PendingBytes sizes it).
struct RandomNode {
  NodeData laid_out, pending;
  uint64_t segment, data_area;
};

RandomNode MakeRandomNode(std::mt19937_64& rng) {
  RandomNode r;
  r.segment = 1 + rng() % (rng() % 2 ? 50 : kMaxCheckpointId);
  r.data_area = (rng() % 3 == 0) ? rng() % (1ull << 40) : 64 * 1024 + rng() % (1u << 20);
  const size_t count = 1 + rng() % kNodeCapacity;
  auto pick = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
  if (rng() % 2) {
    NodeData& n = r.laid_out;
    n.level = 0;
    std::vector<uint64_t> epochs;
    for (size_t i = 0, ne = 1 + rng() % 4; i < ne; i++) epochs.push_back(rng());
    uint64_t pos = rng() % 3 ? pick(1000) : pick(kMaxBlocksAnySize / 2);
    for (size_t i = 0; i < count; i++) {
      ExtentEntry e;
      e.start = pos + (rng() % 2 ? 0 : pick(rng() % 2 ? 100 : 1u << 30));
      e.count = static_cast<uint32_t>(1 + (rng() % 4 ? pick(8) : pick(0xFFFFFFFEu)));
      e.epoch = epochs[rng() % epochs.size()];
      int kind = static_cast<int>(rng() % 3);
      e.segment = kind == 0 ? r.segment : 1 + pick(r.segment);
      e.segment = std::min(e.segment, r.segment);
      const uint64_t limit = (kMaxStoredOffset - 1) - uint64_t{e.count} * StoredBlockSize(1u << 22);
      if (kind == 1) {
        e.offset = kInDataObject | pick(rng() % 2 ? 1u << 24 : limit);
      } else if (e.segment == r.segment) {
        e.offset = r.data_area + pick(std::min<uint64_t>(limit - r.data_area, 1ull << 30));
      } else {
        e.offset = pick(rng() % 2 ? 1u << 24 : limit);
      }
      pos = e.end();
      if (pos > kMaxBlocksAnySize - (1ull << 33)) break;
      n.extents.push_back(e);
    }
    r.pending = n;
    for (ExtentEntry& e : r.pending.extents) {
      if (e.segment == r.segment && !e.in_data_object()) e.offset -= r.data_area;
    }
  } else {
    NodeData& n = r.laid_out;
    n.level = static_cast<uint8_t>(1 + rng() % 16);
    r.data_area = std::max<uint64_t>(r.data_area, 1u << 16);
    uint64_t key = pick(1u << 20);
    for (size_t i = 0; i < count; i++) {
      ChildEntry c;
      c.first_key = key;
      key += 1 + pick(rng() % 2 ? 200 : 1ull << 36);
      c.blocks = pick(rng() % 2 ? 1000 : kMaxBlocksAnySize);
      c.ref.segment = rng() % 3 == 0 ? r.segment : 1 + pick(r.segment - 1);
      const bool own = c.ref.segment == r.segment;
      c.ref.length =
          static_cast<uint32_t>(kMinNodeBytes + pick(own ? 3000 : kMaxNodeBytes - kMinNodeBytes));
      c.ref.offset = static_cast<uint32_t>(
          own ? pick(std::min<uint64_t>(r.data_area - c.ref.length, 0xFFFFFFFFu)) : rng());
      n.children.push_back(c);
    }
    r.pending = n;
    for (ChildEntry& c : r.pending.children) {
      if (c.ref.segment == r.segment) c.ref = {};
    }
  }
  return r;
}

bool SameNode(const NodeData& a, const NodeData& b) {
  if (a.level != b.level || a.extents.size() != b.extents.size() ||
      a.children.size() != b.children.size()) {
    return false;
  }
  for (size_t i = 0; i < a.extents.size(); i++) {
    const ExtentEntry &x = a.extents[i], &y = b.extents[i];
    if (x.start != y.start || x.count != y.count || x.segment != y.segment ||
        x.offset != y.offset || x.epoch != y.epoch) {
      return false;
    }
  }
  for (size_t i = 0; i < a.children.size(); i++) {
    const ChildEntry &x = a.children[i], &y = b.children[i];
    if (x.first_key != y.first_key || !(x.ref == y.ref) || x.blocks != y.blocks) return false;
  }
  return true;
}

TEST(FormatV3, RandomNodesRoundTripWithExactSizes) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 3000; round++) {
    RandomNode r = MakeRandomNode(rng);
    if (r.laid_out.extents.empty() && r.laid_out.children.empty()) continue;
    std::string enc;
    Status st = EncodeNode(r.laid_out, r.segment, r.data_area, &enc);
    ASSERT_TRUE(st.ok()) << "round " << round << ": " << st.ToString();
    ASSERT_EQ(EncodedNodeSize(r.laid_out, r.segment, r.data_area), enc.size()) << round;
    ASSERT_EQ(EncodedNodeSize(r.pending), enc.size()) << round;
    ASSERT_LE(enc.size(), MaxEncodedNodeSize(r.laid_out.level, kNodeCapacity));
    ASSERT_EQ(PeekNodeLength(enc), enc.size());
    const uint32_t at =
        r.data_area >= enc.size()
            ? static_cast<uint32_t>(std::min<uint64_t>(r.data_area - enc.size(), 0xFFFFFFFFu))
            : 0;
    if (r.data_area < enc.size()) {
      EXPECT_TRUE(DecodeNode(enc, {r.segment, 0, 0}, "node").status().IsCorrupt());
      continue;
    }
    auto d = DecodeNode(enc, {r.segment, at, static_cast<uint32_t>(enc.size())}, "node");
    ASSERT_TRUE(d.ok()) << "round " << round << ": " << d.status().ToString();
    ASSERT_TRUE(SameNode(*d, r.laid_out)) << round;
  }
}

// Every truncation, every single-byte change (CRC left as is, or fixed up to
// model a hostile store): Corrupt (NotSupported for the version byte), or,
// only for CRC-valid edits, a node that re-encodes to exactly those bytes.
TEST(FormatHostile, EveryTruncationAndByteChangeOfANodeIsCaught) {
  std::mt19937_64 rng(12);
  for (int round = 0; round < 40; round++) {
    RandomNode r = MakeRandomNode(rng);
    if (r.laid_out.extents.empty() && r.laid_out.children.empty()) continue;
    if (round % 2 == 0 && r.laid_out.extents.size() > 12) r.laid_out.extents.resize(12);
    if (round % 2 == 0 && r.laid_out.children.size() > 12) r.laid_out.children.resize(12);
    r.data_area = std::max<uint64_t>(r.data_area, 1u << 16);
    if (r.laid_out.level > 0) {
      for (ChildEntry& c : r.laid_out.children) {
        if (c.ref.segment == r.segment) c.ref.offset = 1000;
      }
    } else {
      for (ExtentEntry& e : r.laid_out.extents) {
        if (e.segment == r.segment && !e.in_data_object()) e.offset = r.data_area + 8;
      }
    }
    std::string enc;
    ASSERT_TRUE(EncodeNode(r.laid_out, r.segment, r.data_area, &enc).ok());
    const NodeRef ref{r.segment, 0, static_cast<uint32_t>(enc.size())};
    ASSERT_TRUE(DecodeNode(enc, ref, "node").ok());
    for (size_t len = 0; len < enc.size(); len++) {
      auto d = DecodeNode(std::string_view(enc).substr(0, len), ref, "node");
      ASSERT_TRUE(d.status().IsCorrupt()) << len << ": " << d.status().ToString();
    }
    for (size_t i = 0; i < enc.size(); i++) {
      for (int v : {0, 1, 0x7f, 0x80, 0xff, static_cast<int>(rng() % 256)}) {
        for (bool fix : {false, true}) {
          std::string bad = enc;
          bad[i] = static_cast<char>(static_cast<uint8_t>(bad[i]) ^ (v == 0 ? 1 : v));
          if (fix && i < bad.size() - 4) FixNodeCrc(&bad);
          auto d = DecodeNode(bad, ref, "node");
          if (i == 4) {
            ASSERT_TRUE(d.status().IsNotSupported() || d.status().IsCorrupt())
                << d.status().ToString();
            continue;
          }
          if (!fix || i >= bad.size() - 4) {
            ASSERT_TRUE(d.status().IsCorrupt()) << i << ": " << d.status().ToString();
            continue;
          }
          if (d.ok()) {  // a CRC-valid edit may make another valid node: canonical
            std::string again;
            ASSERT_TRUE(EncodeNode(*d, r.segment, DecodeFixed64(bad.data() + 20), &again).ok());
            ASSERT_EQ(Hex(again), Hex(bad)) << "byte " << i;
          } else {
            ASSERT_TRUE(d.status().IsCorrupt()) << d.status().ToString();
          }
        }
      }
    }
  }
}

TEST(FormatHostile, NonCanonicalEncodingsAreCorrupt) {
  NodeData n;
  n.extents.push_back({10, 3, 5, 4096, 1});
  std::string enc = Encode(n, 7, 1000);
  // The gap varint (09) at 39 written as 89 00: decodes to 9, but longer.
  ASSERT_EQ(Hex(enc.substr(38, 5)), "0a 09 00 80 20");
  std::string bad = enc.substr(0, 40);
  bad[39] = static_cast<char>(0x89);
  bad += '\0';
  bad += enc.substr(40);
  EncodeFixed32(bad.data() + 8, static_cast<uint32_t>(bad.size()));
  FixNodeCrc(&bad);
  auto d = DecodeNode(bad, {7, 0, 0}, "node");
  ASSERT_TRUE(d.status().IsCorrupt()) << d.status().ToString();
  // A base segment larger than every extent's.
  bad = enc;
  bad[28] = 6;
  bad[40] = 1;  // segment delta 1: segment 5 again
  FixNodeCrc(&bad);
  EXPECT_TRUE(DecodeNode(bad, {7, 0, 0}, "node").status().IsCorrupt());
}

TEST(FormatV3, OtherVersionsAreNotSupportedNotCorrupt) {
  SegmentHeader h;
  h.self.id = 1;
  h.first_id = 1;
  h.node_area_offset = h.data_area_offset = EncodeHeader(h).size();
  std::string enc = EncodeHeader(h);
  EXPECT_EQ(DecodeFixed32(enc.data() + 8), 3u);
  ASSERT_TRUE(DecodeHeader(enc, "seg", nullptr).ok());
  for (uint32_t v : {1u, 2u, 5u}) {
    std::string old = enc;
    EncodeFixed32(old.data() + 8, v);
    EncodeFixed32(old.data() + old.size() - 4, crc32c::Value(old.data(), old.size() - 4));
    auto d = DecodeHeader(old, "seg", nullptr);
    ASSERT_FALSE(d.ok());
    EXPECT_TRUE(d.status().IsNotSupported()) << d.status().ToString();
    EXPECT_NE(d.status().message().find("unsupported format version " + std::to_string(v) +
                                        " (this build reads 3, and 4 for encrypted files)"),
              std::string::npos)
        << d.status().ToString();
  }
  {
    // Version 4 is an encrypted file's header: a cipher id must come with it.
    std::string v4 = enc;
    EncodeFixed32(v4.data() + 8, 4);
    EncodeFixed32(v4.data() + v4.size() - 4, crc32c::Value(v4.data(), v4.size() - 4));
    auto d4 = DecodeHeader(v4, "seg", nullptr);
    ASSERT_FALSE(d4.ok());
    EXPECT_TRUE(d4.status().IsCorrupt()) << d4.status().ToString();
    SegmentHeader sealed = DecodeHeader(enc, "seg", nullptr).value();
    sealed.cipher = kCipherXChaCha20Poly1305;
    std::string e = EncodeHeader(sealed);
    EXPECT_EQ(DecodeFixed32(e.data() + 8), 4u);
    EXPECT_EQ(static_cast<uint8_t>(e[166]), kCipherXChaCha20Poly1305);
    EXPECT_EQ(DecodeHeader(e, "seg", nullptr).value().cipher, kCipherXChaCha20Poly1305);
    e[166] = 9;
    EncodeFixed32(e.data() + e.size() - 4, crc32c::Value(e.data(), e.size() - 4));
    EXPECT_TRUE(DecodeHeader(e, "seg", nullptr).status().IsNotSupported());
  }
  std::string node = Encode(OneExtentLeaf(0, 1, 1, 100, 9), 1, 100);
  node[4] = 2;
  FixNodeCrc(&node);
  auto d = DecodeNode(node, {1, 0, static_cast<uint32_t>(node.size())}, "node");
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(d.status().IsNotSupported()) << d.status().ToString();
  EXPECT_NE(d.status().message().find("(this build reads 3"), std::string::npos);
}

TEST(FormatHostile, ExtentsPastTheMaximumFileSizeAreCorrupt) {
  const NodeRef ref{9, 0, 0};
  auto decode = [&](const NodeData& n) { return DecodeNode(Encode(n, 9, 1000), ref, "seg/x"); };
  // The largest extent anywhere in the block space is fine for the decoder.
  EXPECT_TRUE(decode(OneExtentLeaf(0, 0xFFFFFFFFu, 3, 0, 1)).ok());
  // Past 2^60 bytes at the smallest block size: Corrupt, naming the object
  // and the entry (after the header, base segment, epoch table).
  for (uint64_t start : {kMaxBlocksAnySize - 10, kMaxBlocksAnySize, ~uint64_t{0} - 5}) {
    auto d = decode(OneExtentLeaf(start, 0xFFFFFFFFu, 3, 0, 1));
    ASSERT_FALSE(d.ok()) << start;
    EXPECT_TRUE(d.status().IsCorrupt());
    EXPECT_NE(d.status().message().find("seg/x at offset 38"), std::string::npos)
        << d.status().ToString();
  }
  // A count of 2^32 (patch the head of a count of 2^32 - 1; same length).
  std::string big = Encode(OneExtentLeaf(0, 0xFFFFFFFFu, 3, 0, 1), 9, 1000);
  ASSERT_EQ(static_cast<uint8_t>(big[38]), 0xf8);
  big[38] = static_cast<char>(0xfc);
  FixNodeCrc(&big);
  EXPECT_TRUE(DecodeNode(big, ref, "seg/x").status().IsCorrupt());
  // A data offset that overflows with count * stored block size.
  EXPECT_FALSE(decode(OneExtentLeaf(0, 0xFFFFFFFFu, 3, ~uint64_t{0} - 100, 1)).ok());
  // Relative to the data area, too.
  EXPECT_FALSE(DecodeNode(Encode(OneExtentLeaf(0, 0xFFFFFFFFu, 9, kInDataObject - (1ull << 50), 1),
                                 9, kInDataObject - (1ull << 51)),
                          ref, "seg/x")
                   .ok());
  // An interior key past the block space.
  NodeData in;
  in.level = 1;
  in.children.push_back({kMaxBlocksAnySize, {9, 100, 56}, 1});
  EXPECT_FALSE(DecodeNode(Encode(in, 9, 1000), ref, "seg/x").ok());
  // A child of this segment reaching into the data area.
  in.children[0] = {0, {9, 1000 - 56, 56}, 1};
  EXPECT_TRUE(DecodeNode(Encode(in, 9, 1000), ref, "seg/x").ok());
  in.children[0] = {0, {9, 1000 - 55, 56}, 1};
  EXPECT_FALSE(DecodeNode(Encode(in, 9, 1000), ref, "seg/x").ok());
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
  for (const char* bad :
       {"dat/fffffffffffffffa", "dat/fffffffffffffffa-abcdef012345678",
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
  std::string enc = Encode(n, 7, 1000);
  auto d = DecodeNode(enc, {7, 0, static_cast<uint32_t>(enc.size())}, "node");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(d->extents[0].in_data_object());
  EXPECT_EQ(d->extents[0].object_offset(), 8200u);
  // An offset whose end would pass 2^63 is out of range, flagged or not.
  for (uint64_t flag : {uint64_t{0}, kInDataObject}) {
    std::string bad = Encode(OneExtentLeaf(10, 3, 5, flag | (kInDataObject - 4096), 9), 7, 1000);
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
