// Behaviour every backend must share, run against memory and local directory
// (S3 joins when its backend lands), plus the layers.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "hyperfile/object_store.h"
#include "hyperfile/store_layers.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

std::string TempDir() {
  std::string tmpl = std::filesystem::temp_directory_path().string() + "/hfstore.XXXXXX";
  char* dir = mkdtemp(tmpl.data());
  return dir ? dir : "";
}

class StoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "memory") {
      store_ = NewMemoryStore("contract");
    } else if (GetParam() == "s3") {
      HF_REQUIRE_S3();
      auto s = OpenStore(testing::UniqueS3Uri("contract"));
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      store_ = *s;
    } else {
      dir_ = TempDir();
      auto s = OpenStore("file://" + dir_);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      store_ = *s;
    }
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::shared_ptr<ObjectStore> store_;
  std::string dir_;
};

TEST_P(StoreContract, RangeEdgeCases) {
  ASSERT_TRUE(store_->Put("empty", "").ok());
  ASSERT_TRUE(store_->Put("ten", "0123456789").ok());
  std::string out = "junk";
  ASSERT_TRUE(store_->Get("empty", &out).ok());
  EXPECT_EQ(out, "");
  ASSERT_TRUE(store_->Get("empty", 5, 10, &out, nullptr).ok());
  EXPECT_EQ(out, "");
  ASSERT_TRUE(store_->Get("ten", 9, 1, &out, nullptr).ok());
  EXPECT_EQ(out, "9");  // the last byte
  ASSERT_TRUE(store_->Get("ten", 8, 100, &out, nullptr).ok());
  EXPECT_EQ(out, "89");  // clamped
  ASSERT_TRUE(store_->Get("ten", 10, 5, &out, nullptr).ok());
  EXPECT_EQ(out, "");  // past the end
  ASSERT_TRUE(store_->Get("ten", 3, 0, &out, nullptr).ok());
  EXPECT_EQ(out, "");
  ObjectInfo info;
  ASSERT_TRUE(store_->Head("ten", &info).ok());
  EXPECT_EQ(info.size, 10u);
  EXPECT_FALSE(info.etag.empty());
  Status missing = store_->Get("nope", &out);
  EXPECT_TRUE(missing.IsNotFound());
  EXPECT_NE(missing.message().find("nope"), std::string::npos);  // names the key
}

TEST_P(StoreContract, ListOrderPrefixStartAfterLimit) {
  for (const char* k : {"a/b", "a-b", "a.b", "a/a/z", "b", "a/c"}) {
    ASSERT_TRUE(store_->Put(k, k).ok());
  }
  std::vector<ObjectInfo> all;
  ASSERT_TRUE(store_->List("", "", 0, &all).ok());
  std::vector<std::string> keys;
  for (auto& o : all) keys.push_back(o.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"a-b", "a.b", "a/a/z", "a/b", "a/c", "b"}));
  std::vector<ObjectInfo> some;
  ASSERT_TRUE(store_->List("a/", "a/a/z", 1, &some).ok());
  ASSERT_EQ(some.size(), 1u);
  EXPECT_EQ(some[0].key, "a/b");
}

TEST_P(StoreContract, ManyKeysAndGatherPut) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; t++) {
    threads.emplace_back([&, t] {
      for (int i = t; i < 1100; i += 16) {
        char key[32];
        std::snprintf(key, sizeof key, "k/%05d", i);
        EXPECT_TRUE(store_->Put(key, Payload{"abc", "-", key}, {}, nullptr).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  std::vector<ObjectInfo> all;
  ASSERT_TRUE(store_->List("k/", "", 0, &all).ok());
  ASSERT_EQ(all.size(), 1100u);
  std::string out;
  ASSERT_TRUE(store_->Get("k/00042", &out).ok());
  EXPECT_EQ(out, "abc-k/00042");
  std::vector<std::string> keys;
  for (auto& o : all) keys.push_back(o.key);
  keys.push_back("k/absent");
  ASSERT_TRUE(store_->DeleteMany(keys).ok());
  all.clear();
  ASSERT_TRUE(store_->List("k/", "", 0, &all).ok());
  EXPECT_TRUE(all.empty());
}

TEST_P(StoreContract, PutIfAbsentRaceExactlyOneWins) {
  for (int round = 0; round < 20; round++) {
    std::string key = "race/" + std::to_string(round);
    std::atomic<int> wins{0}, refused{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; t++) {
      threads.emplace_back([&, t] {
        PutOptions o;
        o.if_absent = true;
        Status st = store_->Put(key, std::to_string(t), o, nullptr);
        if (st.ok())
          wins++;
        else if (st.IsPreconditionFailed())
          refused++;
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(wins.load(), 1);
    EXPECT_EQ(refused.load(), 7);
  }
}

TEST_P(StoreContract, OddKeys) {
  std::string key = "dir/a b/\xc3\xbc\xe2\x82\xac key";
  ASSERT_TRUE(store_->Put(key, "x").ok());
  std::vector<ObjectInfo> all;
  ASSERT_TRUE(store_->List("dir/", "", 0, &all).ok());
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].key, key);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract, ::testing::Values("memory", "local", "s3"));

TEST(S3Store, MultipartRoundTripCreateOnly) {
  HF_REQUIRE_S3();
  StoreOptions o;
  o.multipart_threshold = 8 << 20;  // force multipart for the 64 MiB object
  o.multipart_part_size = 5 << 20;
  auto s = OpenStore(testing::UniqueS3Uri("large"), o);
  ASSERT_TRUE(s.ok());
  std::string big(64 << 20, '\0');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096);
  PutOptions create_only;
  create_only.if_absent = true;
  Payload pieces{std::string_view(big).substr(0, 3 << 20), std::string_view(big).substr(3 << 20)};
  Status st = (*s)->Put("big", pieces, create_only, nullptr);
  ASSERT_TRUE(st.ok()) << st.ToString();
  std::string back;
  ASSERT_TRUE((*s)->Get("big", &back).ok());
  EXPECT_TRUE(back == big);
  // A second create-only multipart put of the same key must be refused.
  Status again = (*s)->Put("big", pieces, create_only, nullptr);
  EXPECT_TRUE(again.IsPreconditionFailed()) << again.ToString();
  std::vector<ObjectInfo> all;
  ASSERT_TRUE((*s)->List("", "", 0, &all).ok());
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].size, big.size());
}

TEST(S3Store, WrongSecretIsAuthAndSecretNeverShown) {
  HF_REQUIRE_S3();
  StoreOptions o;
  o.secret_access_key = "definitely-wrong-secret-value";
  auto s = OpenStore(testing::UniqueS3Uri("auth"), o);
  ASSERT_TRUE(s.ok());
  Status st = (*s)->Put("k", "v");
  EXPECT_TRUE(st.IsAuth()) << st.ToString();
  EXPECT_EQ(st.message().find("definitely-wrong"), std::string::npos);
  EXPECT_NE(st.message().find("s3://"), std::string::npos);
}

TEST(S3Store, ServerNotRunningIsTransientAfterRetries) {
  HF_REQUIRE_S3();
  StoreOptions o;
  o.endpoint = "http://127.0.0.1:1";
  o.retry_max_attempts = 3;
  o.retry_base_delay_ms = 10;
  auto s = OpenStore("s3://bucket/x", o);
  ASSERT_TRUE(s.ok());
  auto start = std::chrono::steady_clock::now();
  Status st = (*s)->Put("k", "v");
  EXPECT_TRUE(st.IsTransient()) << st.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(S3Store, MissingBucketIsNotFound) {
  HF_REQUIRE_S3();
  auto s = OpenStore("s3://no-such-bucket-hyperfile/x");
  ASSERT_TRUE(s.ok());
  Status st = (*s)->Put("k", "v");
  EXPECT_TRUE(st.IsNotFound()) << st.ToString();
  EXPECT_NE(st.message().find("no-such-bucket-hyperfile"), std::string::npos);
}

TEST(LocalStore, ProcessesRacingPutIfAbsent) {
  std::string dir = TempDir();
  for (int round = 0; round < 5; round++) {
    std::string key = "seg/" + std::to_string(round);
    std::vector<pid_t> kids;
    for (int p = 0; p < 6; p++) {
      pid_t pid = fork();
      if (pid == 0) {
        auto s = NewLocalStore(dir);
        PutOptions o;
        o.if_absent = true;
        _exit(
            s.ok() &&
                    (*s)->Put(key, std::string(100000, static_cast<char>('a' + p)), o, nullptr).ok()
                ? 0
                : 1);
      }
      kids.push_back(pid);
    }
    int wins = 0;
    for (pid_t pid : kids) {
      int status = 0;
      waitpid(pid, &status, 0);
      wins += WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    EXPECT_EQ(wins, 1);
    auto s = NewLocalStore(dir);
    std::string out;
    ASSERT_TRUE((*s)->Get(key, &out).ok());
    EXPECT_EQ(out, std::string(100000, out[0]));  // one writer's bytes, complete
  }
  std::filesystem::remove_all(dir);
}

TEST(LocalStore, RejectsBadKeysAndHidesTemporaries) {
  std::string dir = TempDir();
  auto s = NewLocalStore(dir);
  ASSERT_TRUE(s.ok());
  for (const char* bad : {"", "/abs", "a/../b", "a//b", "./a", ".hftmp/x", "a/"}) {
    EXPECT_TRUE((*s)->Put(bad, "x").IsInvalidArgument()) << bad;
  }
  std::filesystem::create_directories(dir + "/.hftmp");
  std::FILE* f = std::fopen((dir + "/.hftmp/leftover").c_str(), "w");
  std::fclose(f);
  std::vector<ObjectInfo> all;
  ASSERT_TRUE((*s)->List("", "", 0, &all).ok());
  EXPECT_TRUE(all.empty());
  EXPECT_TRUE(OpenStore("ftp://x").status().IsInvalidArgument());
  EXPECT_TRUE(OpenStore("s3://").status().IsInvalidArgument());
  std::filesystem::remove_all(dir);
}

TEST(RetryLayer, RetriesOnlyTransientWithinBounds) {
  auto faulty = std::make_shared<FaultInjectionStore>(NewMemoryStore("retry"));
  RetryOptions ro;
  ro.max_attempts = 4;
  ro.base_delay_ms = 1;
  ro.max_delay_ms = 4;
  auto store = NewRetryStore(faulty, ro);
  faulty->FailCall(0, Status::Transient("reset"));
  faulty->FailCall(1, Status::Throttled("slow down"));
  ASSERT_TRUE(store->Put("k", "v").ok());
  EXPECT_EQ(faulty->calls(), 3u);
  faulty->FailWhen([](const StoreCall&) { return true; }, Status::Transient("down"));
  EXPECT_TRUE(store->Put("k", "v").IsTransient());
  EXPECT_EQ(faulty->calls(), 7u);  // 4 more attempts, then give up
  faulty->ClearFaults();
  faulty->FailCall(faulty->calls(), Status::Auth("bad secret"));
  EXPECT_TRUE(store->Put("k", "v").IsAuth());
  EXPECT_EQ(faulty->calls(), 8u);  // never retried
}

TEST(MetricsLayer, CountsVerbsAndBytes) {
  auto metrics = std::make_shared<MetricsStore>(NewMemoryStore("metrics"));
  ASSERT_TRUE(metrics->Put("a", "12345").ok());
  std::string out;
  ASSERT_TRUE(metrics->Get("a", &out).ok());
  EXPECT_TRUE(metrics->Get("b", &out).IsNotFound());
  auto s = metrics->Snapshot();
  EXPECT_EQ(s.count(StoreVerb::kPut), 1u);
  EXPECT_EQ(s.count(StoreVerb::kGet), 2u);
  EXPECT_EQ(s.bytes_out, 5u);
  EXPECT_EQ(s.bytes_in, 5u);
  EXPECT_EQ(s.errors[static_cast<int>(StoreVerb::kGet)], 1u);
}

TEST(FaultLayer, CrashRefusesEverythingAfter) {
  auto base = NewMemoryStore("crash");
  auto faulty = std::make_shared<FaultInjectionStore>(base);
  faulty->CrashAfter(1);
  EXPECT_TRUE(faulty->Put("a", "1").ok());
  EXPECT_TRUE(faulty->Put("b", "2").IsTransient());
  std::string out;
  EXPECT_TRUE(base->Get("b", &out).IsNotFound());  // never reached the store
}

}  // namespace
}  // namespace hyperfile
