// Retries transient and throttled errors with exponential backoff and full
// jitter, within a bounded number of attempts and a bounded total time.
#include <algorithm>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

#include "hyperfile/store_layers.h"

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
    return Retry([&] { return base()->Put(key, data, options, info); });
  }
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    return Retry([&] { return base()->Get(key, offset, length, out, info); });
  }
  Status Head(std::string_view key, ObjectInfo* info) override {
    return Retry([&] { return base()->Head(key, info); });
  }
  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override {
    size_t before = out->size();
    return Retry([&] {
      out->resize(before);  // drop a partial listing before trying again
      return base()->List(prefix, start_after, limit, out);
    });
  }
  Status Delete(std::string_view key) override {
    return Retry([&] { return base()->Delete(key); });
  }
  Status DeleteMany(const std::vector<std::string>& keys) override {
    return Retry([&] { return base()->DeleteMany(keys); });
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

  template <typename Fn>
  Status Retry(Fn fn) {
    auto start = std::chrono::steady_clock::now();
    Status st;
    int attempt = 0;
    while (true) {
      st = fn();
      attempt++;
      if (!st.IsRetryable() || attempt >= options_.max_attempts) break;
      int64_t delay = Backoff(attempt - 1);
      auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - start)
                         .count();
      // Never sleep past the time budget: give up now instead.
      if (elapsed + delay > options_.max_total_ms) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    }
    if (attempt == 1 || !st.IsRetryable()) return st;
    return st.WithContext("gave up after " + std::to_string(attempt) + " attempts");
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
