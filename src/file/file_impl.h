// SPDX-License-Identifier: Apache-2.0
// The File implementation: a facade over a write buffer of dirty blocks
// (write_buffer.h), the committed state (the head segment's header and its
// index tree), the read planner (read_planner.h) and the flush pipeline
// that turns frozen batches into checkpoints (flush_pipeline.h). One mutex,
// mu_, guards the handle's state and, by reference, the pipeline's
// (LevelDB's DBImpl pattern); the pipeline reaches the write buffer and the
// committed state only through the FlushHost methods implemented here.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "file/flush_pipeline.h"
#include "file/interval_set.h"
#include "file/read_planner.h"
#include "file/segment_io.h"
#include "file/write_buffer.h"
#include "hyperfile/file.h"
#include "index/btree.h"
#include "util/task_group.h"
#include "util/thread_pool.h"

namespace hyperfile::file {

class WriterLease;

class FileImpl : public File, private FlushHost {
 public:
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
  // operations there. It may run on several threads at once (two flights
  // prepare in parallel; reads run concurrently). FreezeForTesting freezes
  // the current batch now (as the flusher would, if the pipeline has room)
  // and wakes the flusher to upload it.
  void SetTestHook(std::function<void(std::string_view point)> hook);
  void FreezeForTesting();

  // Brings the stored extents `extents` (of this handle's committed state,
  // in any order) into the block cache as readahead, fetching each object's
  // uncached ones with as few ranged GETs as kPrefetchMaxGap and
  // kPrefetchMaxSpan allow, in parallel, and returns when they are all done.
  // For compaction, which rewrites a victim's scattered live blocks in an
  // order the read planner cannot predict (without it: one GET per block).
  // The index leaves over the extents' logical span are brought into the
  // index cache too (a scan: runs of back-to-back leaves in one GET each).
  // Best effort: a failed fetch caches nothing and is left to the read
  // that needs those bytes, which fetches them itself and reports.
  void PrefetchStored(std::span<const format::ExtentEntry> extents);
  // The most PrefetchStored should be asked for at once (decoded bytes), so
  // that it stays cached until it is read: a quarter of the block cache.
  uint64_t PrefetchBudget() const { return options_.block_cache_bytes / 4; }
  // A gap of dead bytes up to this long between two wanted extents is
  // fetched with them rather than costing another GET; one GET spans at
  // most kPrefetchMaxSpan bytes.
  static constexpr uint64_t kPrefetchMaxGap = 256 * 1024;
  static constexpr uint64_t kPrefetchMaxSpan = 4ull << 20;

  // A writable handle holds a writer lease (file/writer_lease.h) from before
  // it is shared until Close has made its last commit; Close releases it.
  void AdoptWriterLease(std::unique_ptr<WriterLease> lease);

 private:
  FileImpl(std::shared_ptr<ObjectStore> store, const OpenOptions& options,
           const format::SegmentHeader& head);

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
  // Records a mutation (caller holds mu_): the modification time, and the
  // pipeline's triggers (FlushPipeline::NoteMutationLocked).
  void NoteMutationLocked();
  void StopFlusher();
  // Data blocks (as block ranges) in [b0, b1) considering unflushed state;
  // *size receives the file size of the same state (taken under one lock).
  Status DataBlockRanges(uint64_t b0, uint64_t b1, IntervalSet* out, uint64_t* size);
  // FlushHost (flush_pipeline.h), for pipeline_: the current batch and the
  // committed state, under mu_; reads from the tree without it.
  size_t CurrentBlocksLocked() const override { return current_.blocks.size(); }
  bool CurrentEmptyLocked() const override { return current_.empty(); }
  uint64_t SizeLocked() const override { return size_; }
  Batch TakeBatchLocked() override;
  void PutBackLocked(Batch&& older) override;
  const format::SegmentHeader& HeadLocked() const override { return head_; }
  index::TreeRoot RootLocked() const override { return root_; }
  void InstallLocked(const BuiltSegment& built) override;
  Status CheckWritableLocked() const override { return CheckUsable(true); }
  bool ClosedLocked() const override { return closed_; }
  Status ReadBelow(const index::TreeRoot& root, const std::vector<BelowRead>& reads) override {
    return ReadFromTree(root, reads);
  }

  std::shared_ptr<ObjectStore> store_;
  OpenOptions options_;
  const uint32_t block_size_;
  const bool read_only_;
  // The codec of the blocks this handle writes, recorded in the headers it
  // commits: OpenOptions::compression, else the opened checkpoint's.
  Compression codec_;
  std::unique_ptr<Lineage> lineage_;
  std::unique_ptr<NodeLoader> nodes_;
  std::unique_ptr<ChunkReader> chunks_;
  std::unique_ptr<index::Tree> tree_;
  // Store requests run on pool_: the handle's own workers (own_pool_) or
  // the shared executor's. The groups let the destructor wait for exactly
  // this handle's tasks.
  std::unique_ptr<ThreadPool> own_pool_;
  TaskGroup pool_;

  mutable std::mutex mu_;       // guards everything below, and pipeline_'s state
  format::SegmentHeader head_;  // the committed state this handle builds on
  index::TreeRoot root_;
  uint64_t size_ = 0;
  int64_t mtime_ms_ = 0;
  Batch current_;  // takes new writes; the pipeline freezes it into flights
  bool closed_ = false;
  bool stopping_ = false;  // the refresher leaves
  // Flights, ordering, triggers, backoff; null on a read-only handle.
  std::unique_ptr<FlushPipeline> pipeline_;

  std::unique_ptr<WriterLease> writer_lease_;  // set before the handle is shared

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
