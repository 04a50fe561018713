// SPDX-License-Identifier: Apache-2.0
// The renewal thread of a lease object: one owner for "rewrite it every
// ttl/3 until stopped", used by writer leases (file/writer_lease.h) and
// reader leases (hyperfile/gc.h, gc/lease.cc). A lease lives ttl after its
// last write by the store's clock, so renewing at ttl/3 leaves two renewals'
// worth of slack for a slow or failed put.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "hyperfile/status.h"

namespace hyperfile::file {

// How a renewer waits between renewals. SleepFor blocks until `d` has
// passed (true) or Wake was called (false, at once and for every later
// call). Both are called from any thread. The default one (NewSleeper)
// waits on a condition variable, so Wake ends a wait at once rather than
// at the interval's end; tests give a sleeper they advance by hand.
class Sleeper {
 public:
  virtual ~Sleeper() = default;
  virtual bool SleepFor(std::chrono::milliseconds d) = 0;
  virtual void Wake() = 0;
};
std::unique_ptr<Sleeper> NewSleeper();

// Calls `renew` (which rewrites the lease object, e.g. one put of its
// bytes) on its own thread every ttl/3 (at least 1 ms), the first time
// ttl/3 after construction, until Stop or destruction.
//
// A renewal that fails is recorded (status()) and renewing goes on at the
// same interval: the next one may succeed (status() is then OK again), and
// the lease may lapse in between; the holder decides what a lapsed lease
// means (the store's clock, not this class, says when it lapsed).
//
// Stop (and the destructor) wakes the thread at once, waits for a renewal
// under way to return, and after it returns `renew` is never called again
// by the thread, so the caller may delete the lease object without it
// coming back. Stop is idempotent.
//
// Thread-safety: status, RenewNow and Stop may be called from any thread
// (not from inside `renew`: Stop would wait for itself). `renew` runs on
// the renewer's thread and on RenewNow's caller, possibly at the same time.
class LeaseRenewer {
 public:
  using RenewFn = std::function<Status()>;
  // ttl_ms > 0; sleeper: null for NewSleeper().
  LeaseRenewer(int64_t ttl_ms, RenewFn renew, std::unique_ptr<Sleeper> sleeper = nullptr);
  ~LeaseRenewer();
  LeaseRenewer(const LeaseRenewer&) = delete;
  LeaseRenewer& operator=(const LeaseRenewer&) = delete;

  // The wait between renewals: ttl/3, at least 1 ms.
  std::chrono::milliseconds interval() const { return interval_; }
  // Renews now on the caller's thread (also after Stop); recorded like the
  // thread's renewals. Returns what `renew` returned.
  Status RenewNow();
  // The last renewal's result (OK before the first).
  Status status() const;
  void Stop();

 private:
  void Run();
  void Record(const Status& st);

  const std::chrono::milliseconds interval_;
  const RenewFn renew_;
  const std::unique_ptr<Sleeper> sleeper_;
  mutable std::mutex mu_;  // guards last_
  Status last_;
  std::mutex join_mu_;  // one Stop joins, a concurrent one waits for it
  std::thread thread_;
};

}  // namespace hyperfile::file
