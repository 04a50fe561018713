// SPDX-License-Identifier: Apache-2.0
// A set of disjoint half-open ranges [start, end), merged on insert. Used
// for punched (hole) block ranges that may be huge (a truncate of a 1 TiB
// file), which a per-block set could not hold, and for the written byte
// ranges of a dirty block.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>

namespace hyperfile {

class IntervalSet {
 public:
  void Add(uint64_t start, uint64_t end) {
    if (start >= end) return;
    auto it = ranges_.upper_bound(start);
    if (it != ranges_.begin()) {
      auto prev = std::prev(it);
      if (prev->second >= start) {
        start = prev->first;
        end = std::max(end, prev->second);
        it = ranges_.erase(prev);
      }
    }
    while (it != ranges_.end() && it->first <= end) {
      end = std::max(end, it->second);
      it = ranges_.erase(it);
    }
    ranges_[start] = end;
  }
  bool Contains(uint64_t x) const {
    auto it = ranges_.upper_bound(x);
    if (it == ranges_.begin()) return false;
    return std::prev(it)->second > x;
  }
  // Calls fn(s, e) for each stored range clipped to [start, end), in order.
  void ForEachIn(uint64_t start, uint64_t end,
                 const std::function<void(uint64_t, uint64_t)>& fn) const {
    auto it = ranges_.upper_bound(start);
    if (it != ranges_.begin()) --it;
    for (; it != ranges_.end() && it->first < end; ++it) {
      uint64_t s = std::max(it->first, start), e = std::min(it->second, end);
      if (s < e) fn(s, e);
    }
  }
  // Calls fn(s, e) for each gap (range not in the set) inside [start, end).
  void ForEachGap(uint64_t start, uint64_t end,
                  const std::function<void(uint64_t, uint64_t)>& fn) const {
    uint64_t pos = start;
    ForEachIn(start, end, [&](uint64_t s, uint64_t e) {
      if (s > pos) fn(pos, s);
      pos = e;
    });
    if (pos < end) fn(pos, end);
  }
  // True if one stored range holds all of [start, end) (an empty range is
  // always covered).
  bool Covers(uint64_t start, uint64_t end) const {
    if (start >= end) return true;
    auto it = ranges_.upper_bound(start);
    if (it == ranges_.begin()) return false;
    return std::prev(it)->second >= end;
  }
  bool empty() const { return ranges_.empty(); }
  void clear() { ranges_.clear(); }
  const std::map<uint64_t, uint64_t>& ranges() const { return ranges_; }

 private:
  std::map<uint64_t, uint64_t> ranges_;
};

}  // namespace hyperfile
