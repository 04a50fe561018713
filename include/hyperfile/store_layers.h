// Store layers: behaviour added on top of any ObjectStore, with the same
// interface (the s3backer idea). Stack them in any order:
//
//   auto s3 = NewS3Store(...);
//   auto metrics = std::make_shared<MetricsStore>(s3);
//   auto store = NewRetryStore(metrics, RetryOptions{});
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "hyperfile/object_store.h"

namespace hyperfile {

// ---------------------------------------------------------------- retry ---
struct RetryOptions {
  int max_attempts = 6;      // including the first; >= 1
  int base_delay_ms = 50;    // first backoff; doubles each attempt
  int max_delay_ms = 5000;   // cap on one backoff
  int max_total_ms = 60000;  // give up once this much time has passed
  uint64_t seed = 0;         // jitter seed; 0 = random
};

// Retries Transient and Throttled errors with exponential backoff and full
// jitter, within max_attempts and max_total_ms. Other errors pass through at
// once. A retried create-only put that answers PreconditionFailed is passed
// through unchanged; resolving "did my first attempt land?" is the caller's
// business (the file layer reads the object back and compares).
std::shared_ptr<ObjectStore> NewRetryStore(std::shared_ptr<ObjectStore> base,
                                           const RetryOptions& options = {});

// -------------------------------------------------------------- metrics ---
enum class StoreVerb : uint8_t { kPut, kGet, kHead, kList, kDelete, kCount };

struct StoreMetricsSnapshot {
  uint64_t requests[static_cast<int>(StoreVerb::kCount)] = {};
  uint64_t errors[static_cast<int>(StoreVerb::kCount)] = {};
  // errors by Status::Code (index = static_cast<int>(code))
  uint64_t errors_by_code[16] = {};
  uint64_t bytes_in = 0;   // bytes returned by Get
  uint64_t bytes_out = 0;  // bytes sent by Put
  uint64_t latency_us_total[static_cast<int>(StoreVerb::kCount)] = {};
  uint64_t latency_us_max[static_cast<int>(StoreVerb::kCount)] = {};

  uint64_t total_requests() const;
  uint64_t count(StoreVerb verb) const { return requests[static_cast<int>(verb)]; }
  // Difference (this - earlier), for measuring one phase of a workload.
  StoreMetricsSnapshot operator-(const StoreMetricsSnapshot& earlier) const;
  std::string ToString() const;  // one line: "put=3 get=10 ... in=1.0MiB out=..."
};

// Counts requests by verb, bytes in and out, errors by class and latency.
// DeleteMany counts one Delete request per batch of up to 1,000 keys.
class MetricsStore : public ObjectStore {
 public:
  explicit MetricsStore(std::shared_ptr<ObjectStore> base);
  ~MetricsStore() override;

  StoreMetricsSnapshot Snapshot() const;
  void Reset();

  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override;
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override;
  Status Head(std::string_view key, ObjectInfo* info) override;
  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override;
  Status Delete(std::string_view key) override;
  Status DeleteMany(const std::vector<std::string>& keys) override;
  std::string Name() const override;
  using ObjectStore::Get;
  using ObjectStore::Put;

  struct Counters;  // implementation detail (public for the .cc helpers)

 private:
  std::shared_ptr<ObjectStore> base_;
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
class FaultInjectionStore : public ObjectStore {
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
  std::string Name() const override;
  using ObjectStore::Get;
  using ObjectStore::Put;

 private:
  struct State;
  // Returns the injected error for this call, or OK to forward it.
  Status Intercept(const StoreCall& call, bool* lose_response);
  std::shared_ptr<ObjectStore> base_;
  std::unique_ptr<State> state_;
};

}  // namespace hyperfile
