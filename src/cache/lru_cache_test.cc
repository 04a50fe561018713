// SPDX-License-Identifier: Apache-2.0
// The LRU cache's priorities: high-priority entries outlive low ones, a
// demoting hit ends an entry's protection, and the high budget bounds them.
#include "cache/lru_cache.h"

#include <gtest/gtest.h>

#include <string>

namespace hyperfile {
namespace {

using Cache = LruCache<int, std::string>;

TEST(LruCache, LowPriorityIsEvictedFirstThenLeastRecentlyUsed) {
  Cache c(300);
  c.Put(1, "high", 100, /*high_priority=*/true);
  c.Put(2, "low-old", 100);
  c.Put(3, "low-new", 100);
  ASSERT_TRUE(c.Get(2));  // 2 is now more recent than 3
  c.Put(4, "low", 100);   // over budget: the least recent low entry goes
  EXPECT_TRUE(c.Get(1));
  EXPECT_TRUE(c.Get(2));
  EXPECT_FALSE(c.Get(3));
  EXPECT_TRUE(c.Get(4));
  EXPECT_EQ(c.used_bytes(), 300u);
}

// What a sequential reader does: blocks it already read (demoted on use)
// go before the readahead it has not read yet, however recently it read
// them; a plain LRU would evict the oldest readahead first.
TEST(LruCache, ReadaheadIsProtectedUntilItsFirstUse) {
  Cache c(400);
  for (int k = 1; k <= 4; k++) c.Put(k, "ahead", 100, /*high_priority=*/true);
  ASSERT_TRUE(c.GetAndDemote(1));  // read: now an ordinary entry
  ASSERT_TRUE(c.GetAndDemote(2));
  c.Put(5, "ahead", 100, true);  // evicts 1, the least recent read block
  c.Put(6, "ahead", 100, true);  // evicts 2
  EXPECT_FALSE(c.Get(1));
  EXPECT_FALSE(c.Get(2));
  for (int k = 3; k <= 6; k++) EXPECT_TRUE(c.Get(k)) << k;
  // Once read, even just now, a block goes before any unread readahead.
  ASSERT_TRUE(c.GetAndDemote(3));
  ASSERT_TRUE(c.GetAndDemote(3));  // a second use changes nothing
  c.Put(7, "low", 100);
  EXPECT_FALSE(c.Get(3));
  EXPECT_TRUE(c.Get(7));
  EXPECT_EQ(c.used_bytes(), 400u);
}

TEST(LruCache, HighBudgetBoundsProtectedEntries) {
  Cache c(1000);
  c.set_high_budget(300);
  c.Put(100, "low", 100);
  for (int k = 1; k <= 5; k++) c.Put(k, "ahead", 100, true);
  // Only the three most recent protected entries stay; the low one too.
  EXPECT_FALSE(c.Get(1));
  EXPECT_FALSE(c.Get(2));
  for (int k = 3; k <= 5; k++) EXPECT_TRUE(c.Get(k)) << k;
  EXPECT_TRUE(c.Get(100));
  EXPECT_EQ(c.used_bytes(), 400u);
  // An entry larger than the high budget is not kept as protected.
  c.Put(9, "big", 400, true);
  EXPECT_FALSE(c.Get(9));
  // Demoting frees high budget: a new protected entry evicts nothing.
  ASSERT_TRUE(c.GetAndDemote(3));
  c.Put(6, "ahead", 100, true);
  for (int k = 3; k <= 6; k++) EXPECT_TRUE(c.Get(k)) << k;
  c.Clear();
  EXPECT_EQ(c.used_bytes(), 0u);
  c.Put(1, "ahead", 300, true);
  EXPECT_TRUE(c.Get(1));
}

TEST(LruCache, GetAndDemoteCountsHitsAndMissesContainsDoesNot) {
  Cache c(100);
  EXPECT_FALSE(c.GetAndDemote(1));
  c.Put(1, "x", 10, true);
  EXPECT_EQ(*c.GetAndDemote(1), "x");
  EXPECT_EQ(c.hits(), 1u);
  EXPECT_EQ(c.misses(), 1u);
  EXPECT_TRUE(c.Contains(1));
  EXPECT_FALSE(c.Contains(2));
  EXPECT_EQ(c.hits(), 1u);
  EXPECT_EQ(c.misses(), 1u);
  // Contains does not refresh: 1 is still the least recent.
  c.Put(2, "y", 50);
  EXPECT_TRUE(c.Contains(1));
  c.Put(3, "z", 50);  // over budget: 1 goes
  EXPECT_FALSE(c.Contains(1));
  EXPECT_TRUE(c.Contains(2));
}

}  // namespace
}  // namespace hyperfile
