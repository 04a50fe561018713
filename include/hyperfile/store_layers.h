// SPDX-License-Identifier: Apache-2.0
// Store layers: behaviour added on top of any ObjectStore, with the same
// interface (the s3backer idea). Each layer wraps the next and can be stacked
// in any order by hand:
//
//   auto s3 = NewS3Store(...);
//   auto metrics = std::make_shared<MetricsStore>(s3);
//   auto store = NewRetryStore(metrics, RetryOptions{});
//
// but programs normally let OpenStore / OpenStoreStack (object_store.h)
// assemble the stack from StoreOptions, so that every front end (CLI, nbdkit
// plugin, the origins of a clone) gets the same one.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "hyperfile/export.h"
#include "hyperfile/object_store.h"

namespace hyperfile {

// -------------------------------------------------------------- wrapper ---
// Forwards every call to another store (LevelDB's EnvWrapper): a layer
// derives from it and overrides only the calls whose behaviour it changes.
// Thread-safety: as the wrapped store (the wrapper itself holds no state).
class HYPERFILE_EXPORT StoreWrapper : public ObjectStore {
 public:
  // Requires base != nullptr. Shares ownership of base for the life of the
  // wrapper.
  explicit StoreWrapper(std::shared_ptr<ObjectStore> base) : base_(std::move(base)) {}
  ~StoreWrapper() override = default;

  // The wrapped store (never null).
  ObjectStore* base() const { return base_.get(); }

  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    return base_->Put(key, data, options, info);
  }
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    return base_->Get(key, offset, length, out, info);
  }
  Status Head(std::string_view key, ObjectInfo* info) override { return base_->Head(key, info); }
  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override {
    return base_->List(prefix, start_after, limit, out);
  }
  Status Delete(std::string_view key) override { return base_->Delete(key); }
  Status DeleteMany(const std::vector<std::string>& keys) override {
    return base_->DeleteMany(keys);
  }
  // A layer is not a place: it reports the name of the store it wraps.
  std::string Name() const override { return base_->Name(); }
  using ObjectStore::Get;
  using ObjectStore::Put;

 private:
  std::shared_ptr<ObjectStore> base_;
};

// ---------------------------------------------------------------- retry ---
class MetricsStore;
struct RetryOptions {
  int max_attempts = 6;      // including the first; >= 1
  int base_delay_ms = 50;    // first backoff; doubles each attempt
  int max_delay_ms = 5000;   // cap on one backoff
  int max_total_ms = 60000;  // give up once this much time has passed
  uint64_t seed = 0;         // jitter seed; 0 = random
  // An attempt that takes at least this long is reported to the log hook
  // (hyperfile/log.h) as a slow request; 0 = never.
  int slow_request_ms = 10000;
  // If set, retries and give-ups are counted there (MetricsStore::
  // RecordRetry/RecordGiveUp). OpenStoreStack sets it to the stack's
  // metrics layer when options.metrics is on.
  std::shared_ptr<MetricsStore> metrics;
};

// Retries Transient and Throttled errors with exponential backoff and full
// jitter, within max_attempts and max_total_ms. Other errors pass through at
// once. A retried create-only put that answers PreconditionFailed is passed
// through unchanged; resolving "did my first attempt land?" is the caller's
// business (the file layer reads the object back and compares).
//
// Log hook (hyperfile/log.h): each retry is a kWarning naming the verb, the
// store, the key, the attempt, the delay and the error ("throttled, retry
// 2/6 of get s3://b/p seg/1 in 37 ms after Throttled: ..."); a request that
// succeeds or fails for good after retries is a kInfo; giving up (attempts
// or time exhausted) is a kError; an attempt slower than slow_request_ms is
// a kWarning "slow request: ...".
HYPERFILE_EXPORT std::shared_ptr<ObjectStore> NewRetryStore(std::shared_ptr<ObjectStore> base,
                                                            const RetryOptions& options = {});

// -------------------------------------------------------------- latency ---
// Makes a fast store (memory, local) behave, in time, like a remote object
// store, for benchmarks and tests. Every request, successful or not, first
// waits the time to first byte of its verb (LatencyOptions; a List waits once
// more per page of 1,000 keys past the first, a DeleteMany once per batch of
// 1,000 keys, as S3 would send them), and a request moving N bytes (a Put's
// payload, the bytes a Get returns) waits N / bandwidth_bytes_per_s more: a
// Put waits the whole time before it reaches the base store (the object
// appears when the simulated upload ends), a Get waits for the first byte
// before and for the transfer after. The delays add to whatever the base
// store itself takes. Results, errors and data are the base store's,
// unchanged.
//
// Real sleeps on the calling thread, no shared lock: requests in flight in
// parallel wait independently and overlap, as on S3 (8 parallel GETs take
// about as long as one). LatencyOptions::max_in_flight > 0 bounds the
// requests in flight (the rest queue, waiting for a slot, as for a free
// connection in a client's pool). Thread-safe; the options are fixed at
// construction. Negative durations count as zero.
//
// In an OpenStore stack this layer sits directly on the backend (see
// OpenStoreStack), so that metrics and retries above it see the simulated
// wire.
HYPERFILE_EXPORT std::shared_ptr<ObjectStore> NewLatencyStore(std::shared_ptr<ObjectStore> base,
                                                              const LatencyOptions& options = {});

// -------------------------------------------------------------- metrics ---
enum class StoreVerb : uint8_t { kPut, kGet, kHead, kList, kDelete, kCount };

// "put", "get", "head", "list", "delete".
HYPERFILE_EXPORT const char* StoreVerbName(StoreVerb verb);

// The label of an outcome index of StoreMetricsSnapshot::outcomes (a
// Status::Code value): "ok", "not_found", ..., "out_of_range"; "other" for an
// index no code has. The CLI's --stats and the plugin's Prometheus text
// both name outcomes with it.
HYPERFILE_EXPORT const char* StoreOutcomeName(int code);

// Latency histograms: kLatencyBuckets buckets, bucket i counting requests
// that took at most kLatencyBucketBoundsUs[i] microseconds (and more than the
// bound before it); the last bucket counts everything slower (+Inf). The
// counts are per bucket, not cumulative (Prometheus's "le" buckets are the
// running sums).
inline constexpr int kLatencyBuckets = 16;
inline constexpr uint64_t kLatencyBucketBoundsUs[kLatencyBuckets - 1] = {
    250,    500,    1000,   2500,    5000,    10000,   25000,   50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

struct HYPERFILE_EXPORT LatencyHistogram {
  uint64_t buckets[kLatencyBuckets] = {};
  uint64_t count = 0;     // sum of the buckets
  uint64_t total_us = 0;  // sum of the observed latencies
  uint64_t max_us = 0;    // largest observed (not reset by operator-)
  // The bucket an observation of `us` microseconds falls in.
  static int BucketOf(uint64_t us);
  // An upper estimate of quantile q (0..1): the bound of the bucket holding
  // it (0 when empty; the largest bound for the +Inf bucket).
  uint64_t QuantileUs(double q) const;
  LatencyHistogram& operator+=(const LatencyHistogram& other);
  LatencyHistogram operator-(const LatencyHistogram& earlier) const;
};

struct HYPERFILE_EXPORT StoreMetricsSnapshot {
  static constexpr int kVerbs = static_cast<int>(StoreVerb::kCount);
  static constexpr int kCodes = 16;  // Status::Code values (index = static_cast<int>(code))
  uint64_t requests[kVerbs] = {};    // requests on the wire (every attempt)
  uint64_t errors[kVerbs] = {};
  // errors by Status::Code (index = static_cast<int>(code))
  uint64_t errors_by_code[kCodes] = {};
  // Requests by verb and outcome: [verb][code], code 0 (kOk) = success. A
  // NotFound on Get/Head is an ordinary outcome (a probe), not a failure of
  // the store.
  uint64_t outcomes[kVerbs][kCodes] = {};
  uint64_t bytes_in = 0;   // bytes returned by Get
  uint64_t bytes_out = 0;  // bytes sent by Put
  uint64_t latency_us_total[kVerbs] = {};
  uint64_t latency_us_max[kVerbs] = {};
  LatencyHistogram latency[kVerbs];  // per verb, every attempt
  // Create-only puts of a segment key ("seg/..."): the commit of a
  // checkpoint, one per flush that changed something. Its latency is the
  // commit's wire time (data objects of large flushes are uploaded before).
  LatencyHistogram commit_latency;
  // Counted by the retry layer when OpenStoreStack wires it to this one
  // (RetryOptions::metrics): retries (an attempt after the first), the
  // retries caused by throttling (a subset), and requests that failed for
  // good after more than one attempt or ran out of time.
  uint64_t retries[kVerbs] = {};
  uint64_t throttle_retries[kVerbs] = {};
  uint64_t give_ups[kVerbs] = {};

  uint64_t total_requests() const;
  uint64_t count(StoreVerb verb) const { return requests[static_cast<int>(verb)]; }
  // Difference (this - earlier), for measuring one phase of a workload.
  // Maxima are kept as they are in *this.
  StoreMetricsSnapshot operator-(const StoreMetricsSnapshot& earlier) const;
  // Sum, for adding the metrics of several stores (maxima: the larger).
  StoreMetricsSnapshot& operator+=(const StoreMetricsSnapshot& other);
  std::string ToString() const;  // one line: "put=3 get=10 ... in=1.0MiB out=..."
};

// Counts requests by verb and outcome, bytes in and out, errors by class,
// latency (totals, maxima and histograms) and commits. DeleteMany counts one
// Delete request per batch of up to 1,000 keys. Lock-free: every counter is
// a relaxed atomic, so counting costs a few atomic adds per request and a
// Snapshot taken while requests run may see one request's counters partly
// updated (each counter is exact; the set is not one instant).
class HYPERFILE_EXPORT MetricsStore : public StoreWrapper {
 public:
  explicit MetricsStore(std::shared_ptr<ObjectStore> base);
  ~MetricsStore() override;

  StoreMetricsSnapshot Snapshot() const;
  void Reset();

  // Called by the retry layer (RetryOptions::metrics): one retry of `verb`
  // (throttled: the attempt before it was Throttled), or one give-up.
  void RecordRetry(StoreVerb verb, bool throttled);
  void RecordGiveUp(StoreVerb verb);

  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override;
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override;
  Status Head(std::string_view key, ObjectInfo* info) override;
  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override;
  Status Delete(std::string_view key) override;
  Status DeleteMany(const std::vector<std::string>& keys) override;
  using ObjectStore::Get;
  using ObjectStore::Put;

  struct Counters;  // implementation detail (public for the .cc helpers)

 private:
  std::unique_ptr<Counters> counters_;
};

// ------------------------------------------------------ fault injection ---
// One call as seen by the fault layer, for predicates.
struct StoreCall {
  StoreVerb verb;
  std::string key;         // for List: the prefix; for DeleteMany: the first key
  uint64_t index;          // 0-based number of this call through the layer
  bool if_absent = false;  // Put with PutOptions::if_absent
};

// Injects failures for tests. All controls are thread-safe and can be changed
// while calls are in flight.
class HYPERFILE_EXPORT FaultInjectionStore : public StoreWrapper {
 public:
  explicit FaultInjectionStore(std::shared_ptr<ObjectStore> base);
  ~FaultInjectionStore() override;

  // Fails call number `index` (0-based, counting every call through this
  // layer) with `error` instead of forwarding it.
  void FailCall(uint64_t index, Status error);
  // Fails every call for which `predicate` returns true (until cleared).
  void FailWhen(std::function<bool(const StoreCall&)> predicate, Status error);
  // Adds latency before every forwarded call.
  void SetLatency(std::chrono::microseconds latency);
  // "Crash": the calls with index >= `index` are refused (Transient "crashed")
  // and never reach the base store. CrashAfter(0) refuses everything.
  void CrashAfter(uint64_t index);
  // Like a put whose response is lost: a Put matching `predicate` is forwarded
  // to the base store (it lands), then reported to the caller as `error`.
  void LoseResponseWhen(std::function<bool(const StoreCall&)> predicate, Status error);
  void ClearFaults();  // removes every fault above (latency too)

  uint64_t calls() const;  // calls seen so far (forwarded or not)

  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override;
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override;
  Status Head(std::string_view key, ObjectInfo* info) override;
  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override;
  Status Delete(std::string_view key) override;
  Status DeleteMany(const std::vector<std::string>& keys) override;
  using ObjectStore::Get;
  using ObjectStore::Put;

 private:
  struct State;
  // Returns the injected error for this call, or OK to forward it.
  Status Intercept(const StoreCall& call, bool* lose_response);
  std::unique_ptr<State> state_;
};

}  // namespace hyperfile
