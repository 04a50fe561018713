// SPDX-License-Identifier: Apache-2.0
// The renewal thread of a lease object (file/lease_renewer.h).
#include "file/lease_renewer.h"

#include <algorithm>
#include <condition_variable>
#include <utility>

namespace hyperfile::file {

namespace {

class CvSleeper : public Sleeper {
 public:
  bool SleepFor(std::chrono::milliseconds d) override {
    std::unique_lock<std::mutex> lock(mu_);
    return !cv_.wait_for(lock, d, [this] { return woken_; });
  }
  void Wake() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      woken_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
};

}  // namespace

std::unique_ptr<Sleeper> NewSleeper() { return std::make_unique<CvSleeper>(); }

LeaseRenewer::LeaseRenewer(int64_t ttl_ms, RenewFn renew, std::unique_ptr<Sleeper> sleeper)
    : interval_(std::max<int64_t>(ttl_ms / 3, 1)),
      renew_(std::move(renew)),
      sleeper_(sleeper ? std::move(sleeper) : NewSleeper()) {
  thread_ = std::thread([this] { Run(); });
}

LeaseRenewer::~LeaseRenewer() { Stop(); }

void LeaseRenewer::Run() {
  while (sleeper_->SleepFor(interval_)) Record(renew_());
}

void LeaseRenewer::Record(const Status& st) {
  std::lock_guard<std::mutex> lock(mu_);
  last_ = st;
}

Status LeaseRenewer::RenewNow() {
  Status st = renew_();
  Record(st);
  return st;
}

Status LeaseRenewer::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_;
}

void LeaseRenewer::Stop() {
  sleeper_->Wake();
  std::lock_guard<std::mutex> lock(join_mu_);
  if (thread_.joinable()) thread_.join();
}

}  // namespace hyperfile::file
