// SPDX-License-Identifier: Apache-2.0
// The local-directory backend beyond the shared contract
// (tests/store/contract_test.cc): atomicity between processes, hidden
// temporaries, key validation, error classes.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "hyperfile/object_store.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

namespace fs = std::filesystem;

std::shared_ptr<ObjectStore> MustOpen(const std::string& dir) {
  auto s = NewLocalStore(dir);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : nullptr;
}

// Runs `body` in `n` child processes; returns their exit codes.
std::vector<int> InChildren(int n, const std::function<int(int)>& body) {
  std::vector<pid_t> kids;
  for (int p = 0; p < n; p++) {
    pid_t pid = fork();
    if (pid == 0) _exit(body(p));
    kids.push_back(pid);
  }
  std::vector<int> codes;
  for (pid_t pid : kids) {
    int status = 0;
    waitpid(pid, &status, 0);
    codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  return codes;
}

TEST(LocalStore, ProcessesRacingPutIfAbsentExactlyOneWins) {
  testing::TempDir dir;
  for (int round = 0; round < 5; round++) {
    std::string key = "seg/" + std::to_string(round);
    std::vector<int> codes = InChildren(6, [&](int p) {
      auto s = NewLocalStore(dir.path());  // a store of the child's own
      if (!s.ok()) return 2;
      PutOptions o;
      o.if_absent = true;
      Status st = (*s)->Put(key, std::string(100000, static_cast<char>('a' + p)), o, nullptr);
      return st.ok() ? 0 : st.IsPreconditionFailed() ? 1 : 3;
    });
    EXPECT_EQ(std::count(codes.begin(), codes.end(), 0), 1) << "round " << round;
    EXPECT_EQ(std::count(codes.begin(), codes.end(), 1), 5) << "round " << round;
    std::string out;
    ASSERT_TRUE(MustOpen(dir.path())->Get(key, &out).ok());
    EXPECT_EQ(out, std::string(100000, out[0]));  // one writer's bytes, complete
  }
}

TEST(LocalStore, ProcessesSerializeOnIfMatch) {
  testing::TempDir dir;
  ASSERT_TRUE(MustOpen(dir.path())->Put("counter", "0").ok());
  // Each child increments with read-modify-write and reports its successes.
  std::vector<int> codes = InChildren(4, [&](int) {
    auto store = NewLocalStore(dir.path());
    if (!store.ok()) return 255;
    int wins = 0;
    for (int i = 0; i < 30; i++) {
      std::string value;
      ObjectInfo info;
      if (!(*store)->Get("counter", &value, &info).ok()) return 254;
      PutOptions o;
      o.if_match = info.etag;
      if ((*store)->Put("counter", std::to_string(std::stoi(value) + 1), o, nullptr).ok()) wins++;
    }
    return wins;
  });
  int total = 0;
  for (int c : codes) {
    ASSERT_LE(c, 30);
    total += c;
  }
  std::string value;
  ASSERT_TRUE(MustOpen(dir.path())->Get("counter", &value).ok());
  EXPECT_EQ(std::stoi(value), total);
}

TEST(LocalStore, TemporariesAreHiddenAndStaleOnesRemovedByFirstPutOnly) {
  testing::TempDir dir;
  auto store = MustOpen(dir.path());
  ASSERT_TRUE(store->Put("a", "1").ok());
  PutOptions o;
  o.if_absent = true;
  EXPECT_TRUE(store->Put("a", "2", o, nullptr).IsPreconditionFailed());
  EXPECT_TRUE(fs::is_empty(dir.path() + "/.hftmp"));  // nothing left by puts, failed or not
  std::ofstream(dir.path() + "/.hftmp/fresh") << "partial";
  std::ofstream(dir.path() + "/.hftmp/stale") << "partial";
  fs::last_write_time(dir.path() + "/.hftmp/stale",
                      fs::file_time_type::clock::now() - std::chrono::hours(2));
  std::vector<ObjectInfo> all;
  ASSERT_TRUE(store->List("", "", 0, &all).ok());
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].key, "a");
  all.clear();
  ASSERT_TRUE(store->List(".hf", "", 0, &all).ok());
  EXPECT_TRUE(all.empty());
  // Opening and reading remove nothing (a reader never deletes).
  auto reader = MustOpen(dir.path());
  std::string out;
  ASSERT_TRUE(reader->Get("a", &out).ok());
  ASSERT_TRUE(reader->Head("a", nullptr).ok());
  all.clear();
  ASSERT_TRUE(reader->List("", "", 0, &all).ok());
  EXPECT_TRUE(fs::exists(dir.path() + "/.hftmp/stale"));
  // The first put of a store instance removes crashed puts' old temporaries
  // only; later puts of that instance do not scan again.
  ASSERT_TRUE(reader->Put("b", "x").ok());
  EXPECT_TRUE(fs::exists(dir.path() + "/.hftmp/fresh"));
  EXPECT_FALSE(fs::exists(dir.path() + "/.hftmp/stale"));
  std::ofstream(dir.path() + "/.hftmp/stale2") << "partial";
  fs::last_write_time(dir.path() + "/.hftmp/stale2",
                      fs::file_time_type::clock::now() - std::chrono::hours(2));
  ASSERT_TRUE(reader->Put("c", "x").ok());
  EXPECT_TRUE(fs::exists(dir.path() + "/.hftmp/stale2"));
}

TEST(LocalStore, RejectsBadKeys) {
  testing::TempDir dir;
  auto store = MustOpen(dir.path());
  const std::string nul("a\0b", 3);
  for (const std::string& bad : std::vector<std::string>{
           "", "/abs", "a/../b", "..", ".", "a//b", "./a", "a/", ".hftmp/x", ".hflock/001", nul}) {
    Status put = store->Put(bad, "x");
    EXPECT_TRUE(put.IsInvalidArgument()) << "'" << bad << "': " << put.ToString();
    EXPECT_NE(put.message().find("put file://" + dir.path()), std::string::npos) << put.message();
    std::string out;
    EXPECT_TRUE(store->Get(bad, &out).IsInvalidArgument()) << bad;
    EXPECT_TRUE(store->Head(bad, nullptr).IsInvalidArgument()) << bad;
    EXPECT_TRUE(store->Delete(bad).IsInvalidArgument()) << bad;
  }
  EXPECT_TRUE(store->Put("ok/.hftmp/x", "fine below the root").ok());
  EXPECT_TRUE(store->Put("a..b/.c", "dots inside names are fine").ok());
}

TEST(LocalStore, ObjectCannotAlsoBeADirectory) {
  testing::TempDir dir;
  auto store = MustOpen(dir.path());
  ASSERT_TRUE(store->Put("a", "file").ok());
  EXPECT_TRUE(store->Put("a/b", "x").IsInvalidArgument());
  EXPECT_TRUE(store->Put("a/b/c", "x").IsInvalidArgument());
  std::string out;
  EXPECT_TRUE(store->Get("a/b", &out).IsNotFound());
  ASSERT_TRUE(store->Put("d/e", "x").ok());
  EXPECT_TRUE(store->Get("d", &out).IsNotFound());
  EXPECT_TRUE(store->Head("d", nullptr).IsNotFound());
  EXPECT_TRUE(store->Put("d", "x").IsInvalidArgument());
}

TEST(LocalStore, LayoutAndMessages) {
  testing::TempDir dir;
  auto store = MustOpen(dir.path() + "/sub/store/");  // created, trailing '/' dropped
  EXPECT_EQ(store->Name(), "file://" + dir.path() + "/sub/store");
  ASSERT_TRUE(store->Put("x/y/z", "bytes").ok());
  std::ifstream in(dir.path() + "/sub/store/x/y/z");
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "bytes");
  std::string out;
  Status st = store->Get("x/nope", &out);
  EXPECT_TRUE(st.IsNotFound());
  EXPECT_NE(st.message().find("get file://" + dir.path() + "/sub/store/x/nope"), std::string::npos)
      << st.message();
  EXPECT_TRUE(NewLocalStore("relative/dir").status().IsInvalidArgument());
  std::ofstream(dir.path() + "/plainfile") << "x";
  EXPECT_FALSE(NewLocalStore(dir.path() + "/plainfile").ok());
}

TEST(LocalStore, UnwritableDirectoryIsIOError) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores directory permissions";
  testing::TempDir dir;
  auto store = MustOpen(dir.path());
  ASSERT_TRUE(store->Put("first", "v").ok());  // makes .hftmp
  ASSERT_EQ(::chmod((dir.path() + "/.hftmp").c_str(), 0555), 0);
  Status st = store->Put("k", "v");
  EXPECT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_NE(st.message().find("file://" + dir.path() + "/k"), std::string::npos) << st.message();
  ::chmod((dir.path() + "/.hftmp").c_str(), 0755);
}

TEST(LocalStore, DeleteRemovesEmptyDirectoriesWithoutLosingPuts) {
  testing::TempDir dir;
  auto store = MustOpen(dir.path());
  ASSERT_TRUE(store->Put("a/b/c", "x").ok());
  ASSERT_TRUE(store->Put("a/d", "x").ok());
  ASSERT_TRUE(store->Delete("a/b/c").ok());
  EXPECT_FALSE(fs::exists(dir.path() + "/a/b"));
  EXPECT_TRUE(fs::exists(dir.path() + "/a/d"));
  ASSERT_TRUE(store->Delete("a/d").ok());
  EXPECT_FALSE(fs::exists(dir.path() + "/a"));
  // Puts and deletes racing in one directory: every put must land.
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; i++) {
        std::string key = "r/s/" + std::to_string(t);
        if (!store->Put(key, "x").ok() || !store->Head(key, nullptr).ok()) failures++;
        if (!store->Delete(key).ok()) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(LocalStore, ListStopsAtLimitInLargeTree) {
  testing::TempDir dir;
  auto store = MustOpen(dir.path());
  for (int d = 0; d < 20; d++) {
    for (int f = 0; f < 20; f++) {
      ASSERT_TRUE(store->Put("d" + std::to_string(d) + "/f" + std::to_string(f), "x").ok());
    }
  }
  std::vector<ObjectInfo> out;
  ASSERT_TRUE(store->List("", "d5/f3", 3, &out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].key, "d5/f4");
  EXPECT_EQ(out[1].key, "d5/f5");
  EXPECT_EQ(out[2].key, "d5/f6");
  out.clear();
  ASSERT_TRUE(store->List("d1", "", 0, &out).ok());
  EXPECT_EQ(out.size(), 11u * 20);  // d1, d10..d19
}

}  // namespace
}  // namespace hyperfile
