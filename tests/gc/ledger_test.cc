// SPDX-License-Identifier: Apache-2.0
// The collector's ledger (docs/design/0006, "The ledger"): a steady-state
// collection applies only the checkpoints committed since the last run,
// lists no segment or data object, reads a number of objects that depends on
// what changed and not on the history, deletes exactly what a full sweep
// would, survives a crash at any store call, and the periodic sweep still
// finds orphans.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "format/format.h"
#include "format/gc_records.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/gc.h"
#include "hyperfile/store_layers.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

constexpr uint32_t kBlock = 16 * 1024;

std::string Bytes(uint64_t seed, size_t n) {
  std::string s(n, '\0');
  std::mt19937_64 r(seed);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = r() | 1;
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

Result<std::string> Read(const std::shared_ptr<ObjectStore>& store, const At& at) {
  HF_ASSIGN_OR_RETURN(std::unique_ptr<File> f, File::OpenAt(store, at));
  std::string out(f->Size(), '\0');
  HF_ASSIGN_OR_RETURN(size_t n, f->PRead(0, out.data(), out.size()));
  if (n != out.size()) return Status::Corrupt("short read");
  HF_RETURN_IF_ERROR(f->Close());
  return out;
}

std::set<std::string> AllKeys(ObjectStore* store) {
  std::vector<ObjectInfo> objects;
  EXPECT_TRUE(store->List("", "", 0, &objects).ok());
  std::set<std::string> keys;
  for (const ObjectInfo& o : objects) keys.insert(o.key);
  return keys;
}

GcOptions Policy(uint32_t keep_last) {
  GcOptions o;
  o.policy = RetentionPolicy{};
  o.policy->keep_last = keep_last;
  o.grace_ms = 0;
  o.upload_grace_ms = 0;
  return o;
}

// Counts requests by verb and, for LIST, by prefix.
class CountingStore : public StoreWrapper {
 public:
  explicit CountingStore(std::shared_ptr<ObjectStore> base) : StoreWrapper(std::move(base)) {}
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    Count("GET");
    return StoreWrapper::Get(key, offset, length, out, info);
  }
  Status List(std::string_view prefix, std::string_view after, size_t limit,
              std::vector<ObjectInfo>* out) override {
    Count("LIST " + std::string(prefix));
    return StoreWrapper::List(prefix, after, limit, out);
  }
  using ObjectStore::Get;
  std::map<std::string, int> Take() {
    std::lock_guard<std::mutex> l(mu_);
    return std::exchange(counts_, {});
  }

 private:
  void Count(const std::string& what) {
    std::lock_guard<std::mutex> l(mu_);
    counts_[what]++;
  }
  std::mutex mu_;
  std::map<std::string, int> counts_;
};

// `commits` checkpoints of a 64-block file, each overwriting 2 blocks (at
// random, or blocks 0 and 1: then every older copy of them is garbage).
void Grow(File* f, int commits, uint64_t seed, bool same_blocks = false) {
  std::mt19937_64 r(seed);
  for (int i = 0; i < commits; i++) {
    for (int b = 0; b < 2; b++) {
      uint64_t block = same_blocks ? static_cast<uint64_t>(b) : r() % 64;
      ASSERT_TRUE(f->PWrite(block * kBlock, Bytes(r(), kBlock).data(), kBlock).ok());
    }
    ASSERT_TRUE(f->Flush().ok());
  }
}

// What a steady-state run costs does not depend on how long the history is:
// a file with 8 kept checkpoints and one with 300 cost the same GETs for one
// new commit, and neither lists seg/ or dat/.
TEST(GcLedger, SteadyStateRunListsNoObjectsAndReadsWhatChangedNotTheHistory) {
  std::map<int, int> gets_for_history;
  for (int history : {8, 300}) {
    SCOPED_TRACE("history " + std::to_string(history));
    auto base = NewMemoryStore("ledger-steady-" + std::to_string(history));
    auto counting = std::make_shared<CountingStore>(base);
    auto f = File::Create(base, CreateOptions{kBlock});
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->PWrite(0, Bytes(1, 64 * kBlock).data(), 64 * kBlock).ok());
    ASSERT_TRUE((*f)->Flush().ok());
    Grow(f->get(), history, 7);
    GcOptions keep_all = Policy(1000);
    auto sweep = Collect(counting, keep_all);
    ASSERT_TRUE(sweep.ok()) << sweep.status().ToString();
    EXPECT_TRUE(sweep->swept);
    auto sweep_counts = counting->Take();
    EXPECT_GT(sweep_counts["LIST seg/"], 0);  // the sweep lists, as before
    Grow(f->get(), 1, 99);
    auto r = Collect(counting, keep_all);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    auto counts = counting->Take();
    EXPECT_FALSE(r->swept) << r->note;
    EXPECT_EQ(r->checkpoints_applied, 1u);
    EXPECT_EQ(r->kept, static_cast<uint64_t>(history) + 3);  // created, the full write, all
    for (const auto& [what, n] : counts) {
      if (what.starts_with("LIST ")) {
        // Only the small always-kept records are listed.
        EXPECT_TRUE(what == "LIST snap/" || what == "LIST pin/" || what == "LIST lease/")
            << what << " x" << n;
      }
    }
    EXPECT_EQ(counts["LIST seg/"] + counts["LIST dat/"], 0);
    EXPECT_EQ(r->lists, 5u);  // snap/ once, pin/ and lease/ before and after the decision
    gets_for_history[history] = counts["GET"];
    // Everything still reads.
    auto v = Verify(base, At::Latest(), /*deep=*/true);
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(v->ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  EXPECT_EQ(gets_for_history[8], gets_for_history[300]);
  EXPECT_LE(gets_for_history[300], 16);
}

// The GETs of a run grow with the checkpoints committed since the last one
// (each new header, its nodes, the nodes it replaced), the DELETEs with the
// garbage.
TEST(GcLedger, RequestsFollowTheChangeAndTheGarbage) {
  auto base = NewMemoryStore("ledger-proportional");
  auto counting = std::make_shared<CountingStore>(base);
  auto f = File::Create(base, CreateOptions{kBlock});
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->PWrite(0, Bytes(1, 64 * kBlock).data(), 64 * kBlock).ok());
  ASSERT_TRUE((*f)->Flush().ok());
  Grow(f->get(), 1, 0, /*same_blocks=*/true);
  ASSERT_TRUE(Collect(counting, Policy(1)).ok());
  counting->Take();
  std::map<int, GcReport> reports;
  for (int commits : {1, 4, 16}) {
    Grow(f->get(), commits, static_cast<uint64_t>(commits), /*same_blocks=*/true);
    auto r = Collect(counting, Policy(1));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_FALSE(r->swept) << r->note;
    EXPECT_EQ(r->checkpoints_applied, static_cast<uint64_t>(commits));
    EXPECT_EQ(r->expired.size(), static_cast<uint64_t>(commits));
    // Each expired checkpoint's segment goes (its nodes were replaced).
    EXPECT_GE(r->deleted_objects, static_cast<uint64_t>(commits))
        << r->note << " objects " << r->objects << " live " << r->live_objects << " held "
        << r->held_by_grace;
    EXPECT_LE(r->deletes, 2u);  // one batch (plus none)
    EXPECT_EQ(r->lists, 5u);
    reports[commits] = *r;
    counting->Take();
  }
  // GETs: a constant part plus a few per new checkpoint.
  EXPECT_LT(reports[1].gets, reports[16].gets);
  EXPECT_LE(reports[16].gets, reports[1].gets + 16 * 4);
  auto v = Verify(base, At::Latest(), /*deep=*/true);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());
  ASSERT_TRUE((*f)->Close().ok());
}

// Random overwrites, truncates, snapshots and a restore with incremental
// runs: after each, every kept checkpoint verifies deep and a dry-run sweep
// (which lists and marks everything) finds nothing more to delete — the
// ledger neither deletes too much nor leaks. (A sweep's ledger can keep
// more than needed for objects it met; this file starts with the ledger.)
TEST(GcLedger, IncrementalRunsDeleteExactlyWhatASweepWould) {
  for (uint64_t seed = 1; seed <= 6; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    auto store = NewMemoryStore("ledger-exact-" + std::to_string(seed));
    std::mt19937_64 rng(seed);
    auto f = File::Create(store, CreateOptions{kBlock});
    ASSERT_TRUE(f.ok());
    std::unique_ptr<File> w = std::move(f).value();
    ASSERT_TRUE(Collect(store, Policy(2)).ok());  // the ledger from the start
    std::map<uint64_t, std::string> content;
    std::string now;
    uint64_t recounts = 0;
    for (int step = 0; step < 25; step++) {
      int op = static_cast<int>(rng() % 8);
      if (op == 0 && content.size() >= 2) {
        // Restore the checkpoint before the head (kept by keep-last 2).
        ASSERT_TRUE(w->Close().ok());
        uint64_t target = std::prev(content.end(), 2)->first;
        auto id = Restore(store, At::Checkpoint(target));
        ASSERT_TRUE(id.ok()) << id.status().ToString();
        now = content[target];
        content[*id] = now;
        auto reopened = File::Open(store);
        ASSERT_TRUE(reopened.ok());
        w = std::move(reopened).value();
      } else {
        for (int i = 0, n = 1 + static_cast<int>(rng() % 5); i < n; i++) {
          size_t off = rng() % (40 * kBlock), len = 1 + rng() % (3 * kBlock);
          if (rng() % 10 == 0) len = (5 << 19);  // a data object
          if (rng() % 9 == 0) {
            size_t to = rng() % (40 * kBlock);
            ASSERT_TRUE(w->Truncate(to).ok());
            now.resize(to);
            continue;
          }
          std::string data = Bytes(rng(), len);
          ASSERT_TRUE(w->PWrite(off, data.data(), len).ok());
          if (now.size() < off + len) now.resize(off + len, '\0');
          std::memcpy(now.data() + off, data.data(), len);
        }
        auto id = w->Flush();
        ASSERT_TRUE(id.ok());
        content[*id] = now;
      }
      if (rng() % 5 == 0) {
        ASSERT_TRUE(CreateSnapshot(store, "s" + std::to_string(step),
                                   At::Checkpoint(content.rbegin()->first))
                        .ok());
      }
      auto r = Collect(store, Policy(2));
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_FALSE(r->swept) << r->note;
      recounts += r->recounts;
      for (uint64_t id : r->expired) content.erase(id);
      for (const auto& [id, bytes] : content) {
        auto got = Read(store, At::Checkpoint(id));
        ASSERT_TRUE(got.ok()) << id << ": " << got.status().ToString();
        ASSERT_EQ(*got, bytes) << id;
        auto v = Verify(store, At::Checkpoint(id), /*deep=*/true);
        ASSERT_TRUE(v.ok());
        ASSERT_TRUE(v->ok()) << id << ": " << v->problems[0];
      }
      GcOptions dry = Policy(2);
      dry.sweep = true;
      dry.dry_run = true;
      auto check = Collect(store, dry);
      ASSERT_TRUE(check.ok()) << check.status().ToString();
      ASSERT_EQ(check->deleted_objects, 0u) << "the ledger leaked objects at step " << step;
      if (check->live_objects != r->live_objects) {
        std::string body;
        ASSERT_TRUE(store->Get(format::kLedgerKey, 0, 1 << 20, &body, nullptr).ok());
        auto ledger = format::DecodeLedger(body, "test");
        std::set<std::string> known;
        for (auto& o : ledger->objects) known.insert(o.key);
        for (auto& k : AllKeys(store.get()))
          if (!known.count(k)) std::fprintf(stderr, "not in ledger: %s\n", k.c_str());
      }
      ASSERT_EQ(check->live_objects, r->live_objects + 0) << step;
    }
    ASSERT_TRUE(w->Close().ok());
    if (seed == 1) {
      EXPECT_GT(recounts, 0u);  // a restore was counted whole
    }
  }
}

// A crash before any store call of an incremental run loses nothing kept;
// the next run ends with exactly the objects of an uninterrupted one.
TEST(GcLedger, CrashAtEveryStoreCallOfAnIncrementalRun) {
  auto build = [](const std::string& name) {
    auto store = NewMemoryStore(name);
    auto f = File::Create(store, CreateOptions{kBlock});
    EXPECT_TRUE(f.ok());
    for (int v = 0; v < 3; v++) {
      EXPECT_TRUE((*f)->PWrite(v * 32 * 1024, Bytes(v, 96 * 1024).data(), 96 * 1024).ok());
      EXPECT_TRUE((*f)->Flush().ok());
    }
    EXPECT_TRUE(Collect(store, Policy(2)).ok());  // the sweep that makes the ledger
    for (int v = 3; v < 7; v++) {                 // each replaces everything before
      EXPECT_TRUE((*f)->PWrite(0, Bytes(v, 192 * 1024).data(), 192 * 1024).ok());
      EXPECT_TRUE((*f)->Flush().ok());
    }
    EXPECT_TRUE(CreateSnapshot(store, "s", At::Checkpoint(5)).ok());
    EXPECT_TRUE((*f)->Close().ok());
    return store;
  };
  auto clean = build("ledger-crash-clean");
  std::map<uint64_t, std::string> expected;
  for (uint64_t id : {5u, 7u, 8u}) expected[id] = *Read(clean, At::Checkpoint(id));
  auto metrics = std::make_shared<MetricsStore>(clean);
  auto first = Collect(metrics, Policy(2));
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->swept) << first->note;
  ASSERT_GT(first->deleted_objects, 0u);
  const uint64_t calls = metrics->Snapshot().total_requests();
  const auto clean_keys = AllKeys(clean.get());
  for (uint64_t k = 0; k <= calls; k++) {
    SCOPED_TRACE("crash before call " + std::to_string(k));
    auto base = build("ledger-crash-" + std::to_string(k));
    auto faulty = std::make_shared<FaultInjectionStore>(base);
    faulty->CrashAfter(k);
    (void)Collect(faulty, Policy(2));
    for (const auto& [id, content] : expected) {
      auto got = Read(base, At::Checkpoint(id));
      ASSERT_TRUE(got.ok()) << id << ": " << got.status().ToString();
      EXPECT_EQ(*got, content) << id;
    }
    auto again = Collect(base, Policy(2));
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_FALSE(again->swept) << again->note;
    EXPECT_EQ(AllKeys(base.get()), clean_keys);
  }
}

// Orphans (an upload whose commit never came) are invisible to the ledger;
// the periodic sweep finds and deletes them, and rebuilds the ledger.
TEST(GcLedger, PeriodicSweepStillFindsOrphans) {
  auto store = NewMemoryStore("ledger-orphans");
  auto f = File::Create(store, CreateOptions{kBlock});
  ASSERT_TRUE(f.ok());
  Grow(f->get(), 3, 1);
  ASSERT_TRUE(Collect(store, Policy(1)).ok());
  const std::string orphan = format::DataObjectKey(100, 0x1234);
  ASSERT_TRUE(store->Put(orphan, {std::string(4096, 'x')}, PutOptions{}).ok());
  Grow(f->get(), 1, 2);
  auto r = Collect(store, Policy(1));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->swept);
  EXPECT_TRUE(AllKeys(store.get()).count(orphan));  // not listed, so not seen
  // The sweep is due: the last one is older than the interval.
  std::string body;
  ASSERT_TRUE(store->Get(format::kLedgerKey, 0, 1 << 20, &body, nullptr).ok());
  auto ledger = format::DecodeLedger(body, "test");
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  ledger->swept_ms = 1;
  ASSERT_TRUE(store->Put(format::kLedgerKey, {format::EncodeLedger(*ledger)}, PutOptions{}).ok());
  r = Collect(store, Policy(1));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->swept);
  EXPECT_NE(r->note.find("periodic"), std::string::npos) << r->note;
  EXPECT_EQ(r->orphans_deleted, 1u);
  EXPECT_FALSE(AllKeys(store.get()).count(orphan));
  // And the run after it is incremental again.
  Grow(f->get(), 1, 3);
  r = Collect(store, Policy(1));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->swept) << r->note;
  ASSERT_TRUE((*f)->Close().ok());
}

// The ledger is the collector's own state, but it is read from the store:
// a damaged one is not trusted (a sweep rebuilds it), and one that
// disagrees with the index stops the run before anything is deleted.
TEST(GcLedger, DamagedOrWrongLedgerNeverDeletesLiveData) {
  auto store = NewMemoryStore("ledger-damaged");
  auto f = File::Create(store, CreateOptions{kBlock});
  ASSERT_TRUE(f.ok());
  Grow(f->get(), 3, 1);
  ASSERT_TRUE(Collect(store, Policy(1)).ok());
  ASSERT_TRUE(store->Put(format::kLedgerKey, {std::string("HFGCLEDGgarbage")}, PutOptions{}).ok());
  Grow(f->get(), 1, 2);
  auto r = Collect(store, Policy(1));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->swept);
  EXPECT_NE(r->note.find("gc/ledger"), std::string::npos) << r->note;
  // A ledger that lost the head's data (claims no references): the next
  // commit drops references it does not have, and the run stops.
  std::string body;
  ASSERT_TRUE(store->Get(format::kLedgerKey, 0, 1 << 20, &body, nullptr).ok());
  auto ledger = format::DecodeLedger(body, "test");
  ASSERT_TRUE(ledger.ok());
  for (format::LedgerObject& o : ledger->objects) {
    o.refs = 0;
    o.spans.clear();
  }
  ASSERT_TRUE(store->Put(format::kLedgerKey, {format::EncodeLedger(*ledger)}, PutOptions{}).ok());
  Grow(f->get(), 1, 3);
  const auto before = AllKeys(store.get());
  r = Collect(store, Policy(1));
  EXPECT_TRUE(r.status().IsCorrupt()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("ledger"), std::string::npos);
  EXPECT_EQ(AllKeys(store.get()), before);
  // A forced sweep repairs it.
  GcOptions sweep = Policy(1);
  sweep.sweep = true;
  ASSERT_TRUE(Collect(store, sweep).ok());
  EXPECT_TRUE(Read(store, At::Latest()).ok());
  ASSERT_TRUE((*f)->Close().ok());
}

TEST(GcRecords, LedgerRoundTripsAndRejectsDamage) {
  format::Ledger l;
  l.file_id = 42;
  l.processed = 9;
  l.processed_crc = 0xabcdef;
  l.swept_ms = 123;
  format::LedgerObject a{"dat/x", 3, 100, 0, 77, {{3, 5}, {7, 9}}};
  format::LedgerObject b{"seg/y", 9, 200, 2, 0, {{9, format::kOpenSpan}}};
  l.objects = {a, b};
  l.pending = {"seg/z"};
  std::string bytes = format::EncodeLedger(l);
  auto back = format::DecodeLedger(bytes, "t");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, l);
  for (size_t i = 0; i < bytes.size(); i += 7) {
    std::string bad = bytes;
    bad[i] ^= 0x20;
    EXPECT_TRUE(format::DecodeLedger(bad, "t").status().IsCorrupt() ||
                format::DecodeLedger(bad, "t").status().IsNotSupported())
        << i;
  }
  EXPECT_TRUE(format::DecodeLedger(bytes.substr(0, bytes.size() - 1), "t").status().IsCorrupt());
  // References without an open span (or the reverse) are refused.
  l.objects[1].refs = 0;
  EXPECT_TRUE(format::DecodeLedger(format::EncodeLedger(l), "t").status().IsCorrupt());
}

}  // namespace
}  // namespace hyperfile

namespace hyperfile {
namespace {

// Runs `hook` just before the first put of `key`.
class PutHookStore : public StoreWrapper {
 public:
  PutHookStore(std::shared_ptr<ObjectStore> base, std::string key, std::function<void()> hook)
      : StoreWrapper(std::move(base)), key_(std::move(key)), hook_(std::move(hook)) {}
  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    if (key == key_ && hook_) std::exchange(hook_, nullptr)();
    return StoreWrapper::Put(key, data, options, info);
  }
  using ObjectStore::Put;

 private:
  std::string key_;
  std::function<void()> hook_;
};

// The lease race of docs/design/0006 on an incremental run: a reader leases
// a checkpoint after the run read the leases, before it recorded its
// decision; the run must keep it and delete nothing of it.
TEST(GcLedger, LeaseThatAppearsDuringAnIncrementalRunKeepsItsCheckpoint) {
  auto base = NewMemoryStore("ledger-race");
  auto f = File::Create(base, CreateOptions{kBlock});
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->PWrite(0, Bytes(0, 128 * 1024).data(), 128 * 1024).ok());
  ASSERT_TRUE((*f)->Flush().ok());
  ASSERT_TRUE(Collect(base, Policy(1)).ok());  // the ledger
  std::vector<uint64_t> ids;
  for (int v = 1; v <= 2; v++) {
    ASSERT_TRUE((*f)->PWrite(0, Bytes(v, 128 * 1024).data(), 128 * 1024).ok());
    ids.push_back(*(*f)->Flush());
  }
  std::unique_ptr<Lease> lease;
  auto hooked = std::make_shared<PutHookStore>(base, std::string(format::kKeptKey), [&] {
    auto l = Lease::Acquire(base, At::Checkpoint(ids[0]), 60000, "late reader");
    ASSERT_TRUE(l.ok()) << l.status().ToString();
    lease = std::move(l).value();
  });
  auto r = Collect(hooked, Policy(1));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->swept) << r->note;
  ASSERT_TRUE(lease);
  EXPECT_NE(r->note.find("lease"), std::string::npos) << r->note;
  auto got = Read(base, At::Checkpoint(ids[0]));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, Bytes(1, 128 * 1024));
  auto v = Verify(base, At::Checkpoint(ids[0]), /*deep=*/true);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());
  lease.reset();
  r = Collect(base, Policy(1));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->expired, std::vector<uint64_t>{ids[0]});
  EXPECT_GT(r->deleted_objects, 0u);
  ASSERT_TRUE((*f)->Close().ok());
}

}  // namespace
}  // namespace hyperfile
