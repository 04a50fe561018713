// SPDX-License-Identifier: Apache-2.0
// FrameBuffers alone: which kept buffer Take hands out, the bound on what
// is kept, and Drop.
#include "file/frame_buffers.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace hyperfile::file {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

TEST(FrameBuffers, TakeReusesTheSmallestKeptBufferThatFitsAndEmptiesIt) {
  FrameBuffers pool(4);
  std::string a = pool.Take(4 * kMiB), b = pool.Take(1 * kMiB);
  ASSERT_GE(a.capacity(), 4 * kMiB);
  ASSERT_GE(b.capacity(), 1 * kMiB);
  a.assign(100, 'x');
  const char* pa = a.data();
  const char* pb = b.data();
  pool.Give(std::move(a));
  pool.Give(std::move(b));
  EXPECT_EQ(pool.kept(), 2u);
  std::string c = pool.Take(2 * kMiB);  // only the 4 MiB one fits
  EXPECT_EQ(c.data(), pa);
  EXPECT_TRUE(c.empty()) << "a taken buffer holds nothing of its last use";
  std::string d = pool.Take(kMiB / 2);  // the 1 MiB one
  EXPECT_EQ(d.data(), pb);
  EXPECT_EQ(pool.kept(), 0u);
}

TEST(FrameBuffers, TooSmallAKeptBufferIsGrownAndTakeAlwaysHasTheCapacity) {
  FrameBuffers pool(2);
  pool.Give(pool.Take(kMiB));
  std::string big = pool.Take(8 * kMiB);
  EXPECT_GE(big.capacity(), 8 * kMiB);
  EXPECT_EQ(pool.kept(), 0u) << "the small buffer was taken and grown, not left behind";
  FrameBuffers none(0);
  std::string x = none.Take(kMiB);
  EXPECT_GE(x.capacity(), kMiB);
  none.Give(std::move(x));
  EXPECT_EQ(none.kept(), 0u);
}

TEST(FrameBuffers, KeepsAtMostMaxKeptAndNothingTinyAndDropFreesAll) {
  FrameBuffers pool(2);
  for (int i = 0; i < 5; i++) pool.Give(std::string(kMiB, 'y'));
  EXPECT_EQ(pool.kept(), 2u);
  EXPECT_GE(pool.kept_bytes(), 2 * kMiB);
  pool.Give(std::string(100, 'z'));  // below kMinKeptBytes: not worth keeping
  pool.Give(std::string());
  EXPECT_EQ(pool.kept(), 2u);
  pool.Drop();
  EXPECT_EQ(pool.kept(), 0u);
  EXPECT_EQ(pool.kept_bytes(), 0u);
}

TEST(FrameBuffers, ConcurrentTakeAndGiveNeverShareABuffer) {
  FrameBuffers pool(4);
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; i++) {
        std::string s = pool.Take(FrameBuffers::kMinKeptBytes);
        s.assign(64, static_cast<char>('a' + t));
        std::this_thread::yield();
        if (s != std::string(64, static_cast<char>('a' + t))) failures[t]++;
        pool.Give(std::move(s));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; t++) EXPECT_EQ(failures[t], 0) << "thread " << t;
  EXPECT_LE(pool.kept(), 4u);
}

}  // namespace
}  // namespace hyperfile::file
