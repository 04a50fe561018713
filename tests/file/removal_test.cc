// SPDX-License-Identifier: Apache-2.0
// RemoveFile touches only the format's keys, refuses roots that are not a
// hyperfile, and an interrupted removal never leaves an older state behind.
// Also: the one rule for snapshot names and selectors, bounded snapshot
// reads, and OpenOptions validation.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <map>
#include <random>
#include <thread>

#include "crypto/key_record.h"
#include "format/format.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

using testing::MakeStoreForBackend;

// A hyperfile with three checkpoints, two snapshots and the GC horizon.
void MakeFile(const std::shared_ptr<ObjectStore>& store, const std::string& tag = "x") {
  CreateOptions co;
  co.block_size = 4096;
  auto f = File::Create(store, co);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  for (int i = 0; i < 3; i++) {
    std::string data = tag + std::to_string(i);
    ASSERT_TRUE((*f)->PWrite(uint64_t(i) * 8192, data.data(), data.size()).ok());
    ASSERT_TRUE((*f)->Flush().ok());
  }
  ASSERT_TRUE((*f)->Close().ok());
  ASSERT_TRUE(CreateSnapshot(store, "first", At::Checkpoint(2)).ok());
  ASSERT_TRUE(CreateSnapshot(store, "last").ok());
  ASSERT_TRUE(store->Put("gc/horizon", "0").ok());
}

std::map<std::string, std::string> Contents(ObjectStore* store) {
  std::vector<ObjectInfo> all;
  EXPECT_TRUE(store->List("", "", 0, &all).ok());
  std::map<std::string, std::string> out;
  for (const ObjectInfo& o : all) {
    std::string body;
    EXPECT_TRUE(store->Get(o.key, &body).ok());
    out[o.key] = body;
  }
  return out;
}

class Removal : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    HF_REQUIRE_BACKEND(GetParam());
    auto s = MakeStoreForBackend(GetParam(), "removal", &uri_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = *s;
  }
  // A store on a key prefix of store_ ("sub/"), opened by URI.
  std::shared_ptr<ObjectStore> Sub(const std::string& name) {
    StoreOptions so;
    if (GetParam() == "s3") so = testing::S3TestConfigFromEnv()->ToStoreOptions();
    auto s = OpenStore(uri_ + "/" + name, so);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return *s;
  }
  std::string uri_;
  std::shared_ptr<ObjectStore> store_;
};

TEST_P(Removal, DirectoryOfOrdinaryFilesIsNotFoundAndUntouched) {
  ASSERT_TRUE(store_->Put("notes.txt", "mine").ok());
  ASSERT_TRUE(store_->Put("photos/a.jpg", "jpeg").ok());
  ASSERT_TRUE(store_->Put("seg/README", "not a segment").ok());
  auto before = Contents(store_.get());
  Status st = RemoveFile(store_);
  EXPECT_TRUE(st.IsNotFound()) << st.ToString();
  st = RemoveFile(store_, {.keep_foreign = true});
  EXPECT_TRUE(st.IsNotFound()) << st.ToString();
  EXPECT_EQ(Contents(store_.get()), before);
}

TEST_P(Removal, ParentOfHyperfilesIsNotFoundAndUntouched) {
  MakeFile(Sub("one"));
  MakeFile(Sub("two/nested"));
  auto before = Contents(store_.get());
  EXPECT_TRUE(RemoveFile(store_).IsNotFound());
  EXPECT_TRUE(RemoveFile(store_, {.keep_foreign = true}).IsNotFound());
  EXPECT_EQ(Contents(store_.get()), before);
  EXPECT_TRUE(File::Open(Sub("one")).ok());
}

TEST_P(Removal, ForeignObjectsRefuseUnlessKeptAndAreNeverDeleted) {
  MakeFile(store_);
  MakeFile(Sub("inner"));  // a nested hyperfile
  ASSERT_TRUE(store_->Put("notes.txt", "mine").ok());
  ASSERT_TRUE(store_->Put("snap/.DS_Store", "finder").ok());
  ASSERT_TRUE(store_->Put("seg/fffffffffffffffe.bak", "a copy").ok());
  auto before = Contents(store_.get());
  Status st = RemoveFile(store_);
  ASSERT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_NE(st.message().find("not part of a hyperfile"), std::string::npos) << st.ToString();
  EXPECT_EQ(Contents(store_.get()), before) << "a refused removal deleted something";

  ASSERT_TRUE(RemoveFile(store_, {.keep_foreign = true}).ok());
  auto after = Contents(store_.get());
  for (const auto& [key, body] : before) {
    bool ours = key.starts_with("seg/fffffffffffffff") && key.size() == 20;
    ours = ours || key == "snap/first" || key == "snap/last" || key == "gc/horizon";
    if (ours) {
      EXPECT_EQ(after.count(key), 0u) << key << " survived";
    } else {
      ASSERT_EQ(after.count(key), 1u) << key << " was deleted";
      EXPECT_EQ(after[key], body) << key << " was changed";
    }
  }
  EXPECT_TRUE(File::Open(store_).status().IsNotFound());
  auto inner = File::Open(Sub("inner"));
  ASSERT_TRUE(inner.ok()) << inner.status().ToString();
  EXPECT_EQ((*inner)->Size(), 16384u + 2);
}

TEST_P(Removal, RemovesEverythingOfAPlainFileAndThenIsNotFound) {
  MakeFile(store_);
  ASSERT_TRUE(RemoveFile(store_).ok());
  EXPECT_TRUE(Contents(store_.get()).empty());
  EXPECT_TRUE(RemoveFile(store_).IsNotFound());
  EXPECT_TRUE(File::Open(store_).status().IsNotFound());
}

// Key records (key/<16 hex>) are the file's: removal deletes them with the
// rest; other keys under key/ are foreign.
TEST_P(Removal, KeyRecordsAreTheFilesAndGoWithIt) {
  MakeFile(store_);
  auto kek = crypto::KekSource::FromKey(crypto::SecretKey::Random().value());
  ASSERT_TRUE(crypto::CreateFileKey(store_.get(), 1, kek).ok());
  EXPECT_TRUE(IsHyperfileKey("key/0000000000000001"));
  EXPECT_FALSE(IsHyperfileKey("key/README"));
  ASSERT_TRUE(RemoveFile(store_).ok());
  EXPECT_TRUE(Contents(store_.get()).empty());

  MakeFile(store_);
  ASSERT_TRUE(crypto::CreateFileKey(store_.get(), 1, kek).ok());
  ASSERT_TRUE(store_->Put("key/README", "mine").ok());
  Status st = RemoveFile(store_);
  ASSERT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_NE(st.message().find("key/README"), std::string::npos) << st.ToString();
  ASSERT_TRUE(RemoveFile(store_, {.keep_foreign = true}).ok());
  auto left = Contents(store_.get());
  EXPECT_EQ(left.size(), 1u);
  EXPECT_EQ(left["key/README"], "mine");
}

TEST_P(Removal, AWriterIsFencedByTheRemovalMarker) {
  MakeFile(store_);
  auto f = File::Open(store_);
  ASSERT_TRUE(f.ok());
  // The removal commits its marker, then every delete fails (a removal
  // interrupted half way).
  auto faulty = std::make_shared<FaultInjectionStore>(store_);
  faulty->FailWhen([](const StoreCall& c) { return c.verb == StoreVerb::kDelete; },
                   Status::IOError("injected"));
  EXPECT_FALSE(RemoveFile(faulty).ok());
  const std::string block(4096, 'L');  // a whole block: no read of the base
  ASSERT_TRUE((*f)->PWrite(0, block.data(), block.size()).ok());
  auto flushed = (*f)->Flush();
  ASSERT_FALSE(flushed.ok());
  EXPECT_TRUE(flushed.status().IsConflict()) << flushed.status().ToString();
  auto reopened = File::Open(store_);
  EXPECT_NE(reopened.status().message().find("partly removed"), std::string::npos)
      << reopened.status().ToString();
  ASSERT_TRUE(RemoveFile(store_).ok());
  EXPECT_TRUE(Contents(store_.get()).empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, Removal, ::testing::Values("memory", "local", "s3"));

// Crash before every store call of a removal: the file then either opens at
// its head unchanged (nothing was committed yet) or fails to open with
// "partly removed" — never an older checkpoint — and a second RemoveFile
// finishes the job.
TEST(RemovalCrash, InterruptedAtEveryCallNeverShowsAnOlderState) {
  for (uint64_t crash_at = 0;; crash_at++) {
    auto base = NewMemoryStore("rmcrash-" + std::to_string(crash_at));
    MakeFile(base);
    auto head = File::Open(base);
    ASSERT_TRUE(head.ok());
    const uint64_t head_id = (*head)->Stat()->checkpoint;
    head->reset();
    auto faulty = std::make_shared<FaultInjectionStore>(base);
    faulty->CrashAfter(crash_at);
    Status st = RemoveFile(faulty);
    if (st.ok()) {
      EXPECT_TRUE(Contents(base.get()).empty());
      EXPECT_GT(crash_at, 5u);
      break;
    }
    auto f = File::Open(base);
    if (f.ok()) {
      EXPECT_EQ((*f)->Stat()->checkpoint, head_id) << "crash at " << crash_at;
      EXPECT_EQ((*f)->Size(), 16384u + 2);
    } else {
      EXPECT_TRUE(f.status().IsNotFound()) << f.status().ToString();
      EXPECT_NE(f.status().message().find("partly removed"), std::string::npos)
          << "crash at " << crash_at << ": " << f.status().ToString();
      // No writer can build on it either.
      CreateOptions co;
      EXPECT_FALSE(File::Create(base, co).ok());
    }
    ASSERT_TRUE(RemoveFile(base).ok()) << "crash at " << crash_at;
    EXPECT_TRUE(Contents(base.get()).empty()) << "crash at " << crash_at;
    ASSERT_LT(crash_at, 100u);
  }
}

// ------------------------------------------------------------ snapshots ---

TEST(SnapshotNames, EveryNameCreateAcceptsParsesBackAsThatName) {
  std::mt19937_64 rng(7);
  const std::string alphabet =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:@T Z";
  int names = 0;
  for (int i = 0; i < 20000; i++) {
    std::string s;
    size_t n = 1 + rng() % 24;
    for (size_t j = 0; j < n; j++) s += alphabet[rng() % alphabet.size()];
    if (rng() % 4 == 0) s = "2026-11-25T10" + s;
    auto at = At::Parse(s);
    if (IsSnapshotName(s)) {
      names++;
      ASSERT_TRUE(at.ok()) << s;
      EXPECT_EQ(at->kind, At::Kind::kSnapshot) << s;
      EXPECT_EQ(at->snapshot, s);
    } else if (at.ok()) {
      EXPECT_NE(at->kind, At::Kind::kSnapshot) << s << " parsed as a name it cannot be";
    }
  }
  EXPECT_GT(names, 1000);
}

TEST(SnapshotNames, TimeLookingNamesAreRefusedAtCreate) {
  auto store = NewMemoryStore("snapnames");
  MakeFile(store);
  for (const char* name :
       {"2026-11-25T10-00-00", "2026-11-25", "42", "latest", "HEAD", "-x", ".hidden", "a/b", ""}) {
    EXPECT_TRUE(CreateSnapshot(store, name).IsInvalidArgument()) << name;
  }
  ASSERT_TRUE(CreateSnapshot(store, "backup-2026-11-25T10-00-00").ok());
  auto at = At::Parse("backup-2026-11-25T10-00-00");
  ASSERT_TRUE(at.ok());
  auto id = ResolveAt(store, *at);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, 4u);
  // Times parse strictly: trailing garbage is an error, not a prefix match.
  EXPECT_FALSE(At::Parse("2026-11-25T10:00:00Zjunk").ok());
  EXPECT_FALSE(At::Parse("2026-13-01").ok());
  EXPECT_FALSE(At::Parse("0").ok());
  EXPECT_EQ(At::Parse("2026-11-25")->kind, At::Kind::kTime);
  EXPECT_EQ(At::Parse("2026-11-25 10:00")->kind, At::Kind::kTime);
  EXPECT_EQ(At::Parse("2026-11-25T10:00:00.250Z")->time_ms % 1000, 250);
}

TEST(Snapshots, RetriedCreateWhoseFirstAttemptLandedIsOurs) {
  auto base = NewMemoryStore("snapretry");
  MakeFile(base);
  auto faulty = std::make_shared<FaultInjectionStore>(base);
  faulty->LoseResponseWhen(
      [](const StoreCall& c) { return c.verb == StoreVerb::kPut && c.key == "snap/mine"; },
      Status::Transient("connection reset"));
  RetryOptions ro;
  ro.base_delay_ms = 1;
  ro.seed = 1;
  auto store = NewRetryStore(faulty, ro);
  Status st = CreateSnapshot(store, "mine");
  EXPECT_TRUE(st.ok()) << st.ToString();
  faulty->ClearFaults();
  // Someone else's snapshot of the same name is still AlreadyExists (a record
  // made in the same millisecond for the same checkpoint is identical, and
  // creating it twice is then idempotent).
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  EXPECT_TRUE(CreateSnapshot(store, "mine").IsAlreadyExists());
}

TEST(Snapshots, AHugeObjectAtASnapshotKeyIsReportedWithoutReadingIt) {
  auto base = NewMemoryStore("snaphuge");
  MakeFile(base);
  ASSERT_TRUE(base->Put("snap/big", std::string(64 << 20, 'x')).ok());
  auto metrics = std::make_shared<MetricsStore>(base);
  auto list = ListSnapshots(metrics);
  ASSERT_FALSE(list.ok());
  EXPECT_TRUE(list.status().IsCorrupt()) << list.status().ToString();
  EXPECT_NE(list.status().message().find("snap/big"), std::string::npos);
  auto opened = File::OpenAt(metrics, At::Snapshot("big"));
  EXPECT_TRUE(opened.status().IsCorrupt()) << opened.status().ToString();
  EXPECT_LT(metrics->Snapshot().bytes_in, 64u << 10) << "read the huge object";
  // log (ListCheckpoints) still works: the broken snapshot does not block it.
  EXPECT_TRUE(ListCheckpoints(metrics).ok());
}

TEST(Snapshots, ForeignKeysUnderSnapAreSkippedAndAMissingFileIsNotFound) {
  auto store = NewMemoryStore("snapforeign");
  MakeFile(store);
  ASSERT_TRUE(store->Put("snap/.DS_Store", "x").ok());
  auto list = ListSnapshots(store);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  EXPECT_EQ(list->size(), 2u);
  auto empty = NewMemoryStore("snapmissing");
  EXPECT_TRUE(ListSnapshots(empty).status().IsNotFound());
}

// -------------------------------------------------------------- options ---

TEST(OpenOptionsValidation, EveryFieldOutOfRangeIsInvalidArgument) {
  auto store = NewMemoryStore("optvalid");
  MakeFile(store);
  auto expect_bad = [&](const char* field, auto mutate) {
    OpenOptions o;
    mutate(o);
    auto f = File::Open(store, o);
    ASSERT_FALSE(f.ok()) << field;
    EXPECT_TRUE(f.status().IsInvalidArgument()) << field << ": " << f.status().ToString();
    EXPECT_NE(f.status().message().find(field), std::string::npos) << f.status().ToString();
    auto g = File::OpenAt(store, At::Checkpoint(1), o);
    EXPECT_TRUE(g.status().IsInvalidArgument()) << field;
    auto c = File::Create(NewMemoryStore(std::string("optvalid-new-") + field), CreateOptions{}, o);
    EXPECT_TRUE(c.status().IsInvalidArgument()) << field;
  };
  expect_bad("dirty_budget_bytes", [](OpenOptions& o) { o.dirty_budget_bytes = 0; });
  expect_bad("dirty_budget_bytes", [](OpenOptions& o) { o.dirty_budget_bytes = 1ull << 50; });
  expect_bad("flush_dirty_bytes", [](OpenOptions& o) {
    o.dirty_budget_bytes = 1 << 20;
    o.flush_dirty_bytes = 2 << 20;
  });
  expect_bad("io_parallelism", [](OpenOptions& o) { o.io_parallelism = 0; });
  expect_bad("io_parallelism", [](OpenOptions& o) { o.io_parallelism = -3; });
  expect_bad("io_parallelism", [](OpenOptions& o) { o.io_parallelism = 100000; });
  expect_bad("max_read_request_bytes", [](OpenOptions& o) { o.max_read_request_bytes = 0; });
  expect_bad("block_cache_bytes", [](OpenOptions& o) { o.block_cache_bytes = ~0ull; });
  expect_bad("index_cache_bytes", [](OpenOptions& o) { o.index_cache_bytes = ~0ull; });
  expect_bad("disk_cache", [](OpenOptions& o) { o.disk_cache_dir = "/tmp/x"; });
  expect_bad("disk_cache", [](OpenOptions& o) { o.disk_cache_bytes = 1 << 20; });
  expect_bad("writer_name", [](OpenOptions& o) { o.writer_name = std::string(300, 'w'); });
  expect_bad("writer_name", [](OpenOptions& o) { o.writer_name = "a\nb"; });
  // One block is the smallest budget (the file has 4 KiB blocks; 64 KiB here).
  auto big = NewMemoryStore("optvalid-64k");
  ASSERT_TRUE(File::Create(big, CreateOptions{}).ok());
  OpenOptions o;
  o.dirty_budget_bytes = 8192;
  auto f = File::Open(big, o);
  ASSERT_TRUE(f.status().IsInvalidArgument()) << f.status().ToString();
  EXPECT_NE(f.status().message().find("one block"), std::string::npos);
}

// The smallest budget works: a writer never waits with nothing dirty, and a
// full budget is freed by the flusher (this hung forever with budget 0).
TEST(OpenOptionsValidation, TheSmallestDirtyBudgetMakesProgress) {
  auto store = NewMemoryStore("optbudget");
  CreateOptions co;
  co.block_size = 4096;
  OpenOptions o;
  o.dirty_budget_bytes = 4096;
  auto f = File::Create(store, co, o);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  std::string data(64 << 10, 'q');
  auto done = std::async(std::launch::async, [&] {
    for (int i = 0; i < 8; i++) {
      Status st = (*f)->PWrite(uint64_t(i) * data.size(), data.data(), data.size());
      if (!st.ok()) return st;
    }
    return (*f)->Flush().status();
  });
  ASSERT_EQ(done.wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << "a writer hung on a one-block dirty budget";
  EXPECT_TRUE(done.get().ok());
  EXPECT_EQ((*f)->Size(), 8u * data.size());
  ASSERT_TRUE((*f)->Close().ok());
}

}  // namespace
}  // namespace hyperfile
