// SPDX-License-Identifier: Apache-2.0
// ChunkReader::ReadFrames decodes the frames of one GET in parallel: every
// frame lands in its own place whichever thread decodes it (the reader, a
// helper that runs at once, helpers that come late, a real pool), and a
// damaged frame in the run is a clear error naming its object and offset.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "file/file_impl.h"
#include "file/sealing.h"
#include "file/segment_io.h"
#include "format/frame.h"
#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"
#include "support/codecs.h"
#include "support/store_testing.h"
#include "util/thread_pool.h"

namespace hyperfile {
namespace {

constexpr uint32_t kBlock = 64 * 1024;
constexpr size_t kBlocks = 24;

// Blocks whose frames differ in size: text of varying repetitiveness (short
// frames), random bytes (raw frames), half zeros.
std::string Block(size_t i) {
  std::mt19937_64 rng(i + 1);
  std::string s(kBlock, '\0');
  switch (i % 3) {
    case 0:  // compressible, more so for larger i
      for (size_t p = 0; p < s.size(); p++) {
        s[p] = static_cast<char>('a' + (rng() % (2 + i)) % 26);
      }
      break;
    case 1:  // incompressible
      for (auto& c : s) c = static_cast<char>(rng());
      break;
    default:  // half zeros
      for (size_t p = 0; p < s.size() / 2; p++) s[p] = static_cast<char>(rng());
      break;
  }
  return s;
}

// How the reader's decode helpers run.
enum class Helpers {
  kNone,     // the reader decodes every frame
  kAtOnce,   // a helper runs inside the spawn call: it decodes every frame
  kLate,     // helpers run only after ReadFrames returned: they find nothing
  kThreads,  // three helpers on a real pool
};

class FrameDecode : public testing::DataPathTest {
 protected:
  void SetUp() override {
    if (GetParam().codec == Codec::kNone && !GetParam().key) GTEST_SKIP() << "not framed";
    store_ = NewMemoryStore("frames");
    {
      auto f = File::Create(store_, Co(kBlock), Oo()).value();
      for (size_t i = 0; i < kBlocks; i++) {
        expect_ += Block(i);
      }
      ASSERT_TRUE(f->PWrite(0, expect_.data(), expect_.size()).ok());
      ASSERT_TRUE(f->Close().ok());
    }
    auto id = file::LatestCheckpointId(store_.get()).value();
    header_ = file::ReadHeader(store_.get(), id).value().header;
    counting_ = std::make_shared<MetricsStore>(store_);
    lineage_ = std::make_unique<file::Lineage>(counting_, header_.origins, nullptr);
    auto sealer = file::UnlockFile(lineage_.get(), header_, GetParam().key.get());
    ASSERT_TRUE(sealer.ok()) << sealer.status().ToString();
    lineage_->SetSealer(*sealer);
    file::NodeLoader nodes(lineage_.get(), 1 << 20);
    index::Tree tree(&nodes, kBlock);
    index::TreeRoot root;
    root.ref = header_.self.root;
    root.height = header_.self.height;
    ASSERT_TRUE(tree.Visit(root, 0, ~uint64_t{0},
                           [&](const format::ExtentEntry& e) {
                             frames_.push_back(e);
                             return Status::OK();
                           })
                    .ok());
    ASSERT_EQ(frames_.size(), kBlocks);
    std::set<uint32_t> sizes;
    for (size_t i = 0; i < frames_.size(); i++) {
      ASSERT_TRUE(frames_[i].framed());
      if (i > 0) {
        ASSERT_TRUE(file::FrameContinues(frames_[i - 1], frames_[i]));
      }
      sizes.insert(frames_[i].stored_length);
    }
    // Compressed: frames of different sizes (sealed raw frames are all one
    // size; their blocks still differ).
    if (GetParam().codec != Codec::kNone) {
      EXPECT_GE(sizes.size(), 3u);
    }
    const format::ExtentEntry& f = frames_[0];
    key_ = f.in_data_object() ? format::DataObjectKey(f.segment, f.epoch)
                              : format::SegmentKey(f.segment);
  }

  std::unique_ptr<file::ChunkReader> Reader(Helpers helpers) {
    auto reader = std::make_unique<file::ChunkReader>(lineage_.get(), kBlock, 64 << 20);
    switch (helpers) {
      case Helpers::kNone:
        break;
      case Helpers::kAtOnce:
        reader->SetDecodeHelpers([](std::function<void()> fn) { fn(); }, 1);
        break;
      case Helpers::kLate:
        reader->SetDecodeHelpers([this](std::function<void()> fn) { late_.push_back(fn); }, 4);
        break;
      case Helpers::kThreads:
        reader->SetDecodeHelpers(
            [this](std::function<void()> fn) { (void)pool_.Submit(std::move(fn)); }, 3);
        break;
    }
    return reader;
  }

  // Flips a byte inside frame i of the stored object.
  void Damage(size_t i) {
    std::string bytes;
    ASSERT_TRUE(store_->Get(key_, &bytes).ok());
    bytes[frames_[i].object_offset() + frames_[i].stored_length / 2] ^= 0x40;
    ASSERT_TRUE(store_->Put(key_, bytes).ok());
  }

  std::string Where(size_t i) const {
    return key_ + " at offset " + std::to_string(frames_[i].object_offset());
  }

  uint64_t Gets() const { return counting_->Snapshot().count(StoreVerb::kGet); }

  std::shared_ptr<ObjectStore> store_;
  std::shared_ptr<MetricsStore> counting_;  // what the readers' lineage reads through
  std::string expect_;
  format::SegmentHeader header_;
  std::unique_ptr<file::Lineage> lineage_;
  std::vector<format::ExtentEntry> frames_;
  std::string key_;
  std::vector<std::function<void()>> late_;
  ThreadPool pool_{3};
};
HF_INSTANTIATE_DATA_PATHS(FrameDecode);

TEST_P(FrameDecode, EveryFrameLandsInItsPlaceWhoeverDecodesIt) {
  for (Helpers h : {Helpers::kNone, Helpers::kAtOnce, Helpers::kLate, Helpers::kThreads}) {
    SCOPED_TRACE(static_cast<int>(h));
    auto reader = Reader(h);
    // From inside the first block to inside the last: partial blocks at
    // both ends, whole ones between, one GET.
    const uint64_t lo = 1000, hi = expect_.size() - 777;
    std::string got(hi - lo, '\xee');
    ASSERT_TRUE(reader->ReadFrames(frames_, lo, hi, got.data()).ok());
    EXPECT_TRUE(got == expect_.substr(lo, hi - lo));
    for (auto& fn : late_) fn();  // late helpers claim nothing, write nothing
    late_.clear();
    EXPECT_TRUE(got == expect_.substr(lo, hi - lo));
    // Every block was cached whole: the store is not asked again.
    EXPECT_EQ(reader->cached_bytes(), kBlocks * (kBlock + 96));
    std::string stored;
    ASSERT_TRUE(store_->Get(key_, &stored).ok());
    ASSERT_TRUE(store_->Delete(key_).ok());
    std::string again(kBlock * 3, '\0');
    Status st = reader->ReadFrames({frames_.data() + 5, 3}, 5 * kBlock, 8 * kBlock, again.data());
    ASSERT_TRUE(store_->Put(key_, stored).ok());
    ASSERT_TRUE(st.ok()) << st.ToString();
    EXPECT_TRUE(again == expect_.substr(5 * kBlock, 3 * kBlock));
  }
}

TEST_P(FrameDecode, ADamagedFrameInARunIsAnErrorNamingItNeverData) {
  Damage(7);
  Damage(13);
  for (Helpers h : {Helpers::kNone, Helpers::kAtOnce, Helpers::kLate, Helpers::kThreads}) {
    SCOPED_TRACE(static_cast<int>(h));
    auto reader = Reader(h);
    std::string got(expect_.size(), '\0');
    Status st = reader->ReadFrames(frames_, 0, expect_.size(), got.data());
    for (auto& fn : late_) fn();
    late_.clear();
    ASSERT_TRUE(st.IsCorrupt()) << st.ToString();
    // The first damaged frame in storage order, whichever failed first.
    EXPECT_NE(st.message().find(Where(7)), std::string::npos) << st.ToString();
    // Only the good frames were cached: a read of the damaged one fails
    // again, a read of a good one is its bytes.
    std::string one(kBlock, '\0');
    EXPECT_TRUE(
        reader->ReadFrames({&frames_[13], 1}, 13 * kBlock, 14 * kBlock, one.data()).IsCorrupt());
    ASSERT_TRUE(reader->ReadFrames({&frames_[12], 1}, 12 * kBlock, 13 * kBlock, one.data()).ok());
    EXPECT_TRUE(one == expect_.substr(12 * kBlock, kBlock));
  }
}

// Prefetch (compaction's read of a victim's scattered live blocks): the
// uncached frames of one object in one GET, gaps included, each checked and
// cached as a read would; later reads of them cost nothing.
TEST_P(FrameDecode, PrefetchFetchesScatteredFramesInOneGetAndCachesThem) {
  auto reader = Reader(Helpers::kThreads);
  const std::vector<size_t> want = {1, 4, 5, 9, 20};
  std::vector<format::ExtentEntry> pieces;
  for (size_t i : want) pieces.push_back(frames_[i]);
  const uint64_t before = Gets();  // (the fixture's unlocking read some)
  const uint64_t bytes_before = counting_->Snapshot().bytes_in;
  ASSERT_TRUE(reader->Prefetch(pieces).ok());
  EXPECT_EQ(Gets() - before, 1u);
  EXPECT_EQ(reader->cached_bytes(), want.size() * (kBlock + 96));
  // Again: all cached, no GET; a cached piece among uncached ones is not fetched again.
  ASSERT_TRUE(reader->Prefetch(pieces).ok());
  EXPECT_EQ(Gets() - before, 1u);
  std::vector<format::ExtentEntry> more = {frames_[4], frames_[6]};
  ASSERT_TRUE(reader->Prefetch(more).ok());
  EXPECT_EQ(Gets() - before, 2u);
  EXPECT_EQ(counting_->Snapshot().bytes_in - bytes_before,
            frames_[20].object_offset() + frames_[20].stored_length - frames_[1].object_offset() +
                frames_[6].stored_length);
  // Reads of what was prefetched are its bytes and cost no GET.
  for (size_t i : {1, 4, 5, 6, 9, 20}) {
    std::string one(kBlock, '\0');
    ASSERT_TRUE(
        reader->ReadFrames({&frames_[i], 1}, i * kBlock, (i + 1) * kBlock, one.data()).ok());
    EXPECT_TRUE(one == expect_.substr(i * kBlock, kBlock)) << i;
  }
  EXPECT_EQ(Gets() - before, 2u);
}

TEST_P(FrameDecode, PrefetchOfPiecesNotOfOneObjectInOrderIsACallerBug) {
  auto reader = Reader(Helpers::kNone);
  const uint64_t before = Gets();
  std::vector<format::ExtentEntry> backwards = {frames_[5], frames_[2]};
  EXPECT_TRUE(reader->Prefetch(backwards).IsInvalidArgument());
  std::vector<format::ExtentEntry> twice = {frames_[5], frames_[5]};
  EXPECT_TRUE(reader->Prefetch(twice).IsInvalidArgument());
  std::vector<format::ExtentEntry> two_objects = {frames_[1], frames_[3]};
  two_objects[1].segment++;
  EXPECT_TRUE(reader->Prefetch(two_objects).IsInvalidArgument());
  EXPECT_EQ(Gets(), before);
  EXPECT_EQ(reader->cached_bytes(), 0u);
  EXPECT_TRUE(reader->Prefetch({}).ok());
}

TEST_P(FrameDecode, ADamagedFrameInAPrefetchIsCorruptNamingItAndNotCached) {
  Damage(9);
  auto reader = Reader(Helpers::kThreads);
  std::vector<format::ExtentEntry> pieces = {frames_[4], frames_[9], frames_[20]};
  Status st = reader->Prefetch(pieces);
  ASSERT_TRUE(st.IsCorrupt()) << st.ToString();
  EXPECT_NE(st.message().find(Where(9)), std::string::npos) << st.ToString();
  // The damaged frame is never served: its own read fails again; a good one reads.
  std::string one(kBlock, '\0');
  EXPECT_TRUE(
      reader->ReadFrames({&frames_[9], 1}, 9 * kBlock, 10 * kBlock, one.data()).IsCorrupt());
  ASSERT_TRUE(reader->ReadFrames({&frames_[20], 1}, 20 * kBlock, 21 * kBlock, one.data()).ok());
  EXPECT_TRUE(one == expect_.substr(20 * kBlock, kBlock));
  // A missing object is Corrupt naming it, as for a read.
  ASSERT_TRUE(store_->Delete(key_).ok());
  auto cold = Reader(Helpers::kNone);
  st = cold->Prefetch(pieces);
  EXPECT_TRUE(st.IsCorrupt()) << st.ToString();
  EXPECT_NE(st.message().find(key_), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace hyperfile
