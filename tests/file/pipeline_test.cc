// SPDX-License-Identifier: Apache-2.0
// The write and read pipelines: background flushes (by age and by size),
// writers waiting for the dirty budget, group commit, ordered commits under
// injected failures, readahead, and cache budgets.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"

namespace hyperfile {
namespace {

using std::chrono::milliseconds;

CreateOptions Blocks(uint32_t bs) {
  CreateOptions c;
  c.block_size = bs;
  return c;
}

std::string Random(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string ReadAll(File* f) {
  std::string out(f->Size(), '\0');
  auto n = f->PRead(0, out.data(), out.size());
  if (!n.ok()) return "ERROR " + n.status().ToString();
  return out;
}

std::string ReadAt(std::shared_ptr<ObjectStore> store, uint64_t checkpoint) {
  auto f = File::OpenAt(store, At::Checkpoint(checkpoint));
  if (!f.ok()) return "ERROR " + f.status().ToString();
  return ReadAll(f->get());
}

// Byte comparison that names the first difference instead of printing
// megabytes of file content.
::testing::AssertionResult SameBytes(const std::string& got, const std::string& want) {
  if (got == want) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) i++;
  return ::testing::AssertionFailure()
         << "sizes " << got.size() << " vs " << want.size() << ", first difference at byte " << i;
}

// The newest checkpoint id, 0 if none can be listed.
uint64_t Latest(std::shared_ptr<ObjectStore> store) {
  auto list = ListCheckpoints(store, 1);
  return list.ok() && !list->empty() ? list->front().id : 0;
}

// Polls until pred() or the deadline; returns pred().
template <typename Pred>
bool Eventually(Pred pred, milliseconds deadline = milliseconds(5000)) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return pred();
}

TEST(BackgroundFlush, ByAgeWithoutAnyCallOrWrite) {
  auto store = NewMemoryStore("bg-age");
  OpenOptions o;
  o.flush_interval_ms = 50;
  auto f = File::Create(store, Blocks(4096), o);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  std::string data = Random(1, 10000);
  ASSERT_TRUE((*f)->PWrite(0, data.data(), data.size()).ok());
  // No further call on the handle: the flusher's timer must commit it.
  ASSERT_TRUE(Eventually([&] { return Latest(store) == 2; }));
  EXPECT_EQ(ReadAt(store, 2), data);
  EXPECT_EQ((*f)->Stat()->dirty_bytes, 0u);
  // Nothing dirty: the timer makes no empty checkpoints.
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(Latest(store), 2u);
}

TEST(BackgroundFlush, BySizeKeepsWritingWhileItUploads) {
  auto base = NewMemoryStore("bg-size");
  auto faults = std::make_shared<FaultInjectionStore>(base);
  OpenOptions o;
  o.flush_dirty_bytes = 64 * 1024;
  auto f = File::Create(faults, Blocks(4096), o);
  ASSERT_TRUE(f.ok());
  faults->SetLatency(std::chrono::microseconds(20000));
  std::string data = Random(2, 1 << 20);
  std::chrono::steady_clock::duration in_writes{};
  for (size_t off = 0; off < data.size(); off += 4096) {
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE((*f)->PWrite(off, data.data() + off, 4096).ok());
    in_writes += std::chrono::steady_clock::now() - t0;
    // Give the flusher a moment after each threshold's worth, so several
    // uploads overlap the writes (without it all 256 writes can finish
    // before the flusher thread is even scheduled).
    if ((off + 4096) % (64 * 1024) == 0) std::this_thread::sleep_for(milliseconds(2));
  }
  ASSERT_TRUE(Eventually([&] { return Latest(faults) > 3; })) << Latest(faults);
  // 256 writes while 20 ms uploads ran beside them, never in the writer.
  EXPECT_LT(in_writes, milliseconds(40));
  faults->ClearFaults();
  auto id = (*f)->Flush();
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(ReadAt(base, *id), data);
}

// A stream's size-triggered segments hold exactly flush_dirty_bytes each
// (the writer that crosses the threshold freezes the batch when the flusher
// is idle; while it uploads, writers stop at the budget), so segment
// boundaries fall on read-unit multiples and a cold stream costs one GET per
// unit.
TEST(BackgroundFlush, StreamSegmentsHoldExactlyTheThreshold) {
  auto base = NewMemoryStore("bg-exact");
  auto faults = std::make_shared<FaultInjectionStore>(base);
  OpenOptions o;
  o.flush_dirty_bytes = 256 * 1024;
  o.dirty_budget_bytes = 512 * 1024;
  auto f = File::Create(faults, Blocks(4096), o);
  ASSERT_TRUE(f.ok());
  faults->SetLatency(std::chrono::microseconds(3000));
  std::string data = Random(4, 8 << 20);
  for (size_t off = 0; off < data.size(); off += 64 * 1024) {
    ASSERT_TRUE((*f)->PWrite(off, data.data() + off, 64 * 1024).ok());
  }
  faults->ClearFaults();
  auto id = (*f)->Flush();
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(SameBytes(ReadAt(base, *id), data));
  auto list = ListCheckpoints(base, 1000);
  ASSERT_TRUE(list.ok());
  ASSERT_GE(list->size(), 30u);
  for (const CheckpointInfo& c : *list) {
    if (c.bytes_changed == 0) continue;  // the empty first checkpoint
    EXPECT_EQ(c.bytes_changed, 256u * 1024) << "checkpoint " << c.id;
  }
}

TEST(DirtyBudget, WritersWaitInsteadOfGrowing) {
  auto base = NewMemoryStore("budget");
  auto faults = std::make_shared<FaultInjectionStore>(base);
  OpenOptions o;
  o.dirty_budget_bytes = 256 * 1024;
  auto f = File::Create(faults, Blocks(4096), o);
  ASSERT_TRUE(f.ok());
  faults->SetLatency(std::chrono::microseconds(5000));
  std::atomic<bool> done{false};
  std::atomic<uint64_t> max_dirty{0};
  std::thread watcher([&] {
    while (!done) {
      auto st = (*f)->Stat();
      if (st.ok()) max_dirty = std::max<uint64_t>(max_dirty, st->dirty_bytes);
    }
  });
  std::string data = Random(3, 4 << 20);
  for (size_t off = 0; off < data.size(); off += 16384) {
    ASSERT_TRUE((*f)->PWrite(off, data.data() + off, 16384).ok());
  }
  done = true;
  watcher.join();
  EXPECT_LE(max_dirty.load(), o.dirty_budget_bytes + 16384);
  EXPECT_GT(max_dirty.load(), 0u);
  faults->ClearFaults();
  auto id = (*f)->Flush();
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(ReadAt(base, *id), data);
}

TEST(DirtyBudget, WaitingWriterGetsTheErrorWhenTheStoreIsDown) {
  auto base = NewMemoryStore("budget-down");
  auto faults = std::make_shared<FaultInjectionStore>(base);
  OpenOptions o;
  o.dirty_budget_bytes = 64 * 1024;
  auto f = File::Create(faults, Blocks(4096), o);
  ASSERT_TRUE(f.ok());
  faults->FailWhen([](const StoreCall& c) { return c.verb == StoreVerb::kPut; },
                   Status::Transient("store is down"));
  std::string data = Random(4, 4096);
  Status st;
  for (int i = 0; i < 64 && st.ok(); i++) st = (*f)->PWrite(i * 4096ull, data.data(), 4096);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.ToString().find("store is down"), std::string::npos) << st.ToString();
  // Nothing taken before the error is lost: the store comes back, flush works.
  uint64_t written = (*f)->Size();
  faults->ClearFaults();
  auto id = (*f)->Flush();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  std::string back = ReadAt(base, *id);
  ASSERT_EQ(back.size(), written);
  for (uint64_t off = 0; off < written; off += 4096) {
    ASSERT_EQ(back.substr(off, 4096), data) << "block at " << off;
  }
}

TEST(GroupCommit, ConcurrentFlushesShareSegmentsAndEachSeesItsWrite) {
  auto base = NewMemoryStore("group");
  auto faults = std::make_shared<FaultInjectionStore>(base);
  auto metrics = std::make_shared<MetricsStore>(faults);
  auto f = File::Create(metrics, Blocks(4096));
  ASSERT_TRUE(f.ok());
  faults->SetLatency(std::chrono::microseconds(30000));
  metrics->Reset();
  constexpr int kThreads = 8, kRounds = 4;
  std::vector<std::vector<std::pair<uint64_t, std::string>>> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRounds; r++) {
        std::string d = Random(t * 100 + r, 4096);
        ASSERT_TRUE((*f)->PWrite(t * 4096ull, d.data(), d.size()).ok());
        auto id = (*f)->Flush();
        ASSERT_TRUE(id.ok()) << id.status().ToString();
        seen[t].emplace_back(*id, d);
      }
    });
  }
  for (auto& t : threads) t.join();
  faults->ClearFaults();
  uint64_t puts = metrics->Snapshot().count(StoreVerb::kPut);
  EXPECT_LT(puts, uint64_t{kThreads * kRounds}) << "no flush was shared";
  // Each flush's checkpoint holds that thread's write (or a later one of it).
  for (int t = 0; t < kThreads; t++) {
    for (size_t r = 0; r < seen[t].size(); r++) {
      std::string content = ReadAt(base, seen[t][r].first);
      ASSERT_GE(content.size(), (t + 1) * 4096u);
      std::string block = content.substr(t * 4096, 4096);
      bool found = false;
      for (size_t later = r; later < seen[t].size(); later++)
        found |= block == seen[t][later].second;
      EXPECT_TRUE(found) << "thread " << t << " round " << r;
    }
  }
}

// Random writes, punches, truncates and flushes while puts fail at random
// and background flushes run by size: every checkpoint that exists must be
// a state the file actually passed through, ids must be gap-free, every
// successful Flush() must hold everything written before it, and after the
// store recovers the file must equal the model.
TEST(FlushPipeline, OrderedCommitsUnderInjectedFailures) {
  for (uint64_t seed = 1; seed <= 6; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    auto base = NewMemoryStore("pipeline-" + std::to_string(seed));
    auto faults = std::make_shared<FaultInjectionStore>(base);
    OpenOptions o;
    o.flush_dirty_bytes = 32 * 1024;
    auto f = File::Create(faults, Blocks(4096), o);
    ASSERT_TRUE(f.ok());
    std::mt19937_64 rng(seed);
    faults->FailWhen(
        [seed, n = std::make_shared<std::atomic<uint64_t>>(0)](const StoreCall& c) {
          return c.verb == StoreVerb::kPut && std::hash<uint64_t>()(seed * 7919 + (*n)++) % 4 == 0;
        },
        Status::Transient("injected put failure"));
    std::string model;
    std::set<std::string> states = {""};
    std::map<uint64_t, std::string> flushed;  // id -> model at the call
    for (int op = 0; op < 300; op++) {
      int kind = static_cast<int>(rng() % 10);
      uint64_t off = rng() % (256 * 1024);
      uint64_t len = 1 + rng() % 20000;
      if (kind < 6) {
        std::string d = Random(rng(), len);
        ASSERT_TRUE((*f)->PWrite(off, d.data(), d.size()).ok());
        if (model.size() < off + len) model.resize(off + len, '\0');
        model.replace(off, len, d);
      } else if (kind == 6) {
        ASSERT_TRUE((*f)->PunchHole(off, len).ok());
        if (off < model.size()) {
          uint64_t e = std::min<uint64_t>(model.size(), off + len);
          std::fill(model.begin() + off, model.begin() + e, '\0');
        }
      } else if (kind == 7) {
        ASSERT_TRUE((*f)->Truncate(off).ok());
        model.resize(off, '\0');
      } else {
        auto id = (*f)->Flush();
        if (id.ok()) flushed[*id] = model;
      }
      states.insert(model);
    }
    faults->ClearFaults();
    auto last = (*f)->Flush();
    ASSERT_TRUE(last.ok()) << last.status().ToString();
    flushed[*last] = model;
    auto list = ListCheckpoints(base, 100000);
    ASSERT_TRUE(list.ok());
    ASSERT_EQ(list->front().id, *last);
    for (size_t i = 0; i < list->size(); i++) {
      ASSERT_EQ((*list)[i].id, *last - i) << "checkpoint ids have a gap";
      std::string content = ReadAt(base, (*list)[i].id);
      EXPECT_TRUE(states.count(content))
          << "checkpoint " << (*list)[i].id << " is a state the file never had";
    }
    for (const auto& [id, expect] : flushed) {
      EXPECT_TRUE(SameBytes(ReadAt(base, id), expect))
          << "checkpoint " << id << " returned by Flush()";
    }
    EXPECT_TRUE(SameBytes(ReadAll(f->get()), model));
  }
}

// Regression: a partial-block write reads the block's old bytes, then
// applies under the lock. When the flusher froze the batch in between, the
// write used to start the block from zeros and lose the old bytes (found by
// the test above). With a one-block flush threshold the flusher freezes
// after nearly every write, so this race is hit constantly.
TEST(FlushPipeline, PartialWritesAndTruncatesRacingTheFlusherKeepOldBytes) {
  auto store = NewMemoryStore("pipeline-rmw");
  OpenOptions o;
  o.flush_dirty_bytes = 4096;
  auto f = File::Create(store, Blocks(4096), o);
  ASSERT_TRUE(f.ok());
  std::mt19937_64 rng(77);
  std::string model;
  for (int op = 0; op < 3000; op++) {
    uint64_t off = rng() % (64 * 1024), len = 1 + rng() % 3000;
    if (rng() % 50 == 0) {
      ASSERT_TRUE((*f)->Truncate(off).ok());
      model.resize(off, '\0');
      continue;
    }
    std::string d = Random(rng(), len);
    ASSERT_TRUE((*f)->PWrite(off, d.data(), len).ok());
    if (model.size() < off + len) model.resize(off + len, '\0');
    model.replace(off, len, d);
  }
  ASSERT_TRUE(SameBytes(ReadAll(f->get()), model));
  auto id = (*f)->Flush();
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(SameBytes(ReadAt(store, *id), model));
}

// A file made of several segments with holes, overwrites and dirty blocks,
// read as streams of various read sizes: readahead must never change a byte.
TEST(Readahead, StreamsReadTheSameBytesAsTheModel) {
  auto store = NewMemoryStore("readahead");
  OpenOptions o;
  o.max_read_request_bytes = 64 * 1024;  // small units: many prefetches
  o.block_cache_bytes = 1 << 20;
  auto f = File::Create(store, Blocks(4096), o);
  ASSERT_TRUE(f.ok());
  std::mt19937_64 rng(9);
  std::string model(3 << 20, '\0');
  for (int round = 0; round < 6; round++) {
    for (int i = 0; i < 20; i++) {
      uint64_t off = rng() % model.size(), len = 1 + rng() % 100000;
      len = std::min<uint64_t>(len, model.size() - off);
      std::string d = Random(rng(), len);
      ASSERT_TRUE((*f)->PWrite(off, d.data(), len).ok());
      model.replace(off, len, d);
    }
    uint64_t hole = rng() % model.size(), hl = std::min<uint64_t>(200000, model.size() - hole);
    ASSERT_TRUE((*f)->PunchHole(hole, hl).ok());
    std::fill(model.begin() + hole, model.begin() + hole + hl, '\0');
    if (round < 5) {
      ASSERT_TRUE((*f)->Flush().ok());  // the last round stays dirty
    }
  }
  for (size_t step : {size_t{1000}, size_t{4096}, size_t{65536}, size_t{300000}}) {
    auto r = File::Open(store, o);  // committed state, cold cache
    ASSERT_TRUE(r.ok());
    for (File* file : {f->get(), r->get()}) {
      std::string back;
      std::string buf(step, '\0');
      for (uint64_t off = 0; off < file->Size(); off += step) {
        auto n = file->PRead(off, buf.data(), step);
        ASSERT_TRUE(n.ok());
        back.append(buf.data(), *n);
      }
      if (file == f->get()) {
        ASSERT_TRUE(SameBytes(back, model)) << "read step " << step;
      } else {
        ASSERT_TRUE(SameBytes(back, ReadAt(store, (*r)->Stat()->checkpoint)))
            << "read step " << step;
      }
    }
  }
}

TEST(Readahead, ColdStreamCostsOneGetPerUnit) {
  auto base = NewMemoryStore("readahead-gets");
  auto metrics = std::make_shared<MetricsStore>(base);
  const uint64_t size = 64ull << 20;
  {
    auto f = File::Create(metrics, Blocks(65536));
    ASSERT_TRUE(f.ok());
    std::string d = Random(5, 1 << 20);
    for (uint64_t off = 0; off < size; off += d.size()) {
      ASSERT_TRUE((*f)->PWrite(off, d.data(), d.size()).ok());
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  metrics->Reset();
  auto f = File::Open(metrics, OpenOptions{});
  ASSERT_TRUE(f.ok());
  uint64_t open_gets = metrics->Snapshot().count(StoreVerb::kGet);
  std::string buf(1 << 20, '\0');
  for (uint64_t off = 0; off < size; off += buf.size()) {
    ASSERT_TRUE((*f)->PRead(off, buf.data(), buf.size()).ok());
  }
  uint64_t gets = metrics->Snapshot().count(StoreVerb::kGet) - open_gets;
  EXPECT_LE(gets, size / (8 << 20) + 2) << "GETs for a cold 64 MiB stream in 1 MiB reads";
}

TEST(CacheBudgets, CachesStayWithinTheirBudgets) {
  auto store = NewMemoryStore("budgets");
  {
    auto f = File::Create(store, Blocks(4096));
    ASSERT_TRUE(f.ok());
    std::mt19937_64 rng(11);
    // Many small extents in many segments: a tree with many leaves.
    for (int round = 0; round < 20; round++) {
      for (int i = 0; i < 500; i++) {
        std::string d = Random(rng(), 4096);
        ASSERT_TRUE((*f)->PWrite((rng() % 8192) * 4096, d.data(), d.size()).ok());
      }
      ASSERT_TRUE((*f)->Flush().ok());
    }
  }
  OpenOptions o;
  o.block_cache_bytes = 512 * 1024;
  o.index_cache_bytes = 64 * 1024;
  auto f = File::Open(store, o);
  ASSERT_TRUE(f.ok());
  std::mt19937_64 rng(12);
  std::string buf(4096, '\0');
  for (int i = 0; i < 5000; i++) {
    ASSERT_TRUE((*f)->PRead((rng() % 8192) * 4096, buf.data(), buf.size()).ok());
  }
  for (int i = 0; i < 20; i++) {  // streams too (readahead fills the block cache)
    ASSERT_TRUE((*f)->PRead(i * 4096ull, buf.data(), buf.size()).ok());
  }
  auto st = (*f)->Stat();
  ASSERT_TRUE(st.ok());
  EXPECT_LE(st->block_cache_bytes, o.block_cache_bytes);
  EXPECT_GT(st->block_cache_bytes, o.block_cache_bytes / 2);
  EXPECT_LE(st->index_cache_bytes, o.index_cache_bytes);
  EXPECT_GT(st->index_cache_bytes, 0u);
  // Zero budgets work: nothing cached, every byte still right.
  o.block_cache_bytes = 0;
  o.index_cache_bytes = 0;
  auto z = File::Open(store, o);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(ReadAll(z->get()), ReadAll(f->get()));
  EXPECT_EQ((*z)->Stat()->block_cache_bytes, 0u);
}

TEST(DiskCache, ServesReopenedFilesAndNeverAnotherIncarnation) {
  std::string dir = std::filesystem::temp_directory_path().string() + "/hf-pipeline-disk-" +
                    std::to_string(getpid());
  std::filesystem::remove_all(dir);
  auto base = NewMemoryStore("disk-tier");
  auto metrics = std::make_shared<MetricsStore>(base);
  std::string data = Random(21, 3 << 20);
  {
    auto f = File::Create(metrics, Blocks(4096));
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->PWrite(0, data.data(), data.size()).ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  OpenOptions o;
  o.disk_cache_dir = dir;
  o.disk_cache_bytes = 64 << 20;
  o.block_cache_bytes = 256 * 1024;  // too small to hold the file: the disk tier must
  for (int pass = 0; pass < 2; pass++) {
    auto f = File::Open(metrics, o);
    ASSERT_TRUE(f.ok());
    metrics->Reset();
    EXPECT_EQ(ReadAll(f->get()), data);
    uint64_t gets = metrics->Snapshot().count(StoreVerb::kGet);
    if (pass == 0) {
      EXPECT_GT(gets, 0u);
    } else {
      EXPECT_EQ(gets, 0u) << "the second open must read from the disk tier";
      EXPECT_GE((*f)->Stat()->disk_cache_bytes, data.size());
    }
  }
  // The prefix deleted and created again: same segment ids, new content.
  ASSERT_TRUE(RemoveFile(base).ok());
  std::string other = Random(22, 3 << 20);
  {
    auto f = File::Create(base, Blocks(4096));
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->PWrite(0, other.data(), other.size()).ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  auto f = File::Open(base, o);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(ReadAll(f->get()), other);
  f->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hyperfile
