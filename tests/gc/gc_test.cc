// SPDX-License-Identifier: Apache-2.0
// Space reclamation: retention policies, collection, compaction, leases,
// clone pins, the stalled writer, crashes during a collection, hostile
// collector objects, on memory, a local directory and the local S3 gateway.
#include "hyperfile/gc.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "format/format.h"
#include "format/gc_records.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"
#include "support/codecs.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

constexpr uint32_t kBlock = 16 * 1024;

std::string Pattern(uint64_t seed, size_t n) {
  std::string s(n, '\0');
  std::mt19937_64 r(seed);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = r() | 1;  // never an all-zero block (that would be a hole)
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

// Compressible bytes (letters), never an all-zero block.
std::string Letters(uint64_t seed, size_t n) {
  std::string s(n, '\0');
  std::mt19937_64 r(seed);
  for (auto& c : s) c = static_cast<char>('a' + r() % 26);
  return s;
}

// `key`: the key of an encrypted file.
Result<std::string> ReadAt(const std::shared_ptr<ObjectStore>& store, const At& at,
                           std::shared_ptr<const KeySource> key = nullptr) {
  // A reader (a writable handle would wait out a crashed compaction's lease).
  OpenOptions ro;
  ro.read_only = true;
  ro.key = std::move(key);
  HF_ASSIGN_OR_RETURN(std::unique_ptr<File> f, File::OpenAt(store, at, ro));
  std::string out(f->Size(), '\0');
  HF_ASSIGN_OR_RETURN(size_t n, f->PRead(0, out.data(), out.size()));
  if (n != out.size()) return Status::Corrupt("short read");
  HF_RETURN_IF_ERROR(f->Close());
  return out;
}

// Reads `at` and compares with `want` without printing megabytes on failure.
::testing::AssertionResult Reads(const std::shared_ptr<ObjectStore>& store, const At& at,
                                 const std::string& want,
                                 std::shared_ptr<const KeySource> key = nullptr) {
  auto got = ReadAt(store, at, std::move(key));
  if (!got.ok())
    return ::testing::AssertionFailure() << at.ToString() << ": " << got.status().ToString();
  if (*got != want) {
    return ::testing::AssertionFailure() << at.ToString() << ": " << got->size()
                                         << " bytes differ from the expected " << want.size();
  }
  return ::testing::AssertionSuccess();
}

// Bytes of every segment and data object.
uint64_t StoredBytes(ObjectStore* store) {
  uint64_t total = 0;
  for (std::string_view prefix : {format::kSegmentPrefix, format::kDataObjectPrefix}) {
    std::vector<ObjectInfo> objects;
    EXPECT_TRUE(store->List(prefix, "", 0, &objects).ok());
    for (const ObjectInfo& o : objects) total += o.size;
  }
  return total;
}

std::set<std::string> Keys(ObjectStore* store) {
  std::vector<ObjectInfo> objects;
  EXPECT_TRUE(store->List("", "", 0, &objects).ok());
  std::set<std::string> keys;
  for (const ObjectInfo& o : objects) keys.insert(o.key);
  return keys;
}

GcOptions NoGrace(RetentionPolicy policy) {
  GcOptions o;
  o.policy = policy;
  o.grace_ms = 0;
  return o;
}

RetentionPolicy KeepLast(uint32_t n) {
  RetentionPolicy p;
  p.keep_last = n;
  return p;
}

// ------------------------------------------------------------ policies ---

TEST(Retention, RulesParseAndPrintCanonically) {
  auto p = RetentionPolicy::Parse("keep-last=3, keep-within=1d12h\nkeep-daily=7 keep-monthly=12");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->keep_last, 3u);
  EXPECT_EQ(p->keep_within_ms, 36ll * 3600 * 1000);
  EXPECT_EQ(p->keep_daily, 7u);
  EXPECT_EQ(p->keep_monthly, 12u);
  EXPECT_EQ(p->ToString(), "keep-last=3 keep-within=1d12h keep-daily=7 keep-monthly=12");
  auto again = RetentionPolicy::Parse(p->ToString());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *p);
  EXPECT_TRUE(RetentionPolicy::Parse("").ok());
  EXPECT_EQ(RetentionPolicy::Parse("")->ToString(), "");
  for (const char* bad : {"keep-last", "keep-last=", "keep-last=-1", "keep-last=1 keep-last=2",
                          "keep-everything=1", "keep-within=7", "keep-within=0d", "keep-within=7x",
                          "keep-within=99999999999999d", "keep-daily=1000001", "keep-last=1e3"}) {
    EXPECT_FALSE(RetentionPolicy::Parse(bad).ok()) << bad;
  }
  EXPECT_EQ(*RetentionPolicy::ParseDuration("2w"), 14ll * 86400 * 1000);
  EXPECT_EQ(*RetentionPolicy::ParseDuration("90m"), 90ll * 60 * 1000);
}

TEST(Retention, CalendarBucketsKeepTheNewestOfEach) {
  // Checkpoints every 20 minutes for 40 days, from 2026-01-01T00:00Z.
  const int64_t t0 = 1767225600000;  // 2026-01-01T00:00:00Z (a Thursday)
  std::vector<CheckpointInfo> history;
  for (uint64_t i = 0; i < 40 * 72; i++) {
    CheckpointInfo c;
    c.id = i + 1;
    c.time_ms = t0 + static_cast<int64_t>(i) * 20 * 60 * 1000;
    history.push_back(c);
  }
  const uint64_t newest = history.back().id;
  auto select = [&](RetentionPolicy p) {
    auto v = SelectByPolicy(p, history);
    return std::set<uint64_t>(v.begin(), v.end());
  };
  RetentionPolicy last;
  last.keep_last = 5;
  EXPECT_EQ(select(last),
            (std::set<uint64_t>{newest - 4, newest - 3, newest - 2, newest - 1, newest}));
  RetentionPolicy hourly;
  hourly.keep_hourly = 3;  // the newest of each of the 3 newest hours: 3 per hour apart
  EXPECT_EQ(select(hourly), (std::set<uint64_t>{newest, newest - 3, newest - 6}));
  RetentionPolicy daily;
  daily.keep_daily = 2;
  EXPECT_EQ(select(daily), (std::set<uint64_t>{newest, newest - 72}));
  RetentionPolicy monthly;
  monthly.keep_monthly = 5;  // only January and February exist
  auto m = select(monthly);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(*m.begin(), 31u * 72);  // the last checkpoint of January
  RetentionPolicy weekly;
  weekly.keep_weekly = 2;
  auto w = select(weekly);
  ASSERT_EQ(w.size(), 2u);
  // The newest checkpoint of the previous ISO week is a Sunday 23:40.
  int64_t t = history[*w.begin() - 1].time_ms;
  EXPECT_EQ(((t / 86400000) + 3) % 7, 6) << "not a Sunday";
  EXPECT_EQ(t % 86400000, (23 * 60 + 40) * 60 * 1000);
  RetentionPolicy within;
  within.keep_within_ms = 60 * 60 * 1000;  // the newest and 3 more within an hour of it
  EXPECT_EQ(select(within).size(), 4u);
}

TEST(Retention, PolicyIsStoredWithTheFile) {
  auto store = NewMemoryStore("gc-policy");
  EXPECT_TRUE(SetRetentionPolicy(store, KeepLast(2)).IsNotFound());  // no file yet
  auto f = File::Create(store);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Flush().ok());
  auto none = GetRetentionPolicy(store);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(SetRetentionPolicy(store, KeepLast(2)).ok());
  auto got = GetRetentionPolicy(store);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, KeepLast(2));
  ASSERT_TRUE(store->Put(format::kPolicyKey, {std::string("keep-forever=1")}, PutOptions{}).ok());
  auto bad = GetRetentionPolicy(store);
  EXPECT_TRUE(bad.status().IsCorrupt()) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("gc/policy"), std::string::npos);
}

TEST(GcRecords, KeptStateRoundTripsAndRejectsDamage) {
  format::KeptState s;
  s.horizon = 9;
  s.first = 2;
  s.collected_ms = 77;
  s.kept = {{3, 100, 150}, {7, 300, 400}, {9, 500, INT64_MAX}};
  std::string bytes = format::EncodeKeptState(s);
  auto d = format::DecodeKeptState(bytes, "x/gc/kept");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->kept, s.kept);
  EXPECT_TRUE(d->Expired(4));
  EXPECT_FALSE(d->Expired(3));
  EXPECT_FALSE(d->Expired(1));   // below first: not judged
  EXPECT_FALSE(d->Expired(10));  // above the horizon
  EXPECT_EQ(d->ForTime(120)->id, 3u);
  EXPECT_EQ(d->ForTime(200), nullptr);  // checkpoint 4, 5 or 6: expired
  EXPECT_EQ(d->ForTime(1000)->id, 9u);
  for (size_t i = 0; i < bytes.size(); i++) {
    std::string damaged = bytes;
    damaged[i] ^= 0x40;
    EXPECT_FALSE(format::DecodeKeptState(damaged, "x/gc/kept").ok()) << i;
  }
  EXPECT_FALSE(format::DecodeKeptState(bytes.substr(0, bytes.size() - 1), "x").ok());
  format::LeaseRecord l{5, 60000, "host/42"};
  auto dl = format::DecodeLease(format::EncodeLease(l), "x");
  ASSERT_TRUE(dl.ok());
  EXPECT_EQ(dl->holder, "host/42");
  format::PinRecord pin{5, 77, "s3://b/clone"};
  auto dp = format::DecodePin(format::EncodePin(pin), "x");
  ASSERT_TRUE(dp.ok());
  EXPECT_EQ(dp->clone_uri, "s3://b/clone");
  EXPECT_EQ(format::ParseLeaseKey(format::LeaseKey(0xabc)), 0xabcu);
  EXPECT_FALSE(format::ParseLeaseKey("lease/README").has_value());
}

// --------------------------------------------------------- collection ---

class GcBackends : public ::testing::TestWithParam<std::string> {};

// The case that stored 6.0x its size: the same 4 MiB written 5 times.
TEST_P(GcBackends, SequentialRewritesShrinkToTheLiveSize) {
  HF_REQUIRE_BACKEND(GetParam());
  auto store = testing::MakeStoreForBackend(GetParam(), "gc-seq");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const size_t kSize = 4 << 20;
  std::vector<uint64_t> ids;
  {
    CreateOptions c;
    c.block_size = 64 * 1024;
    auto f = File::Create(*store, c);
    ASSERT_TRUE(f.ok());
    for (int v = 0; v < 5; v++) {
      ASSERT_TRUE((*f)->PWrite(0, Pattern(v, kSize).data(), kSize).ok());
      auto id = (*f)->Flush();
      ASSERT_TRUE(id.ok()) << id.status().ToString();
      ids.push_back(*id);
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  const uint64_t before = StoredBytes(store->get());
  EXPECT_GT(before, 5 * kSize);
  auto report = Collect(*store, NoGrace(KeepLast(1)));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  std::vector<uint64_t> older{1};  // the empty checkpoint Create made
  older.insert(older.end(), ids.begin(), ids.end() - 1);
  EXPECT_EQ(report->expired, older);
  EXPECT_GT(report->deleted_objects, 0u);
  const uint64_t after = StoredBytes(store->get());
  EXPECT_LE(static_cast<double>(after), 1.1 * kSize) << "before " << before;
  // The head reads back; every other checkpoint is gone, clearly.
  auto head = ReadAt(*store, At::Latest());
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(*head, Pattern(4, kSize));
  for (size_t i = 0; i + 1 < ids.size(); i++) {
    auto old = File::OpenAt(*store, At::Checkpoint(ids[i]));
    ASSERT_TRUE(old.status().IsNotFound()) << old.status().ToString();
    EXPECT_NE(old.status().message().find("expired by the retention policy"), std::string::npos)
        << old.status().message();
  }
  auto log = ListCheckpoints(*store);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  ASSERT_EQ(log->size(), 1u);
  EXPECT_EQ((*log)[0].id, ids.back());
  // A second run finds nothing more to do.
  auto again = Collect(*store, NoGrace(KeepLast(1)));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->deleted_objects, 0u);
  EXPECT_TRUE(again->expired.empty());
}

// A reader lease keeps its checkpoint; a clone's pin keeps the one it was
// made from and `rm` of the source refuses; the stored policy applies.
TEST_P(GcBackends, LeasesAndClonePinsKeepTheirCheckpoints) {
  HF_REQUIRE_BACKEND(GetParam());
  std::string uri;
  auto store = testing::MakeStoreForBackend(GetParam(), "gc-lease", &uri);
  ASSERT_TRUE(store.ok());
  auto clone_store = testing::MakeStoreForBackend(GetParam(), "gc-clone");
  ASSERT_TRUE(clone_store.ok());
  std::vector<uint64_t> ids;
  {
    auto f = File::Create(*store, CreateOptions{kBlock});
    ASSERT_TRUE(f.ok());
    for (int v = 0; v < 4; v++) {
      ASSERT_TRUE((*f)->PWrite(0, Pattern(10 + v, 256 * 1024).data(), 256 * 1024).ok());
      ids.push_back(*(*f)->Flush());
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  auto lease = Lease::Acquire(*store, At::Checkpoint(ids[0]), 60000, "test reader");
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  OpenOptions clone_opts;
  auto cloned = Clone(*store, At::Checkpoint(ids[1]), *clone_store);
  ASSERT_TRUE(cloned.ok()) << cloned.status().ToString();
  ASSERT_TRUE(SetRetentionPolicy(*store, KeepLast(1)).ok());
  GcOptions o;
  o.grace_ms = 0;  // the stored policy
  auto r = Collect(*store, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->expired, (std::vector<uint64_t>{1, ids[2]}));
  EXPECT_EQ(r->leases, 1u);
  EXPECT_EQ(r->pins, 1u);
  EXPECT_TRUE(Reads(*store, At::Checkpoint(ids[0]), Pattern(10, 256 * 1024)));
  EXPECT_TRUE(Reads(*store, At::Checkpoint(ids[1]), Pattern(11, 256 * 1024)));
  EXPECT_TRUE(ReadAt(*store, At::Checkpoint(ids[2])).status().IsNotFound());
  auto via_clone = ReadAt(*clone_store, At::Latest());
  ASSERT_TRUE(via_clone.ok()) << via_clone.status().ToString();
  EXPECT_EQ(*via_clone, Pattern(11, 256 * 1024));
  // Released: the next run expires it.
  lease->reset();
  auto r2 = Collect(*store, o);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->expired, std::vector<uint64_t>{ids[0]});
  EXPECT_TRUE(ReadAt(*store, At::Checkpoint(ids[0])).status().IsNotFound());
  // An expired checkpoint cannot be leased, cloned or restored.
  EXPECT_TRUE(Lease::Acquire(*store, At::Checkpoint(ids[0])).status().IsNotFound());
  EXPECT_TRUE(Restore(*store, At::Checkpoint(ids[0])).status().IsNotFound());
  // rm of a pinned source names the clone and deletes nothing.
  auto keys = Keys(store->get());
  Status rm = RemoveFile(*store);
  EXPECT_EQ(rm.code(), Status::Code::kInvalidArgument) << rm.ToString();
  EXPECT_NE(rm.message().find("clone"), std::string::npos) << rm.message();
  EXPECT_EQ(Keys(store->get()), keys);
  // Still readable by the clone after the source's collections.
  EXPECT_TRUE(Reads(*clone_store, At::Latest(), Pattern(11, 256 * 1024)));
  RemoveOptions force;
  force.force = true;
  EXPECT_TRUE(RemoveFile(*store, force).ok());
}

INSTANTIATE_TEST_SUITE_P(All, GcBackends, ::testing::Values("memory", "local", "s3"));

// The time-travel path: the newest checkpoint at or before a time is
// answered from the collector's record once the headers between are gone.
TEST(Gc, TimeTravelToExpiredAndKeptCheckpoints) {
  auto store = NewMemoryStore("gc-time");
  std::vector<std::pair<uint64_t, int64_t>> ids;  // id, time
  {
    auto f = File::Create(store, CreateOptions{kBlock});
    ASSERT_TRUE(f.ok());
    for (int v = 0; v < 8; v++) {
      ASSERT_TRUE((*f)->PWrite(0, Pattern(v, 64 * 1024).data(), 64 * 1024).ok());
      uint64_t id = *(*f)->Flush();
      ids.push_back({id, (*(*f)->Stat()).checkpoint_time_ms});
      std::this_thread::sleep_for(std::chrono::milliseconds(3));  // distinct commit times
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  ASSERT_TRUE(CreateSnapshot(store, "keepme", At::Checkpoint(ids[2].first)).ok());
  auto r = Collect(store, NoGrace(KeepLast(2)));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kept, 3u);
  // Kept: the snapshot's (by name, by time) and the last two.
  EXPECT_TRUE(Reads(store, At::Snapshot("keepme"), Pattern(2, 64 * 1024)));
  auto by_time = ReadAt(store, At::Time(ids[2].second));
  ASSERT_TRUE(by_time.ok()) << by_time.status().ToString();
  EXPECT_EQ(*by_time, Pattern(2, 64 * 1024));
  EXPECT_TRUE(Reads(store, At::Time(ids[6].second), Pattern(6, 64 * 1024)));
  // Expired, by time: a clear NotFound, never a neighbouring state.
  for (int v : {0, 1, 3, 4, 5}) {
    auto got = File::OpenAt(store, At::Time(ids[v].second));
    ASSERT_TRUE(got.status().IsNotFound()) << v << ": " << got.status().ToString();
    EXPECT_NE(got.status().message().find("expired"), std::string::npos) << got.status().message();
  }
  auto log = ListCheckpoints(store);
  ASSERT_TRUE(log.ok());
  std::vector<uint64_t> listed;
  for (const auto& c : *log) listed.push_back(c.id);
  EXPECT_EQ(listed, (std::vector<uint64_t>{ids[7].first, ids[6].first, ids[2].first}));
}

// A crash before every store call of a compaction followed by a collection
// (the sequence `hyperfile gc --compact` runs): the head and the snapshot
// read back exactly whatever call failed, and a clean compaction and
// collection afterwards leave a head that verifies deep with about the
// storage of an uninterrupted run.
TEST(Gc, CrashAtEveryStoreCallOfACompaction) {
  auto build = [](const std::string& name) {
    auto store = NewMemoryStore(name);
    auto f = File::Create(store, CreateOptions{kBlock});
    EXPECT_TRUE(f.ok());
    std::mt19937_64 rng(5);
    const std::string base = Pattern(50, 512 * 1024);
    EXPECT_TRUE((*f)->PWrite(0, base.data(), base.size()).ok());
    EXPECT_TRUE((*f)->Flush().ok());
    EXPECT_TRUE(CreateSnapshot(store, "s", At::Latest()).ok());
    for (int v = 0; v < 6; v++) {
      // Scattered block overwrites: the first segments become mostly dead.
      for (int i = 0; i < 6; i++) {
        size_t off = (rng() % 32) * kBlock;
        EXPECT_TRUE((*f)->PWrite(off, Pattern(rng(), kBlock).data(), kBlock).ok());
      }
      EXPECT_TRUE((*f)->Flush().ok());
    }
    EXPECT_TRUE((*f)->Close().ok());
    return store;
  };
  CompactOptions co;
  co.policy = KeepLast(1);
  co.max_live_ratio = 0.9;
  auto run = [&](const std::shared_ptr<ObjectStore>& store) -> Status {
    HF_RETURN_IF_ERROR(Compact(store, co).status());
    return Collect(store, NoGrace(KeepLast(1))).status();
  };
  auto clean = build("gc-compact-crash-clean");
  const std::string head = *ReadAt(clean, At::Latest());
  const std::string snap = *ReadAt(clean, At::Snapshot("s"));
  auto metrics = std::make_shared<MetricsStore>(clean);
  auto report = Compact(metrics, co);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_GT(report->victims, 0u) << "nothing to compact: the test would prove nothing";
  ASSERT_TRUE(Collect(metrics, NoGrace(KeepLast(1))).ok());
  const uint64_t calls = metrics->Snapshot().total_requests();
  const uint64_t clean_bytes = StoredBytes(clean.get());
  ASSERT_GT(calls, 10u);
  for (uint64_t k = 0; k <= calls; k++) {
    SCOPED_TRACE("crash before call " + std::to_string(k));
    auto base = build("gc-compact-crash-" + std::to_string(k));
    auto faulty = std::make_shared<FaultInjectionStore>(base);
    faulty->CrashAfter(k);
    (void)run(faulty);
    EXPECT_TRUE(Reads(base, At::Latest(), head));
    EXPECT_TRUE(Reads(base, At::Snapshot("s"), snap));
    ASSERT_TRUE(run(base).ok());
    EXPECT_TRUE(Reads(base, At::Latest(), head));
    EXPECT_TRUE(Reads(base, At::Snapshot("s"), snap));
    auto v = Verify(base, At::Latest(), /*deep=*/true);
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(v->ok()) << v->problems.front();
    EXPECT_LE(StoredBytes(base.get()), clean_bytes + clean_bytes / 4);
  }
}

// A writer that stalled while others committed cannot commit into a slot
// the collector freed: segments younger than the grace period are never
// deleted, so its create-only put meets the existing segment.
class GcStalledWriter : public ::testing::TestWithParam<std::string> {};

TEST_P(GcStalledWriter, IsFencedNotResurrected) {
  HF_REQUIRE_BACKEND(GetParam());
  auto made = testing::MakeStoreForBackend(GetParam(), "gc-stalled");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::shared_ptr<ObjectStore> store = *made;
  auto stalled = File::Create(store, CreateOptions{kBlock});
  ASSERT_TRUE(stalled.ok());
  ASSERT_TRUE((*stalled)->PWrite(0, "base", 4).ok());
  ASSERT_TRUE((*stalled)->Flush().ok());
  {
    auto other = File::Open(store);
    ASSERT_TRUE(other.ok());
    for (int i = 0; i < 3; i++) {
      ASSERT_TRUE((*other)->PWrite(0, Pattern(i, 4096).data(), 4096).ok());
      ASSERT_TRUE((*other)->Flush().ok());
    }
    ASSERT_TRUE((*other)->Close().ok());
  }
  GcOptions o;
  o.policy = KeepLast(1);  // default grace: 20 minutes
  auto r = Collect(store, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->expired.size(), 4u);  // 1 (created), the stalled writer's 2, and 3, 4
  EXPECT_EQ(r->deleted_objects, 0u);
  EXPECT_GT(r->held_by_grace, 0u);
  ASSERT_TRUE((*stalled)->PWrite(0, "late", 4).ok());
  auto flushed = (*stalled)->Flush();
  EXPECT_EQ(flushed.status().code(), Status::Code::kConflict) << flushed.status().ToString();
  EXPECT_TRUE(Reads(store, At::Latest(), Pattern(2, 4096)));
  (void)(*stalled)->Close();
}

INSTANTIATE_TEST_SUITE_P(All, GcStalledWriter, ::testing::Values("memory", "local", "s3"));

// A store layer that runs `hook` just before the first put of `key`.
class HookStore : public StoreWrapper {
 public:
  HookStore(std::shared_ptr<ObjectStore> base, std::string key, std::function<void()> hook)
      : StoreWrapper(std::move(base)), key_(std::move(key)), hook_(std::move(hook)) {}
  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    if (key == key_ && hook_) {
      auto h = std::move(hook_);
      hook_ = nullptr;
      h();
    }
    return StoreWrapper::Put(key, data, options, info);
  }
  using ObjectStore::Put;

 private:
  std::string key_;
  std::function<void()> hook_;
};

// Forced interleaving: a reader leases a checkpoint after the collector read
// the leases but before it recorded its decision. The reader checked the old
// decision (kept) and goes on reading, so the collector must delete nothing.
TEST(Gc, LeaseThatAppearsDuringTheRunStopsTheDeletion) {
  auto base = NewMemoryStore("gc-race");
  std::vector<uint64_t> ids;
  {
    auto f = File::Create(base, CreateOptions{kBlock});
    ASSERT_TRUE(f.ok());
    for (int v = 0; v < 3; v++) {
      ASSERT_TRUE((*f)->PWrite(0, Pattern(v, 128 * 1024).data(), 128 * 1024).ok());
      ids.push_back(*(*f)->Flush());
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  std::unique_ptr<Lease> lease;
  auto hooked = std::make_shared<HookStore>(base, std::string(format::kKeptKey), [&] {
    auto l = Lease::Acquire(base, At::Checkpoint(ids[0]), 60000, "late reader");
    ASSERT_TRUE(l.ok()) << l.status().ToString();  // the old decision: still kept
    lease = std::move(l).value();
  });
  auto r = Collect(hooked, NoGrace(KeepLast(1)));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(lease);
  EXPECT_NE(r->note.find("lease"), std::string::npos) << r->note;
  // The late reader's checkpoint is kept (and readable), the others expired.
  EXPECT_EQ(r->expired, (std::vector<uint64_t>{1, ids[1]}));
  EXPECT_TRUE(Reads(base, At::Checkpoint(ids[0]), Pattern(0, 128 * 1024)));
  EXPECT_TRUE(File::OpenAt(base, At::Checkpoint(ids[1])).status().IsNotFound());
  // The next run keeps it too, for as long as the lease is held.
  auto r2 = Collect(base, NoGrace(KeepLast(1)));
  ASSERT_TRUE(r2.ok());
  EXPECT_TRUE(r2->expired.empty());
  EXPECT_TRUE(Reads(base, At::Checkpoint(ids[0]), Pattern(0, 128 * 1024)));
  lease.reset();
  auto r3 = Collect(base, NoGrace(KeepLast(1)));
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->expired, std::vector<uint64_t>{ids[0]});
}

// Runs a hook at the first Get of one key.
class GetHookStore : public StoreWrapper {
 public:
  GetHookStore(std::shared_ptr<ObjectStore> base, std::string key, std::function<void()> hook)
      : StoreWrapper(std::move(base)), key_(std::move(key)), hook_(std::move(hook)) {}
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    if (key == key_ && hook_) {
      auto h = std::move(hook_);
      hook_ = nullptr;
      h();
    }
    return StoreWrapper::Get(key, offset, length, out, info);
  }
  using ObjectStore::Get;

 private:
  std::string key_;
  std::function<void()> hook_;
};

// Forced interleaving: a writer commits two checkpoints after the collector
// read the head and before it listed the history (the nbdkit writer does,
// all the time). The decision is about the head it read: the newer ones are
// neither kept-by-policy entries past the horizon (which made gc/kept
// undecodable and stopped every later run) nor expired nor deleted.
TEST(Gc, CheckpointsCommittedWhileTheViewIsReadAreLeftForTheNextRun) {
  auto base = NewMemoryStore("gc-moving-head");
  auto f = File::Create(base, CreateOptions{kBlock});
  ASSERT_TRUE(f.ok());
  std::vector<uint64_t> ids;
  for (int v = 0; v < 3; v++) {
    ASSERT_TRUE((*f)->PWrite(0, Pattern(v, 64 * 1024).data(), 64 * 1024).ok());
    ids.push_back(*(*f)->Flush());
  }
  auto hooked = std::make_shared<GetHookStore>(base, std::string(format::kKeptKey), [&] {
    for (int v = 3; v < 5; v++) {
      ASSERT_TRUE((*f)->PWrite(0, Pattern(v, 64 * 1024).data(), 64 * 1024).ok());
      auto id = (*f)->Flush();
      ASSERT_TRUE(id.ok()) << id.status().ToString();
      ids.push_back(*id);
    }
  });
  auto r = Collect(hooked, NoGrace(KeepLast(1)));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(ids.size(), 5u);
  EXPECT_EQ(r->head, ids[2]);
  EXPECT_EQ(r->expired, (std::vector<uint64_t>{1, ids[0], ids[1]}));
  // The recorded decision decodes: opening by id works for the kept ones
  // and says "expired" for the others; the newer checkpoints are intact.
  EXPECT_TRUE(Reads(base, At::Checkpoint(ids[2]), Pattern(2, 64 * 1024)));
  EXPECT_TRUE(Reads(base, At::Checkpoint(ids[3]), Pattern(3, 64 * 1024)));
  EXPECT_TRUE(Reads(base, At::Checkpoint(ids[4]), Pattern(4, 64 * 1024)));
  auto gone = File::OpenAt(base, At::Checkpoint(ids[1]));
  EXPECT_TRUE(gone.status().IsNotFound()) << gone.status().ToString();
  // The next run goes on from there.
  auto r2 = Collect(base, NoGrace(KeepLast(1)));
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_EQ(r2->head, ids[4]);
  EXPECT_EQ(r2->expired, (std::vector<uint64_t>{ids[2], ids[3]}));
  EXPECT_TRUE(Reads(base, At::Latest(), Pattern(4, 64 * 1024)));
  auto v = Verify(base, At::Latest(), /*deep=*/true);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());
  ASSERT_TRUE((*f)->Close().ok());
}

// A large flush puts its data in a data object; a later small flush
// replaces every index node of that segment. The data is still live, and so
// is the segment that names the data object (found by the nbdkit GC test:
// verify reported "segment referenced by the index is missing").
TEST(Gc, SegmentOfALiveDataObjectStaysWhenItsNodesAreDead) {
  auto store = NewMemoryStore("gc-data-object-segment");
  auto f = File::Create(store, CreateOptions{kBlock});
  ASSERT_TRUE(f.ok());
  const std::string big = Pattern(7, 4 << 20);  // > the 2 MiB inline limit
  ASSERT_TRUE((*f)->PWrite(0, big.data(), big.size()).ok());
  auto first = (*f)->Flush();
  ASSERT_TRUE(first.ok());
  bool has_data_object = false;
  for (const std::string& k : Keys(store.get())) {
    auto parsed = format::ParseDataObjectKey(k);
    if (parsed && parsed->first == *first) has_data_object = true;
  }
  ASSERT_TRUE(has_data_object) << "the first flush made no data object";
  const std::string small = Pattern(8, kBlock);
  ASSERT_TRUE((*f)->PWrite(big.size(), small.data(), small.size()).ok());
  ASSERT_TRUE((*f)->Flush().ok());
  ASSERT_TRUE((*f)->Close().ok());
  auto r = Collect(store, NoGrace(KeepLast(1)));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(Keys(store.get()).count(format::SegmentKey(*first)), 1u)
      << "the segment naming a live data object was deleted";
  auto v = Verify(store, At::Latest(), /*deep=*/true);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok()) << (v->problems.empty() ? "" : v->problems[0]);
  EXPECT_TRUE(Reads(store, At::Latest(), big + small));
  // A second run changes nothing.
  auto r2 = Collect(store, NoGrace(KeepLast(1)));
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->deleted_objects, 0u);
}

// A clone removed by hand (its prefix deleted with another tool, not with
// `rm`) leaves its pin in the source. Once the pin is older than the upload
// grace and the clone's store answers without the clone, the pin keeps
// nothing and is deleted; a live clone, a clone that cannot be checked and a
// young pin (a clone being made) keep theirs.
TEST(Gc, StalePinsOfClonesRemovedByHandAreDropped) {
  // memory:// URIs: a clone finds its source by URI.
  auto open = [](const std::string& uri) {
    auto s = OpenStore(uri);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? *s : nullptr;
  };
  auto source = open("memory://gc-stale-source");
  auto live_clone = open("memory://gc-stale-live");
  auto gone_clone = open("memory://gc-stale-gone");
  ASSERT_TRUE(source && live_clone && gone_clone);
  std::vector<uint64_t> ids;
  {
    auto f = File::Create(source, CreateOptions{kBlock});
    ASSERT_TRUE(f.ok());
    for (int v = 0; v < 4; v++) {
      ASSERT_TRUE((*f)->PWrite(0, Pattern(30 + v, 64 * 1024).data(), 64 * 1024).ok());
      ids.push_back(*(*f)->Flush());
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  ASSERT_TRUE(Clone(source, At::Checkpoint(ids[0]), live_clone).ok());
  ASSERT_TRUE(Clone(source, At::Checkpoint(ids[1]), gone_clone).ok());
  {
    std::vector<ObjectInfo> objects;
    ASSERT_TRUE(gone_clone->List("", "", 0, &objects).ok());
    std::vector<std::string> keys;
    for (const ObjectInfo& o : objects) keys.push_back(o.key);
    ASSERT_FALSE(keys.empty());
    ASSERT_TRUE(gone_clone->DeleteMany(keys).ok());  // `aws s3 rm --recursive`
  }
  bool unreachable = false;
  auto resolver = [&](const std::string& uri) -> Result<std::shared_ptr<ObjectStore>> {
    if (unreachable) return Status::Auth("no credentials for " + uri);
    if (uri == live_clone->Name()) return live_clone;
    if (uri == gone_clone->Name()) return gone_clone;
    return Status::NotFound("no store " + uri);
  };
  size_t pins_before = 0;
  for (const std::string& k : Keys(source.get())) pins_before += k.starts_with("pin/");
  ASSERT_EQ(pins_before, 2u);

  // Young pins (the default upload grace, 24 h): both keep their checkpoints.
  GcOptions young = NoGrace(KeepLast(1));
  young.store_resolver = resolver;
  auto r = Collect(source, young);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->pins, 2u);
  EXPECT_EQ(r->stale_pins, 0u);
  EXPECT_EQ(r->expired, (std::vector<uint64_t>{1, ids[2]}));

  // Old pins, but the clones cannot be checked: still kept.
  GcOptions old = young;
  old.upload_grace_ms = 0;
  unreachable = true;
  r = Collect(source, old);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stale_pins, 0u);
  EXPECT_TRUE(r->expired.empty());

  // Old pins, clones checkable: the removed clone's pin goes, and with it
  // its checkpoint; the live clone's stays and its clone reads.
  unreachable = false;
  r = Collect(source, old);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stale_pins, 1u);
  EXPECT_EQ(r->pins, 1u);
  EXPECT_EQ(r->expired, std::vector<uint64_t>{ids[1]});
  size_t pins_after = 0;
  for (const std::string& k : Keys(source.get())) pins_after += k.starts_with("pin/");
  EXPECT_EQ(pins_after, 1u);
  EXPECT_TRUE(Reads(live_clone, At::Latest(), Pattern(30, 64 * 1024)));
  EXPECT_TRUE(Reads(source, At::Checkpoint(ids[0]), Pattern(30, 64 * 1024)));
  EXPECT_TRUE(File::OpenAt(source, At::Checkpoint(ids[1])).status().IsNotFound());
  // rm now names only the live clone.
  Status rm = RemoveFile(source);
  EXPECT_NE(rm.message().find(live_clone->Name()), std::string::npos) << rm.ToString();
}

// Damage fails closed: nothing is deleted and the error names the object.
TEST(Gc, DamagedCollectorObjectsStopTheRun) {
  auto store = NewMemoryStore("gc-hostile");
  {
    auto f = File::Create(store, CreateOptions{kBlock});
    ASSERT_TRUE(f.ok());
    for (int v = 0; v < 3; v++) {
      ASSERT_TRUE((*f)->PWrite(0, Pattern(v, 64 * 1024).data(), 64 * 1024).ok());
      ASSERT_TRUE((*f)->Flush().ok());
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  auto keys = Keys(store.get());
  ASSERT_TRUE(
      store->Put("lease/00000000000000aa", {std::string("HFLEASE1garbage")}, PutOptions{}).ok());
  auto r = Collect(store, NoGrace(KeepLast(1)));
  EXPECT_TRUE(r.status().IsCorrupt()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("lease/00000000000000aa"), std::string::npos);
  ASSERT_TRUE(store->Delete("lease/00000000000000aa").ok());
  EXPECT_EQ(Keys(store.get()), keys);
  // Foreign keys under the prefixes are left alone.
  ASSERT_TRUE(store->Put("lease/README", {std::string("mine")}, PutOptions{}).ok());
  ASSERT_TRUE(store->Put("dat/notes.txt", {std::string("mine")}, PutOptions{}).ok());
  ASSERT_TRUE(store->Put("seg/README", {std::string("mine")}, PutOptions{}).ok());
  ASSERT_TRUE(Collect(store, NoGrace(KeepLast(1))).ok());
  auto after = Keys(store.get());
  EXPECT_TRUE(after.count("lease/README") && after.count("dat/notes.txt") &&
              after.count("seg/README"));
  // A damaged decision makes opening an old checkpoint Corrupt, naming it.
  ASSERT_TRUE(
      store->Put(format::kKeptKey, {std::string("HFGCKEPT-not-really")}, PutOptions{}).ok());
  auto old = File::OpenAt(store, At::Checkpoint(1));
  EXPECT_TRUE(old.status().IsCorrupt()) << old.status().ToString();
  EXPECT_NE(old.status().message().find("gc/kept"), std::string::npos);
  // The head opens without it.
  EXPECT_TRUE(ReadAt(store, At::Latest()).ok());
}

// A crash before any store call of a collection loses nothing kept, and the
// next run finishes the job: the same objects remain as after a clean run.
TEST(Gc, CrashAtEveryStoreCallOfACollection) {
  auto build = [](const std::string& name) {
    auto store = NewMemoryStore(name);
    auto f = File::Create(store, CreateOptions{kBlock});
    EXPECT_TRUE(f.ok());
    for (int v = 0; v < 5; v++) {
      // Partial overwrites, so checkpoints share objects.
      size_t off = static_cast<size_t>(v) * 32 * 1024;
      EXPECT_TRUE((*f)->PWrite(off, Pattern(v, 96 * 1024).data(), 96 * 1024).ok());
      EXPECT_TRUE((*f)->Flush().ok());
    }
    EXPECT_TRUE(CreateSnapshot(store, "s", At::Checkpoint(2)).ok());
    EXPECT_TRUE((*f)->Close().ok());
    return store;
  };
  auto clean = build("gc-crash-clean");
  std::map<uint64_t, std::string> expected;
  for (uint64_t id : {2u, 5u, 6u}) expected[id] = *ReadAt(clean, At::Checkpoint(id));
  auto metrics = std::make_shared<MetricsStore>(clean);
  ASSERT_TRUE(Collect(metrics, NoGrace(KeepLast(2))).ok());
  const uint64_t calls = metrics->Snapshot().total_requests();
  const auto clean_keys = Keys(clean.get());
  ASSERT_GT(calls, 10u);
  for (uint64_t k = 0; k <= calls; k++) {
    SCOPED_TRACE("crash before call " + std::to_string(k));
    auto base = build("gc-crash-" + std::to_string(k));
    auto faulty = std::make_shared<FaultInjectionStore>(base);
    faulty->CrashAfter(k);
    (void)Collect(faulty, NoGrace(KeepLast(2)));
    for (const auto& [id, content] : expected) {
      auto got = ReadAt(base, At::Checkpoint(id));
      ASSERT_TRUE(got.ok()) << id << ": " << got.status().ToString();
      EXPECT_EQ(*got, content) << id;
    }
    ASSERT_TRUE(Collect(base, NoGrace(KeepLast(2))).ok());
    EXPECT_EQ(Keys(base.get()), clean_keys);
  }
}

// Compaction rewrites the head's live blocks out of mostly-dead objects; a
// collection then frees them whole. Random 16 KiB overwrites of a 4 MiB file.
TEST(Gc, CompactionBoundsRandomOverwrites) {
  auto store = NewMemoryStore("gc-compact");
  const size_t kSize = 4 << 20;
  std::string model = Pattern(99, kSize);
  {
    auto f = File::Create(store, CreateOptions{kBlock});
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->PWrite(0, model.data(), kSize).ok());
    ASSERT_TRUE((*f)->Flush().ok());
    std::mt19937_64 rng(7);
    for (int round = 0; round < 6; round++) {
      for (int i = 0; i < 64; i++) {
        size_t block = rng() % (kSize / kBlock);
        std::string data = Pattern(rng(), kBlock);
        std::memcpy(model.data() + block * kBlock, data.data(), kBlock);
        ASSERT_TRUE((*f)->PWrite(block * kBlock, data.data(), kBlock).ok());
      }
      ASSERT_TRUE((*f)->Flush().ok());
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  ASSERT_TRUE(Collect(store, NoGrace(KeepLast(1))).ok());
  const uint64_t before = StoredBytes(store.get());
  CompactOptions co;
  co.max_live_ratio = 0.9;
  auto c = Compact(store, co);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_GT(c->victims, 0u);
  EXPECT_GT(c->checkpoint, 0u);
  ASSERT_TRUE(Collect(store, NoGrace(KeepLast(1))).ok());
  const uint64_t after = StoredBytes(store.get());
  EXPECT_LT(after, before);
  EXPECT_LE(static_cast<double>(after), 1.3 * kSize) << "before " << before;
  EXPECT_TRUE(Reads(store, At::Latest(), model));
  // While a writer handle is open, the CLI-style compaction refuses (its
  // writer lease, docs/design/0015; tests/gc/writer_lease_test.cc).
  auto open = File::Open(store);
  ASSERT_TRUE(open.ok());
  CompactOptions careful;
  careful.max_live_ratio = 0.9;
  EXPECT_EQ(Compact(store, careful).status().code(), Status::Code::kConflict);
  ASSERT_TRUE((*open)->Close().ok());
}

// The randomized model test: writes, flushes, snapshots, collections with
// random policies and compactions interleaved; after every collection each
// kept checkpoint reads byte-exact and each expired one is NotFound. On each
// data path (tests/support/codecs.h): a compressed file's small writes are
// compressible (its large ones are not, so they still make data objects),
// and an encrypted file's collections and compactions get its key (without
// it a collection is Auth and deletes nothing).
// Counts what the runs did, so a test can require that they compacted and
// expired something (else they would prove little).
struct ModelCounts {
  uint64_t compactions = 0;  // that committed a checkpoint
  uint64_t expired = 0;
};
void ModelRun(const std::shared_ptr<ObjectStore>& store, uint64_t seed,
              const testing::DataPath& path, ModelCounts* counts) {
  std::mt19937_64 rng(seed);
  const size_t kMax = 512 * 1024;
  const bool compressed = path.codec != Codec::kNone;
  const auto& key = path.key;
  std::string content;
  std::map<uint64_t, std::string> model;  // openable checkpoints
  std::set<std::string> snapshots;
  CreateOptions create{kBlock};
  create.compression = path;
  create.encryption_key = key;
  OpenOptions oo;
  oo.key = key;
  auto gc_options = [&](RetentionPolicy p) {
    GcOptions o = NoGrace(p);
    o.key = key;
    return o;
  };
  bool tried_without_key = false;
  auto f = File::Create(store, create, oo);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  std::unique_ptr<File> writer = std::move(f).value();
  model[(*writer->Stat()).checkpoint] = "";
  for (int step = 0; step < 30; step++) {
    int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      for (int i = 0, n = 1 + static_cast<int>(rng() % 6); i < n; i++) {
        size_t off = rng() % kMax, len = 1 + rng() % (48 * 1024);
        // Now and then a flush large enough for a data object (> 2 MiB).
        bool large = false;
        if (rng() % 12 == 0) {
          len = (5 << 19) + rng() % (1 << 20);
          large = true;
        }
        if (rng() % 8 == 0) {
          size_t to = rng() % kMax;
          ASSERT_TRUE(writer->Truncate(to).ok());
          content.resize(to);
          continue;
        }
        std::string data = compressed && !large ? Letters(rng(), len) : Pattern(rng(), len);
        ASSERT_TRUE(writer->PWrite(off, data.data(), len).ok());
        if (content.size() < off + len) content.resize(off + len, '\0');
        std::memcpy(content.data() + off, data.data(), len);
      }
      auto id = writer->Flush();
      ASSERT_TRUE(id.ok()) << id.status().ToString();
      model[*id] = content;
    } else if (op == 5 && !model.empty()) {
      auto it = model.begin();
      std::advance(it, rng() % model.size());
      std::string name = "s" + std::to_string(step);
      ASSERT_TRUE(CreateSnapshot(store, name, At::Checkpoint(it->first)).ok());
      snapshots.insert(name);
    } else if (op == 6 && !snapshots.empty()) {
      auto it = snapshots.begin();
      std::advance(it, rng() % snapshots.size());
      ASSERT_TRUE(DeleteSnapshot(store, *it).ok());
      snapshots.erase(it);
    } else if (op == 7 && !model.empty()) {
      ASSERT_TRUE(writer->Close().ok());
      CompactOptions co;
      co.max_live_ratio = 0.75;
      co.open_options = oo;
      auto c = Compact(store, co);
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      if (c->checkpoint != 0) {
        model[c->checkpoint] = content;
        counts->compactions++;
      }
      auto reopened = File::Open(store, oo);
      ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
      writer = std::move(reopened).value();
    } else if (!model.empty()) {
      RetentionPolicy p;
      p.keep_last = static_cast<uint32_t>(rng() % 4);
      if (rng() % 3 == 0) p.keep_within_ms = 1 + static_cast<int64_t>(rng() % 20);
      if (rng() % 3 == 0) p.keep_hourly = 1;
      if (key && !tried_without_key) {
        tried_without_key = true;
        auto keys = Keys(store.get());
        auto refused = Collect(store, NoGrace(p));
        ASSERT_TRUE(refused.status().IsAuth()) << refused.status().ToString();
        ASSERT_EQ(Keys(store.get()), keys) << "a collection without the key changed the store";
      }
      auto r = Collect(store, gc_options(p));
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      counts->expired += r->expired.size();
      for (uint64_t id : r->expired) {
        ASSERT_TRUE(model.count(id)) << "expired " << id << " twice";
        model.erase(id);
      }
      for (const auto& [id, bytes] : model) {
        ASSERT_TRUE(Reads(store, At::Checkpoint(id), bytes, key)) << "kept " << id;
      }
      for (uint64_t id : r->expired) {
        EXPECT_TRUE(File::OpenAt(store, At::Checkpoint(id), oo).status().IsNotFound()) << id;
      }
      // Every kept checkpoint is whole: each segment and data object its
      // index names exists and checks (not only the bytes read back).
      for (const auto& [id, bytes] : model) {
        auto v = Verify(store, At::Checkpoint(id), /*deep=*/true, oo);
        ASSERT_TRUE(v.ok()) << v.status().ToString();
        ASSERT_TRUE(v->ok()) << "kept " << id << ": " << v->problems[0];
      }
      auto log = ListCheckpoints(store);
      ASSERT_TRUE(log.ok()) << log.status().ToString();
      ASSERT_EQ(log->size(), model.size());
      for (const std::string& s : snapshots) {
        ASSERT_TRUE(ReadAt(store, At::Snapshot(s), key).ok()) << s;
      }
    }
  }
  ASSERT_TRUE(writer->Close().ok());
}

// None, zstd, and encrypted (raw and zstd frames, sealed).
std::vector<testing::DataPath> GcDataPaths() {
  std::vector<testing::DataPath> out;
  for (const testing::DataPath& p : testing::AllDataPaths()) {
    if (p.codec != Codec::kLz4) out.push_back(p);
  }
  return out;
}

class GcModel : public testing::DataPathTest {};
INSTANTIATE_TEST_SUITE_P(DataPaths, GcModel, ::testing::ValuesIn(GcDataPaths()),
                         testing::DataPathName);

TEST_P(GcModel, RandomPoliciesAndCompactionsKeepEveryKeptCheckpointExact) {
  // 12 seeds unencrypted and uncompressed (as before the codecs), 6 on the others.
  const uint64_t seeds = GetParam().codec == Codec::kNone && !GetParam().key ? 12 : 6;
  ModelCounts counts;
  for (uint64_t seed = 1; seed <= seeds; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    ModelRun(NewMemoryStore("gc-model-" + std::to_string(seed)), seed, GetParam(), &counts);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(counts.compactions, 0u);
  EXPECT_GT(counts.expired, 0u);
}

TEST_P(GcModel, OnALocalDirectory) {
  for (uint64_t seed = 100; seed <= 102; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    auto store = testing::MakeStoreForBackend("local", "gc-model");
    ASSERT_TRUE(store.ok());
    ModelCounts counts;
    ModelRun(*store, seed, GetParam(), &counts);
    if (HasFatalFailure()) return;
  }
}

}  // namespace
}  // namespace hyperfile
