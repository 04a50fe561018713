// SPDX-License-Identifier: Apache-2.0
// The wrapper and the retry, latency, metrics and fault-injection layers, over
// the memory backend.
#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include "hyperfile/object_store.h"
#include "hyperfile/store_layers.h"

namespace hyperfile {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

auto AllCalls = [](const StoreCall&) { return true; };

RetryOptions FastRetry(int attempts) {
  RetryOptions ro;
  ro.max_attempts = attempts;
  ro.base_delay_ms = 1;
  ro.max_delay_ms = 4;
  ro.seed = 42;
  return ro;
}

// -------------------------------------------------------------- wrapper ---

// A layer that changes one call and inherits the rest from StoreWrapper.
class UpperCaseGets : public StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    Status st = base()->Get(key, offset, length, out, info);
    for (char& c : *out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return st;
  }
  using ObjectStore::Get;
};

TEST(StoreWrapper, ForwardsEveryCallALayerDoesNotOverride) {
  auto base = NewMemoryStore("wrapped");
  auto store = std::make_shared<UpperCaseGets>(base);
  EXPECT_EQ(store->base(), base.get());
  ObjectInfo info;
  ASSERT_TRUE(store->Put("a", Payload{"ab", "c"}, {}, &info).ok());
  EXPECT_EQ(info.size, 3u);
  ASSERT_TRUE(store->Put("b", "xyz").ok());
  PutOptions create;
  create.if_absent = true;
  EXPECT_TRUE(store->Put("a", "again", create, nullptr).IsPreconditionFailed());
  std::string out;
  ASSERT_TRUE(store->Get("a", &out).ok());
  EXPECT_EQ(out, "ABC");  // the one overridden call
  ASSERT_TRUE(store->Get("a", 1, 1, &out, nullptr).ok());
  EXPECT_EQ(out, "B");
  ASSERT_TRUE(store->Head("a", &info).ok());
  EXPECT_EQ(info.size, 3u);
  std::vector<ObjectInfo> listed;
  ASSERT_TRUE(store->List("", "a", 0, &listed).ok());
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].key, "b");
  ASSERT_TRUE(store->Delete("a").ok());
  EXPECT_TRUE(base->Head("a", nullptr).IsNotFound());
  ASSERT_TRUE(store->DeleteMany({"b", "absent"}).ok());
  EXPECT_TRUE(base->Head("b", nullptr).IsNotFound());
  EXPECT_EQ(store->Name(), "memory://wrapped");
}

TEST(StoreWrapper, LayersReportTheNameOfTheStoreBelow) {
  auto base = NewMemoryStore("named");
  auto faulty = std::make_shared<FaultInjectionStore>(base);
  auto metrics = std::make_shared<MetricsStore>(faulty);
  auto slow = NewLatencyStore(metrics, LatencyOptions{});
  auto retry = NewRetryStore(slow);
  EXPECT_EQ(faulty->Name(), "memory://named");
  EXPECT_EQ(metrics->Name(), "memory://named");
  EXPECT_EQ(slow->Name(), "memory://named");
  EXPECT_EQ(retry->Name(), "memory://named");
}

// ---------------------------------------------------------------- retry ---

TEST(RetryLayer, RetriesTransientAndThrottledOnly) {
  auto faulty = std::make_shared<FaultInjectionStore>(NewMemoryStore());
  auto store = NewRetryStore(faulty, FastRetry(4));
  faulty->FailCall(0, Status::Transient("connection reset"));
  faulty->FailCall(1, Status::Throttled("slow down"));
  ASSERT_TRUE(store->Put("k", "v").ok());
  EXPECT_EQ(faulty->calls(), 3u);
  for (Status error :
       {Status::Auth("bad secret"), Status::NotFound("gone"), Status::PreconditionFailed("exists"),
        Status::IOError("disk"), Status::Corrupt("bad"), Status::InvalidArgument("key")}) {
    uint64_t before = faulty->calls();
    faulty->FailCall(before, error);
    Status st = store->Put("k", "v");
    EXPECT_EQ(st.code(), error.code()) << st.ToString();
    EXPECT_EQ(st.message(), error.message());  // passed through unchanged
    EXPECT_EQ(faulty->calls(), before + 1) << error.ToString() << " was retried";
  }
}

TEST(RetryLayer, GivesUpAfterMaxAttempts) {
  auto faulty = std::make_shared<FaultInjectionStore>(NewMemoryStore());
  auto store = NewRetryStore(faulty, FastRetry(4));
  faulty->FailWhen(AllCalls, Status::Transient("down"));
  std::string out;
  Status st = store->Get("k", &out);
  EXPECT_TRUE(st.IsTransient());
  EXPECT_NE(st.message().find("4 attempts"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("down"), std::string::npos) << st.message();
  EXPECT_EQ(faulty->calls(), 4u);
  auto once = NewRetryStore(faulty, FastRetry(1));
  EXPECT_TRUE(once->Head("k", nullptr).IsTransient());
  EXPECT_EQ(faulty->calls(), 5u);
}

TEST(RetryLayer, RespectsTotalTime) {
  auto faulty = std::make_shared<FaultInjectionStore>(NewMemoryStore());
  RetryOptions ro;
  ro.max_attempts = 1000;
  ro.base_delay_ms = 40;
  ro.max_delay_ms = 40;
  ro.max_total_ms = 200;
  auto store = NewRetryStore(faulty, ro);
  faulty->FailWhen(AllCalls, Status::Throttled("slow down"));
  auto start = Clock::now();
  EXPECT_TRUE(store->Delete("k").IsThrottled());
  auto elapsed = Clock::now() - start;
  EXPECT_LE(elapsed, milliseconds(200 + 100));  // never sleeps past the budget
  EXPECT_GE(faulty->calls(), 2u);
  EXPECT_LT(faulty->calls(), 1000u);
}

TEST(RetryLayer, FullJitterStaysWithinBounds) {
  auto faulty = std::make_shared<FaultInjectionStore>(NewMemoryStore());
  RetryOptions ro;
  ro.max_attempts = 4;  // 3 backoffs, each uniform in [0, min(20, 10 * 2^i)] ms
  ro.base_delay_ms = 10;
  ro.max_delay_ms = 20;
  auto store = NewRetryStore(faulty, ro);
  faulty->FailWhen(AllCalls, Status::Transient("down"));
  auto start = Clock::now();
  constexpr int kRuns = 20;
  for (int i = 0; i < kRuns; i++) EXPECT_TRUE(store->Head("k", nullptr).IsTransient());
  auto total = Clock::now() - start;
  // At most 10 + 20 + 20 ms per run; on average half of that (25 ms).
  EXPECT_LE(total, milliseconds(kRuns * 50 + 200));
  EXPECT_GE(total, milliseconds(kRuns * 5));  // the jitter is not all zero
  EXPECT_EQ(faulty->calls(), 4u * kRuns);
}

TEST(RetryLayer, LostCreateOnlyResponseSurfacesAsPreconditionFailed) {
  auto base = NewMemoryStore();
  auto faulty = std::make_shared<FaultInjectionStore>(base);
  auto store = NewRetryStore(faulty, FastRetry(3));
  bool lost = false;
  faulty->LoseResponseWhen(
      [&](const StoreCall& c) { return c.verb == StoreVerb::kPut && !std::exchange(lost, true); },
      Status::Transient("response lost"));
  PutOptions o;
  o.if_absent = true;
  // The first attempt landed; the retry finds the object: the caller must
  // resolve it (read back and compare), the layer passes it through.
  EXPECT_TRUE(store->Put("seg", "data", o, nullptr).IsPreconditionFailed());
  std::string out;
  ASSERT_TRUE(base->Get("seg", &out).ok());
  EXPECT_EQ(out, "data");
}

TEST(RetryLayer, RetriedListDoesNotDuplicate) {
  auto base = NewMemoryStore();
  ASSERT_TRUE(base->Put("a", "1").ok());
  auto faulty = std::make_shared<FaultInjectionStore>(base);
  auto store = NewRetryStore(faulty, FastRetry(3));
  faulty->LoseResponseWhen([](const StoreCall& c) { return c.index == 0; },
                           Status::Transient("reset mid-listing"));
  std::vector<ObjectInfo> out;
  ASSERT_TRUE(store->List("", "", 0, &out).ok());
  EXPECT_EQ(out.size(), 1u);
}

// -------------------------------------------------------------- latency ---

LatencyOptions NoLatency() {
  LatencyOptions o;
  o.get_ttfb = o.put_ttfb = o.head_ttfb = o.list_ttfb = o.delete_ttfb = {};
  o.bandwidth_bytes_per_s = 0;
  return o;
}

template <typename Fn>
Clock::duration Time(Fn fn) {
  auto start = Clock::now();
  fn();
  return Clock::now() - start;
}

TEST(LatencyLayer, DefaultsAreTheAwsLikeProfile) {
  LatencyOptions o;
  EXPECT_EQ(o.get_ttfb, milliseconds(30));
  EXPECT_EQ(o.put_ttfb, milliseconds(60));
  EXPECT_EQ(o.head_ttfb, milliseconds(30));
  EXPECT_EQ(o.list_ttfb, milliseconds(30));
  EXPECT_EQ(o.delete_ttfb, milliseconds(30));
  EXPECT_EQ(o.bandwidth_bytes_per_s, 100ull << 20);
  EXPECT_EQ(o.max_in_flight, 0);
}

TEST(LatencyLayer, EachVerbWaitsItsTimeToFirstByte) {
  auto base = NewMemoryStore();
  LatencyOptions o = NoLatency();
  o.put_ttfb = milliseconds(40);
  o.get_ttfb = milliseconds(30);
  o.head_ttfb = milliseconds(20);
  o.list_ttfb = milliseconds(25);
  o.delete_ttfb = milliseconds(15);
  auto store = NewLatencyStore(base, o);
  std::string out;
  std::vector<ObjectInfo> listed;
  EXPECT_GE(Time([&] { ASSERT_TRUE(store->Put("k", "value").ok()); }), milliseconds(40));
  EXPECT_GE(Time([&] { ASSERT_TRUE(store->Get("k", &out).ok()); }), milliseconds(30));
  EXPECT_EQ(out, "value");  // data passes unchanged
  // A failing request pays its round trip too, and the error is the base's.
  EXPECT_GE(Time([&] { EXPECT_TRUE(store->Get("absent", &out).IsNotFound()); }), milliseconds(30));
  EXPECT_GE(Time([&] { ASSERT_TRUE(store->Head("k", nullptr).ok()); }), milliseconds(20));
  EXPECT_GE(Time([&] { ASSERT_TRUE(store->List("", "", 0, &listed).ok()); }), milliseconds(25));
  EXPECT_EQ(listed.size(), 1u);
  EXPECT_GE(Time([&] { ASSERT_TRUE(store->Delete("k").ok()); }), milliseconds(15));
  EXPECT_GE(Time([&] { ASSERT_TRUE(store->DeleteMany({"a", "b"}).ok()); }), milliseconds(15));
  EXPECT_TRUE(base->Head("k", nullptr).IsNotFound());
}

TEST(LatencyLayer, BandwidthAddsTransferTime) {
  auto base = NewMemoryStore();
  LatencyOptions o = NoLatency();
  o.bandwidth_bytes_per_s = 1 << 20;  // 1 MiB/s: 100 KiB take ~98 ms
  auto store = NewLatencyStore(base, o);
  std::string data(100 << 10, 'x');
  EXPECT_GE(Time([&] {
              ASSERT_TRUE(store->Put("big", Payload{data, data}, {}, nullptr).ok());
            }),
            milliseconds(195));
  std::string out;
  EXPECT_GE(Time([&] { ASSERT_TRUE(store->Get("big", 0, data.size(), &out, nullptr).ok()); }),
            milliseconds(97));
  EXPECT_EQ(out, data);
  // The bytes a Get returns count, not the length asked for.
  ASSERT_TRUE(base->Put("small", "tiny").ok());
  auto small = Time([&] { ASSERT_TRUE(store->Get("small", &out).ok()); });
  EXPECT_LT(small, milliseconds(90));  // 4 bytes: ~4 us of transfer
}

TEST(LatencyLayer, ListPagesAndDeleteBatchesEachPayARoundTrip) {
  auto base = NewMemoryStore();
  std::vector<std::string> keys;
  for (int i = 0; i < 2001; i++) {
    keys.push_back("k" + std::to_string(i));
    ASSERT_TRUE(base->Put(keys.back(), "").ok());
  }
  LatencyOptions o = NoLatency();
  o.list_ttfb = milliseconds(20);
  o.delete_ttfb = milliseconds(20);
  auto store = NewLatencyStore(base, o);
  std::vector<ObjectInfo> listed;
  EXPECT_GE(Time([&] { ASSERT_TRUE(store->List("", "", 0, &listed).ok()); }),
            milliseconds(60));  // 3 pages
  EXPECT_EQ(listed.size(), 2001u);
  EXPECT_GE(Time([&] { ASSERT_TRUE(store->DeleteMany(keys).ok()); }),
            milliseconds(60));  // 3 batches
}

TEST(LatencyLayer, ParallelRequestsOverlap) {
  auto base = NewMemoryStore();
  ASSERT_TRUE(base->Put("k", "v").ok());
  LatencyOptions o = NoLatency();
  o.get_ttfb = milliseconds(200);
  auto store = NewLatencyStore(base, o);
  constexpr int kThreads = 8;
  std::atomic<int> ok{0};
  auto parallel = Time([&] {
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; i++) {
      threads.emplace_back([&] {
        std::string out;
        if (store->Get("k", &out).ok() && out == "v") ok++;
      });
    }
    for (auto& t : threads) t.join();
  });
  EXPECT_EQ(ok.load(), kThreads);
  EXPECT_GE(parallel, milliseconds(200));
  // One after the other would take 8 x 200 ms; overlapping, about 200 ms.
  // Generous for a loaded machine: at most 5 x one request.
  EXPECT_LT(parallel, milliseconds(1000));
}

TEST(LatencyLayer, MaxInFlightQueuesTheRest) {
  auto base = NewMemoryStore();
  LatencyOptions o = NoLatency();
  o.head_ttfb = milliseconds(50);
  o.max_in_flight = 2;
  auto store = NewLatencyStore(base, o);
  auto elapsed = Time([&] {
    std::vector<std::thread> threads;
    for (int i = 0; i < 6; i++) {
      threads.emplace_back([&] { EXPECT_TRUE(store->Head("k", nullptr).IsNotFound()); });
    }
    for (auto& t : threads) t.join();
  });
  EXPECT_GE(elapsed, milliseconds(150));  // 6 requests, 2 at a time, 50 ms each
}

TEST(LatencyLayer, NegativeTimesCountAsZero) {
  LatencyOptions o = NoLatency();
  o.put_ttfb = milliseconds(-1000);
  o.bandwidth_bytes_per_s = 1 << 20;
  auto store = NewLatencyStore(NewMemoryStore(), o);
  std::string data(50 << 10, 'y');  // ~49 ms of transfer, not cancelled out
  EXPECT_GE(Time([&] { ASSERT_TRUE(store->Put("k", data).ok()); }), milliseconds(45));
}

// -------------------------------------------------------------- metrics ---

TEST(MetricsLayer, CountsRequestsBytesErrorsAndLatency) {
  auto metrics = std::make_shared<MetricsStore>(NewMemoryStore());
  ASSERT_TRUE(metrics->Put("a", Payload{"12", "345"}, {}, nullptr).ok());
  std::string out;
  ASSERT_TRUE(metrics->Get("a", &out).ok());
  EXPECT_TRUE(metrics->Get("b", &out).IsNotFound());
  ASSERT_TRUE(metrics->Head("a", nullptr).ok());
  std::vector<ObjectInfo> listed;
  ASSERT_TRUE(metrics->List("", "", 0, &listed).ok());
  ASSERT_TRUE(metrics->Delete("a").ok());
  StoreMetricsSnapshot s = metrics->Snapshot();
  EXPECT_EQ(s.count(StoreVerb::kPut), 1u);
  EXPECT_EQ(s.count(StoreVerb::kGet), 2u);
  EXPECT_EQ(s.count(StoreVerb::kHead), 1u);
  EXPECT_EQ(s.count(StoreVerb::kList), 1u);
  EXPECT_EQ(s.count(StoreVerb::kDelete), 1u);
  EXPECT_EQ(s.total_requests(), 6u);
  EXPECT_EQ(s.bytes_out, 5u);
  EXPECT_EQ(s.bytes_in, 5u);
  EXPECT_EQ(s.errors[static_cast<int>(StoreVerb::kGet)], 1u);
  EXPECT_EQ(s.errors_by_code[static_cast<int>(Status::Code::kNotFound)], 1u);
  EXPECT_GE(s.latency_us_total[static_cast<int>(StoreVerb::kGet)],
            s.latency_us_max[static_cast<int>(StoreVerb::kGet)]);
  EXPECT_NE(s.ToString().find("put=1"), std::string::npos) << s.ToString();
  EXPECT_NE(s.ToString().find("errors=1"), std::string::npos) << s.ToString();
}

TEST(MetricsLayer, BatchesCountAsS3WouldSendThem) {
  auto metrics = std::make_shared<MetricsStore>(NewMemoryStore());
  std::vector<std::string> keys;
  for (int i = 0; i < 2001; i++) {
    keys.push_back("k" + std::to_string(i));
    ASSERT_TRUE(metrics->Put(keys.back(), "").ok());
  }
  StoreMetricsSnapshot before = metrics->Snapshot();
  std::vector<ObjectInfo> listed;
  ASSERT_TRUE(metrics->List("", "", 0, &listed).ok());
  ASSERT_TRUE(metrics->DeleteMany(keys).ok());
  ASSERT_TRUE(metrics->DeleteMany({}).ok());
  StoreMetricsSnapshot phase = metrics->Snapshot() - before;
  EXPECT_EQ(phase.count(StoreVerb::kList), 3u);    // 2,001 keys = 3 pages
  EXPECT_EQ(phase.count(StoreVerb::kDelete), 3u);  // 3 batches, none for an empty list
  EXPECT_EQ(phase.count(StoreVerb::kPut), 0u);
  metrics->Reset();
  EXPECT_EQ(metrics->Snapshot().total_requests(), 0u);
  EXPECT_EQ(metrics->Name(), "memory://memory");
}

TEST(MetricsLayer, OutcomesHistogramsAndCommits) {
  auto metrics = std::make_shared<MetricsStore>(NewMemoryStore());
  PutOptions create;
  create.if_absent = true;
  ASSERT_TRUE(metrics->Put("seg/00000000000000fe", Payload{"segment"}, create, nullptr).ok());
  EXPECT_TRUE(metrics->Put("seg/00000000000000fe", Payload{"again"}, create, nullptr)
                  .IsPreconditionFailed());
  ASSERT_TRUE(metrics->Put("dat/x", Payload{"data"}, {}, nullptr).ok());  // not a commit
  std::string out;
  EXPECT_TRUE(metrics->Get("missing", &out).IsNotFound());
  ASSERT_TRUE(metrics->Get("dat/x", &out).ok());
  StoreMetricsSnapshot s = metrics->Snapshot();
  const int put = static_cast<int>(StoreVerb::kPut), get = static_cast<int>(StoreVerb::kGet);
  EXPECT_EQ(s.outcomes[put][0], 2u);
  EXPECT_EQ(s.outcomes[put][static_cast<int>(Status::Code::kPreconditionFailed)], 1u);
  EXPECT_EQ(s.outcomes[get][0], 1u);
  EXPECT_EQ(s.outcomes[get][static_cast<int>(Status::Code::kNotFound)], 1u);
  EXPECT_EQ(s.latency[put].count, 3u);
  EXPECT_EQ(s.latency[get].count, 2u);
  uint64_t in_buckets = 0;
  for (uint64_t b : s.latency[put].buckets) in_buckets += b;
  EXPECT_EQ(in_buckets, 3u);
  EXPECT_EQ(s.commit_latency.count, 1u);  // only the successful create-only seg/ put
  // Sums and differences keep the histograms.
  StoreMetricsSnapshot twice = s;
  twice += s;
  EXPECT_EQ(twice.latency[put].count, 6u);
  EXPECT_EQ(twice.outcomes[get][0], 2u);
  EXPECT_EQ((twice - s).commit_latency.count, 1u);
  EXPECT_EQ(StoreVerbName(StoreVerb::kDelete), std::string("delete"));
  EXPECT_EQ(StoreOutcomeName(0), std::string("ok"));
  EXPECT_EQ(StoreOutcomeName(static_cast<int>(Status::Code::kPreconditionFailed)),
            std::string("precondition_failed"));
  EXPECT_EQ(StoreOutcomeName(static_cast<int>(Status::Code::kOutOfRange)),
            std::string("out_of_range"));
  EXPECT_EQ(StoreOutcomeName(99), std::string("other"));
}

TEST(MetricsLayer, HistogramBucketsAndQuantiles) {
  EXPECT_EQ(LatencyHistogram::BucketOf(0), 0);
  EXPECT_EQ(LatencyHistogram::BucketOf(250), 0);
  EXPECT_EQ(LatencyHistogram::BucketOf(251), 1);
  EXPECT_EQ(LatencyHistogram::BucketOf(10000000), kLatencyBuckets - 2);
  EXPECT_EQ(LatencyHistogram::BucketOf(10000001), kLatencyBuckets - 1);
  LatencyHistogram h;
  EXPECT_EQ(h.QuantileUs(0.5), 0u);
  for (int i = 0; i < 99; i++) h.buckets[LatencyHistogram::BucketOf(800)]++;  // <= 1 ms
  h.buckets[LatencyHistogram::BucketOf(40000)]++;                             // <= 50 ms
  h.count = 100;
  EXPECT_EQ(h.QuantileUs(0.5), 1000u);
  EXPECT_EQ(h.QuantileUs(0.99), 1000u);
  EXPECT_EQ(h.QuantileUs(1.0), 50000u);
}

// The retry layer counts retries, throttled retries and give-ups in the
// metrics layer it is given (as OpenStoreStack wires them).
TEST(MetricsLayer, RetryLayerCountsRetriesThrottlesAndGiveUps) {
  auto faults = std::make_shared<FaultInjectionStore>(NewMemoryStore());
  auto metrics = std::make_shared<MetricsStore>(faults);
  RetryOptions ro;
  ro.base_delay_ms = 0;
  ro.max_delay_ms = 0;
  ro.max_attempts = 3;
  ro.seed = 1;
  ro.metrics = metrics;
  auto store = NewRetryStore(metrics, ro);
  faults->FailCall(0, Status::Throttled("slow down"));
  faults->FailCall(1, Status::Transient("reset"));
  ASSERT_TRUE(store->Put("k", "v").ok());  // third attempt lands
  faults->FailWhen([](const StoreCall& c) { return c.verb == StoreVerb::kGet; },
                   Status::Transient("down"));
  std::string out;
  EXPECT_FALSE(store->Get("k", &out).ok());  // three attempts, then a give-up
  StoreMetricsSnapshot s = metrics->Snapshot();
  const int put = static_cast<int>(StoreVerb::kPut), get = static_cast<int>(StoreVerb::kGet);
  EXPECT_EQ(s.requests[put], 3u);
  EXPECT_EQ(s.retries[put], 2u);
  EXPECT_EQ(s.throttle_retries[put], 1u);
  EXPECT_EQ(s.give_ups[put], 0u);
  EXPECT_EQ(s.outcomes[put][static_cast<int>(Status::Code::kThrottled)], 1u);
  EXPECT_EQ(s.requests[get], 3u);
  EXPECT_EQ(s.retries[get], 2u);
  EXPECT_EQ(s.give_ups[get], 1u);
  // OpenStoreStack wires its retry layer to its metrics layer.
  StoreOptions so;
  so.metrics = true;
  auto stack = OpenStoreStack("memory://metrics-wiring", so);
  ASSERT_TRUE(stack.ok());
  ASSERT_NE(stack->metrics, nullptr);
  ASSERT_TRUE(stack->store->Put("a", "b").ok());
  EXPECT_EQ(stack->metrics->Snapshot().requests[put], 1u);
}

// ------------------------------------------------------ fault injection ---

TEST(FaultLayer, FailCallAndFailWhen) {
  auto base = NewMemoryStore();
  auto faulty = std::make_shared<FaultInjectionStore>(base);
  faulty->FailCall(1, Status::IOError("injected"));
  EXPECT_TRUE(faulty->Put("a", "1").ok());
  EXPECT_TRUE(faulty->Put("b", "2").IsIOError());
  EXPECT_TRUE(base->Head("b", nullptr).IsNotFound());  // never forwarded
  EXPECT_TRUE(faulty->Put("b", "2").ok());
  faulty->FailWhen([](const StoreCall& c) { return c.verb == StoreVerb::kGet && c.key == "a"; },
                   Status::Corrupt("bad bytes"));
  std::string out;
  EXPECT_TRUE(faulty->Get("a", &out).IsCorrupt());
  EXPECT_TRUE(faulty->Get("b", &out).ok());
  EXPECT_TRUE(faulty->Head("a", nullptr).ok());
  EXPECT_EQ(faulty->calls(), 6u);
  faulty->ClearFaults();
  EXPECT_TRUE(faulty->Get("a", &out).ok());
}

TEST(FaultLayer, PredicateSeesTheCall) {
  auto faulty = std::make_shared<FaultInjectionStore>(NewMemoryStore());
  std::vector<StoreCall> seen;
  faulty->FailWhen(
      [&](const StoreCall& c) {
        seen.push_back(c);
        return false;
      },
      Status::IOError("never"));
  PutOptions o;
  o.if_absent = true;
  ASSERT_TRUE(faulty->Put("p", "x", o, nullptr).ok());
  std::vector<ObjectInfo> listed;
  ASSERT_TRUE(faulty->List("pre/", "", 0, &listed).ok());
  ASSERT_TRUE(faulty->DeleteMany({"first", "second"}).ok());
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].verb, StoreVerb::kPut);
  EXPECT_TRUE(seen[0].if_absent);
  EXPECT_EQ(seen[0].index, 0u);
  EXPECT_EQ(seen[1].key, "pre/");
  EXPECT_EQ(seen[2].verb, StoreVerb::kDelete);
  EXPECT_EQ(seen[2].key, "first");
  EXPECT_EQ(seen[2].index, 2u);
}

TEST(FaultLayer, CrashRefusesEverythingAfter) {
  auto base = NewMemoryStore();
  auto faulty = std::make_shared<FaultInjectionStore>(base);
  faulty->CrashAfter(1);
  EXPECT_TRUE(faulty->Put("a", "1").ok());
  EXPECT_TRUE(faulty->Put("b", "2").IsTransient());
  std::string out;
  EXPECT_TRUE(faulty->Get("a", &out).IsTransient());
  EXPECT_TRUE(base->Get("b", &out).IsNotFound());  // never reached the store
  EXPECT_EQ(faulty->calls(), 3u);
  faulty->CrashAfter(0);
  EXPECT_TRUE(faulty->Head("a", nullptr).IsTransient());
  faulty->ClearFaults();
  EXPECT_TRUE(faulty->Get("a", &out).ok());
}

TEST(FaultLayer, LostResponseLandsButReportsError) {
  auto base = NewMemoryStore();
  auto faulty = std::make_shared<FaultInjectionStore>(base);
  faulty->LoseResponseWhen([](const StoreCall& c) { return c.key == "lost"; },
                           Status::Transient("timeout"));
  EXPECT_TRUE(faulty->Put("lost", "data").IsTransient());
  EXPECT_TRUE(faulty->Put("kept", "data").ok());
  std::string out;
  ASSERT_TRUE(base->Get("lost", &out).ok());
  EXPECT_EQ(out, "data");
  // A forwarded call that fails reports its own error, not the injected one.
  PutOptions o;
  o.if_absent = true;
  EXPECT_TRUE(faulty->Put("lost", "again", o, nullptr).IsPreconditionFailed());
}

TEST(FaultLayer, LatencyDelaysCalls) {
  auto faulty = std::make_shared<FaultInjectionStore>(NewMemoryStore());
  faulty->SetLatency(milliseconds(20));
  auto start = Clock::now();
  EXPECT_TRUE(faulty->Head("x", nullptr).IsNotFound());
  EXPECT_GE(Clock::now() - start, milliseconds(20));
  faulty->ClearFaults();
  start = Clock::now();
  EXPECT_TRUE(faulty->Head("x", nullptr).IsNotFound());
  EXPECT_LT(Clock::now() - start, milliseconds(20));
}

}  // namespace
}  // namespace hyperfile

namespace hyperfile {
namespace {
// A large put through a backend that uploads it in parallel parts is
// charged as on the wire: start, one wave of parts, completion — not one
// request at one connection's bandwidth.
TEST(LatencyStoreMultipart, LargePutIsChargedAsParallelParts) {
  LatencyOptions o;
  o.put_ttfb = std::chrono::milliseconds(20);
  o.bandwidth_bytes_per_s = 10ull << 20;  // 1 MiB part = 100 ms
  o.multipart_threshold = 1ull << 20;
  o.multipart_part_size = 1ull << 20;
  o.multipart_parallelism = 4;
  auto store = NewLatencyStore(NewMemoryStore("lat-mp"), o);
  std::string body(4ull << 20, 'x');
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(store->Put("big", body).ok());
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_GE(ms, 150);  // 3 x 20 ms + one 100 ms wave
  EXPECT_LT(ms, 380);  // one request would take 20 + 400 ms
  // A create-only put is always one request.
  t0 = std::chrono::steady_clock::now();
  PutOptions create;
  create.if_absent = true;
  ASSERT_TRUE(store->Put("once", Payload{body}, create, nullptr).ok());
  ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
           .count();
  EXPECT_GE(ms, 400);
}
}  // namespace
}  // namespace hyperfile
