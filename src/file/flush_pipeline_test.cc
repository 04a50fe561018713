// SPDX-License-Identifier: Apache-2.0
// The flush pipeline alone, driven through a fake host (the write buffer
// and the committed state a FileImpl would hold) over a memory store whose
// puts the test can hold and fail: commits are strictly ordered (N+1's
// commit put starts after N's answered, while N+1's data object uploads
// during N's commit), and a failure of N puts N+1's batch back under the
// newest writes, so a retry commits everything (checked by reopening the
// file through the public API).
#include "file/flush_pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "format/format.h"
#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"

namespace hyperfile::file {
namespace {

constexpr uint32_t kBlock = 64 * 1024;
// Blocks per flight: 3 MiB, above the inline limit, so every flight has a
// data object uploaded in prepare before its commit put.
constexpr uint64_t kFlightBlocks = 48;
static_assert(kFlightBlocks * kBlock > format::kMaxInlineDataBytes);

std::string Block(uint64_t seed) {
  std::string s(kBlock, '\0');
  std::mt19937_64 r(seed);
  for (size_t i = 0; i < s.size(); i += 8) {
    uint64_t v = r();
    std::memcpy(s.data() + i, &v, 8);
  }
  return s;
}

struct Event {
  std::string key;
  bool done;                            // false: the put started; true: it answered
  std::vector<const char*> parts = {};  // where the payload's parts were (started puts)
};

// Records puts (start, answer) and can hold the first put of one key until
// a condition on the record holds (bounded), then forward it or fail it.
class GateStore : public StoreWrapper {
 public:
  explicit GateStore(std::shared_ptr<ObjectStore> base) : StoreWrapper(std::move(base)) {}
  using Predicate = std::function<bool(const std::vector<Event>&)>;
  // The first put of a key that starts with `prefix` waits until `until`
  // holds (at most 10 s), then, if `grace` is set, up to `grace_ms` more
  // for `grace` to hold (time for a wrong implementation to show itself),
  // then answers `fail` (without reaching the store) if it is not OK.
  void Hold(std::string prefix, Predicate until, Status fail, Predicate grace = nullptr,
            int grace_ms = 0) {
    std::lock_guard<std::mutex> l(mu_);
    hold_key_ = std::move(prefix);
    until_ = std::move(until);
    fail_ = std::move(fail);
    grace_ = std::move(grace);
    grace_ms_ = grace_ms;
  }
  std::vector<Event> events() const {
    std::lock_guard<std::mutex> l(mu_);
    return events_;
  }
  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    Status fail;
    {
      std::unique_lock<std::mutex> l(mu_);
      std::vector<const char*> parts;
      for (std::string_view part : data) parts.push_back(part.data());
      events_.push_back({std::string(key), false, std::move(parts)});
      cv_.notify_all();
      if (!hold_key_.empty() && key.starts_with(hold_key_)) {
        hold_key_.clear();
        cv_.wait_for(l, std::chrono::seconds(10), [&] { return until_(events_); });
        if (grace_) {
          cv_.wait_for(l, std::chrono::milliseconds(grace_ms_), [&] { return grace_(events_); });
        }
        fail = fail_;
      }
    }
    Status st = fail.ok() ? StoreWrapper::Put(key, data, options, info) : fail;
    std::lock_guard<std::mutex> l(mu_);
    events_.push_back({std::string(key), true});
    cv_.notify_all();
    return st;
  }
  using ObjectStore::Put;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> events_;
  std::string hold_key_;
  Predicate until_, grace_;
  int grace_ms_ = 0;
  Status fail_;
};

int Find(const std::vector<Event>& ev, const std::string& prefix, bool done) {
  for (size_t i = 0; i < ev.size(); i++) {
    if (ev[i].done == done && ev[i].key.starts_with(prefix)) return static_cast<int>(i);
  }
  return -1;
}

std::string DatPrefix(uint64_t id) { return format::DataObjectKey(id, 0).substr(0, 21); }

// What FileImpl is to the pipeline, reduced to a map of full blocks over
// the committed tree of a file that starts empty.
class FakeHost : public FlushHost {
 public:
  FakeHost(std::shared_ptr<ObjectStore> store, const HeaderRead& read)
      : lineage_(store, read.header.origins, nullptr),
        nodes_(&lineage_, 1 << 20),
        tree_(&nodes_, kBlock),
        head_(read.header) {
    root_.ref = head_.self.root;
    root_.height = head_.self.height;
    root_.blocks = head_.self.allocated_blocks;
  }
  std::mutex mu;

  size_t CurrentBlocksLocked() const override { return current.blocks.size(); }
  bool CurrentEmptyLocked() const override { return current.empty(); }
  uint64_t SizeLocked() const override { return size; }
  Batch TakeBatchLocked() override { return std::exchange(current, Batch{}); }
  void PutBackLocked(Batch&& older) override {
    put_backs++;
    LayerOver(std::move(current), &older, kBlock);
    current = std::move(older);
  }
  const format::SegmentHeader& HeadLocked() const override { return head_; }
  index::TreeRoot RootLocked() const override { return root_; }
  void InstallLocked(const BuiltSegment& built) override {
    index::Tree::Unpin(built.pending);
    for (const index::NodePtr& n : built.pending) nodes_.Insert(n);
    root_ = built.root;
    head_ = built.header;
  }
  Status CheckWritableLocked() const override { return Status::OK(); }
  bool ClosedLocked() const override { return false; }
  // Every block the tests write is full: the pipeline never needs a base.
  Status ReadBelow(const index::TreeRoot&, const std::vector<BelowRead>& reads) override {
    below_reads += reads.size();
    return Status::IOError("the fake host has no bases to read");
  }

  index::Tree* tree() { return &tree_; }

  Batch current;
  uint64_t size = 0;
  int put_backs = 0;
  size_t below_reads = 0;

 private:
  Lineage lineage_;
  NodeLoader nodes_;
  index::Tree tree_;
  format::SegmentHeader head_;
  index::TreeRoot root_;
};

class FlushPipelineTest : public ::testing::TestWithParam<Codec> {
 protected:
  void SetUp() override {
    mem_ = NewMemoryStore("pipeline-unit");
    CreateOptions co;
    co.block_size = kBlock;
    auto created = File::Create(mem_, co);
    ASSERT_TRUE(created.ok()) << created.status().ToString();
    ASSERT_TRUE((*created)->Close().ok());
    auto read = ReadHeader(mem_.get(), 1);
    ASSERT_TRUE(read.ok()) << read.status().ToString();
    gate_ = std::make_shared<GateStore>(mem_);
    host_ = std::make_unique<FakeHost>(gate_, *read);
    io_ = std::make_unique<ThreadPool>(4);
    pool_.Reset(io_.get());
    OpenOptions o;
    o.flush_interval_ms = 0;                  // no age trigger: the test freezes
    o.flush_dirty_bytes = 1024 * kBlock;      // no size trigger either
    o.dirty_budget_bytes = 4096ull * kBlock;  // writers never wait
    o.writer_name = "unit";
    pipeline_ = std::make_unique<FlushPipeline>(
        host_->mu, host_.get(), gate_.get(), host_->tree(), &pool_, nullptr, o,
        Compression{GetParam(), GetParam() == Codec::kNone ? 0 : 1}, kBlock);
    pipeline_->Start();
  }
  void TearDown() override {
    pipeline_.reset();  // stops the flusher, waits for the stages
    pool_.Wait();
  }

  // Writes whole blocks [b0, b0+n) with content seeded by seed+b, in the
  // model too.
  void Write(uint64_t b0, uint64_t n, uint64_t seed) {
    std::lock_guard<std::mutex> lock(host_->mu);
    for (uint64_t b = b0; b < b0 + n; b++) {
      const std::string data = Block(seed + b);
      host_->current.Write(b, 0, kBlock, data.data(), kBlock);
      model_[b] = data;
      host_->size = std::max<uint64_t>(host_->size, (b + 1) * kBlock);
      pipeline_->NoteMutationLocked(NowMs());
    }
  }
  void Freeze() { pipeline_->FreezeForTesting(); }
  Status Flush() {
    std::unique_lock<std::mutex> lock(host_->mu);
    return pipeline_->WaitFlushedLocked(lock);
  }
  uint64_t HeadId() {
    std::lock_guard<std::mutex> lock(host_->mu);
    return host_->HeadLocked().self.id;
  }
  // Reopens the file through the public API and compares every block.
  void ExpectStoreHoldsModel(uint64_t checkpoint) {
    auto f = File::Open(mem_);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    auto st = (*f)->Stat();
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->checkpoint, checkpoint);
    std::string got(kBlock, '\0');
    for (const auto& [b, want] : model_) {
      auto n = (*f)->PRead(b * kBlock, got.data(), kBlock);
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      ASSERT_EQ(*n, kBlock);
      ASSERT_TRUE(got == want) << "block " << b << " lost or stale";
    }
  }

  std::shared_ptr<ObjectStore> mem_;
  std::shared_ptr<GateStore> gate_;
  std::unique_ptr<FakeHost> host_;
  std::unique_ptr<ThreadPool> io_;
  TaskGroup pool_;
  std::unique_ptr<FlushPipeline> pipeline_;
  std::map<uint64_t, std::string> model_;

  void FailNAfterNPlus1Prepared(const std::string& fail_prefix);
};

// N = checkpoint 2, N+1 = checkpoint 3. N's commit put is held until N+1's
// data object has been uploaded (it must be: prepare overlaps the previous
// commit; a pipeline that serialises them fails after 10 s) and then 300 ms
// longer, to give a pipeline that commits out of order the chance to start
// N+1's commit put; that put must start only after N's answered.
TEST_P(FlushPipelineTest, CommitOfNPlus1StartsAfterNAnswered) {
  gate_->Hold(
      format::SegmentKey(2),
      [](const std::vector<Event>& ev) { return Find(ev, DatPrefix(3), true) >= 0; }, Status::OK(),
      [](const std::vector<Event>& ev) { return Find(ev, format::SegmentKey(3), false) >= 0; },
      300);
  Write(0, kFlightBlocks, 100);
  Freeze();
  Write(kFlightBlocks, kFlightBlocks, 200);
  Freeze();
  ASSERT_TRUE(Flush().ok());
  EXPECT_EQ(HeadId(), 3u);
  const auto ev = gate_->events();
  const int seg2_start = Find(ev, format::SegmentKey(2), false);
  const int seg2_done = Find(ev, format::SegmentKey(2), true);
  const int seg3_start = Find(ev, format::SegmentKey(3), false);
  const int dat3_done = Find(ev, DatPrefix(3), true);
  ASSERT_GE(seg2_start, 0);
  ASSERT_GE(seg3_start, 0);
  ASSERT_GE(dat3_done, 0) << "flight 3 has no data object";
  EXPECT_LT(seg2_done, seg3_start) << "commit 3 started before commit 2 answered";
  EXPECT_LT(dat3_done, seg2_done) << "flight 3 did not upload while flight 2 committed";
  EXPECT_EQ(host_->below_reads, 0u);
  ExpectStoreHoldsModel(3);
}

// N fails after N+1 was frozen and prepared (its data object uploaded):
// every flight goes back into the current batch, N+1's blocks winning over
// N's where they overlap; writes after the failure lie over them; the retry
// commits it all as checkpoint 2 under a new writer epoch. `fail_prefix`
// names the put of N that fails: its data object (prepare) or its commit.
void FlushPipelineTest::FailNAfterNPlus1Prepared(const std::string& fail_prefix) {
  gate_->Hold(
      fail_prefix, [](const std::vector<Event>& ev) { return Find(ev, DatPrefix(3), true) >= 0; },
      Status::IOError("injected: " + fail_prefix));
  Write(0, kFlightBlocks, 100);
  Freeze();
  Write(kFlightBlocks / 2, kFlightBlocks, 200);  // overlaps N's upper half
  Freeze();
  Status first = Flush();
  EXPECT_TRUE(first.IsIOError()) << first.ToString();
  EXPECT_NE(first.ToString().find("injected"), std::string::npos) << first.ToString();
  ASSERT_GE(Find(gate_->events(), DatPrefix(3), true), 0) << "N+1 was not prepared";
  EXPECT_LT(Find(gate_->events(), format::SegmentKey(3), false), 0)
      << "N+1 committed after N failed";
  {
    std::lock_guard<std::mutex> lock(host_->mu);
    EXPECT_TRUE(pipeline_->FlightsEmptyLocked());
    EXPECT_FALSE(pipeline_->fenced_locked());
    EXPECT_EQ(host_->put_backs, 1);
    EXPECT_EQ(host_->HeadLocked().self.id, 1u);
    EXPECT_EQ(host_->current.blocks.size(), kFlightBlocks / 2 + kFlightBlocks);
    for (const auto& [b, want] : model_) {
      auto it = host_->current.blocks.find(b);
      ASSERT_NE(it, host_->current.blocks.end()) << "block " << b << " not put back";
      EXPECT_TRUE(it->second.data == want) << "block " << b << " put back stale";
    }
  }
  Write(3, 2, 300);  // after the failure: over what was put back
  ASSERT_TRUE(Flush().ok());
  EXPECT_EQ(HeadId(), 2u);
  std::vector<std::string> dat2;  // every data object put for checkpoint 2
  for (const Event& e : gate_->events()) {
    if (!e.done && e.key.starts_with(DatPrefix(2))) dat2.push_back(e.key);
  }
  ASSERT_EQ(dat2.size(), 2u);
  EXPECT_NE(dat2[0], dat2[1]) << "the retry reused the failed attempt's object name";
  ExpectStoreHoldsModel(2);
}

TEST_P(FlushPipelineTest, FailureOfNCommitPutsNPlus1BackNothingLost) {
  FailNAfterNPlus1Prepared(format::SegmentKey(2));
}

TEST_P(FlushPipelineTest, FailureOfNDataObjectPutsNPlus1BackNothingLost) {
  FailNAfterNPlus1Prepared(DatPrefix(2));
}

// Framed flights take their frame buffers from the pipeline and give them
// back: the next flight of a busy handle writes into the same memory (no
// fresh pages to fault in), yet never while a flight still uploads or
// commits from it (the store then holds every block intact), and a handle
// that goes idle keeps none.
TEST_P(FlushPipelineTest, BusyFlightsReuseFrameBuffersAndAnIdleHandleKeepsNone) {
  if (GetParam() == Codec::kNone) GTEST_SKIP() << "unframed flights store the blocks in place";
  auto wait_for = [](const std::function<bool()>& cond) {
    for (int i = 0; i < 1000 && !cond(); i++) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return cond();
  };
  // N's commit waits until N+1's data object is up: N is in flight the whole
  // time N+1 prepares, so the pipeline is busy.
  gate_->Hold(
      format::SegmentKey(2),
      [](const std::vector<Event>& ev) { return Find(ev, DatPrefix(3), true) >= 0; }, Status::OK());
  Write(0, kFlightBlocks, 100);
  Freeze();
  ASSERT_TRUE(wait_for([&] { return Find(gate_->events(), DatPrefix(2), true) >= 0; }));
  // N's data object is up, so its buffers are back for N+1.
  ASSERT_TRUE(wait_for([&] { return pipeline_->frame_buffers().kept() > 0; }));
  Write(kFlightBlocks, kFlightBlocks, 200);
  Freeze();
  ASSERT_TRUE(Flush().ok());
  EXPECT_EQ(HeadId(), 3u);
  const std::vector<Event> ev = gate_->events();
  const int n = Find(ev, DatPrefix(2), false), n1 = Find(ev, DatPrefix(3), false);
  ASSERT_GE(n, 0);
  ASSERT_GE(n1, 0);
  ASSERT_FALSE(ev[n1].parts.empty());
  for (const char* part : ev[n1].parts) {
    EXPECT_NE(std::find(ev[n].parts.begin(), ev[n].parts.end(), part), ev[n].parts.end())
        << "checkpoint 3's frames are not in checkpoint 2's buffers";
  }
  ExpectStoreHoldsModel(3);
  EXPECT_TRUE(wait_for([&] { return pipeline_->frame_buffers().kept() == 0; }))
      << pipeline_->frame_buffers().kept_bytes() << " bytes kept by an idle handle";
}

INSTANTIATE_TEST_SUITE_P(Codecs, FlushPipelineTest, ::testing::Values(Codec::kNone, Codec::kZstd),
                         [](const auto& info) {
                           return std::string(info.param == Codec::kNone ? "none" : "zstd");
                         });

}  // namespace
}  // namespace hyperfile::file
