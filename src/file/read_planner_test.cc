// SPDX-License-Identifier: Apache-2.0
#include "file/read_planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "util/thread_pool.h"

namespace hyperfile::file {
namespace {

using Prefetch = ReadPlanner::Prefetch;
using namespace std::chrono_literals;

constexpr uint64_t kUnit = 64 << 10;
constexpr uint64_t kMaxWindow = 8 * kUnit;
constexpr uint64_t kBig = 1ull << 40;  // a file size that clamps nothing
constexpr uint64_t kStreamGap = 1ull << 30;

struct Call {
  uint64_t lo, hi;
  bool operator==(const Call& o) const { return lo == o.lo && hi == o.hi; }
};

std::ostream& operator<<(std::ostream& os, const Call& c) {
  return os << "[" << c.lo << ", " << c.hi << ")";
}

ReadPlanner::Policy MakePolicy(size_t streams, uint64_t unit = kUnit,
                               uint64_t max_window = kMaxWindow) {
  ReadPlanner::Policy p;
  p.unit = unit;
  p.max_window = max_window;
  p.max_streams = streams;
  return p;
}

// Records every issuer call and returns one Prefetch per call. Futures are
// ready at once, except for prefetches starting at or above pending_from,
// whose promises the test completes (Complete/CompleteAll). The issuer
// returns hi + overshoot (a grid that runs past hi), or lo when hole is set.
class FakeIssuer {
 public:
  ReadPlanner::Issuer Fn() {
    return
        [this](uint64_t lo, uint64_t hi, std::vector<Prefetch>* out) { return Issue(lo, hi, out); };
  }
  uint64_t Issue(uint64_t lo, uint64_t hi, std::vector<Prefetch>* out) {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_LT(lo, hi);
    calls_.push_back(Call{lo, hi});
    const uint64_t end = hole ? lo : hi + overshoot;
    if (!hole) {
      std::promise<Status> p;
      std::shared_future<Status> f = p.get_future().share();
      if (lo >= pending_from) {
        promises_.push_back(std::move(p));
      } else {
        p.set_value(Status::OK());
      }
      out->push_back(Prefetch{lo, std::max(end, hi), f});
    }
    cv_.notify_all();
    return end;
  }
  std::vector<Call> Calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  // The calls whose lo is in [lo, hi), shifted down by lo.
  std::vector<Call> CallsIn(uint64_t lo, uint64_t hi) const {
    std::vector<Call> r;
    for (const Call& c : Calls()) {
      if (c.lo >= lo && c.lo < hi) r.push_back(Call{c.lo - lo, c.hi - lo});
    }
    return r;
  }
  // Bounded wait until at least n calls were made.
  bool WaitForCalls(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 30s, [&] { return calls_.size() >= n; });
  }
  void CompleteAll(const Status& st = Status::OK()) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& p : promises_) p.set_value(st);
    promises_.clear();
  }

  uint64_t pending_from = UINT64_MAX;  // set before the reads it concerns
  uint64_t overshoot = 0;
  bool hole = false;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Call> calls_;
  std::deque<std::promise<Status>> promises_;
};

// What one stream of `reads` reads of kUnit each, starting at 0, must issue
// with kUnit / kMaxWindow: nothing on reads 0 and 1; read k >= 2 issues from
// where the last call ended (its own start on read 2) up to its end plus a
// window of kUnit << (k - 2), capped at kMaxWindow.
std::vector<Call> ExpectedStream(int reads) {
  std::vector<Call> r;
  for (int k = 2; k < reads; k++) {
    const uint64_t lo = r.empty() ? 2 * kUnit : r.back().hi;
    const uint64_t window = std::min(kMaxWindow, kUnit << std::min(k - 2, 20));
    r.push_back(Call{lo, (k + 1) * kUnit + window});
  }
  return r;
}

TEST(ReadPlanner, OneStreamWindowsDoubleToTheMaximum) {
  FakeIssuer issuer;
  ReadPlanner planner(MakePolicy(8), issuer.Fn());
  planner.OnRead(0, kUnit, kBig);
  planner.OnRead(kUnit, kUnit, kBig);
  EXPECT_TRUE(issuer.Calls().empty()) << "no readahead on the first two reads";
  for (int k = 2; k < 40; k++) planner.OnRead(k * kUnit, kUnit, kBig);
  const std::vector<Call> calls = issuer.Calls();
  const uint64_t u = kUnit;
  // Written out: windows of 1, 2, 4, 8 units (the maximum), then 8.
  ASSERT_GE(calls.size(), 6u);
  EXPECT_EQ(calls[0], (Call{2 * u, 4 * u}));    // read 2: [2u,3u) + 1u
  EXPECT_EQ(calls[1], (Call{4 * u, 6 * u}));    // read 3: [3u,4u) + 2u
  EXPECT_EQ(calls[2], (Call{6 * u, 9 * u}));    // read 4: [4u,5u) + 4u
  EXPECT_EQ(calls[3], (Call{9 * u, 14 * u}));   // read 5: [5u,6u) + 8u
  EXPECT_EQ(calls[4], (Call{14 * u, 15 * u}));  // read 6: + 8u (max)
  EXPECT_EQ(calls[5], (Call{15 * u, 16 * u}));
  EXPECT_EQ(calls, ExpectedStream(40));
  // Nothing issued twice: each call starts where the previous one ended.
  for (size_t i = 1; i < calls.size(); i++) EXPECT_EQ(calls[i].lo, calls[i - 1].hi);
  EXPECT_EQ(planner.InFlightPrefetches(), 0u) << "completed prefetches are dropped";
}

TEST(ReadPlanner, WindowDoublesBeyondFourThousandUnits) {
  // The old code capped the doubling at unit << 12; a 4 KiB unit must still
  // reach a 32 MiB window.
  FakeIssuer issuer;
  const uint64_t unit = 4096, max_window = 32ull << 20;
  ReadPlanner planner(MakePolicy(8, unit, max_window), issuer.Fn());
  for (int k = 0; k < 20; k++) planner.OnRead(k * unit, unit, kBig);
  const std::vector<Call> calls = issuer.Calls();
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back().hi, 20 * unit + max_window);
}

// Reads `reads` reads of kUnit from each of `streams` streams (kStreamGap
// apart), round robin.
void ReadInterleaved(ReadPlanner* planner, int streams, int reads) {
  for (int k = 0; k < reads; k++) {
    for (int s = 0; s < streams; s++) planner->OnRead(s * kStreamGap + k * kUnit, kUnit, kBig);
  }
}

TEST(ReadPlanner, TwoInterleavedStreamsEachGetReadahead) {
  FakeIssuer issuer;
  ReadPlanner planner(MakePolicy(8), issuer.Fn());
  ReadInterleaved(&planner, 2, 30);
  for (int s = 0; s < 2; s++) {
    EXPECT_EQ(issuer.CallsIn(s * kStreamGap, (s + 1) * kStreamGap), ExpectedStream(30))
        << "stream " << s;
  }
}

TEST(ReadPlanner, EightInterleavedStreamsEachGetReadahead) {
  FakeIssuer issuer;
  ReadPlanner planner(MakePolicy(8), issuer.Fn());
  ReadInterleaved(&planner, 8, 30);
  for (int s = 0; s < 8; s++) {
    EXPECT_EQ(issuer.CallsIn(s * kStreamGap, (s + 1) * kStreamGap), ExpectedStream(30))
        << "stream " << s;
  }
  EXPECT_EQ(planner.TrackedStreams(), 8u);
}

TEST(ReadPlanner, SingleDetectorWouldFailTheInterleavedTests) {
  // One tracked stream is FileImpl's old detector: interleaved streams reset
  // each other and none gets readahead, so the tests above catch it.
  FakeIssuer issuer;
  ReadPlanner planner(MakePolicy(1), issuer.Fn());
  ReadInterleaved(&planner, 2, 30);
  EXPECT_TRUE(issuer.Calls().empty());
  EXPECT_NE(issuer.CallsIn(0, kStreamGap), ExpectedStream(30));
}

TEST(ReadPlanner, RandomReadsIssueNothing) {
  FakeIssuer issuer;
  ReadPlanner planner(MakePolicy(8), issuer.Fn());
  std::mt19937_64 rng(7);
  // MiB-aligned 4 KiB reads: no read can start where another ended.
  for (int i = 0; i < 2000; i++) planner.OnRead((rng() % (1 << 20)) << 20, 4096, kBig);
  EXPECT_TRUE(issuer.Calls().empty());
  EXPECT_LE(planner.TrackedStreams(), 8u);
}

TEST(ReadPlanner, RandomReadsBetweenDoNotResetAStream) {
  for (int between : {1, 7}) {  // up to max_streams - 1 strangers fit
    FakeIssuer issuer;
    ReadPlanner planner(MakePolicy(8), issuer.Fn());
    std::mt19937_64 rng(between);
    for (int k = 0; k < 30; k++) {
      planner.OnRead(k * kUnit, kUnit, kBig);
      for (int i = 0; i < between; i++) {
        planner.OnRead(kStreamGap + ((rng() % (1 << 20)) << 20), 4096, kBig);
      }
    }
    EXPECT_EQ(issuer.CallsIn(0, kStreamGap), ExpectedStream(30)) << between;
    EXPECT_EQ(issuer.Calls(), ExpectedStream(30)) << "random reads issue nothing";
  }
}

TEST(ReadPlanner, MoreStreamsThanTrackedReplacesTheLeastRecentlyUsed) {
  FakeIssuer issuer;
  ReadPlanner planner(MakePolicy(4), issuer.Fn());
  auto base = [](int s) { return s * kStreamGap; };
  // Streams 0..3 read three times each, round robin: all established.
  ReadInterleaved(&planner, 4, 3);
  for (int s = 0; s < 4; s++) {
    EXPECT_EQ(issuer.CallsIn(base(s), base(s + 1)), ExpectedStream(3)) << s;
  }
  // Stream 4 replaces stream 0, the least recently used.
  planner.OnRead(base(4), kUnit, kBig);
  EXPECT_EQ(planner.TrackedStreams(), 4u);
  // Stream 1 was not replaced: its fourth read continues it.
  planner.OnRead(base(1) + 3 * kUnit, kUnit, kBig);
  EXPECT_EQ(issuer.CallsIn(base(1), base(2)), ExpectedStream(4));
  // Stream 0 starts over (replacing stream 2, now the LRU): no readahead
  // until its third adjacent read, which issues from its own start.
  size_t before = issuer.CallsIn(base(0), base(1)).size();
  planner.OnRead(base(0) + 3 * kUnit, kUnit, kBig);
  planner.OnRead(base(0) + 4 * kUnit, kUnit, kBig);
  EXPECT_EQ(issuer.CallsIn(base(0), base(1)).size(), before);
  planner.OnRead(base(0) + 5 * kUnit, kUnit, kBig);
  ASSERT_EQ(issuer.CallsIn(base(0), base(1)).size(), before + 1);
  EXPECT_EQ(issuer.CallsIn(base(0), base(1)).back(), (Call{5 * kUnit, 7 * kUnit}));
  // Stream 2 was replaced: its next read is a new stream's first.
  before = issuer.Calls().size();
  planner.OnRead(base(2) + 3 * kUnit, kUnit, kBig);
  EXPECT_EQ(issuer.Calls().size(), before);
  EXPECT_EQ(planner.TrackedStreams(), 4u);
  // Many more streams than tracked: bounded state, nothing issued (each
  // read finds its stream replaced).
  before = issuer.Calls().size();
  ReadInterleaved(&planner, 100, 5);
  EXPECT_EQ(issuer.Calls().size(), before);
  EXPECT_EQ(planner.TrackedStreams(), 4u);
  EXPECT_EQ(planner.InFlightPrefetches(), 0u);
}

TEST(ReadPlanner, ReadWaitsForAnOverlappingPrefetchInFlight) {
  FakeIssuer issuer;
  issuer.pending_from = 0;  // every prefetch stays in flight until completed
  ReadPlanner planner(MakePolicy(8), issuer.Fn());
  planner.OnRead(0, kUnit, kBig);
  planner.OnRead(kUnit, kUnit, kBig);
  // The third read issues [2u, 4u) and overlaps it: it must wait.
  std::atomic<bool> returned{false};
  std::promise<void> third_done;
  std::future<void> third = third_done.get_future();
  std::thread reader([&] {
    planner.OnRead(2 * kUnit, kUnit, kBig);
    returned = true;
    third_done.set_value();
  });
  ASSERT_TRUE(issuer.WaitForCalls(1));
  EXPECT_EQ(issuer.Calls()[0], (Call{2 * kUnit, 4 * kUnit}));
  // Another read of those bytes (a new stream) waits as well.
  std::future<void> other =
      std::async(std::launch::async, [&] { planner.OnRead(3 * kUnit + 10, 100, kBig); });
  // A read elsewhere does not wait.
  std::future<void> elsewhere =
      std::async(std::launch::async, [&] { planner.OnRead(100 * kUnit, kUnit, kBig); });
  EXPECT_EQ(elsewhere.wait_for(30s), std::future_status::ready);
  // Bounded check that the overlapping reads have not returned.
  EXPECT_EQ(third.wait_for(50ms), std::future_status::timeout);
  EXPECT_EQ(other.wait_for(1ms), std::future_status::timeout);
  EXPECT_FALSE(returned.load());
  EXPECT_EQ(planner.InFlightPrefetches(), 1u);
  // A failed prefetch releases the readers, and is no error.
  issuer.CompleteAll(Status::Transient("prefetch failed"));
  EXPECT_EQ(third.wait_for(30s), std::future_status::ready);
  EXPECT_EQ(other.wait_for(30s), std::future_status::ready);
  reader.join();
  EXPECT_TRUE(returned.load());
  // The completed prefetch is dropped at the next read; no re-issue for the
  // stream, whose fourth read asks only for what lies past [2u, 4u).
  planner.OnRead(3 * kUnit, kUnit, kBig);  // issues [4u, 6u), in flight
  EXPECT_EQ(issuer.Calls().back(), (Call{4 * kUnit, 6 * kUnit}));
  EXPECT_EQ(planner.InFlightPrefetches(), 1u);
  issuer.CompleteAll();
  planner.OnRead(500 * kUnit, 1, kBig);
  EXPECT_EQ(planner.InFlightPrefetches(), 0u);
}

TEST(ReadPlanner, BytesInFlightForAnotherStreamAreNotIssuedAgain) {
  FakeIssuer issuer;
  const uint64_t u = kUnit;
  ReadPlanner planner(MakePolicy(8), issuer.Fn());
  // Stream A: reads 0..4 with ready prefetches (issued through 9u), then
  // read 5 issues [9u, 14u), which stays in flight.
  issuer.pending_from = 9 * u;
  for (int k = 0; k < 6; k++) planner.OnRead(k * u, u, kBig);
  ASSERT_EQ(issuer.Calls().back(), (Call{9 * u, 14 * u}));
  ASSERT_EQ(planner.InFlightPrefetches(), 1u);
  // Stream B reads half units from 7u: its third read wants [8u, 9.5u) and
  // gets only the gap [8u, 9u); its fourth wants up to 11u, all in flight.
  const uint64_t h = u / 2;
  planner.OnRead(7 * u, h, kBig);
  planner.OnRead(7 * u + h, h, kBig);
  size_t before = issuer.Calls().size();
  planner.OnRead(8 * u, h, kBig);
  ASSERT_EQ(issuer.Calls().size(), before + 1);
  EXPECT_EQ(issuer.Calls().back(), (Call{8 * u, 9 * u}));
  planner.OnRead(8 * u + h, h, kBig);
  EXPECT_EQ(issuer.Calls().size(), before + 1);
  // A window that spans a piece in flight issues the gaps on both sides.
  issuer.CompleteAll();
  FakeIssuer second;
  second.pending_from = 0;
  ReadPlanner p2(MakePolicy(8), second.Fn());
  // C: reads 20u, 21u, [22u, 22u+1) -> [22u, 22u+1+u) in flight.
  p2.OnRead(20 * u, u, kBig);
  p2.OnRead(21 * u, u, kBig);
  std::thread c([&] { p2.OnRead(22 * u, 1, kBig); });
  ASSERT_TRUE(second.WaitForCalls(1));
  // D: reads of u+1 from 19u; its third read [21u+2, 22u+3) wants
  // [21u+2, 23u+3), which spans C's piece: two gaps, two calls.
  p2.OnRead(19 * u, u + 1, kBig);
  p2.OnRead(20 * u + 1, u + 1, kBig);
  std::thread d([&] { p2.OnRead(21 * u + 2, u + 1, kBig); });
  ASSERT_TRUE(second.WaitForCalls(3));
  second.CompleteAll();
  c.join();
  d.join();
  const std::vector<Call> calls = second.Calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0], (Call{22 * u, 23 * u + 1}));
  EXPECT_EQ(calls[1], (Call{21 * u + 2, 22 * u}));
  EXPECT_EQ(calls[2], (Call{23 * u + 1, 23 * u + 3}));
}

TEST(ReadPlanner, FileSizeClampsTheWindowAndEmptyReadsAreHarmless) {
  FakeIssuer issuer;
  const uint64_t size = 10 * kUnit + 100;
  ReadPlanner planner(MakePolicy(8), issuer.Fn());
  // Empty, at-EOF and past-EOF reads: no stream, nothing issued.
  planner.OnRead(0, 0, size);
  planner.OnRead(size, kUnit, size);
  planner.OnRead(size + 5, 1, size);
  planner.OnRead(0, kUnit, 0);
  planner.OnRead(UINT64_MAX, UINT64_MAX, size);
  EXPECT_EQ(planner.TrackedStreams(), 0u);
  for (int k = 0; k <= 10; k++) {
    planner.OnRead(k * kUnit, kUnit, size);  // the last one is clipped to 100 bytes
    planner.OnRead(3 * kUnit, 0, size);      // zero-length reads in between change nothing
  }
  const std::vector<Call> calls = issuer.Calls();
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.front().lo, 2 * kUnit);
  for (size_t i = 0; i < calls.size(); i++) {
    EXPECT_LE(calls[i].hi, size);
    if (i > 0) {
      EXPECT_EQ(calls[i].lo, calls[i - 1].hi);
    }
  }
  EXPECT_EQ(calls.back().hi, size);
  // A huge length is clipped to the size without overflow.
  planner.OnRead(size - 1, UINT64_MAX, size);
  EXPECT_EQ(issuer.Calls().size(), calls.size());
}

TEST(ReadPlanner, IssuerMayRunPastHiOrFindAHole) {
  const uint64_t u = kUnit;
  {
    FakeIssuer issuer;
    issuer.overshoot = u / 2;  // a grid that rounds up
    ReadPlanner planner(MakePolicy(8), issuer.Fn());
    for (int k = 0; k < 5; k++) planner.OnRead(k * u, u, kBig);
    const std::vector<Call> calls = issuer.Calls();
    ASSERT_EQ(calls.size(), 3u);
    EXPECT_EQ(calls[0], (Call{2 * u, 4 * u}));
    EXPECT_EQ(calls[1], (Call{4 * u + u / 2, 6 * u}));  // starts where the last one ended
    EXPECT_EQ(calls[2], (Call{6 * u + u / 2, 9 * u}));
  }
  {
    FakeIssuer issuer;
    issuer.hole = true;  // nothing to fetch: returns lo, counts as hi
    ReadPlanner planner(MakePolicy(8), issuer.Fn());
    for (int k = 0; k < 5; k++) planner.OnRead(k * u, u, kBig);
    EXPECT_EQ(issuer.Calls(), (std::vector<Call>{{2 * u, 4 * u}, {4 * u, 6 * u}, {6 * u, 9 * u}}));
  }
}

TEST(ReadPlanner, PolicyLimits) {
  {
    FakeIssuer issuer;  // max_window below the unit: readahead off
    ReadPlanner planner(MakePolicy(8, kUnit, kUnit - 1), issuer.Fn());
    for (int k = 0; k < 20; k++) planner.OnRead(k * kUnit, kUnit, kBig);
    EXPECT_TRUE(issuer.Calls().empty());
  }
  {
    FakeIssuer issuer;  // a unit below 4096 is raised to 4096
    ReadPlanner planner(MakePolicy(0, 100, 1 << 20), issuer.Fn());
    for (int k = 0; k < 3; k++) planner.OnRead(k * 4096, 4096, kBig);
    EXPECT_EQ(issuer.Calls(), (std::vector<Call>{{2 * 4096, 4 * 4096}}));
    EXPECT_EQ(planner.TrackedStreams(), 1u) << "max_streams 0 is raised to 1";
  }
}

// Threads each reading their own stream at once; prefetches complete on a
// thread pool, as FileImpl's do. Every read returns only after the
// prefetches overlapping it completed, and each stream's issue ranges are
// exactly those of a lone stream.
TEST(ReadPlanner, ConcurrentStreams) {
  constexpr int kThreads = 8, kReads = 150;
  constexpr uint64_t r = 16 << 10;  // reads smaller than the unit
  struct Issued {
    Call call;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::mutex mu;
  std::vector<Issued> issued;
  ThreadPool pool(3);
  ReadPlanner planner(MakePolicy(kThreads),
                      [&](uint64_t lo, uint64_t hi, std::vector<Prefetch>* out) {
                        auto done = std::make_shared<std::atomic<bool>>(false);
                        {
                          std::lock_guard<std::mutex> lock(mu);
                          issued.push_back(Issued{Call{lo, hi}, done});
                        }
                        std::future<Status> f = pool.Submit([done] {
                          std::this_thread::yield();
                          done->store(true);
                          return Status::OK();
                        });
                        out->push_back(Prefetch{lo, hi, f.share()});
                        return hi;
                      });
  std::atomic<int> not_done_after_read{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      const uint64_t base = t * kStreamGap;
      for (int k = 0; k < kReads; k++) {
        const uint64_t off = base + k * r;
        planner.OnRead(off, r, kBig);
        std::lock_guard<std::mutex> lock(mu);
        for (const Issued& i : issued) {
          if (i.call.lo < off + r && off < i.call.hi && !i.done->load()) not_done_after_read++;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(not_done_after_read.load(), 0);
  std::vector<Call> all;
  for (const Issued& i : issued) all.push_back(i.call);
  for (int t = 0; t < kThreads; t++) {
    const uint64_t base = t * kStreamGap;
    std::vector<Call> mine;
    for (const Call& c : all) {
      if (c.lo >= base && c.lo < base + kStreamGap) mine.push_back(c);
    }
    ASSERT_FALSE(mine.empty()) << "stream " << t;
    EXPECT_EQ(mine.front().lo, base + 2 * r);
    for (size_t i = 1; i < mine.size(); i++) EXPECT_EQ(mine[i].lo, mine[i - 1].hi) << t;
    EXPECT_EQ(mine.back().hi, base + kReads * r + kMaxWindow) << t;
  }
}

// More threads than tracked streams, all at once: streams replace each
// other; no crash, bounded state (a sanitizer run checks the rest).
TEST(ReadPlanner, ConcurrentStreamsBeyondTheTable) {
  FakeIssuer issuer;
  ReadPlanner planner(MakePolicy(4), issuer.Fn());
  std::vector<std::thread> threads;
  for (int t = 0; t < 12; t++) {
    threads.emplace_back([&planner, t] {
      for (int k = 0; k < 300; k++) planner.OnRead(t * kStreamGap + k * 4096, 4096, kBig);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_LE(planner.TrackedStreams(), 4u);
  EXPECT_EQ(planner.InFlightPrefetches(), 0u);
  // A replaced stream forgets what it issued (those bytes are in the cache
  // by then), so only check that every call stays inside its stream's reach.
  for (const Call& c : issuer.Calls()) {
    const uint64_t base = c.lo / kStreamGap * kStreamGap;
    EXPECT_GE(c.lo, base + 2 * 4096);
    EXPECT_LE(c.hi, base + 300 * 4096 + kMaxWindow);
  }
}

}  // namespace
}  // namespace hyperfile::file
