// SPDX-License-Identifier: Apache-2.0
// Request counting: requests and errors by verb, bytes, latency.
#include <atomic>
#include <chrono>
#include <cstdio>

#include "hyperfile/store_layers.h"

namespace hyperfile {

namespace {
constexpr int kVerbs = static_cast<int>(StoreVerb::kCount);
const char* VerbName(int v) {
  static const char* names[] = {"put", "get", "head", "list", "delete"};
  return names[v];
}
}  // namespace

struct MetricsStore::Counters {
  std::atomic<uint64_t> requests[kVerbs] = {};
  std::atomic<uint64_t> errors[kVerbs] = {};
  std::atomic<uint64_t> errors_by_code[16] = {};
  std::atomic<uint64_t> bytes_in{0}, bytes_out{0};
  std::atomic<uint64_t> latency_total[kVerbs] = {};
  std::atomic<uint64_t> latency_max[kVerbs] = {};
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
  }
  for (int i = 0; i < 16; i++) d.errors_by_code[i] -= e.errors_by_code[i];
  d.bytes_in -= e.bytes_in;
  d.bytes_out -= e.bytes_out;
  return d;
}

std::string StoreMetricsSnapshot::ToString() const {
  std::string out;
  char buf[64];
  for (int i = 0; i < kVerbs; i++) {
    std::snprintf(buf, sizeof buf, "%s=%llu ", VerbName(i),
                  static_cast<unsigned long long>(requests[i]));
    out += buf;
  }
  uint64_t errs = 0;
  for (uint64_t e : errors) errs += e;
  std::snprintf(buf, sizeof buf, "errors=%llu in=%.1fMiB out=%.1fMiB",
                static_cast<unsigned long long>(errs), bytes_in / 1048576.0, bytes_out / 1048576.0);
  return out + buf;
}

MetricsStore::MetricsStore(std::shared_ptr<ObjectStore> base)
    : StoreWrapper(std::move(base)), counters_(std::make_unique<Counters>()) {}
MetricsStore::~MetricsStore() = default;

StoreMetricsSnapshot MetricsStore::Snapshot() const {
  StoreMetricsSnapshot s;
  for (int i = 0; i < kVerbs; i++) {
    s.requests[i] = counters_->requests[i];
    s.errors[i] = counters_->errors[i];
    s.latency_us_total[i] = counters_->latency_total[i];
    s.latency_us_max[i] = counters_->latency_max[i];
  }
  for (int i = 0; i < 16; i++) s.errors_by_code[i] = counters_->errors_by_code[i];
  s.bytes_in = counters_->bytes_in;
  s.bytes_out = counters_->bytes_out;
  return s;
}

// Zeroes the counters in place: calls in flight keep using them safely.
void MetricsStore::Reset() {
  Counters& c = *counters_;
  for (int i = 0; i < kVerbs; i++) {
    c.requests[i] = 0;
    c.errors[i] = 0;
    c.latency_total[i] = 0;
    c.latency_max[i] = 0;
  }
  for (auto& e : c.errors_by_code) e = 0;
  c.bytes_in = 0;
  c.bytes_out = 0;
}

template <typename Fn>
static Status Measure(MetricsStore::Counters* c, StoreVerb verb, uint64_t requests, Fn fn) {
  int v = static_cast<int>(verb);
  auto start = std::chrono::steady_clock::now();
  Status st = fn();
  uint64_t us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::steady_clock::now() - start)
                                          .count());
  c->requests[v] += requests;
  c->latency_total[v] += us;
  uint64_t prev = c->latency_max[v];
  while (us > prev && !c->latency_max[v].compare_exchange_weak(prev, us)) {
  }
  if (!st.ok()) {
    c->errors[v]++;
    c->errors_by_code[static_cast<int>(st.code()) & 15]++;
  }
  return st;
}

Status MetricsStore::Put(std::string_view key, const Payload& data, const PutOptions& options,
                         ObjectInfo* info) {
  for (std::string_view p : data) counters_->bytes_out += p.size();
  return Measure(counters_.get(), StoreVerb::kPut, 1,
                 [&] { return base()->Put(key, data, options, info); });
}
Status MetricsStore::Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
                         ObjectInfo* info) {
  Status st = Measure(counters_.get(), StoreVerb::kGet, 1,
                      [&] { return base()->Get(key, offset, length, out, info); });
  if (st.ok()) counters_->bytes_in += out->size();
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
  if (listed > 1000) counters_->requests[static_cast<int>(StoreVerb::kList)] += (listed - 1) / 1000;
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
