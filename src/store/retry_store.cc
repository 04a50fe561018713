// SPDX-License-Identifier: Apache-2.0
// Retries transient and throttled errors with exponential backoff and full
// jitter, within a bounded number of attempts and a bounded total time, and
// reports retries, throttling, give-ups and slow requests to the log hook.
#include <algorithm>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

#include "hyperfile/store_layers.h"
#include "util/logging.h"

namespace hyperfile {
namespace {

class RetryStore : public StoreWrapper {
 public:
  RetryStore(std::shared_ptr<ObjectStore> base, const RetryOptions& options)
      : StoreWrapper(std::move(base)),
        options_(options),
        rng_(options.seed ? options.seed : std::random_device{}()) {
    options_.max_attempts = std::max(1, options_.max_attempts);
  }

  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    return Retry(StoreVerb::kPut, "put", key,
                 [&] { return base()->Put(key, data, options, info); });
  }
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    return Retry(StoreVerb::kGet, "get", key,
                 [&] { return base()->Get(key, offset, length, out, info); });
  }
  Status Head(std::string_view key, ObjectInfo* info) override {
    return Retry(StoreVerb::kHead, "head", key, [&] { return base()->Head(key, info); });
  }
  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override {
    size_t before = out->size();
    return Retry(StoreVerb::kList, "list", prefix, [&] {
      out->resize(before);  // drop a partial listing before trying again
      return base()->List(prefix, start_after, limit, out);
    });
  }
  Status Delete(std::string_view key) override {
    return Retry(StoreVerb::kDelete, "delete", key, [&] { return base()->Delete(key); });
  }
  Status DeleteMany(const std::vector<std::string>& keys) override {
    return Retry(StoreVerb::kDelete, "delete-many",
                 keys.empty() ? std::string_view() : std::string_view(keys[0]),
                 [&] { return base()->DeleteMany(keys); });
  }

 private:
  // Full jitter: a uniform delay in [0, min(max_delay, base * 2^attempt)],
  // so clients that failed together do not retry together.
  int64_t Backoff(int attempt) {
    int64_t cap = std::min<int64_t>(options_.max_delay_ms,
                                    int64_t{options_.base_delay_ms} << std::min(attempt, 20));
    std::lock_guard<std::mutex> lock(mu_);
    return std::uniform_int_distribution<int64_t>(0, std::max<int64_t>(cap, 0))(rng_);
  }

  // "get s3://bucket/prefix key": names the request in log lines.
  std::string Describe(std::string_view verb, std::string_view key) const {
    std::string d(verb);
    d += ' ';
    d += Name();
    d += ' ';
    d += key;
    return d;
  }

  template <typename Fn>
  Status Retry(StoreVerb store_verb, std::string_view verb, std::string_view key, Fn fn) {
    using Clock = std::chrono::steady_clock;
    auto ms_since = [](Clock::time_point t) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
    };
    auto start = Clock::now();
    Status st;
    int attempt = 0;
    while (true) {
      auto attempt_start = Clock::now();
      st = fn();
      attempt++;
      if (options_.slow_request_ms > 0 && LogEnabled()) {
        int64_t took = ms_since(attempt_start);
        if (took >= options_.slow_request_ms) {
          Log(LogLevel::kWarning, "slow request: " + Describe(verb, key) + " took " +
                                      std::to_string(took) + " ms (slow_request_ms " +
                                      std::to_string(options_.slow_request_ms) + ")" +
                                      (st.ok() ? std::string() : ": " + st.ToString()));
        }
      }
      if (!st.IsRetryable() || attempt >= options_.max_attempts) break;
      int64_t delay = Backoff(attempt - 1);
      // Never sleep past the time budget: give up now instead.
      if (ms_since(start) + delay > options_.max_total_ms) break;
      if (options_.metrics) options_.metrics->RecordRetry(store_verb, st.IsThrottled());
      if (LogEnabled()) {
        Log(LogLevel::kWarning, std::string(st.IsThrottled() ? "throttled, " : "") + "retry " +
                                    std::to_string(attempt + 1) + "/" +
                                    std::to_string(options_.max_attempts) + " of " +
                                    Describe(verb, key) + " in " + std::to_string(delay) +
                                    " ms after " + st.ToString());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    }
    if (attempt == 1 || !st.IsRetryable()) {
      if (attempt > 1 && LogEnabled()) {
        Log(LogLevel::kInfo, Describe(verb, key) + ": " + (st.ok() ? "succeeded" : st.ToString()) +
                                 " on attempt " + std::to_string(attempt));
      }
      return st;
    }
    if (options_.metrics) options_.metrics->RecordGiveUp(store_verb);
    Status failed = st.WithContext("gave up after " + std::to_string(attempt) + " attempts");
    if (LogEnabled()) Log(LogLevel::kError, Describe(verb, key) + ": " + failed.ToString());
    return failed;
  }

  RetryOptions options_;
  std::mutex mu_;
  std::mt19937_64 rng_;
};

}  // namespace

std::shared_ptr<ObjectStore> NewRetryStore(std::shared_ptr<ObjectStore> base,
                                           const RetryOptions& options) {
  return std::make_shared<RetryStore>(std::move(base), options);
}

}  // namespace hyperfile
