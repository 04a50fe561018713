// SPDX-License-Identifier: Apache-2.0
// Simulated latency: time to first byte per verb and a per-request bandwidth,
// applied with real sleeps so that parallel requests overlap.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "hyperfile/store_layers.h"

namespace hyperfile {
namespace {

using std::chrono::microseconds;

constexpr uint64_t kKeysPerPage = 1000;  // ListObjectsV2 page, DeleteObjects batch

class LatencyStore : public StoreWrapper {
 public:
  LatencyStore(std::shared_ptr<ObjectStore> base, const LatencyOptions& options)
      : StoreWrapper(std::move(base)), options_(NonNegative(options)) {}

  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    Slot slot(this);
    uint64_t bytes = 0;
    for (std::string_view piece : data) bytes += piece.size();
    const uint64_t part = options_.multipart_part_size;
    if (!options.if_absent && options_.multipart_threshold > 0 && part > 0 &&
        bytes > options_.multipart_threshold) {
      // Start, then waves of parts uploaded in parallel, then completion.
      const uint64_t parts = (bytes + part - 1) / part;
      const uint64_t width = static_cast<uint64_t>(std::max(1, options_.multipart_parallelism));
      const uint64_t waves = (parts + width - 1) / width;
      Wait(options_.put_ttfb * static_cast<int64_t>(2 + waves) +
           Transfer(std::min(part, bytes)) * static_cast<int64_t>(waves));
    } else {
      Wait(options_.put_ttfb + Transfer(bytes));
    }
    return base()->Put(key, data, options, info);
  }
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    Slot slot(this);
    Wait(options_.get_ttfb);
    Status st = base()->Get(key, offset, length, out, info);
    if (st.ok()) Wait(Transfer(out->size()));
    return st;
  }
  Status Head(std::string_view key, ObjectInfo* info) override {
    Slot slot(this);
    Wait(options_.head_ttfb);
    return base()->Head(key, info);
  }
  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override {
    Slot slot(this);
    Wait(options_.list_ttfb);
    size_t before = out->size();
    Status st = base()->List(prefix, start_after, limit, out);
    uint64_t listed = out->size() - before;
    if (listed > kKeysPerPage)
      Wait(options_.list_ttfb * static_cast<int64_t>((listed - 1) / kKeysPerPage));
    return st;
  }
  Status Delete(std::string_view key) override {
    Slot slot(this);
    Wait(options_.delete_ttfb);
    return base()->Delete(key);
  }
  Status DeleteMany(const std::vector<std::string>& keys) override {
    Slot slot(this);
    uint64_t batches = std::max<uint64_t>(1, (keys.size() + kKeysPerPage - 1) / kKeysPerPage);
    Wait(options_.delete_ttfb * static_cast<int64_t>(batches));
    return base()->DeleteMany(keys);
  }

 private:
  static LatencyOptions NonNegative(LatencyOptions o) {
    for (microseconds* t : {&o.get_ttfb, &o.put_ttfb, &o.head_ttfb, &o.list_ttfb, &o.delete_ttfb})
      *t = std::max(*t, microseconds{0});
    return o;
  }

  // Holds one of max_in_flight slots for the life of a request (none when
  // unlimited).
  class Slot {
   public:
    explicit Slot(LatencyStore* s) : s_(s->options_.max_in_flight > 0 ? s : nullptr) {
      if (!s_) return;
      std::unique_lock<std::mutex> lock(s_->mu_);
      s_->room_.wait(lock, [&] { return s_->in_flight_ < s_->options_.max_in_flight; });
      s_->in_flight_++;
    }
    ~Slot() {
      if (!s_) return;
      {
        std::lock_guard<std::mutex> lock(s_->mu_);
        s_->in_flight_--;
      }
      s_->room_.notify_one();
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    LatencyStore* s_;
  };

  microseconds Transfer(uint64_t bytes) const {
    if (options_.bandwidth_bytes_per_s == 0 || bytes == 0) return microseconds{0};
    double us =
        static_cast<double>(bytes) * 1e6 / static_cast<double>(options_.bandwidth_bytes_per_s);
    return microseconds{static_cast<int64_t>(us)};
  }

  static void Wait(microseconds d) {
    if (d.count() > 0) std::this_thread::sleep_for(d);
  }

  const LatencyOptions options_;
  std::mutex mu_;
  std::condition_variable room_;
  int in_flight_ = 0;
};

}  // namespace

std::shared_ptr<ObjectStore> NewLatencyStore(std::shared_ptr<ObjectStore> base,
                                             const LatencyOptions& options) {
  return std::make_shared<LatencyStore>(std::move(base), options);
}

}  // namespace hyperfile
