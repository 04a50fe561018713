// SPDX-License-Identifier: Apache-2.0
// Frames (docs/format.md "Frames") and the version 4 leaf entry that points
// at them.
#include "format/frame.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "format/format.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace hyperfile::format {
namespace {

constexpr uint32_t kBlock = 64 * 1024;

std::string Text(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  static const char* words[] = {"block ", "frame ", "segment ", "index ", "zstd ", "lz4 "};
  std::string s;
  while (s.size() < n) s += words[rng() % 6];
  s.resize(n);
  return s;
}

std::string Random(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(Frame, EachCodecRoundTripsAndCompressibleDataShrinks) {
  const std::string block = Text(kBlock, 1);
  for (uint8_t codec : {kFrameRaw, kFrameLz4, kFrameZstd}) {
    std::string frame;
    uint32_t n = EncodeFrame(codec, 3, block, 5 * kBlock, &frame);
    ASSERT_EQ(n, frame.size());
    EXPECT_EQ(FrameCodec(frame), codec);
    if (codec == kFrameRaw) {
      EXPECT_EQ(n, kBlock + kFrameOverhead);
    } else {
      EXPECT_LT(n, kBlock / 2) << "codec " << int{codec};
    }
    std::string back(kBlock, '\0');
    ASSERT_TRUE(DecodeFrame(frame, 5 * kBlock, kBlock, back.data(), "obj at offset 0").ok());
    EXPECT_EQ(back, block);
  }
}

TEST(Frame, IncompressibleBlocksAreStoredRawWithTwelveBytesOverhead) {
  const std::string block = Random(kBlock, 2);
  for (uint8_t codec : {kFrameLz4, kFrameZstd}) {
    std::string frame;
    EXPECT_EQ(EncodeFrame(codec, 1, block, 0, &frame), kBlock + kFrameOverhead);
    EXPECT_EQ(FrameCodec(frame), kFrameRaw);
    std::string back(kBlock, '\0');
    ASSERT_TRUE(DecodeFrame(frame, 0, kBlock, back.data(), "x").ok());
    EXPECT_EQ(back, block);
  }
}

// A stand-in sealer (no cryptography: [24 zero bytes][plain][16 zero
// bytes]) that records what each Seal call was given.
class RecordingSealer final : public Sealer {
 public:
  uint8_t cipher() const override { return kCipherXChaCha20Poly1305; }
  void Seal(const SealPlace& place, std::string_view header, std::string_view plain,
            std::string* out) const override {
    calls.push_back({place.offset, std::string(header), plain.data(), plain.size()});
    out->append(24, '\0');
    out->append(plain);
    out->append(16, '\0');
  }
  Status Open(const SealPlace&, std::string_view, std::string_view sealed, std::string* out,
              std::string_view where) const override {
    if (sealed.size() < kSealBytes) return Status::Corrupt(std::string(where) + ": short");
    out->assign(sealed.substr(24, sealed.size() - kSealBytes));
    return Status::OK();
  }
  struct Call {
    uint64_t offset;
    std::string header;
    const char* plain;
    size_t plain_size;
  };
  mutable std::vector<Call> calls;
};

// Issue 12 (encrypted writes): a sealed raw frame is sealed straight from
// the caller's block, not from a copy (an unsealed frame was built first,
// which cost a copy and a CRC of every block); a compressed one seals the
// codec's output. Either way the frame is [header][sealed payload][crc] and
// decodes to the block.
TEST(FrameSealed, RawBlocksAreSealedInPlaceAndEveryCodecRoundTrips) {
  RecordingSealer sealer;
  FrameSeal seal{&sealer, {}};
  seal.place.checkpoint = 9;
  const std::string text = Text(kBlock, 3), noise = Random(kBlock, 4);
  struct Case {
    uint8_t codec;
    const std::string* block;
    uint8_t stored_as;
  };
  for (const Case& c : {Case{kFrameRaw, &text, kFrameRaw}, Case{kFrameZstd, &noise, kFrameRaw},
                        Case{kFrameLz4, &noise, kFrameRaw}, Case{kFrameZstd, &text, kFrameZstd},
                        Case{kFrameLz4, &text, kFrameLz4}}) {
    SCOPED_TRACE("codec " + std::to_string(c.codec) + " stored as " + std::to_string(c.stored_as));
    sealer.calls.clear();
    std::string frame = "prefix";
    const uint32_t n = EncodeFrame(c.codec, 1, *c.block, 3 * kBlock, &frame, &seal);
    ASSERT_EQ(n + 6, frame.size());
    const std::string_view f = std::string_view(frame).substr(6);
    ASSERT_EQ(sealer.calls.size(), 1u);
    const RecordingSealer::Call& call = sealer.calls[0];
    EXPECT_EQ(call.offset, 3 * kBlock);
    EXPECT_EQ(call.header, f.substr(0, kFrameHeaderBytes));
    EXPECT_EQ(FrameCodec(f), c.stored_as);
    EXPECT_EQ(uint8_t(f[1]), kFrameFlagSealed);
    EXPECT_EQ(DecodeFixed32(f.data() + 4), kBlock);
    EXPECT_EQ(n, kFrameOverhead + kSealBytes + call.plain_size);
    if (c.stored_as == kFrameRaw) {
      EXPECT_EQ(call.plain, c.block->data()) << "a raw block is sealed from a copy";
      EXPECT_EQ(call.plain_size, kBlock);
    } else {
      EXPECT_LT(call.plain_size, kBlock / 2);
    }
    char at[8];
    EncodeFixed64(at, 3 * kBlock);
    EXPECT_EQ(DecodeFixed32(f.data() + n - 4),
              crc32c::Extend(crc32c::Value(f.data(), n - 4), at, 8));
    std::string back(kBlock, '\0');
    ASSERT_TRUE(DecodeFrame(f, 3 * kBlock, kBlock, back.data(), "x", &seal).ok());
    EXPECT_EQ(back, *c.block);
  }
}

TEST(Frame, HeaderIsByteExact) {
  std::string frame;
  const std::string block = Text(4096, 3);
  uint32_t n = EncodeFrame(kFrameZstd, 1, block, 12288, &frame);
  EXPECT_EQ(frame[0], kFrameZstd);
  EXPECT_EQ(frame[1], 0);
  EXPECT_EQ(frame[2], 0);
  EXPECT_EQ(frame[3], 0);
  EXPECT_EQ(DecodeFixed32(frame.data() + 4), 4096u);
  char off[8];
  EncodeFixed64(off, 12288);
  EXPECT_EQ(DecodeFixed32(frame.data() + n - 4),
            crc32c::Extend(crc32c::Value(frame.data(), n - 4), off, 8));
}

// Every way a frame can be wrong is Corrupt (or NotSupported for a sealed
// one) naming the place, never data.
TEST(FrameHostile, FlippedTruncatedMisplacedAndLyingFramesFail) {
  const std::string block = Text(kBlock, 4);
  std::string good;
  EncodeFrame(kFrameZstd, 1, block, kBlock, &good);
  std::string out(kBlock, '\0');
  auto expect_corrupt = [&](const std::string& frame, uint64_t logical, const char* what) {
    Status st = DecodeFrame(frame, logical, kBlock, out.data(), "s3://b/f/seg/x at offset 9");
    EXPECT_TRUE(st.IsCorrupt()) << what << ": " << st.ToString();
    EXPECT_NE(st.message().find("seg/x at offset 9"), std::string::npos) << what;
  };
  for (size_t i = 0; i < good.size(); i += 97) {
    std::string bad = good;
    bad[i] ^= 0x10;
    expect_corrupt(bad, kBlock, "flipped bit");
  }
  expect_corrupt(good, 2 * kBlock, "served for another block");
  for (size_t n : {size_t{0}, size_t{5}, size_t{11}, good.size() / 2, good.size() - 1}) {
    expect_corrupt(good.substr(0, n), kBlock, "truncated");
  }
  expect_corrupt(good + "x", kBlock, "trailing byte");
  // Lies with a valid CRC: wrong, huge and zero declared lengths, unknown
  // codec, a payload that decodes to the wrong size.
  auto resealed = [&](std::string f) {
    char off[8];
    EncodeFixed64(off, kBlock);
    EncodeFixed32(f.data() + f.size() - 4,
                  crc32c::Extend(crc32c::Value(f.data(), f.size() - 4), off, 8));
    return f;
  };
  for (uint32_t declared : {0u, kBlock / 2, kBlock + 1, 0xFFFFFFFFu}) {
    std::string bad = good;
    EncodeFixed32(bad.data() + 4, declared);
    expect_corrupt(resealed(bad), kBlock, "declared length");
  }
  {
    std::string bad = good;
    bad[0] = 9;
    expect_corrupt(resealed(bad), kBlock, "unknown codec");
    bad = good;
    bad[2] = 1;
    expect_corrupt(resealed(bad), kBlock, "reserved");
    bad = good;
    bad[0] = kFrameLz4;  // a zstd payload read as lz4
    expect_corrupt(resealed(bad), kBlock, "wrong codec");
    bad = good;
    bad[0] = kFrameRaw;  // raw must be exactly the block
    expect_corrupt(resealed(bad), kBlock, "short raw");
  }
  {
    // A zstd frame whose content is a smaller block, declared as a full one.
    std::string small;
    EncodeFrame(kFrameZstd, 1, block.substr(0, 4096), kBlock, &small);
    EncodeFixed32(small.data() + 4, kBlock);
    expect_corrupt(resealed(small), kBlock, "decodes short");
  }
  {
    std::string sealed = good;
    sealed[1] = kFrameFlagSealed;
    // A sealed frame decoded without a key: Auth, never the sealed bytes.
    Status st = DecodeFrame(resealed(sealed), kBlock, kBlock, out.data(), "x");
    EXPECT_TRUE(st.IsAuth()) << st.ToString();
    EXPECT_NE(st.message().find("no key"), std::string::npos) << st.ToString();
  }
  // A frame longer than any block's bound is refused before its CRC.
  std::string huge(MaxFrameBytes(kBlock) + 1, 'x');
  expect_corrupt(huge, kBlock, "too long");
}

TEST(FramedNodes, VersionFourOnlyWithFramedExtentsAndRoundTrips) {
  NodeData leaf;
  leaf.extents.push_back({0, 3, 5, 1000, 7});         // chunk form
  leaf.extents.push_back({10, 1, 6, 2000, 8, 1234});  // framed, own segment
  leaf.extents.push_back({11, 1, 6, 3234, 8, 99});    // the next frame
  leaf.extents.push_back({12, 1, 4, kInDataObject | 77, 9, 4000});
  std::string enc;
  ASSERT_TRUE(EncodeNode(leaf, 6, 500, &enc).ok());
  EXPECT_EQ(static_cast<uint8_t>(enc[4]), kFramedNodeVersion);
  EXPECT_EQ(enc.size(), EncodedNodeSize(leaf, 6, 500));
  auto back = DecodeNode(enc, {6, 0, static_cast<uint32_t>(enc.size())}, "n");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->extents.size(), 4u);
  for (size_t i = 0; i < 4; i++) {
    EXPECT_EQ(back->extents[i].offset, leaf.extents[i].offset) << i;
    EXPECT_EQ(back->extents[i].stored_length, leaf.extents[i].stored_length) << i;
    EXPECT_EQ(back->extents[i].count, leaf.extents[i].count) << i;
  }
  // Without framed extents the node is version 3, byte for byte as before.
  NodeData plain;
  plain.extents.push_back(leaf.extents[0]);
  std::string old;
  ASSERT_TRUE(EncodeNode(plain, 6, 500, &old).ok());
  EXPECT_EQ(static_cast<uint8_t>(old[4]), kFormatVersion);
  // A framed extent of several blocks cannot be written.
  NodeData multi;
  multi.extents.push_back({0, 2, 5, 1000, 7, 100});
  std::string refused;
  EXPECT_TRUE(EncodeNode(multi, 6, 500, &refused).IsInvalidArgument());
}

TEST(FramedNodes, HostileFramedEntriesAreCorrupt) {
  auto reencode = [](std::string enc) {
    EncodeFixed32(enc.data() + enc.size() - 4, crc32c::Value(enc.data(), enc.size() - 4));
    return enc;
  };
  // A version 4 node without a framed extent is not canonical.
  NodeData plain;
  plain.extents.push_back({0, 1, 5, 1000, 7});
  std::string enc;
  ASSERT_TRUE(EncodeNode(plain, 6, 0, &enc).ok());
  std::string v4 = enc;
  v4[4] = static_cast<char>(kFramedNodeVersion);
  v4.insert(v4.size() - 4, 1, '\0');  // a stored length of 0
  EncodeFixed32(v4.data() + 8, static_cast<uint32_t>(v4.size()));
  auto d = DecodeNode(reencode(v4), {6, 0, static_cast<uint32_t>(v4.size())}, "n");
  EXPECT_TRUE(d.status().IsCorrupt()) << d.status().ToString();
  // Stored lengths below a frame's overhead or above the largest frame.
  for (uint64_t len : {uint64_t{1}, uint64_t{11}, uint64_t{MaxFrameBytes(1u << 22)} + 1}) {
    NodeData leaf;
    leaf.extents.push_back({0, 1, 5, 1000, 7, 12});
    std::string e;
    ASSERT_TRUE(EncodeNode(leaf, 6, 0, &e).ok());
    // The stored length is the last varint before the CRC: rewrite it.
    std::string body = e.substr(0, e.size() - 5);
    PutVarint64(&body, len);
    body.append(4, '\0');
    EncodeFixed32(body.data() + 8, static_cast<uint32_t>(body.size()));
    auto r = DecodeNode(reencode(body), {6, 0, static_cast<uint32_t>(body.size())}, "n");
    EXPECT_TRUE(r.status().IsCorrupt()) << len << ": " << r.status().ToString();
  }
}

TEST(FramedHeader, CodecBytesRoundTripAndUnknownCodecIsNotSupported) {
  SegmentHeader h;
  h.self.id = 1;
  h.first_id = 1;
  h.codec = kFrameZstd;
  h.codec_level = 3;
  h.node_area_offset = h.data_area_offset = EncodedHeaderSize(h);
  std::string enc = EncodeHeader(h);
  EXPECT_EQ(enc[38], 2);
  EXPECT_EQ(enc[39], 3);
  auto back = DecodeHeader(enc, "h", nullptr);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->codec, 2);
  EXPECT_EQ(back->codec_level, 3);
  enc[38] = 7;
  EncodeFixed32(enc.data() + enc.size() - 4, crc32c::Value(enc.data(), enc.size() - 4));
  EXPECT_TRUE(DecodeHeader(enc, "h", nullptr).status().IsNotSupported());
}

}  // namespace
}  // namespace hyperfile::format
