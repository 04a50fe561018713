// SPDX-License-Identifier: Apache-2.0
// A thread-safe LRU cache bounded by a byte budget, with two priorities:
// low-priority entries (data blocks, leaf nodes) are evicted before
// high-priority ones (interior index nodes), so the upper levels of the index
// stay in memory while leaves and data stream through.
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
  explicit LruCache(uint64_t budget_bytes) : budget_(budget_bytes) {}

  std::optional<Value> Get(const Key& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) {
      misses_++;
      return std::nullopt;
    }
    hits_++;
    List& list = it->second.high ? high_ : low_;
    list.splice(list.begin(), list, it->second.pos);  // most recently used first
    return it->second.value;
  }

  // Inserts or replaces. An entry larger than the whole budget is not kept.
  void Put(const Key& key, Value value, uint64_t charge, bool high_priority = false) {
    std::lock_guard<std::mutex> lock(mu_);
    EraseLocked(key);
    if (charge > budget_) return;
    List& list = high_priority ? high_ : low_;
    list.push_front(key);
    map_.emplace(key, Entry{std::move(value), charge, high_priority, list.begin()});
    used_ += charge;
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
  void EraseLocked(const Key& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return;
    (it->second.high ? high_ : low_).erase(it->second.pos);
    used_ -= it->second.charge;
    map_.erase(it);
  }
  void EvictOneLocked() {
    List& list = low_.empty() ? high_ : low_;
    if (list.empty()) return;
    EraseLocked(list.back());
  }

  mutable std::mutex mu_;
  uint64_t budget_;
  uint64_t used_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  List low_;
  List high_;
  std::unordered_map<Key, Entry, Hash> map_;
};

}  // namespace hyperfile
