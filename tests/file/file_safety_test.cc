// SPDX-License-Identifier: Apache-2.0
// Crash safety, fencing, lost responses, failed flushes, corruption and open
// cost, all driven through store layers (fault injection, metrics).
#include <gtest/gtest.h>

#include <cstdlib>
#include <future>
#include <map>
#include <random>
#include <thread>

#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"
#include "support/codecs.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

OpenOptions ReadOnly() {
  OpenOptions o;
  o.read_only = true;
  return o;
}
CreateOptions Blocks4k() {
  CreateOptions c;
  c.block_size = 4096;
  return c;
}
RetryOptions FastRetry() {
  RetryOptions r;
  r.max_attempts = 3;
  r.base_delay_ms = 1;
  return r;
}

std::string ReadAll(File* f) {
  std::string out(f->Size(), '\0');
  auto n = f->PRead(0, out.data(), out.size());
  if (!n.ok()) return "ERROR " + n.status().ToString();
  return out;
}

std::string Pattern(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>('A' + rng() % 26);
  return s;
}

// The workload for the crash test: returns the content after each flush that
// reported success, and the content each attempted flush would commit.
struct CrashRun {
  std::vector<std::string> committed;  // content after each successful flush
  std::vector<std::string> attempted;  // content of every flush attempt
};

CrashRun RunWorkload(std::shared_ptr<ObjectStore> store, const testing::DataPath& codec) {
  CrashRun run;
  CreateOptions co;
  co.block_size = 4096;
  co.compression = codec;
  co.encryption_key = codec.key;
  auto f = File::Create(store, co);
  if (!f.ok()) return run;
  run.committed.push_back("");
  std::string model;
  for (int step = 0; step < 4; step++) {
    std::string d = Pattern(step, 3000 + step * 2500);
    uint64_t off = static_cast<uint64_t>(step) * 5000;
    if (model.size() < off + d.size()) model.resize(off + d.size(), '\0');
    model.replace(off, d.size(), d);
    if (!(*f)->PWrite(off, d.data(), d.size()).ok()) break;
    if (step == 2) {
      if (!(*f)->PunchHole(4096, 8192).ok()) break;
      std::fill(model.begin() + 4096, model.begin() + 4096 + 8192, '\0');
    }
    run.attempted.push_back(model);
    if (!(*f)->Flush().ok()) break;
    run.committed.push_back(model);
  }
  return run;
}

// The crash and corruption suites run on each codec, and on encrypted files
// (tests/support/codecs.h).
class CrashSafety : public testing::DataPathTest {};
HF_INSTANTIATE_DATA_PATHS(CrashSafety);
class Corruption : public testing::DataPathTest {};
HF_INSTANTIATE_DATA_PATHS(Corruption);

TEST_P(CrashSafety, CrashBeforeAndAfterEveryStoreCall) {
  // Count the calls of a clean run.
  auto probe = std::make_shared<FaultInjectionStore>(NewMemoryStore("probe"));
  CrashRun clean = RunWorkload(probe, GetParam());
  ASSERT_EQ(clean.committed.size(), 5u);
  uint64_t total = probe->calls();
  ASSERT_GT(total, 5u);
  for (uint64_t k = 0; k <= total; k++) {
    SCOPED_TRACE("crash after call " + std::to_string(k));
    auto base = NewMemoryStore("crash");
    auto faulty = std::make_shared<FaultInjectionStore>(base);
    faulty->CrashAfter(k);
    CrashRun run = RunWorkload(faulty, GetParam());
    auto reopened = File::Open(base, Oo(ReadOnly()));
    if (run.committed.empty()) {
      // Create never returned success: either nothing exists or the first
      // (empty) segment landed.
      if (reopened.ok()) {
        EXPECT_EQ((*reopened)->Size(), 0u);
      }
      continue;
    }
    ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
    std::string got = ReadAll(reopened->get());
    const std::string& last = run.committed.back();
    size_t n = run.committed.size() - 1;  // flushes that succeeded
    bool ok = got == last || (n < run.attempted.size() && got == run.attempted[n]);
    EXPECT_TRUE(ok) << "content after reopen is neither the last flush nor the one in flight";
  }
}

TEST(Fencing, TwoWritersOneWins) {
  auto store = NewMemoryStore("fence");
  CreateOptions co;
  co.block_size = 4096;
  ASSERT_TRUE(File::Create(store, co).ok());
  auto a = File::Open(store);
  auto b = File::Open(store);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE((*a)->PWrite(0, "AAAA", 4).ok());
  ASSERT_TRUE((*b)->PWrite(0, "BBBB", 4).ok());
  auto fa = (*a)->Flush();
  auto fb = (*b)->Flush();
  ASSERT_TRUE(fa.ok()) << fa.status().ToString();
  ASSERT_TRUE(fb.status().IsConflict()) << fb.status().ToString();
  EXPECT_NE(fb.status().message().find("another writer"), std::string::npos);
  // The loser stays fenced, keeps its bytes in memory, and damages nothing.
  EXPECT_TRUE((*b)->PWrite(0, "C", 1).IsConflict());
  std::string mine(4, 0);
  ASSERT_TRUE((*b)->PRead(0, mine.data(), 4).ok());
  EXPECT_EQ(mine, "BBBB");
  auto r = File::Open(store, ReadOnly());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ReadAll(r->get()), "AAAA");
  // The winner continues.
  ASSERT_TRUE((*a)->PWrite(4, "aaaa", 4).ok());
  ASSERT_TRUE((*a)->Flush().ok());
  (void)(*b)->Close();
}

void ConcurrentWriters(std::shared_ptr<ObjectStore> store) {
  ASSERT_TRUE(File::Create(store, Blocks4k()).ok());
  std::vector<std::thread> threads;
  std::atomic<int> wins{0};
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      auto f = File::Open(store);
      if (!f.ok()) return;
      std::string d(8192, static_cast<char>('a' + t));
      (void)(*f)->PWrite(0, d.data(), d.size());
      if ((*f)->Flush().ok()) wins++;
      (void)(*f)->Close();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GE(wins.load(), 1);
  auto r = File::Open(store, ReadOnly());
  ASSERT_TRUE(r.ok());
  std::string all = ReadAll(r->get());
  ASSERT_EQ(all.size(), 8192u);
  EXPECT_EQ(all, std::string(8192, all[0]));  // one writer's bytes, never a mix
  auto v = Verify(store, At::Latest(), true);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());
}

TEST(Fencing, ConcurrentWritersManyRounds) { ConcurrentWriters(NewMemoryStore("fence2")); }

TEST(Fencing, ConcurrentWritersOnS3) {
  HF_REQUIRE_S3();
  for (int round = 0; round < 3; round++) {
    auto store = OpenStore(testing::UniqueS3Uri("fence"));
    ASSERT_TRUE(store.ok());
    ConcurrentWriters(*store);
  }
}

TEST(FailedFlush, KeepsEveryDirtyByteAndRetriesLater) {
  auto base = NewMemoryStore("failflush");
  auto faulty = std::make_shared<FaultInjectionStore>(base);
  auto f = File::Create(faulty, Blocks4k());
  ASSERT_TRUE(f.ok());
  std::string d = Pattern(7, 20000);
  ASSERT_TRUE((*f)->PWrite(100, d.data(), d.size()).ok());
  faulty->FailWhen([](const StoreCall& c) { return c.verb == StoreVerb::kPut; },
                   Status::Throttled("injected SlowDown"));
  EXPECT_TRUE((*f)->Flush().status().IsThrottled());
  // Writes made while the store was failing are merged, newer wins.
  ASSERT_TRUE((*f)->PWrite(100, "new", 3).ok());
  d.replace(0, 3, "new");
  faulty->ClearFaults();
  auto id = (*f)->Flush();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto r = File::Open(base, ReadOnly());
  std::string got = ReadAll(r->get());
  EXPECT_EQ(got.substr(100), d);
}

TEST(LostResponse, RetriedCreateThatLandedIsNotAConflict) {
  auto base = NewMemoryStore("lost");
  auto faulty = std::make_shared<FaultInjectionStore>(base);
  auto store = NewRetryStore(faulty, FastRetry());
  auto f = File::Create(store, Blocks4k());
  ASSERT_TRUE(f.ok());
  std::atomic<int> lost{0};
  faulty->LoseResponseWhen(
      [&](const StoreCall& c) { return c.verb == StoreVerb::kPut && c.if_absent && lost++ == 0; },
      Status::Transient("injected timeout after the put landed"));
  ASSERT_TRUE((*f)->PWrite(0, "xyz", 3).ok());
  auto id = (*f)->Flush();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(lost.load(), 2);  // the first put landed, its retry answered 412
  ASSERT_TRUE((*f)->PWrite(3, "w", 1).ok());
  ASSERT_TRUE((*f)->Flush().ok());
}

TEST_P(Corruption, DamagedObjectsReportCorruptNeverCrash) {
  auto store = NewMemoryStore("corrupt");
  {
    auto f = File::Create(store, Co(4096));
    ASSERT_TRUE(f.ok());
    for (int i = 0; i < 300; i++) {  // enough extents for a multi-level tree
      std::string d = Pattern(i, 100);
      ASSERT_TRUE((*f)->PWrite(static_cast<uint64_t>(i) * 8192, d.data(), d.size()).ok());
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  auto latest = ResolveAt(store, At::Latest());
  ASSERT_TRUE(latest.ok());
  std::string key = "seg/";
  std::vector<ObjectInfo> objs;
  ASSERT_TRUE(store->List("seg/", "", 1, &objs).ok());
  key = objs[0].key;
  std::string pristine;
  ASSERT_TRUE(store->Get(key, &pristine).ok());
  std::mt19937_64 rng(42);
  int corrupt_reports = 0;
  for (int trial = 0; trial < 300; trial++) {
    std::string damaged = pristine;
    int kind = trial % 3;
    if (kind == 0) {
      damaged[rng() % damaged.size()] ^= static_cast<char>(1 + rng() % 255);
    } else if (kind == 1) {
      damaged.resize(rng() % damaged.size());
    } else {
      damaged = Pattern(trial, 1 + rng() % 5000);  // foreign data
    }
    ASSERT_TRUE(store->Put(key, damaged).ok());
    auto f = File::Open(store, Oo(ReadOnly()));
    if (!f.ok()) {
      EXPECT_TRUE(f.status().IsCorrupt()) << f.status().ToString();
      EXPECT_NE(f.status().message().find("seg/"), std::string::npos);
      corrupt_reports++;
      continue;
    }
    std::string all((*f)->Size(), 0);
    auto n = (*f)->PRead(0, all.data(), all.size());
    if (!n.ok()) {
      EXPECT_TRUE(n.status().IsCorrupt()) << n.status().ToString();
      corrupt_reports++;
    }
  }
  EXPECT_GT(corrupt_reports, 250);  // a flipped byte in padding-free data is always caught
  ASSERT_TRUE(store->Put(key, pristine).ok());
  auto v = Verify(store, At::Latest(), true, Oo());
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());
}

void OpenCost(std::shared_ptr<ObjectStore> base, int checkpoints) {
  std::vector<int64_t> times;
  {
    auto f = File::Create(base, Blocks4k());
    ASSERT_TRUE(f.ok());
    for (int i = 0; i < checkpoints; i++) {
      uint32_t v = static_cast<uint32_t>(i);
      ASSERT_TRUE((*f)->PWrite(static_cast<uint64_t>(i % 50) * 4096, &v, 4).ok());
      ASSERT_TRUE((*f)->Flush().ok());
      times.push_back((*f)->Stat()->checkpoint_time_ms);
    }
  }
  auto metrics = std::make_shared<MetricsStore>(base);
  auto count = [&](const At& at, bool read_only = false) {
    metrics->Reset();
    OpenOptions oo;
    oo.read_only = read_only;
    auto f = File::OpenAt(metrics, at, oo);
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    return metrics->Snapshot().total_requests();
  };
  // Latest (writable): LIST + the head's first 64 KiB, then the writer
  // lease's PUT and the LIST of writer/ (docs/design/0015). By id: its header, and the
  // collector's decision (gc/kept, in parallel: was it expired?). By time:
  // LIST, the head, at most one more header, and gc/kept in parallel.
  EXPECT_LE(count(At::Latest(), true), 2u);  // for reading: no lease
  EXPECT_LE(count(At::Latest()), 5u);        // + a HEAD of the lease if a listing has no times
  EXPECT_LE(count(At::Checkpoint(2)), 2u);
  EXPECT_LE(count(At::Checkpoint(static_cast<uint64_t>(checkpoints) / 2)), 2u);
  for (int i : {0, checkpoints / 3, checkpoints - 70, checkpoints - 2}) {
    EXPECT_LE(count(At::Time(times[static_cast<size_t>(i)])), 4u) << "time of checkpoint " << i + 2;
  }
}

TEST(OpenCost, ConstantRequestsWhateverTheHistory) {
  OpenCost(NewMemoryStore("opencost"), std::getenv("HYPERFILE_LONG") ? 10000 : 1500);
}

TEST(OpenCost, OnS3) {
  HF_REQUIRE_S3();
  auto store = OpenStore(testing::UniqueS3Uri("opencost"));
  ASSERT_TRUE(store.ok());
  OpenCost(*store, 150);
}

}  // namespace
}  // namespace hyperfile

namespace hyperfile {
namespace {

// Writers on disjoint regions, readers and flushes all at once on one handle;
// afterwards every region holds its writer's last pattern.
TEST(Concurrency, WritersReadersAndFlushesOnOneHandle) {
  auto store = NewMemoryStore("concurrent");
  CreateOptions co;
  co.block_size = 4096;
  auto f = File::Create(store, co).value();
  constexpr int kWriters = 4;
  constexpr uint64_t kRegion = 64 * 1024;
  std::atomic<bool> stop{false};
  std::atomic<int> read_errors{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; w++) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(static_cast<uint64_t>(w));
      for (int i = 0; i < 300; i++) {
        uint64_t off = static_cast<uint64_t>(w) * kRegion + rng() % (kRegion - 700);
        std::string d(1 + rng() % 600, static_cast<char>('a' + w));
        ASSERT_TRUE(f->PWrite(off, d.data(), d.size()).ok());
      }
      std::string fill(kRegion, static_cast<char>('A' + w));
      ASSERT_TRUE(f->PWrite(static_cast<uint64_t>(w) * kRegion, fill.data(), fill.size()).ok());
    });
  }
  threads.emplace_back([&] {
    while (!stop) {
      std::string buf(9000, 0);
      if (!f->PRead(rand() % (kWriters * kRegion), buf.data(), buf.size()).ok()) read_errors++;
    }
  });
  threads.emplace_back([&] {
    while (!stop) {
      if (!f->Flush().ok()) read_errors++;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  for (int w = 0; w < kWriters; w++) threads[static_cast<size_t>(w)].join();
  stop = true;
  for (size_t t = kWriters; t < threads.size(); t++) threads[t].join();
  EXPECT_EQ(read_errors.load(), 0);
  ASSERT_TRUE(f->Close().ok());
  auto r = File::Open(store, ReadOnly()).value();
  std::string all = ReadAll(r.get());
  ASSERT_EQ(all.size(), kWriters * kRegion);
  for (int w = 0; w < kWriters; w++) {
    EXPECT_EQ(all.substr(static_cast<size_t>(w) * kRegion, kRegion),
              std::string(kRegion, static_cast<char>('A' + w)));
  }
}

}  // namespace
}  // namespace hyperfile

namespace hyperfile {
namespace {

// Issue 10's second loss: two writers from the same head, each flushing far
// above the multipart threshold, on the real gateway. A create-only put is
// always one request (never a multipart completion, which Ceph accepts
// without honouring If-None-Match), so exactly one wins each time, the loser
// gets Conflict from its own put, and the file holds the winner's bytes.
TEST(Fencing, LargeFlushesAboveTheMultipartThresholdOnS3) {
  HF_REQUIRE_S3();
  StoreOptions so = testing::S3TestConfigFromEnv()->ToStoreOptions();
  so.multipart_threshold = 5ull << 20;
  so.multipart_part_size = 5ull << 20;
  const size_t kBytes = 12u << 20;
  for (int trial = 0; trial < 20; trial++) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    const std::string uri = testing::UniqueS3Uri("bigfence");
    auto store_a = OpenStore(uri, so);
    auto store_b = OpenStore(uri, so);
    ASSERT_TRUE(store_a.ok() && store_b.ok());
    CreateOptions co;
    co.block_size = 1 << 20;
    ASSERT_TRUE(File::Create(*store_a, co).value()->Close().ok());
    auto a = File::Open(*store_a).value();
    auto b = File::Open(*store_b).value();
    std::string da(kBytes, 'a'), db(kBytes, 'b');
    ASSERT_TRUE(a->PWrite(0, da.data(), da.size()).ok());
    ASSERT_TRUE(b->PWrite(0, db.data(), db.size()).ok());
    auto fa = std::async(std::launch::async, [&] { return a->Flush(); });
    auto fb = std::async(std::launch::async, [&] { return b->Flush(); });
    auto ra = fa.get(), rb = fb.get();
    ASSERT_NE(ra.ok(), rb.ok()) << "both or neither committed: " << ra.status().ToString() << " / "
                                << rb.status().ToString();
    const auto& loser = ra.ok() ? rb : ra;
    EXPECT_TRUE(loser.status().IsConflict()) << loser.status().ToString();
    auto reader = File::Open(*store_a, ReadOnly()).value();
    std::string back(kBytes, '\0');
    ASSERT_TRUE(reader->PRead(0, back.data(), back.size()).ok());
    EXPECT_TRUE(back == (ra.ok() ? da : db)) << "the file does not hold the winner's bytes";
    (void)a->Close();
    (void)b->Close();
    ASSERT_TRUE(RemoveFile(*store_a).ok());
  }
}

}  // namespace
}  // namespace hyperfile
