// SPDX-License-Identifier: Apache-2.0
#include "cache/disk_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace hyperfile {
namespace {

namespace fs = std::filesystem;

class DiskCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("hf-diskcache-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

std::string Chunk(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(4096, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST_F(DiskCacheTest, SurvivesReopenAndKeysNeverCollide) {
  {
    auto cache = DiskCache::Open(dir_, 1 << 20);
    ASSERT_TRUE(cache.ok()) << cache.status().ToString();
    for (uint64_t i = 0; i < 50; i++) (*cache)->Put({7, i, 5, i * 4100}, Chunk(i));
  }
  auto cache = DiskCache::Open(dir_, 1 << 20);
  ASSERT_TRUE(cache.ok());
  EXPECT_EQ((*cache)->entries(), 50u);
  std::string out;
  for (uint64_t i = 0; i < 50; i++) {
    ASSERT_TRUE((*cache)->Get({7, i, 5, i * 4100}, &out)) << i;
    EXPECT_EQ(out, Chunk(i));
  }
  // Another file id (another file, or a re-created prefix) sees none of it.
  EXPECT_FALSE((*cache)->Get({8, 3, 5, 3 * 4100}, &out));
  EXPECT_FALSE((*cache)->Get({7, 3, 5, 0}, &out));
}

TEST_F(DiskCacheTest, StaysWithinItsBudget) {
  const uint64_t budget = 2 << 20;
  auto cache = DiskCache::Open(dir_, budget);
  ASSERT_TRUE(cache.ok());
  for (uint64_t i = 0; i < 2000; i++) {
    (*cache)->Put({1, i, 5, 0}, Chunk(i));
    ASSERT_LE((*cache)->used_bytes(), budget);
  }
  uint64_t on_disk = 0;
  for (const auto& e : fs::directory_iterator(dir_)) on_disk += fs::file_size(e.path());
  EXPECT_LE(on_disk, budget);
  std::string out;
  EXPECT_TRUE((*cache)->Get({1, 1999, 5, 0}, &out));  // the newest stay
  EXPECT_FALSE((*cache)->Get({1, 0, 5, 0}, &out));    // the oldest went
  // A smaller budget on reopen trims the cache.
  cache->reset();
  auto smaller = DiskCache::Open(dir_, budget / 4);
  ASSERT_TRUE(smaller.ok());
  EXPECT_LE((*smaller)->used_bytes(), budget / 4);
}

TEST_F(DiskCacheTest, DamageIsAMissNeverWrongData) {
  {
    auto cache = DiskCache::Open(dir_, 1 << 20);
    ASSERT_TRUE(cache.ok());
    for (uint64_t i = 0; i < 10; i++) (*cache)->Put({1, i, 5, 0}, Chunk(i));
  }
  fs::path slab;
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (e.path().filename().string().rfind("slab-", 0) == 0) slab = e.path();
  }
  ASSERT_FALSE(slab.empty());
  {
    // Flip a byte in the 3rd record's payload and tear the last record.
    std::fstream f(slab, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2 * (44 + 4096) + 44 + 100);
    f.put('\x55');
  }
  fs::resize_file(slab, fs::file_size(slab) - 1000);
  auto cache = DiskCache::Open(dir_, 1 << 20);
  ASSERT_TRUE(cache.ok());
  std::string out;
  EXPECT_TRUE((*cache)->Get({1, 0, 5, 0}, &out));
  EXPECT_EQ(out, Chunk(0));
  EXPECT_TRUE((*cache)->Get({1, 1, 5, 0}, &out));
  // The scan stopped at the damaged record: it and everything after are gone.
  EXPECT_FALSE((*cache)->Get({1, 2, 5, 0}, &out));
  EXPECT_FALSE((*cache)->Get({1, 9, 5, 0}, &out));
  // New records append cleanly after the good ones.
  (*cache)->Put({1, 2, 5, 0}, Chunk(2));
  cache->reset();
  auto again = DiskCache::Open(dir_, 1 << 20);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE((*again)->Get({1, 2, 5, 0}, &out));
  EXPECT_EQ(out, Chunk(2));
}

TEST_F(DiskCacheTest, DamageAfterOpenIsDetectedOnRead) {
  auto cache = DiskCache::Open(dir_, 1 << 20);
  ASSERT_TRUE(cache.ok());
  (*cache)->Put({1, 1, 5, 0}, Chunk(1));
  for (const auto& e : fs::directory_iterator(dir_)) {
    if (e.path().filename().string().rfind("slab-", 0) != 0) continue;
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(44 + 7);
    f.put('\x01');
  }
  std::string out;
  EXPECT_FALSE((*cache)->Get({1, 1, 5, 0}, &out));
}

// Two segments with the same file id and segment id (copies of one prefix)
// differ in their writer epoch: neither may see the other's entries, also
// after a reopen (the epoch is in the record).
TEST_F(DiskCacheTest, WriterEpochIsPartOfTheKey) {
  {
    auto cache = DiskCache::Open(dir_, 1 << 20);
    ASSERT_TRUE(cache.ok());
    (*cache)->Put({1, 4, 100, 0}, Chunk(1));
    std::string out;
    EXPECT_FALSE((*cache)->Get({1, 4, 200, 0}, &out));
    (*cache)->Put({1, 4, 200, 0}, Chunk(2));
  }
  auto cache = DiskCache::Open(dir_, 1 << 20);
  ASSERT_TRUE(cache.ok());
  std::string out;
  ASSERT_TRUE((*cache)->Get({1, 4, 100, 0}, &out));
  EXPECT_EQ(out, Chunk(1));
  ASSERT_TRUE((*cache)->Get({1, 4, 200, 0}, &out));
  EXPECT_EQ(out, Chunk(2));
  EXPECT_FALSE((*cache)->Get({1, 4, 300, 0}, &out));
}

TEST_F(DiskCacheTest, OneUserAtATime) {
  auto first = DiskCache::Open(dir_, 1 << 20);
  ASSERT_TRUE(first.ok());
  auto second = DiskCache::Open(dir_, 1 << 20);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().ToString().find("in use"), std::string::npos);
  first->reset();
  EXPECT_TRUE(DiskCache::Open(dir_, 1 << 20).ok());
}

}  // namespace
}  // namespace hyperfile
