// SPDX-License-Identifier: Apache-2.0
// The lease renewal thread alone (file/lease_renewer.h). The schedule is
// driven by a sleeper the test advances by hand, so what is checked (one
// renewal per interval of ttl/3, a failure kept and renewing going on, no
// renewal after Stop, Stop waiting for a renewal under way) does not depend
// on timing; only the default sleeper's own tests use the clock, with
// lower bounds and a bound of minutes for "promptly".
#include "file/lease_renewer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "support/time_limit.h"

namespace hyperfile::file {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
constexpr auto kBound = std::chrono::seconds(30);  // for waits that end at once when correct

// A sleeper whose time passes only when the test says so: SleepFor records
// the wait asked for and returns true after Advance, false after Wake.
class ManualSleeper : public Sleeper {
 public:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<milliseconds> asked;  // every SleepFor's duration, in order
    int advances = 0;                 // SleepFor calls allowed to pass
    bool woken = false;
  };
  explicit ManualSleeper(std::shared_ptr<Shared> s) : s_(std::move(s)) {}
  bool SleepFor(milliseconds d) override {
    std::unique_lock<std::mutex> lock(s_->mu);
    s_->asked.push_back(d);
    const int mine = static_cast<int>(s_->asked.size());
    s_->cv.notify_all();
    s_->cv.wait(lock, [&] { return s_->woken || s_->advances >= mine; });
    return !s_->woken;
  }
  void Wake() override {
    std::lock_guard<std::mutex> lock(s_->mu);
    s_->woken = true;
    s_->cv.notify_all();
  }

 private:
  std::shared_ptr<Shared> s_;
};

// The test's side of a ManualSleeper.
class Schedule {
 public:
  std::unique_ptr<Sleeper> NewSleeper() { return std::make_unique<ManualSleeper>(s_); }
  // Waits (bounded) until the renewer is in its n-th wait: every renewal
  // before it has returned and been recorded.
  bool Sleeping(size_t n) {
    std::unique_lock<std::mutex> lock(s_->mu);
    return s_->cv.wait_for(lock, kBound, [&] { return s_->asked.size() >= n; });
  }
  // Lets the current wait end as if its interval had passed.
  void Advance() {
    std::lock_guard<std::mutex> lock(s_->mu);
    s_->advances++;
    s_->cv.notify_all();
  }
  std::vector<milliseconds> Asked() {
    std::lock_guard<std::mutex> lock(s_->mu);
    return s_->asked;
  }

 private:
  std::shared_ptr<ManualSleeper::Shared> s_ = std::make_shared<ManualSleeper::Shared>();
};

// A renewal that counts itself and succeeds.
LeaseRenewer::RenewFn Counting(std::atomic<int>* n) {
  return [n] {
    ++*n;
    return Status::OK();
  };
}

TEST(LeaseRenewer, RenewsOncePerIntervalOfATtlThird) {
  Schedule schedule;
  std::atomic<int> renewals{0};
  LeaseRenewer r(3000, Counting(&renewals), schedule.NewSleeper());
  EXPECT_EQ(r.interval(), milliseconds(1000));
  ASSERT_TRUE(schedule.Sleeping(1));
  EXPECT_EQ(renewals.load(), 0);  // not before the first interval
  for (int i = 1; i <= 3; i++) {
    schedule.Advance();
    ASSERT_TRUE(schedule.Sleeping(i + 1));
    EXPECT_EQ(renewals.load(), i);  // one per interval, then waiting again
  }
  EXPECT_EQ(schedule.Asked(), std::vector<milliseconds>(4, milliseconds(1000)));
  EXPECT_TRUE(r.status().ok());
  r.Stop();
  EXPECT_EQ(renewals.load(), 3);
}

TEST(LeaseRenewer, IntervalIsATtlThirdAndAtLeastOneMillisecond) {
  Schedule a, b;
  LeaseRenewer small(
      2, [] { return Status::OK(); }, a.NewSleeper());
  EXPECT_EQ(small.interval(), milliseconds(1));
  LeaseRenewer writer(
      120000, [] { return Status::OK(); }, b.NewSleeper());
  EXPECT_EQ(writer.interval(), milliseconds(40000));
}

TEST(LeaseRenewer, AFailedRenewalIsKeptAndRenewingGoesOn) {
  Schedule schedule;
  std::atomic<int> calls{0};
  LeaseRenewer r(
      300, [&] { return ++calls == 1 ? Status::Transient("the put failed") : Status::OK(); },
      schedule.NewSleeper());
  ASSERT_TRUE(schedule.Sleeping(1));
  EXPECT_TRUE(r.status().ok());  // nothing renewed yet
  schedule.Advance();
  ASSERT_TRUE(schedule.Sleeping(2));  // it waits a full interval again, not at once
  EXPECT_TRUE(r.status().IsTransient()) << r.status().ToString();
  EXPECT_EQ(r.status().message(), "the put failed");
  EXPECT_EQ(calls.load(), 1);
  schedule.Advance();
  ASSERT_TRUE(schedule.Sleeping(3));
  EXPECT_TRUE(r.status().ok()) << r.status().ToString();  // the next success clears it
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(schedule.Asked(), std::vector<milliseconds>(3, milliseconds(100)));
}

TEST(LeaseRenewer, RenewNowRunsOnTheCallerAndIsRecorded) {
  Schedule schedule;
  std::atomic<int> calls{0};
  std::thread::id on;
  LeaseRenewer r(
      300,
      [&] {
        on = std::this_thread::get_id();
        return ++calls == 1 ? Status::IOError("no") : Status::OK();
      },
      schedule.NewSleeper());
  EXPECT_TRUE(r.RenewNow().IsIOError());
  EXPECT_EQ(on, std::this_thread::get_id());
  EXPECT_TRUE(r.status().IsIOError());
  EXPECT_TRUE(r.RenewNow().ok());
  EXPECT_TRUE(r.status().ok());
  r.Stop();
  EXPECT_TRUE(r.RenewNow().ok());  // also after Stop
  EXPECT_EQ(calls.load(), 3);
}

TEST(LeaseRenewer, StopEndsTheWaitAndNothingIsRenewedAfter) {
  Schedule schedule;
  std::atomic<int> renewals{0};
  {
    LeaseRenewer r(300, Counting(&renewals), schedule.NewSleeper());
    ASSERT_TRUE(schedule.Sleeping(1));
    schedule.Advance();
    ASSERT_TRUE(schedule.Sleeping(2));
    r.Stop();  // in its second wait, which never passes: Stop must wake it
    r.Stop();  // idempotent
  }            // and the destructor after Stop
  schedule.Advance();
  schedule.Advance();
  EXPECT_EQ(renewals.load(), 1);
  EXPECT_EQ(schedule.Asked().size(), 2u);  // no wait after Stop
}

TEST(LeaseRenewer, StopWaitsForARenewalUnderWay) {
  Schedule schedule;
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, go = false;
  std::atomic<bool> returned{false};
  std::atomic<int> calls{0};
  auto r = std::make_unique<LeaseRenewer>(
      300,
      [&] {
        calls++;
        std::unique_lock<std::mutex> lock(mu);
        entered = true;
        cv.notify_all();
        cv.wait(lock, [&] { return go; });
        returned = true;
        return Status::OK();
      },
      schedule.NewSleeper());
  ASSERT_TRUE(schedule.Sleeping(1));
  schedule.Advance();
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kBound, [&] { return entered; }));
  }
  std::atomic<bool> stopped{false};
  std::atomic<bool> returned_before_stop_ended{false};
  std::thread stopper([&] {
    r->Stop();
    returned_before_stop_ended = returned.load();
    stopped = true;
  });
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_FALSE(returned.load());
    go = true;
  }
  cv.notify_all();
  stopper.join();
  EXPECT_TRUE(stopped.load());
  EXPECT_TRUE(returned_before_stop_ended.load());  // Stop returned after the renewal did
  schedule.Advance();                              // a wait after it would pass now
  r.reset();
  EXPECT_EQ(calls.load(), 1);  // and no renewal followed
}

// The default sleeper: a wait lasts at least its duration, and Wake ends
// one at once (a lease with an hour's interval is released in well under a
// minute: no sleeping the interval out).
TEST(LeaseRenewer, DefaultSleeperWaitsTheIntervalAndWakesAtOnce) {
  auto sleeper = NewSleeper();
  auto t0 = Clock::now();
  EXPECT_TRUE(sleeper->SleepFor(milliseconds(30)));
  EXPECT_GE(Clock::now() - t0, milliseconds(30));
  // In a child with an alarm, as below: a sleeper that sleeps the hour out
  // fails in 60 s instead of hanging the suite.
  EXPECT_TRUE(testing::RunsWithin(60, [] {
    auto s = NewSleeper();
    std::thread waker([&] {
      std::this_thread::sleep_for(milliseconds(50));  // most likely mid-wait (either way: false)
      s->Wake();
    });
    const bool passed = s->SleepFor(std::chrono::hours(1));
    waker.join();
    return !passed && !s->SleepFor(std::chrono::hours(1));  // woken for good
  }));
}

TEST(LeaseRenewer, DestructionWithTheDefaultSleeperDoesNotWaitTheInterval) {
  // In a child with an alarm: an implementation that sleeps the hour out
  // fails here in 60 s instead of hanging the suite.
  EXPECT_TRUE(testing::RunsWithin(60, [] {
    std::atomic<int> renewals{0};
    {
      LeaseRenewer r(3 * 3600 * 1000, Counting(&renewals));
      std::this_thread::sleep_for(milliseconds(20));  // let the thread reach its wait
    }
    return renewals.load() == 0;
  }));
}

TEST(LeaseRenewer, DefaultSleeperRenewsRepeatedlyNoSoonerThanTheInterval) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Clock::time_point> at;
  const auto t0 = Clock::now();
  LeaseRenewer r(60, [&] {
    std::lock_guard<std::mutex> lock(mu);
    at.push_back(Clock::now());
    cv.notify_all();
    return Status::OK();
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kBound, [&] { return at.size() >= 3; }));
  }
  r.Stop();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_GE(at[0] - t0, milliseconds(20));
  for (size_t i = 1; i < at.size(); i++) EXPECT_GE(at[i] - at[i - 1], milliseconds(20)) << i;
}

}  // namespace
}  // namespace hyperfile::file
