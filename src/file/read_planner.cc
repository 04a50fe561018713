// SPDX-License-Identifier: Apache-2.0
#include "file/read_planner.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace hyperfile::file {

namespace {

constexpr uint64_t kMinUnit = 4096;
// Past this many adjacent reads the window is at its maximum anyway (a unit
// of 4096 doubled 62 times overflows); saturating keeps the int from wrapping.
constexpr int kMaxStreak = 64;

bool Ready(const std::shared_future<Status>& f) {
  return !f.valid() || f.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

}  // namespace

ReadPlanner::ReadPlanner(const Policy& policy, Issuer issuer)
    : unit_(std::max(policy.unit, kMinUnit)),
      max_window_(policy.max_window),
      max_streams_(std::max<size_t>(policy.max_streams, 1)),
      issuer_(std::move(issuer)) {
  streams_.reserve(max_streams_);
}

uint64_t ReadPlanner::WindowFor(int streak) const {
  // One unit on the third adjacent read (streak 2), doubling per read after.
  uint64_t window = unit_;
  for (int i = 2; i < streak && window < max_window_; i++) {
    window = window > max_window_ / 2 ? max_window_ : window * 2;
  }
  return std::min(window, max_window_);
}

ReadPlanner::Stream& ReadPlanner::FindOrReplaceLocked(uint64_t offset) {
  // Several streams can end at the same offset (one caught up with another);
  // the longest streak wins, so an established stream is not demoted.
  Stream* best = nullptr;
  for (Stream& s : streams_) {
    if (s.next == offset && (best == nullptr || s.streak > best->streak ||
                             (s.streak == best->streak && s.last_used > best->last_used))) {
      best = &s;
    }
  }
  if (best != nullptr) {
    best->streak = std::min(best->streak + 1, kMaxStreak);
    return *best;
  }
  if (streams_.size() < max_streams_) {
    streams_.push_back(Stream{});
    return streams_.back();
  }
  Stream* lru = &streams_.front();
  for (Stream& s : streams_) {
    if (s.last_used < lru->last_used) lru = &s;
  }
  *lru = Stream{};
  return *lru;
}

uint64_t ReadPlanner::IssueGapsLocked(uint64_t lo, uint64_t hi) {
  // Bytes some stream has in flight (two readers of one range, or one
  // stream whose reads arrived out of order and split it) are not fetched
  // twice: only the gaps between in-flight prefetches go to the issuer.
  std::vector<std::pair<uint64_t, uint64_t>> busy;
  for (const Prefetch& p : prefetches_) {
    if (p.lo < hi && lo < p.hi) busy.emplace_back(p.lo, p.hi);
  }
  std::sort(busy.begin(), busy.end());
  std::vector<Prefetch> issued;
  uint64_t cur = lo;  // bytes below cur are issued or in flight
  for (const auto& b : busy) {
    if (cur >= hi) break;
    if (b.first > cur) {
      const uint64_t gap_hi = std::min(b.first, hi);
      cur = std::max(gap_hi, issuer_(cur, gap_hi, &issued));
    }
    cur = std::max(cur, b.second);
  }
  if (cur < hi) cur = std::max(hi, issuer_(cur, hi, &issued));
  for (Prefetch& p : issued) {
    if (p.lo < p.hi && p.done.valid()) prefetches_.push_back(std::move(p));
  }
  return std::max(cur, hi);
}

void ReadPlanner::OnRead(uint64_t offset, uint64_t len, uint64_t file_size) {
  if (len == 0 || offset >= file_size) return;
  const uint64_t end = offset + std::min(len, file_size - offset);
  std::vector<std::shared_future<Status>> overlapping;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::erase_if(prefetches_, [](const Prefetch& p) { return Ready(p.done); });
    Stream& stream = FindOrReplaceLocked(offset);
    stream.next = end;
    stream.last_used = ++clock_;
    if (stream.streak >= 2 && max_window_ >= unit_) {
      const uint64_t window = WindowFor(stream.streak);
      const uint64_t want = end + std::min(window, file_size - end);
      const uint64_t start = std::max(stream.issued_end, offset);
      if (start < want) stream.issued_end = IssueGapsLocked(start, want);
    }
    std::erase_if(prefetches_, [](const Prefetch& p) { return Ready(p.done); });
    for (const Prefetch& p : prefetches_) {
      if (p.lo < end && offset < p.hi) overlapping.push_back(p.done);
    }
  }
  // A failed prefetch is not an error: the read that follows fetches (and
  // reports) whatever is not in the cache.
  for (const std::shared_future<Status>& f : overlapping) f.wait();
}

size_t ReadPlanner::TrackedStreams() const {
  std::lock_guard<std::mutex> lock(mu_);
  return streams_.size();
}

size_t ReadPlanner::InFlightPrefetches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return prefetches_.size();
}

}  // namespace hyperfile::file
