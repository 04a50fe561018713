// SPDX-License-Identifier: Apache-2.0
// The write path: partial writes and truncates never read the old bytes, so
// no interleaving with other writers or with the flusher can lose an update.
// A forced-interleaving regression test for the old read-outside-the-lock
// race, and a randomized model test with freezes forced at random points,
// writes issued while a batch uploads, and failed commits.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "file/file_impl.h"
#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"
#include "support/byte_model.h"
#include "support/codecs.h"

namespace hyperfile {
namespace {

// Counts Gets and can hold the first data Get at a gate (with a time limit,
// so a design that never reads does not deadlock the test).
class GateStore : public ObjectStore {
 public:
  explicit GateStore(std::shared_ptr<ObjectStore> base) : base_(std::move(base)) {}
  void Arm() {
    std::lock_guard<std::mutex> l(mu_);
    armed_ = true;
    open_ = false;
  }
  void Open() {
    {
      std::lock_guard<std::mutex> l(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  uint64_t gets() const { return gets_; }
  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    return base_->Put(key, data, options, info);
  }
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    gets_++;
    {
      std::unique_lock<std::mutex> l(mu_);
      if (armed_ && offset > 0) {
        armed_ = false;
        cv_.wait_for(l, std::chrono::seconds(2), [&] { return open_; });
      }
    }
    return base_->Get(key, offset, length, out, info);
  }
  Status Head(std::string_view key, ObjectInfo* info) override { return base_->Head(key, info); }
  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override {
    return base_->List(prefix, start_after, limit, out);
  }
  Status Delete(std::string_view key) override { return base_->Delete(key); }
  Status DeleteMany(const std::vector<std::string>& keys) override {
    return base_->DeleteMany(keys);
  }
  std::string Name() const override { return base_->Name(); }

 private:
  std::shared_ptr<ObjectStore> base_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false, open_ = false;
  std::atomic<uint64_t> gets_{0};
};

OpenOptions NoCache() {
  OpenOptions o;
  o.block_cache_bytes = 0;  // every base read goes to the store
  return o;
}

// The old design read a partial block's base outside the lock and installed
// base+write under it: a second write to the block, committed while the
// first one's read was in flight, was shadowed by the stale base. Hold the
// first write's read at a gate while the second write lands and commits.
TEST(WritePath, TwoPartialWritesToOneBlockAcrossACommitBothSurvive) {
  auto mem = NewMemoryStore("wp-gate");
  auto gate = std::make_shared<GateStore>(mem);
  {
    auto f = File::Create(mem, CreateOptions{}).value();  // 64 KiB blocks
    std::string base(64 << 10, 'o');
    ASSERT_TRUE(f->PWrite(0, base.data(), base.size()).ok());
    ASSERT_TRUE(f->Close().ok());
  }
  auto f = File::Open(gate, NoCache()).value();
  gate->Arm();
  const uint64_t gets_before = gate->gets();
  auto first = std::async(std::launch::async, [&] { return f->PWrite(0, "AAAA", 4); });
  // Give the first write time to reach (and wait at) its read, if it reads.
  first.wait_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(f->PWrite(8192, "BBBB", 4).ok());
  ASSERT_TRUE(f->Flush().ok());
  gate->Open();
  ASSERT_TRUE(first.get().ok());
  ASSERT_TRUE(f->Flush().ok());
  std::string back(8196, '\0');
  ASSERT_TRUE(f->PRead(0, back.data(), back.size()).ok());
  EXPECT_EQ(back.substr(0, 4), "AAAA");
  EXPECT_EQ(back.substr(8192, 4), "BBBB") << "the second write was lost";
  EXPECT_EQ(back.substr(4, 8188), std::string(8188, 'o'));
  ASSERT_TRUE(f->Close().ok());
  (void)gets_before;
  auto again = File::Open(mem).value();
  std::string committed(8196, '\0');
  ASSERT_TRUE(again->PRead(0, committed.data(), committed.size()).ok());
  EXPECT_EQ(committed, back);
}

// A partial write or a truncate issues no store request at write time.
TEST(WritePath, PartialWritesAndTruncateMakeNoStoreRequest) {
  auto mem = NewMemoryStore("wp-norequest");
  {
    auto f = File::Create(mem, CreateOptions{}).value();
    std::string data(256 << 10, 'x');
    ASSERT_TRUE(f->PWrite(0, data.data(), data.size()).ok());
    ASSERT_TRUE(f->Close().ok());
  }
  auto metrics = std::make_shared<MetricsStore>(mem);
  auto f = File::Open(metrics, NoCache()).value();
  metrics->Reset();
  for (uint64_t off : {1u, 70000u, 131071u, 200000u}) ASSERT_TRUE(f->PWrite(off, "w", 1).ok());
  ASSERT_TRUE(f->Truncate(250000).ok());
  ASSERT_TRUE(f->WriteZeroes(5, 10).ok());
  EXPECT_EQ(metrics->Snapshot().total_requests(), 0u) << metrics->Snapshot().ToString();
  ASSERT_TRUE(f->Flush().ok());
  std::string back(250000, '\0');
  ASSERT_TRUE(f->PRead(0, back.data(), back.size()).ok());
  std::string want(250000, 'x');
  for (uint64_t off : {1u, 70000u, 131071u, 200000u}) want[off] = 'w';
  for (int i = 5; i < 15; i++) want[i] = '\0';
  EXPECT_EQ(back, want);
}

// The block just written stays readable after its flush without a GET, so
// an append-after-flush workload never reads its tail block back.
TEST(WritePath, AppendAfterFlushIssuesNoGet) {
  auto mem = NewMemoryStore("wp-append");
  auto metrics = std::make_shared<MetricsStore>(mem);
  auto f = File::Create(metrics, CreateOptions{}).value();  // 64 KiB blocks
  std::string expect;
  for (int i = 0; i < 50; i++) {
    std::string line =
        "log line " + std::to_string(i) + " " + std::string(i * 37 % 900, '.') + "\n";
    ASSERT_TRUE(f->Append(line.data(), line.size()).ok());
    ASSERT_TRUE(f->Flush().ok());
    expect += line;
  }
  EXPECT_EQ(metrics->Snapshot().count(StoreVerb::kGet), 0u) << metrics->Snapshot().ToString();
  std::string back(expect.size(), '\0');
  ASSERT_TRUE(f->PRead(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, expect);
  EXPECT_EQ(metrics->Snapshot().count(StoreVerb::kGet), 0u) << metrics->Snapshot().ToString();
  ASSERT_TRUE(f->Close().ok());
}

// --------------------------------------------------------------- model ---

using Model = testing::ByteModel;

// One seed: a random mix of partial writes, zeroes, punches and truncates on
// a small file with 4 KiB or 64 KiB blocks; the batch is frozen at random
// points; while the flusher holds a frozen batch (the "flush:frozen" hook),
// more operations land; some commits fail (injected) and their batch goes
// back under the newer writes. After every step a read must equal the model.
void RunModel(uint64_t seed, Compression codec) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto mem = NewMemoryStore("wp-model-" + std::to_string(seed));
  auto faulty = std::make_shared<FaultInjectionStore>(mem);
  std::atomic<int> fail_percent{0};
  std::atomic<uint64_t> fail_rng{seed * 7919};
  faulty->FailWhen(
      [&](const StoreCall& c) {
        if (c.verb != StoreVerb::kPut) return false;
        uint64_t x = fail_rng.fetch_add(0x9E3779B97F4A7C15ull);
        return static_cast<int>((x >> 33) % 100) < fail_percent.load();
      },
      Status::IOError("injected put failure"));
  CreateOptions co;
  co.block_size = rng() % 2 ? 4096 : 65536;
  co.compression = codec;
  OpenOptions oo;
  oo.block_cache_bytes = rng() % 2 ? 0 : (1 << 20);
  auto created = File::Create(faulty, co, oo);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  std::unique_ptr<File> file = std::move(created).value();
  auto* impl = dynamic_cast<file::FileImpl*>(file.get());
  ASSERT_NE(impl, nullptr);
  Model model;
  std::mutex order;  // the linearization order of operations (file and model)
  const uint64_t span = 6 * co.block_size;
  auto random_op = [&](std::mt19937_64& r) {
    std::lock_guard<std::mutex> l(order);
    uint64_t off = r() % span, len = 1 + r() % (co.block_size + 100);
    switch (r() % 8) {
      case 0:
        ASSERT_TRUE(file->Truncate(r() % span).ok());
        model.Truncate(file->Size());
        break;
      case 1:
        ASSERT_TRUE(file->WriteZeroes(off, len).ok());
        model.Zero(off, len, true);
        break;
      case 2:
        ASSERT_TRUE(file->PunchHole(off, len).ok());
        model.Zero(off, len, false);
        break;
      default: {
        std::string d(len, '\0');
        for (char& c : d) c = static_cast<char>('a' + r() % 26);
        ASSERT_TRUE(file->PWrite(off, d.data(), d.size()).ok());
        model.Write(off, d);
      }
    }
  };
  // Two flights of the pipeline can prepare at once, so the hook may run on
  // two threads: its generator has its own lock.
  std::mt19937_64 hook_rng(seed ^ 0xABCDEF);
  std::mutex hook_mu;
  std::atomic<bool> hook_on{true};
  impl->SetTestHook([&](std::string_view point) {
    if (point != "flush:frozen" || !hook_on) return;
    std::lock_guard<std::mutex> hl(hook_mu);
    int n = static_cast<int>(hook_rng() % 4);
    for (int i = 0; i < n; i++) random_op(hook_rng);
  });
  auto check = [&](const char* when) {
    std::lock_guard<std::mutex> l(order);
    ASSERT_EQ(file->Size(), model.bytes.size()) << when;
    std::string back(model.bytes.size(), '\0');
    auto n = file->PRead(0, back.data(), back.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ASSERT_TRUE(back == model.bytes) << when << ": content differs from the model";
  };
  for (int step = 0; step < 300; step++) {
    fail_percent = step % 50 < 10 ? 40 : 0;
    random_op(rng);
    if (::testing::Test::HasFatalFailure()) return;
    switch (rng() % 6) {
      case 0:
        impl->FreezeForTesting();  // the flusher takes it from here
        break;
      case 1:
        (void)file->Flush();  // may fail (injected): nothing may be lost
        break;
      default:
        break;
    }
    if (step % 10 == 0) check("during");
    if (::testing::Test::HasFatalFailure()) return;
  }
  fail_percent = 0;
  hook_on = false;
  auto last = file->Flush();
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  check("after the last flush");
  ASSERT_TRUE(file->Close().ok());
  auto reopened = File::Open(mem).value();
  std::string back(reopened->Size(), '\0');
  ASSERT_TRUE(reopened->PRead(0, back.data(), back.size()).ok());
  ASSERT_EQ(back.size(), model.bytes.size());
  EXPECT_TRUE(back == model.bytes) << "the committed file differs from the model";
}

// The model runs on each codec (tests/support/codecs.h).
class WritePathModel : public testing::CodecTest {};
HF_INSTANTIATE_CODECS(WritePathModel);

TEST_P(WritePathModel, ForcedFreezesWritesDuringUploadsAndFailedCommits) {
  for (uint64_t seed = 1; seed <= 40; seed++) {
    RunModel(seed, GetParam());
    if (HasFatalFailure()) return;
  }
}

// Many threads write disjoint byte ranges that share blocks while another
// thread keeps forcing freezes and flushes: every byte ends up written.
TEST_P(WritePathModel, ConcurrentPartialWritersSharingBlocks) {
  auto mem = NewMemoryStore("wp-threads");
  CreateOptions co = Co(65536);
  auto file = File::Create(mem, co).value();
  auto* impl = dynamic_cast<file::FileImpl*>(file.get());
  constexpr int kThreads = 8, kRounds = 400;
  constexpr uint64_t kSize = 8 * 65536;
  std::atomic<bool> done{false};
  std::thread freezer([&] {
    std::mt19937_64 r(5);
    while (!done) {
      if (r() % 3 == 0) impl->FreezeForTesting();
      if (r() % 5 == 0) (void)file->Flush();
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; t++) {
    writers.emplace_back([&, t] {
      std::mt19937_64 r(100 + t);
      for (int i = 0; i < kRounds; i++) {
        // Thread t owns the bytes at positions == t (mod kThreads), in
        // 512-byte stripes: [s*512*kThreads + t*512, +512).
        uint64_t stripe = r() % (kSize / 512 / kThreads);
        uint64_t off = stripe * 512 * kThreads + t * 512;
        char c = static_cast<char>('A' + t);
        std::string d(512, c);
        d[0] = static_cast<char>('a' + i % 26);
        ASSERT_TRUE(file->PWrite(off, d.data(), d.size()).ok());
      }
    });
  }
  for (auto& w : writers) w.join();
  done = true;
  freezer.join();
  ASSERT_TRUE(file->Flush().ok());
  // Each thread's last write to each stripe is what must be there: replay.
  std::string want(kSize, '\0');
  for (int t = 0; t < kThreads; t++) {
    std::mt19937_64 r(100 + t);
    for (int i = 0; i < kRounds; i++) {
      uint64_t stripe = r() % (kSize / 512 / kThreads);
      uint64_t off = stripe * 512 * kThreads + t * 512;
      std::string d(512, static_cast<char>('A' + t));
      d[0] = static_cast<char>('a' + i % 26);
      want.replace(off, 512, d);
    }
  }
  ASSERT_TRUE(file->Close().ok());
  auto back_file = File::Open(mem).value();
  std::string back(kSize, '\0');
  ASSERT_TRUE(back_file->PRead(0, back.data(), back.size()).ok());
  EXPECT_TRUE(back == want) << "a concurrent partial write was lost";
}

}  // namespace
}  // namespace hyperfile
