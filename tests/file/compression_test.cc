// SPDX-License-Identifier: Apache-2.0
// Compressed files end to end: frames are read with one GET each, checked
// before use and bound to their place; codecs can change between writes;
// every reader (caches, verify, clone, restore, compaction) works on them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "format/frame.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/gc.h"
#include "hyperfile/store_layers.h"
#include "support/codecs.h"
#include "support/extents.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

constexpr uint32_t kBlock = 64 * 1024;

// Compressible, and different per seed.
std::string Text(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  static const char* words[] = {"alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta "};
  std::string s;
  while (s.size() < n) s += words[rng() % 6] + std::to_string(rng() % 1000) + " ";
  s.resize(n);
  return s;
}

std::string Random(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

OpenOptions ReadOnlyOptions() {
  OpenOptions o;
  o.read_only = true;
  return o;
}

std::string ReadAll(File* f, Status* st = nullptr) {
  std::string out(f->Size(), '\0');
  auto n = f->PRead(0, out.data(), out.size());
  if (st) *st = n.ok() ? Status::OK() : n.status();
  return n.ok() ? out : std::string();
}

// The head's extents, from its index.
std::vector<format::ExtentEntry> Extents(std::shared_ptr<ObjectStore> store) {
  return testing::IndexExtents(std::move(store));
}

std::shared_ptr<ObjectStore> WriteBlocks(const std::vector<std::string>& blocks,
                                         Compression codec) {
  auto store = NewMemoryStore("frames");
  CreateOptions co;
  co.compression = codec;
  auto f = File::Create(store, co).value();
  for (size_t i = 0; i < blocks.size(); i++) {
    EXPECT_TRUE(f->PWrite(i * kBlock, blocks[i].data(), blocks[i].size()).ok());
  }
  EXPECT_TRUE(f->Close().ok());
  return store;
}

class Compressed : public testing::CodecTest {
 protected:
  bool framed() const { return GetParam().codec != Codec::kNone; }
};
HF_INSTANTIATE_CODECS(Compressed);

TEST_P(Compressed, StoredBytesShrinkForTextAndStayRawForRandomData) {
  std::vector<std::string> blocks;
  for (int i = 0; i < 8; i++) blocks.push_back(Text(kBlock, i));
  for (int i = 0; i < 8; i++) blocks.push_back(Random(kBlock, i));
  auto store = WriteBlocks(blocks, GetParam());
  auto use = MeasureStorage(store, At::Latest()).value();
  EXPECT_EQ(use.logical_bytes, 16u * kBlock);
  EXPECT_EQ(use.compression, GetParam());
  uint64_t random_stored = 0;
  for (const auto& e : Extents(store)) {
    if (e.start >= 8) random_stored += format::ExtentStoredBytes(e, kBlock);
  }
  if (framed()) {
    EXPECT_EQ(use.framed_blocks, 16u);
    EXPECT_LT(use.stored_bytes - random_stored, 8u * kBlock / 2);      // text: < half
    EXPECT_EQ(random_stored, 8u * (kBlock + format::kFrameOverhead));  // raw: 12 bytes more
  } else {
    EXPECT_EQ(use.framed_blocks, 0u);
    EXPECT_EQ(use.stored_bytes, 16u * format::StoredBlockSize(kBlock));
  }
  auto f = File::Open(store).value();
  std::string all;
  for (auto& b : blocks) all += b;
  EXPECT_TRUE(ReadAll(f.get()) == all);
  EXPECT_EQ(f->Stat()->compression, GetParam());
}

// A cold random 4 KiB read: one data GET of at most one frame, and at most
// one index GET; opening stays at two requests.
TEST_P(Compressed, RandomFourKiBReadIsOneGetOfOneFrame) {
  auto base = NewMemoryStore("cost");
  {
    CreateOptions co = Co(kBlock);
    auto f = File::Create(base, co).value();
    std::string data = Text(32 << 20, 9);  // 512 blocks, several flushes
    for (uint64_t off = 0; off < data.size(); off += 4 << 20) {
      ASSERT_TRUE(f->PWrite(off, data.data() + off, 4 << 20).ok());
      ASSERT_TRUE(f->Flush().ok());
    }
    ASSERT_TRUE(f->Close().ok());
  }
  auto metrics = std::make_shared<MetricsStore>(base);
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 20; trial++) {
    metrics->Reset();
    auto f = File::Open(metrics, ReadOnlyOptions()).value();
    EXPECT_LE(metrics->Snapshot().total_requests(), 2u);
    metrics->Reset();
    uint64_t off = (rng() % ((32 << 20) / 4096)) * 4096;
    char buf[4096];
    ASSERT_EQ(f->PRead(off, buf, sizeof buf).value(), sizeof buf);
    auto snap = metrics->Snapshot();
    EXPECT_LE(snap.count(StoreVerb::kGet), 2u) << "offset " << off;
    if (framed()) {
      // The data GET is one frame: at most a block and its 12 bytes.
      EXPECT_LE(snap.bytes_in, uint64_t{kBlock} + format::kFrameOverhead + 8192);
    }
  }
}

// Two equal-length frames swapped in the segment: each fails its check (the
// CRC binds a frame to its block's logical offset), never returns the other
// block's bytes.
TEST_P(Compressed, SwappedFlippedAndTruncatedFramesAreCorrupt) {
  if (!framed()) GTEST_SKIP() << "the chunk form has its own corruption tests";
  std::string a = Text(kBlock, 5), b = a;
  b[100] = a[100] == 'x' ? 'y' : 'x';
  auto store = WriteBlocks({a, b}, GetParam());
  auto ext = Extents(store);
  ASSERT_EQ(ext.size(), 2u);
  ASSERT_TRUE(ext[0].framed() && ext[1].framed());
  ASSERT_EQ(ext[1].offset, ext[0].offset + ext[0].stored_length);
  const std::string key = format::SegmentKey(ext[0].segment);
  std::string pristine;
  ASSERT_TRUE(store->Get(key, &pristine).ok());
  auto expect_corrupt = [&](const std::string& damaged, const char* what) {
    ASSERT_TRUE(store->Put(key, damaged).ok());
    auto f = File::Open(store, ReadOnlyOptions());
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    Status st;
    ReadAll(f->get(), &st);
    EXPECT_TRUE(st.IsCorrupt()) << what << ": " << st.ToString();
    EXPECT_NE(st.message().find(key), std::string::npos) << st.ToString();
    auto v = Verify(store, At::Latest(), true);
    ASSERT_TRUE(v.ok());
    EXPECT_FALSE(v->ok()) << what;
  };
  const size_t len = ext[0].stored_length;
  const size_t len1 = ext[1].stored_length;
  std::string swapped = pristine;
  swapped.replace(ext[0].offset, len + len1,
                  pristine.substr(ext[1].offset, len1) + pristine.substr(ext[0].offset, len));
  expect_corrupt(swapped, "swapped frames");
  // Each frame alone in the other's place (the index lengths fit): the CRC
  // binds it to its block, so both reads fail.
  if (len == len1) {
    std::string exchanged = pristine;
    exchanged.replace(ext[0].offset, len, pristine, ext[1].offset, len);
    expect_corrupt(exchanged, "frame of block 1 at block 0");
  }
  for (size_t at :
       {ext[0].offset, ext[0].offset + 4, ext[0].offset + 20, ext[1].offset + len - 1}) {
    std::string flipped = pristine;
    flipped[at] ^= 0x01;
    expect_corrupt(flipped, "flipped bit");
  }
  // A truncated segment: the last frame is cut short (the size check at open
  // may catch it first when the store reports the size).
  ASSERT_TRUE(store->Put(key, pristine.substr(0, pristine.size() - 7)).ok());
  auto f = File::Open(store, ReadOnlyOptions());
  if (f.ok()) {
    Status st;
    ReadAll(f->get(), &st);
    EXPECT_TRUE(st.IsCorrupt()) << st.ToString();
  } else {
    EXPECT_TRUE(f.status().IsCorrupt()) << f.status().ToString();
  }
  ASSERT_TRUE(store->Put(key, pristine).ok());
  auto v = Verify(store, At::Latest(), true);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());
  EXPECT_EQ(v->blocks_checked, 2u);
}

// Large flushes go to a data object: frames there read the same way.
TEST_P(Compressed, DataObjectFramesAndDiskCacheReadBack) {
  auto store = NewMemoryStore("big");
  std::string data = Random(4 << 20, 1) + Text(4 << 20, 2);
  {
    auto f = File::Create(store, Co()).value();
    ASSERT_TRUE(f->PWrite(0, data.data(), data.size()).ok());
    ASSERT_TRUE(f->Close().ok());
  }
  bool in_object = false;
  for (const auto& e : Extents(store)) in_object |= e.in_data_object();
  EXPECT_TRUE(in_object);
  std::string dir = "/tmp/hfcodec-cache." + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  for (int round = 0; round < 2; round++) {  // cold, then from the disk tier
    OpenOptions oo = ReadOnlyOptions();
    oo.disk_cache_dir = dir;
    oo.disk_cache_bytes = 64 << 20;
    oo.block_cache_bytes = 0;
    auto metrics = std::make_shared<MetricsStore>(store);
    auto f = File::Open(metrics, oo).value();
    EXPECT_TRUE(ReadAll(f.get()) == data) << "round " << round;
    if (round == 1) {
      EXPECT_LE(metrics->Snapshot().count(StoreVerb::kGet), 1u);
    }
  }
  std::filesystem::remove_all(dir);
  auto v = Verify(store, At::Latest(), true);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok()) << (v->problems.empty() ? "" : v->problems[0]);
}

// The codec changes for new writes; old blocks keep theirs; a disk cache
// shared by both forms never mixes them up.
TEST_P(Compressed, CodecChangesForNewWritesAndOldBlocksStillRead) {
  auto store = NewMemoryStore("switch");
  std::string one = Text(kBlock, 1), two = Text(kBlock, 2), three = Text(kBlock, 3);
  {
    CreateOptions co;
    co.compression = {Codec::kNone, 0};
    auto f = File::Create(store, co).value();
    ASSERT_TRUE(f->PWrite(0, one.data(), one.size()).ok());
    ASSERT_TRUE(f->Close().ok());
  }
  {
    OpenOptions oo;
    oo.compression = GetParam();
    auto f = File::Open(store, oo).value();
    EXPECT_EQ(f->Stat()->compression, GetParam());
    ASSERT_TRUE(f->PWrite(kBlock, two.data(), two.size()).ok());
    ASSERT_TRUE(f->Close().ok());
  }
  {
    auto f = File::Open(store).value();  // keeps the head's codec
    EXPECT_EQ(f->Stat()->compression, GetParam());
    ASSERT_TRUE(f->PWrite(2 * kBlock, three.data(), three.size()).ok());
    ASSERT_TRUE(f->Close().ok());
  }
  auto ext = Extents(store);
  ASSERT_EQ(ext.size(), 3u);
  EXPECT_FALSE(ext[0].framed());
  EXPECT_EQ(ext[1].framed(), framed());
  EXPECT_EQ(ext[2].framed(), framed());
  std::string dir = "/tmp/hfcodec-switch." + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  for (int round = 0; round < 2; round++) {
    OpenOptions oo = ReadOnlyOptions();
    oo.disk_cache_dir = dir;
    oo.disk_cache_bytes = 64 << 20;
    auto f = File::Open(store, oo).value();
    EXPECT_TRUE(ReadAll(f.get()) == one + two + three);
    // Unaligned reads across the two forms.
    std::string part(kBlock, '\0');
    ASSERT_EQ(f->PRead(kBlock / 2, part.data(), part.size()).value(), part.size());
    EXPECT_TRUE(part == one.substr(kBlock / 2) + two.substr(0, kBlock / 2));
  }
  std::filesystem::remove_all(dir);
}

// Clone (origin frames) and restore on a compressed file.
TEST_P(Compressed, CloneAndRestoreKeepTheContent) {
  auto store = NewMemoryStore("origin");
  std::string v1 = Text(8 * kBlock, 1), v2 = Text(8 * kBlock, 2);
  uint64_t first = 0;
  {
    auto f = File::Create(store, Co()).value();
    ASSERT_TRUE(f->PWrite(0, v1.data(), v1.size()).ok());
    first = f->Flush().value();
    ASSERT_TRUE(f->PWrite(0, v2.data(), v2.size() / 2).ok());
    ASSERT_TRUE(f->Close().ok());
  }
  std::string head = v2.substr(0, v2.size() / 2) + v1.substr(v1.size() / 2);
  auto dest = NewMemoryStore("clone");
  OpenOptions resolve;
  resolve.store_resolver = [&](const std::string&) -> Result<std::shared_ptr<ObjectStore>> {
    return store;
  };
  ASSERT_TRUE(Clone(store, At::Checkpoint(first), dest).ok());
  {
    auto c = File::Open(dest, resolve).value();
    EXPECT_TRUE(ReadAll(c.get()) == v1);
  }
  ASSERT_TRUE(Restore(store, At::Checkpoint(first)).ok());
  {
    auto f = File::Open(store).value();
    EXPECT_TRUE(ReadAll(f.get()) == v1);
    ASSERT_TRUE(f->PWrite(0, v2.data(), v2.size() / 2).ok());
    ASSERT_TRUE(f->Close().ok());
  }
  auto f = File::Open(store, ReadOnlyOptions()).value();
  EXPECT_TRUE(ReadAll(f.get()) == head);
  auto v = Verify(store, At::Latest(), true);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());
}

TEST(Compression, OptionsAreCheckedAndParsed) {
  auto store = NewMemoryStore("opts");
  CreateOptions co;
  co.compression = {Codec::kZstd, 0};
  EXPECT_TRUE(File::Create(store, co).status().IsInvalidArgument());
  co.compression = {Codec::kZstd, 20};
  EXPECT_TRUE(File::Create(store, co).status().IsInvalidArgument());
  co.compression = {Codec::kLz4, 3};
  EXPECT_TRUE(File::Create(store, co).status().IsInvalidArgument());
  co.compression = {static_cast<Codec>(7), 0};
  EXPECT_TRUE(File::Create(store, co).status().IsInvalidArgument());
  EXPECT_EQ(CreateOptions{}.compression, (Compression{Codec::kZstd, 1}));
  EXPECT_EQ(ParseCompression("zstd:3").value(), (Compression{Codec::kZstd, 3}));
  EXPECT_EQ(ParseCompression("zstd").value(), (Compression{Codec::kZstd, 1}));
  EXPECT_EQ(ParseCompression("lz4").value(), (Compression{Codec::kLz4, 0}));
  EXPECT_EQ(ParseCompression("none").value(), (Compression{Codec::kNone, 0}));
  for (const char* bad : {"", "zstd:", "zstd:0", "zstd:20", "zstd:1x", "gzip", "lz4:1", "ZSTD"}) {
    EXPECT_TRUE(ParseCompression(bad).status().IsInvalidArgument()) << bad;
  }
  EXPECT_EQ(CompressionName({Codec::kZstd, 3}), "zstd:3");
  OpenOptions oo;
  oo.compression = Compression{Codec::kZstd, 99};
  ASSERT_TRUE(File::Create(store, CreateOptions{}).ok());
  EXPECT_TRUE(File::Open(store, oo).status().IsInvalidArgument());
}

}  // namespace
}  // namespace hyperfile
