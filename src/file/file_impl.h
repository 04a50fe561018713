// The File implementation: a write buffer of dirty blocks over a committed
// state (the head segment's header and its index tree).
//
// Flushes run on one background thread per writable handle (the flusher),
// so writers never upload and never wait for an upload unless the dirty
// budget is full. State machine of one flush: the dirty batch is frozen (new
// writes go to a fresh batch), the segment is built from the frozen batch and
// created with a create-only put; on success the new tree becomes the
// committed state, on failure the frozen batch is merged back under the newer
// writes so nothing is lost. Readers look at the current batch, then the
// frozen one, then the committed tree, and never wait for a flush.
//
// The flusher starts a flush when a Flush() caller asks (all callers waiting
// at that moment share one segment: group commit), when the current batch
// holds flush_dirty_bytes, when its oldest write is flush_interval_ms old, or
// when a writer waits for the dirty budget. Commits are strictly ordered: the
// put of checkpoint N+1 starts after N's put has answered, so a crash can
// never leave N+1 without N (docs/design/0002-commit-protocol.md).
#pragma once

#include <condition_variable>
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
#include "file/segment_io.h"
#include "hyperfile/file.h"
#include "index/btree.h"
#include "util/thread_pool.h"

namespace hyperfile::file {

// One dirty block of a batch: the bytes written to it since the batch
// began, over a base (the block's content in the layers below) that was never
// read. `valid` holds the written byte ranges (offsets inside the block);
// `data` is block_size bytes, zero outside `valid`. A block whose `valid`
// covers all of it is full and needs no base; a partial one gets its base at
// flush time, when the layers below are committed.
struct DirtyBlock {
  std::string data;
  IntervalSet valid;
  bool full(uint64_t block_size) const { return valid.Covers(0, block_size); }
};

// The mutations of one batch. Inside a batch a block in `blocks` wins over a
// punch of it (a write after a punch starts from known zeros and is full; a
// punch after a write erases the block).
struct Batch {
  std::map<uint64_t, DirtyBlock> blocks;
  IntervalSet punched;  // block ranges that became holes
  bool empty() const { return blocks.empty() && punched.empty(); }
};

// The one statement of which dirty data wins: lays `newer` over `older`
// (newer punches erase older blocks; a newer full block replaces; a newer
// partial block is overlaid on the older one's bytes, or on known zeros when
// the older batch punched it). Used when a failed flush puts its batch back
// under the writes that arrived meanwhile.
void LayerOver(Batch&& newer, Batch* older, uint64_t block_size);

class FileImpl : public File {
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
  Status Close() override;
  ~FileImpl() override;

  // Test hooks (never used by the library itself). The hook is called by the
  // flusher at named points with mu_ released ("flush:frozen": the batch is
  // frozen and its upload has not started); it may block to let a test
  // interleave operations there. FreezeForTesting freezes the current batch
  // now (as the flusher would) and wakes the flusher to upload it.
  void SetTestHook(std::function<void(std::string_view point)> hook);
  void FreezeForTesting();

 private:
  FileImpl(std::shared_ptr<ObjectStore> store, const OpenOptions& options,
           const format::SegmentHeader& head);

  Status CheckUsable(bool write) const;
  // Reads [offset, offset+len) (already clamped to the size) into buf.
  Status ReadInternal(uint64_t offset, uint64_t len, char* buf);
  // Reads from the committed tree: each read is logical bytes [offset,
  // offset+len) inside blocks [b0, b1) into buf; all their GETs run in
  // parallel.
  struct TreeRead {
    uint64_t b0, b1, offset, len;
    char* buf;
  };
  Status ReadFromTree(const index::TreeRoot& root, const std::vector<TreeRead>& reads);
  // Writes data (or zeros when data is null; whole zero blocks become holes)
  // in one step under mu_: no store request, no read of the old bytes.
  Status WriteInternal(uint64_t offset, uint64_t len, const char* data, bool extend);
  // Sequential readahead: detects a stream of adjacent reads and fetches
  // ahead of it in whole max_read_request_bytes units (see
  // IssuePrefetchLocked: a stream costs one GET per unit), into the block cache; waits for
  // prefetches that cover [offset, offset+len) so a read never fetches the same bytes twice.
  void ReadAhead(uint64_t offset, uint64_t len, uint64_t size);
  uint64_t IssuePrefetchLocked(uint64_t lo, uint64_t hi, uint64_t size);
  Status WaitForDirtyBudget();
  uint64_t DirtyBytesLocked() const;
  // Records a mutation (caller holds mu_): bumps write_seq_ and wakes the
  // flusher when a background trigger is reached.
  void NoteMutationLocked();
  uint64_t FlushThresholdBytes() const;
  bool BackgroundFlushDueLocked(int64_t now_ms) const;
  void FlusherLoop();
  // One flush of everything written so far (caller holds `lock` on mu_; it
  // is released during the upload).
  void FlushOnceLocked(std::unique_lock<std::mutex>& lock);
  void StopFlusher();
  // Data blocks (as block ranges) in [b0, b1) considering unflushed state.
  Status DataBlockRanges(uint64_t b0, uint64_t b1, IntervalSet* out);

  // The full content of the batch's partial blocks: bases fetched from the
  // committed tree `root` (coalesced, in parallel), the written bytes on top.
  Status MergeBases(const Batch& batch, const index::TreeRoot& root,
                    std::map<uint64_t, std::string>* merged);
  struct Built;
  // `merged` replaces the bytes of the batch's partial blocks.
  Status BuildSegment(const Batch& batch, const std::map<uint64_t, std::string>& merged,
                      uint64_t size, Built* out);
  Status Commit(Built* built);
  void MergeBack(const std::shared_ptr<const Batch>& frozen);
  // Moves the current batch to frozen_ (caller holds mu_, frozen_ is empty).
  void FreezeLocked();

  std::shared_ptr<ObjectStore> store_;
  OpenOptions options_;
  const uint32_t block_size_;
  const bool read_only_;
  const uint64_t writer_epoch_;
  std::unique_ptr<Lineage> lineage_;
  std::unique_ptr<NodeLoader> nodes_;
  std::unique_ptr<ChunkReader> chunks_;
  std::unique_ptr<index::Tree> tree_;
  std::unique_ptr<ThreadPool> pool_;

  mutable std::mutex mu_;       // guards everything below
  format::SegmentHeader head_;  // the committed state this handle builds on
  index::TreeRoot root_;
  uint64_t size_ = 0;
  int64_t mtime_ms_ = 0;
  Batch current_;
  std::shared_ptr<const Batch> frozen_;  // the batch being (or about to be) uploaded
  uint64_t frozen_size_ = 0;             // the file size when it was frozen
  uint64_t frozen_seq_ = 0;              // write_seq_ when it was frozen
  int64_t frozen_oldest_ms_ = 0;         // its oldest write (restored if the flush fails)
  bool frozen_pending_ = false;          // frozen by a writer, upload not started yet
  bool closed_ = false;
  bool fenced_ = false;

  // Flush pipeline (guarded by mu_).
  uint64_t write_seq_ = 0;            // bumped by every mutation
  uint64_t committed_seq_ = 0;        // mutations up to this one are committed
  uint64_t flush_requested_seq_ = 0;  // a Flush() caller waits for this one
  uint64_t flush_failures_ = 0;       // failed flushes so far
  Status last_flush_error_;
  int budget_waiters_ = 0;       // writers waiting for the dirty budget
  int64_t oldest_dirty_ms_ = 0;  // when the current batch got its first write
  int64_t retry_after_ms_ = 0;   // background flushes pause after a failure
  int64_t retry_backoff_ms_ = 0;
  bool stopping_ = false;
  std::condition_variable flush_cv_;   // wakes the flusher
  std::condition_variable commit_cv_;  // wakes Flush() callers and waiting writers
  std::thread flusher_;

  std::mutex append_mu_;  // appends are atomic with respect to each other
  std::function<void(std::string_view)> test_hook_;  // set before use, by tests only

  struct Prefetch {
    uint64_t lo, hi;
    std::shared_future<Status> done;
  };
  std::mutex readahead_mu_;  // guards the readahead state below
  uint64_t ra_next_ = 0;     // where the current stream continues
  int ra_streak_ = 0;        // adjacent reads so far
  uint64_t ra_issued_end_ = 0;
  std::vector<Prefetch> prefetches_;
};

int64_t NowMs();
uint64_t RandomU64();
StoreResolver DefaultResolver(const OpenOptions& options);
std::shared_ptr<DiskCache> SharedDiskCache(const std::string& dir, uint64_t budget);

}  // namespace hyperfile::file
