// SPDX-License-Identifier: Apache-2.0
// A thread-safe LRU cache bounded by a byte budget, with two priorities:
// low-priority entries (data blocks, leaf nodes) are evicted before
// high-priority ones (interior index nodes), so the upper levels of the index
// stay in memory while leaves and data stream through. The block cache uses
// the high priority for readahead instead: a prefetched block is protected
// until its first use (GetAndDemote), so a sequential reader's blocks that
// were already read are evicted before the ones it is about to read.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace hyperfile {

template <typename Key, typename Value, typename Hash = std::hash<Key>>
class LruCache {
 public:
  explicit LruCache(uint64_t budget_bytes) : budget_(budget_bytes), high_budget_(budget_bytes) {}

  // High-priority entries may hold at most this many bytes (default: the
  // whole budget); past it the least recently used of them is evicted even
  // while low-priority entries remain. Applies from the next Put.
  void set_high_budget(uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    high_budget_ = bytes;
  }

  std::optional<Value> Get(const Key& key) { return Find(key, /*demote=*/false); }

  // Whether key is cached; changes nothing (not its recency, not the hit
  // and miss counts).
  bool Contains(const Key& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    return map_.count(key) != 0;
  }

  // Like Get, but a high-priority entry found becomes low priority (the
  // most recently used of those): for entries protected only until their
  // first use. A low-priority entry is simply made most recently used.
  std::optional<Value> GetAndDemote(const Key& key) { return Find(key, /*demote=*/true); }

  // Inserts or replaces. An entry larger than the whole budget (or, if high
  // priority, than the high budget) is not kept.
  void Put(const Key& key, Value value, uint64_t charge, bool high_priority = false) {
    std::lock_guard<std::mutex> lock(mu_);
    EraseLocked(key);
    if (charge > budget_ || (high_priority && charge > high_budget_)) return;
    List& list = high_priority ? high_ : low_;
    list.push_front(key);
    map_.emplace(key, Entry{std::move(value), charge, high_priority, list.begin()});
    used_ += charge;
    if (high_priority) high_used_ += charge;
    while (high_used_ > high_budget_) EraseLocked(high_.back());
    while (used_ > budget_) EvictOneLocked();
  }

  void Erase(const Key& key) {
    std::lock_guard<std::mutex> lock(mu_);
    EraseLocked(key);
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    map_.clear();
    low_.clear();
    high_.clear();
    used_ = 0;
    high_used_ = 0;
  }
  uint64_t used_bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return used_;
  }
  uint64_t budget_bytes() const { return budget_; }
  uint64_t hits() const {
    std::lock_guard<std::mutex> lock(mu_);
    return hits_;
  }
  uint64_t misses() const {
    std::lock_guard<std::mutex> lock(mu_);
    return misses_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return map_.size();
  }

 private:
  using List = std::list<Key>;
  struct Entry {
    Value value;
    uint64_t charge;
    bool high;
    typename List::iterator pos;
  };
  // A lookup that counts a hit or a miss and makes a hit the most recently
  // used entry of its list (of the low list, if `demote`).
  std::optional<Value> Find(const Key& key, bool demote) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) {
      misses_++;
      return std::nullopt;
    }
    hits_++;
    Entry& e = it->second;
    if (e.high && demote) {
      low_.splice(low_.begin(), high_, e.pos);
      e.high = false;
      high_used_ -= e.charge;
    } else {
      List& list = e.high ? high_ : low_;
      list.splice(list.begin(), list, e.pos);
    }
    return e.value;
  }
  void EraseLocked(const Key& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return;
    (it->second.high ? high_ : low_).erase(it->second.pos);
    used_ -= it->second.charge;
    if (it->second.high) high_used_ -= it->second.charge;
    map_.erase(it);
  }
  void EvictOneLocked() {
    List& list = low_.empty() ? high_ : low_;
    if (list.empty()) return;
    EraseLocked(list.back());
  }

  mutable std::mutex mu_;
  uint64_t budget_;
  uint64_t high_budget_;
  uint64_t used_ = 0;
  uint64_t high_used_ = 0;  // bytes of high-priority entries (<= used_)
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  List low_;
  List high_;
  std::unordered_map<Key, Entry, Hash> map_;
};

}  // namespace hyperfile
