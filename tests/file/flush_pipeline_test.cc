// SPDX-License-Identifier: Apache-2.0
// The commit protocol of write path v2: large data goes to data objects
// uploaded before a small create-only commit PUT; flush N+1 prepares and
// uploads while flush N commits; commits stay ordered; a failure of N puts
// N+1 back too; a crash at any store call leaves the last flush that
// returned success (or a later state that a background flush committed).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "format/format.h"
#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"

namespace hyperfile {
namespace {

constexpr uint64_t kMiB = 1 << 20;

std::string Pattern(uint64_t seed, size_t n) {
  std::string s(n, '\0');
  std::mt19937_64 r(seed);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = r();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

std::string ReadAll(File* f) {
  std::string out(f->Size(), '\0');
  auto n = f->PRead(0, out.data(), out.size());
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  return out;
}

// Every flush of `chunk` or more is frozen by size while the previous one
// uploads: two flights in flight.
OpenOptions Pipelined(uint64_t threshold) {
  OpenOptions o;
  o.flush_dirty_bytes = threshold;
  o.dirty_budget_bytes = 8 * threshold;
  return o;
}

// One store call as the test saw it, in order.
struct Event {
  StoreVerb verb;
  std::string key;
  bool if_absent;
  bool done;  // false: the call started; true: it answered
};

// Records calls (start and answer) and can hold one call until a condition
// on the record holds (bounded: a design that never gets there fails the
// test instead of hanging it).
class Recorder : public FaultInjectionStore {
 public:
  explicit Recorder(std::shared_ptr<ObjectStore> base) : FaultInjectionStore(std::move(base)) {}
  using Predicate = std::function<bool(const std::vector<Event>&)>;
  // Holds the first Put of `key` until `until` holds; *held says whether it did.
  void HoldPut(std::string key, Predicate until) {
    std::lock_guard<std::mutex> l(mu_);
    hold_key_ = std::move(key);
    until_ = std::move(until);
  }
  std::vector<Event> events() const {
    std::lock_guard<std::mutex> l(mu_);
    return events_;
  }
  bool hold_satisfied() const { return satisfied_; }
  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    uint64_t bytes = 0;
    for (auto p : data) bytes += p.size();
    {
      std::unique_lock<std::mutex> l(mu_);
      events_.push_back({StoreVerb::kPut, std::string(key), options.if_absent, false});
      put_bytes_[std::string(key)] = bytes;
      cv_.notify_all();
      if (!hold_key_.empty() && key == hold_key_) {
        hold_key_.clear();
        satisfied_ = cv_.wait_for(l, std::chrono::seconds(10), [&] { return until_(events_); });
      }
    }
    Status st = FaultInjectionStore::Put(key, data, options, info);
    Answered(StoreVerb::kPut, key);
    return st;
  }
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    Started(StoreVerb::kGet, key);
    Status st = FaultInjectionStore::Get(key, offset, length, out, info);
    Answered(StoreVerb::kGet, key);
    return st;
  }
  Status Head(std::string_view key, ObjectInfo* info) override {
    Started(StoreVerb::kHead, key);
    return FaultInjectionStore::Head(key, info);
  }
  uint64_t PutBytes(const std::string& key) const {
    std::lock_guard<std::mutex> l(mu_);
    auto it = put_bytes_.find(key);
    return it == put_bytes_.end() ? 0 : it->second;
  }
  using ObjectStore::Get;
  using ObjectStore::Put;

 private:
  void Started(StoreVerb v, std::string_view key) {
    std::lock_guard<std::mutex> l(mu_);
    events_.push_back({v, std::string(key), false, false});
    cv_.notify_all();
  }
  void Answered(StoreVerb v, std::string_view key) {
    std::lock_guard<std::mutex> l(mu_);
    events_.push_back({v, std::string(key), false, true});
    cv_.notify_all();
  }
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Event> events_;
  std::map<std::string, uint64_t> put_bytes_;
  std::string hold_key_;
  Predicate until_;
  std::atomic<bool> satisfied_{false};
};

bool Answered(const std::vector<Event>& ev, StoreVerb verb, const std::string& prefix) {
  for (const Event& e : ev) {
    if (e.verb == verb && e.done && e.key.starts_with(prefix)) return true;
  }
  return false;
}

// Index of the first event matching, or -1.
int Find(const std::vector<Event>& ev, StoreVerb verb, const std::string& prefix, bool done) {
  for (size_t i = 0; i < ev.size(); i++) {
    if (ev[i].verb == verb && ev[i].done == done && ev[i].key.starts_with(prefix)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

std::string DatPrefix(uint64_t id) { return format::DataObjectKey(id, 0).substr(0, 21); }

TEST(CommitProtocol, LargeFlushIsADataObjectThenOneSmallCreateOnlyPut) {
  auto mem = NewMemoryStore("cp-large");
  auto rec = std::make_shared<Recorder>(mem);
  CreateOptions co;
  co.block_size = 65536;
  auto file = File::Create(rec, co).value();
  const std::string data = Pattern(1, 24 * kMiB);
  ASSERT_TRUE(file->PWrite(0, data.data(), data.size()).ok());
  auto id = file->Flush();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_EQ(*id, 2u);
  const auto ev = rec->events();
  int dat = Find(ev, StoreVerb::kPut, DatPrefix(2), true);
  int seg = Find(ev, StoreVerb::kPut, format::SegmentKey(2), false);
  ASSERT_GE(dat, 0) << "no data object";
  ASSERT_GE(seg, 0);
  EXPECT_LT(dat, seg) << "the data object must be complete before the commit starts";
  int seg_puts = 0;
  for (const Event& e : ev) {
    if (e.verb == StoreVerb::kPut && !e.done && e.key.starts_with("seg/")) {
      seg_puts++;
      EXPECT_TRUE(e.if_absent) << e.key;
    }
    EXPECT_NE(e.verb, StoreVerb::kHead) << "no HEAD on the write path: " << e.key;
    if (e.key.starts_with("seg/fffffffffffffffd")) {
      EXPECT_NE(e.verb, StoreVerb::kGet);
    }
  }
  EXPECT_EQ(seg_puts, 2);  // create + this flush
  // The commit is small: header and index nodes, no data.
  EXPECT_LT(rec->PutBytes(format::SegmentKey(2)), 64u * 1024);
  ASSERT_TRUE(file->Close().ok());
  auto back = File::Open(mem).value();
  EXPECT_TRUE(ReadAll(back.get()) == data);
}

TEST(CommitProtocol, SmallFlushIsOnePutWithTheDataInline) {
  auto mem = NewMemoryStore("cp-small");
  auto rec = std::make_shared<Recorder>(mem);
  auto file = File::Create(rec, CreateOptions{}).value();
  const std::string data = Pattern(2, kMiB);
  ASSERT_TRUE(file->PWrite(0, data.data(), data.size()).ok());
  ASSERT_TRUE(file->Flush().ok());
  for (const Event& e : rec->events()) {
    EXPECT_FALSE(e.key.starts_with("dat/")) << "a 1 MiB flush needs no data object";
  }
  EXPECT_GE(rec->PutBytes(format::SegmentKey(2)), kMiB);
}

// Flight 3 prepares and uploads its data object while flight 2's commit
// PUT is held; flight 3's commit starts only after flight 2's answered.
TEST(FlushPipeline, NextFlightUploadsWhileTheFrontCommitsAndCommitsStayOrdered) {
  auto mem = NewMemoryStore("fp-overlap");
  auto rec = std::make_shared<Recorder>(mem);
  CreateOptions co;
  co.block_size = 65536;
  auto file = File::Create(rec, co, Pipelined(4 * kMiB)).value();
  const std::string dat3 = DatPrefix(3);
  rec->HoldPut(format::SegmentKey(2),
               [&](const std::vector<Event>& ev) { return Answered(ev, StoreVerb::kPut, dat3); });
  const std::string data = Pattern(3, 8 * kMiB);
  for (uint64_t off = 0; off < data.size(); off += kMiB) {
    ASSERT_TRUE(file->PWrite(off, data.data() + off, kMiB).ok());
  }
  auto id = file->Flush();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, 3u);
  EXPECT_TRUE(rec->hold_satisfied())
      << "flight 3's data object was not uploaded while flight 2 committed";
  const auto ev = rec->events();
  int seg2_done = Find(ev, StoreVerb::kPut, format::SegmentKey(2), true);
  int seg3_start = Find(ev, StoreVerb::kPut, format::SegmentKey(3), false);
  ASSERT_GE(seg2_done, 0);
  ASSERT_GE(seg3_start, 0);
  EXPECT_LT(seg2_done, seg3_start) << "commit 3 started before commit 2 answered";
  ASSERT_TRUE(file->Close().ok());
  auto back = File::Open(mem).value();
  EXPECT_TRUE(ReadAll(back.get()) == data);
}

// Flight 2's commit fails after flight 3 prepared: both go back, nothing is
// lost, and the retry names its data objects afresh (new epoch).
TEST(FlushPipeline, FailureOfTheFrontPutsTheNextFlightBackToo) {
  auto mem = NewMemoryStore("fp-fail");
  auto rec = std::make_shared<Recorder>(mem);
  CreateOptions co;
  co.block_size = 65536;
  auto file = File::Create(rec, co, Pipelined(4 * kMiB)).value();
  const std::string dat3 = DatPrefix(3);
  rec->HoldPut(format::SegmentKey(2),
               [&](const std::vector<Event>& ev) { return Answered(ev, StoreVerb::kPut, dat3); });
  const std::string seg2 = format::SegmentKey(2);
  rec->FailWhen([&](const StoreCall& c) { return c.verb == StoreVerb::kPut && c.key == seg2; },
                Status::IOError("injected commit failure"));
  const std::string data = Pattern(4, 8 * kMiB);
  for (uint64_t off = 0; off < data.size(); off += kMiB) {
    ASSERT_TRUE(file->PWrite(off, data.data() + off, kMiB).ok());
  }
  auto failed = file->Flush();
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(rec->hold_satisfied());
  // Everything is still readable from the handle, and nothing was committed.
  EXPECT_TRUE(ReadAll(file.get()) == data);
  rec->ClearFaults();
  auto id = file->Flush();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE(file->Close().ok());
  auto back = File::Open(mem).value();
  EXPECT_TRUE(ReadAll(back.get()) == data);
  // The failed attempt's objects are orphans with other names than the
  // retry's: two distinct data objects for checkpoint 2 exist.
  std::vector<ObjectInfo> dats;
  ASSERT_TRUE(mem->List(DatPrefix(2), "", 0, &dats).ok());
  EXPECT_EQ(dats.size(), 2u);
}

// A pipelined workload (size-triggered flights, two in flight, data
// objects) crashed before each store call: reopening shows the last flush
// that returned success, or a later prefix of the writes that a background
// flight committed — never anything else.
TEST(CrashSafety, CrashBeforeEveryStoreCallOfAPipelinedWorkload) {
  struct Run {
    std::vector<std::string> prefixes;  // model after 0, 1, ... writes
    size_t flushed = 0;                 // writes covered by the last successful Flush
    bool created = false;
  };
  auto workload = [](std::shared_ptr<ObjectStore> store) {
    Run run;
    CreateOptions co;
    co.block_size = 65536;
    auto f = File::Create(store, co, Pipelined(3 * kMiB));
    if (!f.ok()) return run;
    run.created = true;
    std::string model;
    run.prefixes.push_back(model);
    for (int i = 0; i < 10; i++) {
      const std::string d = Pattern(100 + i, 3 * kMiB / 2);
      const uint64_t off = static_cast<uint64_t>(i) * kMiB;  // overlapping writes
      if (model.size() < off + d.size()) model.resize(off + d.size(), '\0');
      model.replace(off, d.size(), d);
      if (!(*f)->PWrite(off, d.data(), d.size()).ok()) break;
      run.prefixes.push_back(model);
      if (i % 4 == 3 || i == 9) {
        if (!(*f)->Flush().ok()) break;
        run.flushed = run.prefixes.size() - 1;
      }
    }
    (void)(*f)->Close();
    return run;
  };
  auto probe = std::make_shared<FaultInjectionStore>(NewMemoryStore("pcrash-probe"));
  Run clean = workload(probe);
  ASSERT_EQ(clean.flushed, 10u);
  const uint64_t total = probe->calls();
  ASSERT_GT(total, 6u);
  for (uint64_t k = 0; k <= total; k++) {
    SCOPED_TRACE("crash before call " + std::to_string(k));
    auto base = NewMemoryStore("pcrash-" + std::to_string(k));
    auto faulty = std::make_shared<FaultInjectionStore>(base);
    faulty->CrashAfter(k);
    Run run = workload(faulty);
    OpenOptions ro;
    ro.read_only = true;
    auto reopened = File::Open(base, ro);
    if (!run.created) {
      if (reopened.ok()) {
        EXPECT_EQ((*reopened)->Size(), 0u);
      }
      continue;
    }
    ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
    const std::string got = ReadAll(reopened->get());
    bool ok = false;
    for (size_t j = run.flushed; j < run.prefixes.size() && !ok; j++) {
      ok = got == run.prefixes[j];
    }
    EXPECT_TRUE(ok) << "reopened content (" << got.size()
                    << " bytes) is not the last successful flush (" << run.flushed
                    << " writes) or a later prefix of the writes";
  }
}

}  // namespace
}  // namespace hyperfile
