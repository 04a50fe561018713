// SPDX-License-Identifier: Apache-2.0
// A local-disk cache of clean data chunks with a byte budget, kept across
// reopens and restarts.
//
// Segments are immutable, so a chunk is named for ever by (file id, segment
// id, segment writer epoch, offset in the segment). The file id alone is not
// enough: every copy of a file's prefix (cp -a, aws s3 sync) shares it, and
// the copies' later segments with the same id hold different bytes. Those
// were written by different writer sessions, and the writer epoch (random
// per session, in each segment's header and in every leaf extent that
// points into the segment) tells them apart. Nothing is ever invalidated;
// old entries just age out.
//
// Layout (hand-written: no Debian library offers a crash-tolerant on-disk
// cache with a byte budget): the directory holds append-only slab files
// `slab-<16 hex digits>`, each a sequence of records
//
//   magic u32 "HFD2" | crc32c u32 of everything after it | file id u64 |
//   segment u64 | epoch u64 | offset u64 | length u32 | payload (length bytes)
//
// (Slabs of the older "HFDC" layout, without the epoch, stop the scan at
// their first record and are aged out like any other.)
//
// (little-endian). Opening scans the slabs and indexes every intact record; a
// torn tail after a crash stops the scan of that slab. Eviction deletes the
// oldest slab when the total exceeds the budget (FIFO by slab, which costs
// no bookkeeping writes). Every read re-checks the record's CRC, so a damaged
// file gives a miss, never wrong data. An exclusive flock on `LOCK` keeps a
// second process out (it runs without the disk tier rather than corrupt it).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "hyperfile/status.h"

namespace hyperfile {

struct DiskCacheKey {
  uint64_t file_id = 0;
  uint64_t segment = 0;
  uint64_t epoch = 0;  // writer epoch of the segment
  uint64_t offset = 0;
  bool operator==(const DiskCacheKey& o) const = default;
};

class DiskCache {
 public:
  // Opens or creates the cache in `dir` (created if missing).
  static Result<std::unique_ptr<DiskCache>> Open(const std::string& dir, uint64_t budget_bytes);
  ~DiskCache();
  DiskCache(const DiskCache&) = delete;
  DiskCache& operator=(const DiskCache&) = delete;

  // True and the payload in *out if the entry is present and intact.
  bool Get(const DiskCacheKey& key, std::string* out);
  // Best effort: a full disk or a write error just leaves the entry out.
  void Put(const DiskCacheKey& key, std::string_view payload);

  uint64_t used_bytes() const;
  uint64_t budget_bytes() const { return budget_; }
  size_t entries() const;

 private:
  struct KeyHash {
    size_t operator()(const DiskCacheKey& k) const {
      return std::hash<uint64_t>()(k.file_id ^ (k.segment * 0x9E3779B97F4A7C15ull) ^ k.epoch ^
                                   (k.offset * 0xC2B2AE3D27D4EB4Full));
    }
  };
  struct Location {
    uint64_t slab;
    uint64_t offset;  // of the record
    uint32_t length;  // of the payload
  };
  struct Slab {
    int fd = -1;
    uint64_t size = 0;
    std::vector<DiskCacheKey> keys;
  };

  DiskCache(std::string dir, uint64_t budget, int lock_fd);
  Status Scan();
  void ScanSlab(uint64_t seq, Slab* slab);
  Status StartSlabLocked();
  void EvictLocked();
  std::string SlabPath(uint64_t seq) const;

  const std::string dir_;
  const uint64_t budget_;
  const uint64_t slab_bytes_;
  const int lock_fd_;
  mutable std::mutex mu_;
  std::map<uint64_t, Slab> slabs_;  // by sequence number, oldest first
  std::unordered_map<DiskCacheKey, Location, KeyHash> index_;
  uint64_t used_ = 0;
};

}  // namespace hyperfile
