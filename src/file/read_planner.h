// SPDX-License-Identifier: Apache-2.0
// ReadPlanner: sequential readahead for one file handle, with one detector
// per stream, so several readers (NBD connections, threads) reading
// different sequential streams each get their readahead instead of resetting
// each other's streak (issue 10).
//
// The planner owns all readahead state and policy (stream table, windows,
// in-flight prefetches); it knows nothing of the store, the tree or FileImpl.
// What to fetch for a logical byte range is the file's business: the planner
// hands ranges to an Issuer callback.
//
// How FileImpl uses it (drop-in replacement of ReadAhead's stream logic):
//   - one member `ReadPlanner planner_`, built in the constructor with
//       unit       = max(max_read_request_bytes, kChunkSize)
//       max_window = min(kMaxReadaheadBytes, block_cache_bytes / 2)
//     and an issuer that is IssuePrefetchLocked's grid logic (tree Visit,
//     pool_->Submit of chunks_->Read(piece, s, e, nullptr)), appending one
//     Prefetch per submitted request to `out` instead of to prefetches_;
//   - PRead calls planner_.OnRead(offset, n, size) where it called ReadAhead,
//     WITHOUT holding mu_ (the issuer takes mu_ to copy root_);
//   - readahead_mu_, ra_next_, ra_streak_, ra_issued_end_, prefetches_ and
//     FileImpl::Prefetch go away.
//   - The issuer captures the file's `this`, so the planner must not
//     outlive the file: a plain member is right. Prefetch tasks hold no
//     reference to the planner and dropping a shared_future never blocks,
//     so member order does not matter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <mutex>
#include <vector>

#include "hyperfile/status.h"

namespace hyperfile::file {

class ReadPlanner {
 public:
  // One prefetch in flight: logical bytes [lo, hi) that will be in the cache
  // once `done` is ready. A non-OK result is not an error for anyone: the
  // read that needs those bytes fetches them itself and reports.
  struct Prefetch {
    uint64_t lo = 0;
    uint64_t hi = 0;
    std::shared_future<Status> done;
  };

  // Issues prefetches for logical bytes [lo, hi) (lo < hi <= the file size
  // passed to OnRead) and appends one Prefetch per request it started to
  // *out. Returns where what it issued ends: it may round up past hi (to cut
  // requests on its own grid); a value below hi counts as hi (e.g. a hole:
  // nothing to fetch, but nothing left to do either). One OnRead may call it
  // several times (once per gap between prefetches already in flight); the
  // planner never asks for bytes below a stream's issued end again for that
  // stream, nor for bytes in flight.
  //
  // Called with the planner's lock held, by whichever thread's OnRead
  // triggered it, one call at a time. So it must not call back into the
  // planner (deadlock), and it must not block on a prefetch or on anything
  // that waits for an OnRead. It may take other locks (FileImpl's mu_), so
  // lock order is planner lock -> those locks: never call OnRead while
  // holding one of them.
  using Issuer = std::function<uint64_t(uint64_t lo, uint64_t hi, std::vector<Prefetch>* out)>;

  struct Policy {
    // Readahead granularity in bytes: the first window, and the step the
    // windows double from. Values below 4096 are raised to 4096.
    uint64_t unit = 4096;
    // Largest window in bytes (how far ahead of a read's end a stream is
    // fetched). Readahead is off when max_window < unit.
    uint64_t max_window = 0;
    // Streams tracked at once; the least recently used one is replaced by a
    // read that continues none. Values below 1 are raised to 1 (1 is the old
    // single-detector behaviour).
    size_t max_streams = 8;
  };

  // issuer must be callable; it is used until the planner is destroyed.
  ReadPlanner(const Policy& policy, Issuer issuer);
  ReadPlanner(const ReadPlanner&) = delete;
  ReadPlanner& operator=(const ReadPlanner&) = delete;

  // Call before reading logical bytes [offset, offset+len) of a file that is
  // file_size bytes long (len is clipped to file_size; an empty or at/after
  // EOF read does nothing). Thread-safe.
  //
  // A read that starts exactly where a tracked stream's last read ended
  // continues that stream (its streak grows); any other read starts a new
  // stream, replacing the least recently used one, and leaves the other
  // streams alone. From the third adjacent read of a stream on (streak >= 2)
  // the stream is fetched up to min(file_size, read end + window), where
  // window is one unit on the third read and doubles with every further
  // adjacent read, up to max_window. Bytes already issued for a stream are
  // never issued again for it, and bytes in flight for another stream (two
  // readers of the same range) are skipped.
  //
  // Then waits for every in-flight prefetch (of any stream) that overlaps
  // [offset, offset+len), without the lock, so the read finds those bytes in
  // the cache instead of fetching them a second time. Prefetches found
  // complete are dropped.
  void OnRead(uint64_t offset, uint64_t len, uint64_t file_size);

  // For tests and metrics: streams tracked now (<= max_streams) and
  // prefetches not yet seen complete.
  size_t TrackedStreams() const;
  size_t InFlightPrefetches() const;

 private:
  struct Stream {
    uint64_t next = 0;        // where the stream's last read ended
    uint64_t issued_end = 0;  // bytes below this were issued for the stream
    int streak = 0;           // adjacent reads so far (saturates)
    uint64_t last_used = 0;   // LRU clock value of its last read
  };

  // The stream that `offset` continues, or a fresh one in place of the
  // least recently used; caller holds mu_.
  Stream& FindOrReplaceLocked(uint64_t offset);
  uint64_t WindowFor(int streak) const;
  // Issues the parts of [lo, hi) that no in-flight prefetch covers, one
  // issuer call per gap; returns where the issued (or in-flight) bytes end,
  // >= hi. Caller holds mu_.
  uint64_t IssueGapsLocked(uint64_t lo, uint64_t hi);

  const uint64_t unit_;
  const uint64_t max_window_;
  const size_t max_streams_;
  const Issuer issuer_;

  mutable std::mutex mu_;  // guards everything below
  uint64_t clock_ = 0;
  std::vector<Stream> streams_;  // at most max_streams_
  std::vector<Prefetch> prefetches_;
};

}  // namespace hyperfile::file
