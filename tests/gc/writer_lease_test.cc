// SPDX-License-Identifier: Apache-2.0
// Writer leases (docs/design/0015-writer-leases.md): a compaction by a
// process that is not the writer refuses while a writer handle is open (in
// this process through another handle; another process is in
// tests/cli/gc_cli_test.cc), proceeds after close or once a crashed
// writer's lease lapsed by the store's clock; a writer refuses to open while
// a compaction runs; every order of the four steps (writer writes, writer
// lists, compaction writes, compaction lists) lets one side see the other;
// damaged, foreign and too many lease objects; rm removes writer leases and
// the collector's sweep leaves them alone.
#include "file/writer_lease.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "format/gc_records.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/gc.h"
#include "hyperfile/store_layers.h"
#include "support/random_bytes.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

constexpr uint32_t kBlock = 16 * 1024;

std::string Pattern(uint64_t seed, size_t n) { return testing::RandomBytes(seed, n); }

std::vector<std::string> WriterKeys(ObjectStore* store) {
  std::vector<ObjectInfo> objects;
  EXPECT_TRUE(store->List(format::kWriterLeasePrefix, "", 0, &objects).ok());
  std::vector<std::string> keys;
  for (const ObjectInfo& o : objects) keys.push_back(o.key);
  return keys;
}

// A file whose first objects are mostly dead once older checkpoints expire:
// a compaction has victims. Returns the head's content.
std::string MakeGarbage(const std::shared_ptr<ObjectStore>& store) {
  auto f = File::Create(store, CreateOptions{kBlock});
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  std::string content = Pattern(1, 512 * 1024);
  EXPECT_TRUE((*f)->PWrite(0, content.data(), content.size()).ok());
  EXPECT_TRUE((*f)->Flush().ok());
  std::mt19937_64 rng(3);
  for (int v = 0; v < 4; v++) {
    for (int i = 0; i < 8; i++) {
      size_t off = (rng() % 32) * kBlock;
      std::string d = Pattern(rng(), kBlock);
      std::memcpy(content.data() + off, d.data(), kBlock);
      EXPECT_TRUE((*f)->PWrite(off, d.data(), kBlock).ok());
    }
    EXPECT_TRUE((*f)->Flush().ok());
  }
  EXPECT_TRUE((*f)->Close().ok());
  GcOptions o;
  o.policy = RetentionPolicy{};
  o.policy->keep_last = 1;
  o.grace_ms = 0;
  EXPECT_TRUE(Collect(store, o).ok());
  return content;
}

CompactOptions Cli() {
  CompactOptions co;
  co.max_live_ratio = 0.95;
  co.policy = RetentionPolicy{};
  co.policy->keep_last = 1;
  return co;
}

std::string ReadAll(const std::shared_ptr<ObjectStore>& store) {
  OpenOptions ro;
  ro.read_only = true;
  auto f = File::Open(store, ro);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  if (!f.ok()) return "";
  std::string out((*f)->Size(), '\0');
  EXPECT_TRUE((*f)->PRead(0, out.data(), out.size()).ok());
  return out;
}

// A store whose clock runs ahead of some objects: their modification times
// (in listings and heads) are reported `age` ms earlier, as if they had not
// been rewritten for that long.
class AgingStore : public StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  void Age(const std::string& key, int64_t ms) {
    std::lock_guard<std::mutex> lock(mu_);
    age_[key] = ms;
  }
  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override {
    size_t from = out->size();
    HF_RETURN_IF_ERROR(StoreWrapper::List(prefix, start_after, limit, out));
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = from; i < out->size(); i++) {
      auto it = age_.find((*out)[i].key);
      if (it != age_.end()) (*out)[i].mtime_ms -= it->second;
    }
    return Status::OK();
  }
  Status Head(std::string_view key, ObjectInfo* info) override {
    HF_RETURN_IF_ERROR(StoreWrapper::Head(key, info));
    std::lock_guard<std::mutex> lock(mu_);
    auto it = age_.find(std::string(key));
    if (it != age_.end()) info->mtime_ms -= it->second;
    return Status::OK();
  }

 private:
  std::mutex mu_;
  std::map<std::string, int64_t> age_;
};

// Runs `hook` (once) just before the first listing of writer/.
class ListHookStore : public StoreWrapper {
 public:
  ListHookStore(std::shared_ptr<ObjectStore> base, std::function<void()> hook)
      : StoreWrapper(std::move(base)), hook_(std::move(hook)) {}
  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override {
    if (prefix == format::kWriterLeasePrefix && hook_) {
      auto h = std::move(hook_);
      hook_ = nullptr;
      h();
    }
    return StoreWrapper::List(prefix, start_after, limit, out);
  }

 private:
  std::function<void()> hook_;
};

// A lease a crashed holder left behind.
std::string PutCrashedLease(ObjectStore* store, format::WriterKind kind, uint64_t id) {
  std::string key = format::WriterLeaseKey(id);
  EXPECT_TRUE(
      store
          ->Put(key, format::EncodeWriterLease(
                         {kind, static_cast<uint64_t>(file::kWriterLeaseTtlMs), "crashed/1"}))
          .ok());
  return key;
}

// ------------------------------------------------------------- format ---

TEST(WriterLeaseFormat, RoundTripsAndRejectsDamage) {
  format::WriterLeaseRecord r{format::WriterKind::kCompaction, 30000, "host/7 nbd"};
  std::string bytes = format::EncodeWriterLease(r);
  EXPECT_EQ(bytes.size(), 8 + 1 + 8 + 2 + r.holder.size() + 4);
  EXPECT_EQ(bytes.substr(0, 8), "HFWRITR1");
  auto d = format::DecodeWriterLease(bytes, "x");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->kind, r.kind);
  EXPECT_EQ(d->ttl_ms, r.ttl_ms);
  EXPECT_EQ(d->holder, r.holder);
  std::string flipped = bytes;
  flipped[12] ^= 1;
  EXPECT_TRUE(format::DecodeWriterLease(flipped, "x").status().IsCorrupt());
  EXPECT_TRUE(format::DecodeWriterLease(bytes.substr(0, 20), "x").status().IsCorrupt());
  // An unknown kind is damage even with a good checksum.
  format::WriterLeaseRecord odd = r;
  odd.kind = static_cast<format::WriterKind>(9);
  auto bad = format::DecodeWriterLease(format::EncodeWriterLease(odd), "the/object");
  EXPECT_TRUE(bad.status().IsCorrupt());
  EXPECT_NE(bad.status().message().find("the/object"), std::string::npos);
  EXPECT_EQ(format::WriterLeaseKey(0xabc), "writer/0000000000000abc");
  EXPECT_EQ(format::ParseWriterLeaseKey(format::WriterLeaseKey(0xabc)), 0xabcu);
  EXPECT_FALSE(format::ParseWriterLeaseKey("writer/README").has_value());
  EXPECT_FALSE(format::ParseWriterLeaseKey("writer/0000000000000ABC").has_value());
  EXPECT_TRUE(IsHyperfileKey("writer/0000000000000abc"));
  EXPECT_FALSE(IsHyperfileKey("writer/README"));
}

// --------------------------------------------------- on every backend ---

class WriterLeases : public ::testing::TestWithParam<std::string> {};

TEST_P(WriterLeases, CompactionRefusesWhileAnotherHandleWritesAndProceedsAfterClose) {
  HF_REQUIRE_BACKEND(GetParam());
  auto made = testing::MakeStoreForBackend(GetParam(), "wlease-open");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::shared_ptr<ObjectStore> store = *made;
  const std::string content = MakeGarbage(store);
  EXPECT_TRUE(WriterKeys(store.get()).empty()) << "a closed writer leaves its lease";
  OpenOptions named;
  named.writer_name = "the-vm";
  auto w = File::Open(store, named);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  auto keys = WriterKeys(store.get());
  ASSERT_EQ(keys.size(), 1u);
  auto refused = Compact(store, Cli());
  ASSERT_EQ(refused.status().code(), Status::Code::kConflict) << refused.status().ToString();
  const std::string& msg = refused.status().message();
  EXPECT_NE(msg.find(keys[0]), std::string::npos) << msg;
  EXPECT_NE(msg.find("a writer"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the-vm"), std::string::npos) << msg;
  EXPECT_NE(msg.find(" s ago"), std::string::npos) << msg;
  EXPECT_EQ(WriterKeys(store.get()), keys) << "the refused compaction leaves its lease";
  // The writer is untouched: it writes and commits on.
  ASSERT_TRUE((*w)->PWrite(0, "live", 4).ok());
  ASSERT_TRUE((*w)->Flush().ok());
  std::string want = content;
  std::memcpy(want.data(), "live", 4);
  ASSERT_TRUE((*w)->Close().ok());
  EXPECT_TRUE(WriterKeys(store.get()).empty());
  auto c = Compact(store, Cli());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_GT(c->victims, 0u);
  EXPECT_GT(c->checkpoint, 0u);
  EXPECT_TRUE(WriterKeys(store.get()).empty()) << "the compaction leaves its lease";
  EXPECT_TRUE(ReadAll(store) == want);
  // A read-only handle holds no writer lease and never stops a compaction.
  OpenOptions ro;
  ro.read_only = true;
  auto r = File::Open(store, ro);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(WriterKeys(store.get()).empty());
  EXPECT_TRUE(Compact(store, Cli()).ok());
}

TEST_P(WriterLeases, AWriterRefusesToOpenWhileACompactionRuns) {
  HF_REQUIRE_BACKEND(GetParam());
  auto made = testing::MakeStoreForBackend(GetParam(), "wlease-compacting");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::shared_ptr<ObjectStore> store = *made;
  MakeGarbage(store);
  auto lease = file::AcquireCompactionLease(store, 60000, "cli/1");
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  auto w = File::Open(store);
  ASSERT_EQ(w.status().code(), Status::Code::kConflict) << w.status().ToString();
  EXPECT_NE(w.status().message().find((*lease)->key()), std::string::npos);
  EXPECT_NE(w.status().message().find("a compaction"), std::string::npos);
  EXPECT_EQ(WriterKeys(store.get()), std::vector<std::string>{(*lease)->key()})
      << "the refused writer leaves its lease";
  // Creating a new file there is refused as well (it exists anyway), and
  // reading goes on.
  OpenOptions ro;
  ro.read_only = true;
  EXPECT_TRUE(File::Open(store, ro).ok());
  ASSERT_TRUE((*lease)->Release().ok());
  auto again = File::Open(store);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_TRUE((*again)->Close().ok());
}

TEST_P(WriterLeases, ACrashedWritersLeaseLapsesByTheStoresClock) {
  HF_REQUIRE_BACKEND(GetParam());
  auto made = testing::MakeStoreForBackend(GetParam(), "wlease-crashed");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto aging = std::make_shared<AgingStore>(*made);
  std::shared_ptr<ObjectStore> store = aging;
  const std::string content = MakeGarbage(store);
  const std::string crashed = PutCrashedLease(store.get(), format::WriterKind::kWriter, 42);
  EXPECT_TRUE(Compact(store, Cli()).status().IsConflict());
  // Lapsed, but within the grace period: still active.
  aging->Age(crashed, file::kWriterLeaseTtlMs + 1000);
  auto within = Compact(store, Cli());
  ASSERT_TRUE(within.status().IsConflict()) << within.status().ToString();
  EXPECT_NE(within.status().message().find(crashed), std::string::npos);
  // Past ttl + grace: the compaction goes on and keeps the lease (a stalled
  // holder may still come back and renew it).
  aging->Age(crashed, file::kWriterLeaseTtlMs + 60000 + 1000);
  auto c = Compact(store, Cli());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_GT(c->checkpoint, 0u);
  EXPECT_EQ(WriterKeys(store.get()), std::vector<std::string>{crashed});
  EXPECT_TRUE(ReadAll(store) == content);
  // Lapsed for over an hour more: deleted by the next compaction.
  aging->Age(crashed, file::kWriterLeaseTtlMs + 60000 + file::kStaleWriterLeaseMs + 1000);
  ASSERT_TRUE(Compact(store, Cli()).ok());
  EXPECT_TRUE(WriterKeys(store.get()).empty());
}

// A writer that stalls past its lease: the compaction runs and commits; the
// writer's next flush is Conflict (it is fenced, docs/design/0002), and
// nothing it had flushed before is lost.
TEST_P(WriterLeases, AStalledWriterPastItsLeaseIsFencedAndLosesNothingFlushed) {
  HF_REQUIRE_BACKEND(GetParam());
  auto made = testing::MakeStoreForBackend(GetParam(), "wlease-stalled");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto aging = std::make_shared<AgingStore>(*made);
  std::shared_ptr<ObjectStore> store = aging;
  std::string content = MakeGarbage(store);
  auto w = File::Open(store);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->PWrite(kBlock, "acked", 5).ok());
  ASSERT_TRUE((*w)->Flush().ok());
  std::memcpy(content.data() + kBlock, "acked", 5);
  auto keys = WriterKeys(store.get());
  ASSERT_EQ(keys.size(), 1u);
  aging->Age(keys[0], file::kWriterLeaseTtlMs + 60000 + 1000);  // its renewals stalled
  auto c = Compact(store, Cli());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  ASSERT_GT(c->checkpoint, 0u);
  EXPECT_TRUE(ReadAll(store) == content);
  ASSERT_TRUE((*w)->PWrite(0, "late", 4).ok());
  auto late = (*w)->Flush();
  EXPECT_EQ(late.status().code(), Status::Code::kConflict) << late.status().ToString();
  EXPECT_TRUE(ReadAll(store) == content);
  (void)(*w)->Close();
  EXPECT_TRUE(WriterKeys(store.get()).empty());
}

TEST_P(WriterLeases, RemovalRemovesWriterLeasesAndTheSweepKeepsThem) {
  HF_REQUIRE_BACKEND(GetParam());
  auto made = testing::MakeStoreForBackend(GetParam(), "wlease-rm");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  std::shared_ptr<ObjectStore> store = *made;
  MakeGarbage(store);
  const std::string crashed = PutCrashedLease(store.get(), format::WriterKind::kWriter, 7);
  GcOptions sweep;
  sweep.grace_ms = 0;
  sweep.upload_grace_ms = 0;
  sweep.sweep = true;
  auto r = Collect(store, sweep);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(WriterKeys(store.get()), std::vector<std::string>{crashed});
  ASSERT_TRUE(RemoveFile(store).ok());
  std::vector<ObjectInfo> left;
  ASSERT_TRUE(store->List("", "", 0, &left).ok());
  EXPECT_TRUE(left.empty()) << left.front().key;
}

INSTANTIATE_TEST_SUITE_P(All, WriterLeases, ::testing::Values("memory", "local", "s3"));

// ------------------------------------------------- forced interleavings ---

// The four steps of a writer (W: write its lease, then list) and a
// compaction (C: the same), in every order each side keeps: at least one
// side sees the other and refuses.
TEST(WriterLeaseRace, EveryOrderLetsOneSideSeeTheOther) {
  const std::vector<std::string> orders = {"WwWlCwCl", "WwCwWlCl", "WwCwClWl",
                                           "CwWwWlCl", "CwWwClWl", "CwClWwWl"};
  for (const std::string& order : orders) {
    SCOPED_TRACE(order);
    auto store = NewMemoryStore("wlease-race");
    std::unique_ptr<file::WriterLease> w, c;
    Status wsees, csees;
    int64_t now = 0;
    for (size_t i = 0; i < order.size(); i += 2) {
      const std::string step = order.substr(i, 2);
      if (step == "Ww") {
        auto l = file::WriterLease::Write(store, format::WriterKind::kWriter, "w");
        ASSERT_TRUE(l.ok());
        w = std::move(l).value();
      } else if (step == "Cw") {
        auto l = file::WriterLease::Write(store, format::WriterKind::kCompaction, "c",
                                          file::kCompactionLeaseTtlMs);
        ASSERT_TRUE(l.ok());
        c = std::move(l).value();
      } else if (step == "Wl") {
        auto others = w->Others(file::kWriterLeaseGraceMs, &now);
        ASSERT_TRUE(others.ok());
        wsees = file::WriterMayOpen(*others, "open");
      } else {
        auto others = c->Others(60000, &now);
        ASSERT_TRUE(others.ok());
        csees = file::CompactionMayRun(*others, "compact");
      }
    }
    EXPECT_FALSE(wsees.ok() && csees.ok()) << "both went on";
    EXPECT_TRUE(wsees.ok() || wsees.IsConflict()) << wsees.ToString();
    EXPECT_TRUE(csees.ok() || csees.IsConflict()) << csees.ToString();
  }
}

// The same through the real entry points: a writer opens just before the
// compaction lists (after its lease was written) and is refused; a
// compaction starts just before a writer lists and is refused.
TEST(WriterLeaseRace, ThroughOpenAndCompact) {
  {
    auto base = NewMemoryStore("wlease-race-open");
    MakeGarbage(base);
    Status opened;
    auto hooked = std::make_shared<ListHookStore>(base, [&] {
      auto f = File::Open(base);
      opened = f.status();
    });
    auto c = Compact(hooked, Cli());
    EXPECT_TRUE(opened.IsConflict()) << opened.ToString();
    EXPECT_TRUE(c.ok()) << c.status().ToString();  // the writer never opened
    EXPECT_TRUE(WriterKeys(base.get()).empty());
  }
  {
    auto base = NewMemoryStore("wlease-race-compact");
    const std::string content = MakeGarbage(base);
    Result<CompactReport> compacted = Status::IOError("not run");
    auto hooked = std::make_shared<ListHookStore>(base, [&] { compacted = Compact(base, Cli()); });
    auto f = File::Open(hooked);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_TRUE(compacted.status().IsConflict()) << compacted.status().ToString();
    ASSERT_TRUE((*f)->PWrite(0, "mine", 4).ok());
    EXPECT_TRUE((*f)->Flush().ok()) << "the writer was fenced";
    EXPECT_TRUE((*f)->Close().ok());
  }
}

// ------------------------------------------------------ hostile store ---

TEST(WriterLeaseHostile, DamagedLeasesCountAsActiveForeignKeysAreLeftAlone) {
  auto store = NewMemoryStore("wlease-damaged");
  MakeGarbage(store);
  ASSERT_TRUE(store->Put("writer/README", "not a lease").ok());
  ASSERT_TRUE(store->Put("writer/0000000000000001/x", "nested").ok());
  // Foreign keys are no leases: both sides go on and never touch them.
  auto c = Compact(store, Cli());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto w = File::Open(store);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE((*w)->Close().ok());
  EXPECT_EQ(WriterKeys(store.get()),
            (std::vector<std::string>{"writer/0000000000000001/x", "writer/README"}));
  ASSERT_TRUE(store->Delete("writer/README").ok());
  ASSERT_TRUE(store->Delete("writer/0000000000000001/x").ok());
  for (const std::string& body :
       {std::string("garbage"), std::string(4096, 'x'),
        format::EncodeWriterLease({format::WriterKind::kWriter, 1000, "h"}).substr(0, 22) +
            "abcd"}) {
    const std::string key = format::WriterLeaseKey(0xdead);
    ASSERT_TRUE(store->Put(key, body).ok());
    auto refused = Compact(store, Cli());
    EXPECT_TRUE(refused.status().IsCorrupt()) << refused.status().ToString();
    EXPECT_NE(refused.status().message().find(key), std::string::npos);
    auto wr = File::Open(store);
    EXPECT_TRUE(wr.status().IsCorrupt()) << wr.status().ToString();
    EXPECT_NE(wr.status().message().find(key), std::string::npos);
    EXPECT_EQ(WriterKeys(store.get()), std::vector<std::string>{key}) << "damaged lease changed";
    ASSERT_TRUE(store->Delete(key).ok());
  }
}

TEST(WriterLeaseHostile, TooManyObjectsUnderWriterStopBothSides) {
  auto store = NewMemoryStore("wlease-many");
  MakeGarbage(store);
  for (size_t i = 0; i <= file::kMaxWriterLeases; i++) {
    ASSERT_TRUE(store->Put("writer/junk" + std::to_string(i), "x").ok());
  }
  auto c = Compact(store, Cli());
  EXPECT_EQ(c.status().code(), Status::Code::kOutOfRange) << c.status().ToString();
  auto w = File::Open(store);
  EXPECT_EQ(w.status().code(), Status::Code::kOutOfRange) << w.status().ToString();
  EXPECT_EQ(WriterKeys(store.get()).size(), file::kMaxWriterLeases + 1);
}

}  // namespace
}  // namespace hyperfile
