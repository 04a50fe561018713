// SPDX-License-Identifier: Apache-2.0
// Request counting: requests and outcomes by verb, bytes, latency
// histograms, commits, retries. Every counter is a relaxed atomic.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>

#include "hyperfile/store_layers.h"

namespace hyperfile {

namespace {
constexpr int kVerbs = StoreMetricsSnapshot::kVerbs;
constexpr int kCodes = StoreMetricsSnapshot::kCodes;
constexpr auto kRelaxed = std::memory_order_relaxed;

struct AtomicHistogram {
  std::atomic<uint64_t> buckets[kLatencyBuckets] = {};
  std::atomic<uint64_t> total_us{0};
  std::atomic<uint64_t> max_us{0};

  void Observe(uint64_t us) {
    buckets[LatencyHistogram::BucketOf(us)].fetch_add(1, kRelaxed);
    total_us.fetch_add(us, kRelaxed);
    uint64_t prev = max_us.load(kRelaxed);
    while (us > prev && !max_us.compare_exchange_weak(prev, us, kRelaxed)) {
    }
  }
  LatencyHistogram Load() const {
    LatencyHistogram h;
    for (int i = 0; i < kLatencyBuckets; i++) {
      h.buckets[i] = buckets[i].load(kRelaxed);
      h.count += h.buckets[i];
    }
    h.total_us = total_us.load(kRelaxed);
    h.max_us = max_us.load(kRelaxed);
    return h;
  }
  void Reset() {
    for (auto& b : buckets) b.store(0, kRelaxed);
    total_us.store(0, kRelaxed);
    max_us.store(0, kRelaxed);
  }
};
}  // namespace

const char* StoreVerbName(StoreVerb verb) {
  static const char* names[] = {"put", "get", "head", "list", "delete"};
  int v = static_cast<int>(verb);
  return v >= 0 && v < kVerbs ? names[v] : "unknown";
}

const char* StoreOutcomeName(int code) {
  static const char* names[] = {
      "ok",        "not_found", "already_exists", "precondition_failed", "conflict",
      "throttled", "transient", "auth",           "invalid_argument",    "corrupt",
      "io_error",  "read_only", "not_supported",  "out_of_range"};
  static_assert(sizeof names / sizeof names[0] ==
                static_cast<size_t>(Status::Code::kOutOfRange) + 1);
  return code >= 0 && code < static_cast<int>(sizeof names / sizeof names[0]) ? names[code]
                                                                              : "other";
}

int LatencyHistogram::BucketOf(uint64_t us) {
  const uint64_t* end = kLatencyBucketBoundsUs + (kLatencyBuckets - 1);
  return static_cast<int>(std::lower_bound(kLatencyBucketBoundsUs, end, us) -
                          kLatencyBucketBoundsUs);
}

uint64_t LatencyHistogram::QuantileUs(double q) const {
  if (count == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(count));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kLatencyBuckets; i++) {
    seen += buckets[i];
    if (seen >= rank) {
      return i < kLatencyBuckets - 1 ? kLatencyBucketBoundsUs[i]
                                     : std::max(max_us, kLatencyBucketBoundsUs[i - 1]);
    }
  }
  return max_us;
}

LatencyHistogram& LatencyHistogram::operator+=(const LatencyHistogram& o) {
  for (int i = 0; i < kLatencyBuckets; i++) buckets[i] += o.buckets[i];
  count += o.count;
  total_us += o.total_us;
  max_us = std::max(max_us, o.max_us);
  return *this;
}

LatencyHistogram LatencyHistogram::operator-(const LatencyHistogram& e) const {
  LatencyHistogram d = *this;
  for (int i = 0; i < kLatencyBuckets; i++) d.buckets[i] -= e.buckets[i];
  d.count -= e.count;
  d.total_us -= e.total_us;
  return d;
}

struct MetricsStore::Counters {
  std::atomic<uint64_t> requests[kVerbs] = {};
  std::atomic<uint64_t> errors[kVerbs] = {};
  std::atomic<uint64_t> errors_by_code[kCodes] = {};
  std::atomic<uint64_t> outcomes[kVerbs][kCodes] = {};
  std::atomic<uint64_t> bytes_in{0}, bytes_out{0};
  AtomicHistogram latency[kVerbs];
  AtomicHistogram commit_latency;
  std::atomic<uint64_t> retries[kVerbs] = {};
  std::atomic<uint64_t> throttle_retries[kVerbs] = {};
  std::atomic<uint64_t> give_ups[kVerbs] = {};
};

uint64_t StoreMetricsSnapshot::total_requests() const {
  uint64_t n = 0;
  for (uint64_t r : requests) n += r;
  return n;
}

StoreMetricsSnapshot StoreMetricsSnapshot::operator-(const StoreMetricsSnapshot& e) const {
  StoreMetricsSnapshot d = *this;
  for (int i = 0; i < kVerbs; i++) {
    d.requests[i] -= e.requests[i];
    d.errors[i] -= e.errors[i];
    d.latency_us_total[i] -= e.latency_us_total[i];
    for (int c = 0; c < kCodes; c++) d.outcomes[i][c] -= e.outcomes[i][c];
    d.latency[i] = latency[i] - e.latency[i];
    d.retries[i] -= e.retries[i];
    d.throttle_retries[i] -= e.throttle_retries[i];
    d.give_ups[i] -= e.give_ups[i];
  }
  for (int i = 0; i < kCodes; i++) d.errors_by_code[i] -= e.errors_by_code[i];
  d.commit_latency = commit_latency - e.commit_latency;
  d.bytes_in -= e.bytes_in;
  d.bytes_out -= e.bytes_out;
  return d;
}

StoreMetricsSnapshot& StoreMetricsSnapshot::operator+=(const StoreMetricsSnapshot& o) {
  for (int i = 0; i < kVerbs; i++) {
    requests[i] += o.requests[i];
    errors[i] += o.errors[i];
    latency_us_total[i] += o.latency_us_total[i];
    latency_us_max[i] = std::max(latency_us_max[i], o.latency_us_max[i]);
    for (int c = 0; c < kCodes; c++) outcomes[i][c] += o.outcomes[i][c];
    latency[i] += o.latency[i];
    retries[i] += o.retries[i];
    throttle_retries[i] += o.throttle_retries[i];
    give_ups[i] += o.give_ups[i];
  }
  for (int i = 0; i < kCodes; i++) errors_by_code[i] += o.errors_by_code[i];
  commit_latency += o.commit_latency;
  bytes_in += o.bytes_in;
  bytes_out += o.bytes_out;
  return *this;
}

std::string StoreMetricsSnapshot::ToString() const {
  std::string out;
  char buf[96];
  for (int i = 0; i < kVerbs; i++) {
    std::snprintf(buf, sizeof buf, "%s=%llu ", StoreVerbName(static_cast<StoreVerb>(i)),
                  static_cast<unsigned long long>(requests[i]));
    out += buf;
  }
  uint64_t errs = 0, retried = 0;
  for (uint64_t e : errors) errs += e;
  for (uint64_t r : retries) retried += r;
  std::snprintf(buf, sizeof buf, "errors=%llu retries=%llu in=%.1fMiB out=%.1fMiB",
                static_cast<unsigned long long>(errs), static_cast<unsigned long long>(retried),
                bytes_in / 1048576.0, bytes_out / 1048576.0);
  return out + buf;
}

MetricsStore::MetricsStore(std::shared_ptr<ObjectStore> base)
    : StoreWrapper(std::move(base)), counters_(std::make_unique<Counters>()) {}
MetricsStore::~MetricsStore() = default;

StoreMetricsSnapshot MetricsStore::Snapshot() const {
  const Counters& c = *counters_;
  StoreMetricsSnapshot s;
  for (int i = 0; i < kVerbs; i++) {
    s.requests[i] = c.requests[i].load(kRelaxed);
    s.errors[i] = c.errors[i].load(kRelaxed);
    s.latency[i] = c.latency[i].Load();
    s.latency_us_total[i] = s.latency[i].total_us;
    s.latency_us_max[i] = s.latency[i].max_us;
    for (int k = 0; k < kCodes; k++) s.outcomes[i][k] = c.outcomes[i][k].load(kRelaxed);
    s.retries[i] = c.retries[i].load(kRelaxed);
    s.throttle_retries[i] = c.throttle_retries[i].load(kRelaxed);
    s.give_ups[i] = c.give_ups[i].load(kRelaxed);
  }
  for (int i = 0; i < kCodes; i++) s.errors_by_code[i] = c.errors_by_code[i].load(kRelaxed);
  s.commit_latency = c.commit_latency.Load();
  s.bytes_in = c.bytes_in.load(kRelaxed);
  s.bytes_out = c.bytes_out.load(kRelaxed);
  return s;
}

// Zeroes the counters in place: calls in flight keep using them safely.
void MetricsStore::Reset() {
  Counters& c = *counters_;
  for (int i = 0; i < kVerbs; i++) {
    c.requests[i] = 0;
    c.errors[i] = 0;
    c.latency[i].Reset();
    for (auto& o : c.outcomes[i]) o = 0;
    c.retries[i] = 0;
    c.throttle_retries[i] = 0;
    c.give_ups[i] = 0;
  }
  for (auto& e : c.errors_by_code) e = 0;
  c.commit_latency.Reset();
  c.bytes_in = 0;
  c.bytes_out = 0;
}

void MetricsStore::RecordRetry(StoreVerb verb, bool throttled) {
  int v = static_cast<int>(verb);
  if (v < 0 || v >= kVerbs) return;
  counters_->retries[v].fetch_add(1, kRelaxed);
  if (throttled) counters_->throttle_retries[v].fetch_add(1, kRelaxed);
}

void MetricsStore::RecordGiveUp(StoreVerb verb) {
  int v = static_cast<int>(verb);
  if (v >= 0 && v < kVerbs) counters_->give_ups[v].fetch_add(1, kRelaxed);
}

template <typename Fn>
static Status Measure(MetricsStore::Counters* c, StoreVerb verb, uint64_t requests, Fn fn,
                      bool commit = false) {
  int v = static_cast<int>(verb);
  auto start = std::chrono::steady_clock::now();
  Status st = fn();
  uint64_t us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::steady_clock::now() - start)
                                          .count());
  c->requests[v].fetch_add(requests, kRelaxed);
  c->latency[v].Observe(us);
  int code = static_cast<int>(st.code()) & (kCodes - 1);
  c->outcomes[v][code].fetch_add(requests, kRelaxed);
  if (!st.ok()) {
    c->errors[v].fetch_add(1, kRelaxed);
    c->errors_by_code[code].fetch_add(1, kRelaxed);
  }
  if (commit && st.ok()) c->commit_latency.Observe(us);
  return st;
}

Status MetricsStore::Put(std::string_view key, const Payload& data, const PutOptions& options,
                         ObjectInfo* info) {
  uint64_t bytes = 0;
  for (std::string_view p : data) bytes += p.size();
  counters_->bytes_out.fetch_add(bytes, kRelaxed);
  bool commit = options.if_absent && key.starts_with("seg/");
  return Measure(
      counters_.get(), StoreVerb::kPut, 1, [&] { return base()->Put(key, data, options, info); },
      commit);
}
Status MetricsStore::Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
                         ObjectInfo* info) {
  Status st = Measure(counters_.get(), StoreVerb::kGet, 1,
                      [&] { return base()->Get(key, offset, length, out, info); });
  if (st.ok()) counters_->bytes_in.fetch_add(out->size(), kRelaxed);
  return st;
}
Status MetricsStore::Head(std::string_view key, ObjectInfo* info) {
  return Measure(counters_.get(), StoreVerb::kHead, 1, [&] { return base()->Head(key, info); });
}
Status MetricsStore::List(std::string_view prefix, std::string_view start_after, size_t limit,
                          std::vector<ObjectInfo>* out) {
  size_t before = out->size();
  Status st = Measure(counters_.get(), StoreVerb::kList, 1,
                      [&] { return base()->List(prefix, start_after, limit, out); });
  // ListObjectsV2 returns at most 1,000 keys per request: count the extra pages.
  uint64_t listed = out->size() - before;
  if (listed > 1000) {
    uint64_t extra = (listed - 1) / 1000;
    counters_->requests[static_cast<int>(StoreVerb::kList)].fetch_add(extra, kRelaxed);
    counters_->outcomes[static_cast<int>(StoreVerb::kList)][0].fetch_add(extra, kRelaxed);
  }
  return st;
}
Status MetricsStore::Delete(std::string_view key) {
  return Measure(counters_.get(), StoreVerb::kDelete, 1, [&] { return base()->Delete(key); });
}
Status MetricsStore::DeleteMany(const std::vector<std::string>& keys) {
  return Measure(counters_.get(), StoreVerb::kDelete, (keys.size() + 999) / 1000,
                 [&] { return base()->DeleteMany(keys); });
}
}  // namespace hyperfile
