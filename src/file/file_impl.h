// SPDX-License-Identifier: Apache-2.0
// The File implementation: a write buffer of dirty blocks (write_buffer.h)
// over a committed state (the head segment's header and its index tree),
// and the flush pipeline that turns frozen batches into checkpoints.
//
// Flush pipeline (one background thread per writable handle, the flusher,
// plus two stage workers — or the shared executor's flush workers, see
// hyperfile/executor.h), at most kPipelineDepth flushes in flight:
//   1. freeze: the current batch becomes a flight (new writes go to a fresh
//      batch); its checkpoint id is the head's + its place in the queue;
//   2. prepare (stage worker, may overlap the previous flight's commit): the
//      bases of its partial blocks are read through the older flights and
//      the committed tree and merged; data larger than the inline size is
//      uploaded as the flight's data object (its name carries the writer
//      epoch, so it can collide with nothing);
//   3. commit (stage worker, strictly after the previous flight's commit
//      answered): the index changes are applied to the committed tree and
//      the small segment (header + changed nodes + inline data) is created
//      with one create-only put — the commit point;
//   4. the flusher installs the new head and drops the flight.
// A flight that fails (in 2 or 3) puts itself and every newer flight back
// under the current batch (LayerOver), so nothing acknowledged is lost, and
// the writer epoch changes so a retry never reuses an object name. Readers
// look at the current batch, the flights newest first, then the committed
// tree, and never wait for a flush.
//
// The flusher freezes when a Flush() caller asks (all callers waiting at
// that moment share one segment: group commit), when the current batch
// holds flush_dirty_bytes, when its oldest write is flush_interval_ms old,
// or when a writer waits for the dirty budget
// (docs/design/0005-write-path-v2.md).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "file/interval_set.h"
#include "file/read_planner.h"
#include "file/segment_io.h"
#include "file/write_buffer.h"
#include "hyperfile/file.h"
#include "index/btree.h"
#include "util/task_group.h"
#include "util/thread_pool.h"

namespace hyperfile::file {

class FileImpl : public File {
 public:
  // Flushes in flight at most: one committing while the next prepares.
  static constexpr size_t kPipelineDepth = 2;

  // `read` is the segment header the handle starts from; `at` (optional)
  // replaces its own checkpoint (time travel through a header's history).
  static Result<std::unique_ptr<FileImpl>> Make(std::shared_ptr<ObjectStore> store,
                                                const OpenOptions& options, const HeaderRead& read,
                                                const format::Descriptor* at);

  Result<size_t> PRead(uint64_t offset, void* buf, size_t len) override;
  Status PWrite(uint64_t offset, const void* buf, size_t len) override;
  Result<uint64_t> Append(const void* buf, size_t len) override;
  Status Truncate(uint64_t size) override;
  Status WriteZeroes(uint64_t offset, uint64_t len) override;
  Status PunchHole(uint64_t offset, uint64_t len) override;
  Result<uint64_t> Flush() override;
  Result<FileStat> Stat() override;
  uint64_t Size() const override;
  Result<uint64_t> SeekData(uint64_t offset) override;
  Result<uint64_t> SeekHole(uint64_t offset) override;
  Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t len) override;
  Result<RefreshResult> Refresh() override;
  Status Close() override;
  ~FileImpl() override;

  // Called by File::Open on a read-only handle of the latest state, before
  // the handle is shared: makes Refresh() available and starts the
  // background refresh if options.refresh_interval_ms > 0 (refresh.cc).
  void StartFollowing();

  // Test hooks (never used by the library itself). The hook is called by the
  // flusher at named points with mu_ released ("flush:frozen": the batch is
  // frozen and its upload has not started; "flush:commit": the commit put
  // is about to start; "read:planned": a PRead has taken its readahead hint
  // and not yet its state; "read:snapshot": a read has taken its state and
  // not yet fetched anything; "refresh:install": a Refresh has read the new
  // head and not yet installed it); it may block to let a test interleave
  // operations there. FreezeForTesting freezes the current batch now (as the flusher
  // would, if the pipeline has room) and wakes the flusher to upload it.
  void SetTestHook(std::function<void(std::string_view point)> hook);
  void FreezeForTesting();

 private:
  FileImpl(std::shared_ptr<ObjectStore> store, const OpenOptions& options,
           const format::SegmentHeader& head);

  struct Flight;
  struct Prepared;
  struct Built;

  Status CheckUsable(bool write) const;
  // Reads [offset, offset+len), clamped to the size of the state it takes
  // (size, tree and unflushed layers under one lock), into buf; returns the
  // number of bytes read.
  Result<uint64_t> ReadInternal(uint64_t offset, uint64_t len, char* buf);
  // Reads from the committed tree: holes are zeros, data extents are fetched
  // with one ranged GET per piece (split at max_read_request_bytes), all in
  // parallel.
  Status ReadFromTree(const index::TreeRoot& root, const std::vector<BelowRead>& reads);
  // Writes data (or zeros when data is null; whole zero blocks become holes)
  // in one step under mu_: no store request, no read of the old bytes.
  Status WriteInternal(uint64_t offset, uint64_t len, const char* data, bool extend);
  // The read planner's issuer: prefetches logical bytes [lo, hi) into the
  // block cache on a grid that costs one GET per max_read_request_bytes;
  // returns where what it issued ends (may pass hi).
  uint64_t IssuePrefetch(uint64_t lo, uint64_t hi, std::vector<ReadPlanner::Prefetch>* out);
  Status WaitForDirtyBudget();
  uint64_t DirtyBytesLocked() const;
  // Records a mutation (caller holds mu_): bumps write_seq_ and wakes the
  // flusher when a background trigger is reached.
  void NoteMutationLocked();
  uint64_t FlushThresholdBytes() const;
  bool BackgroundFlushDueLocked(int64_t now_ms) const;
  void StopFlusher();
  // Data blocks (as block ranges) in [b0, b1) considering unflushed state;
  // *size receives the file size of the same state (taken under one lock).
  Status DataBlockRanges(uint64_t b0, uint64_t b1, IntervalSet* out, uint64_t* size);
  // The layers for a read (caller holds mu_): `current` (a copy of the
  // current batch's blocks in [b0, b1), may be null), then the flights
  // newest first, from the `skip_newest`-th newest on.
  std::vector<Layer> LayersLocked(const Batch* current, size_t skip_newest) const;

  // --- flush pipeline (flush.cc part of file_impl.cc) ---
  void FlusherLoop();
  // Moves the current batch into a new flight (caller holds mu_, a free
  // place in the pipeline).
  void FreezeLocked();
  // Starts the stage the flight is ready for on a stage worker.
  void StartPrepareLocked(const std::shared_ptr<Flight>& flight);
  void StartCommitLocked(const std::shared_ptr<Flight>& flight);
  // Stage 2 and 3 (no lock held).
  Status Prepare(Flight* flight, const std::vector<Layer>& below, const index::TreeRoot& root);
  Status BuildSegment(const Flight& flight, const format::SegmentHeader& head,
                      const index::TreeRoot& root, Built* out);
  Status Commit(const format::SegmentHeader& head, Built* built);
  // Installs the committed front flight (caller holds mu_).
  void FinishCommitLocked();
  // Puts every flight back under the current batch after the front failed
  // with `error` (caller holds mu_, no stage running).
  void FailFlightsLocked(const Status& error);
  bool StageRunningLocked() const;

  std::shared_ptr<ObjectStore> store_;
  OpenOptions options_;
  const uint32_t block_size_;
  const bool read_only_;
  std::unique_ptr<Lineage> lineage_;
  std::unique_ptr<NodeLoader> nodes_;
  std::unique_ptr<ChunkReader> chunks_;
  std::unique_ptr<index::Tree> tree_;
  // Store requests run on pool_: the handle's own workers (own_pool_) or
  // the shared executor's. The groups let the destructor wait for exactly
  // this handle's tasks.
  std::unique_ptr<ThreadPool> own_pool_;
  TaskGroup pool_;

  mutable std::mutex mu_;       // guards everything below
  format::SegmentHeader head_;  // the committed state this handle builds on
  index::TreeRoot root_;
  uint64_t size_ = 0;
  int64_t mtime_ms_ = 0;
  uint64_t writer_epoch_;  // random; changes after every failed flush
  Batch current_;
  // Flushes in flight, oldest first (the front is the next to commit).
  std::deque<std::shared_ptr<Flight>> flights_;
  bool closed_ = false;
  bool fenced_ = false;

  uint64_t write_seq_ = 0;            // bumped by every mutation
  uint64_t committed_seq_ = 0;        // mutations up to this one are committed
  uint64_t flush_requested_seq_ = 0;  // a Flush() caller waits for this one
  uint64_t flush_failures_ = 0;       // failed flushes so far
  Status last_flush_error_;
  int budget_waiters_ = 0;       // writers waiting for the dirty budget
  int64_t oldest_dirty_ms_ = 0;  // when the current batch got its first write
  int64_t retry_after_ms_ = 0;   // background flushes pause after a failure
  int64_t retry_backoff_ms_ = 0;
  int stages_running_ = 0;  // stage tasks that have not reported back
  bool stopping_ = false;
  std::condition_variable flush_cv_;   // wakes the flusher
  std::condition_variable commit_cv_;  // wakes Flush() callers and waiting writers
  std::thread flusher_;
  std::unique_ptr<ThreadPool> own_stages_;
  TaskGroup stages_;  // runs prepare and commit stages

  std::mutex append_mu_;  // appends are atomic with respect to each other
  std::function<void(std::string_view)> test_hook_;  // set before use, by tests only

  // Following the head (refresh.cc). followable_ is set before the handle
  // is shared and never changes; refresh_mu_ serializes refreshes (held
  // across their store requests, never by readers); the refresher thread
  // waits on refresh_cv_ under mu_ and leaves when stopping_.
  bool followable_ = false;
  std::mutex refresh_mu_;
  std::condition_variable refresh_cv_;
  std::thread refresher_;
  void RefresherLoop();
  void StopRefresher();

  // Sequential readahead, per stream (several NBD connections reading
  // different streams do not reset each other). Never called with mu_ held.
  std::unique_ptr<ReadPlanner> planner_;
};

int64_t NowMs();
uint64_t RandomU64();
StoreResolver DefaultResolver(const OpenOptions& options);
std::shared_ptr<DiskCache> SharedDiskCache(const std::string& dir, uint64_t budget);

}  // namespace hyperfile::file
