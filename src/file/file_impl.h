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
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "file/interval_set.h"
#include "file/segment_io.h"
#include "hyperfile/file.h"
#include "index/btree.h"
#include "util/thread_pool.h"

namespace hyperfile::file {

struct Batch {
  std::map<uint64_t, std::string> blocks;  // block number -> block_size bytes
  IntervalSet punched;                     // block ranges that became holes
  bool empty() const { return blocks.empty() && punched.empty(); }
};

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

 private:
  FileImpl(std::shared_ptr<ObjectStore> store, const OpenOptions& options,
           const format::SegmentHeader& head);

  Status CheckUsable(bool write) const;
  // Reads [offset, offset+len) (already clamped to the size) into buf.
  Status ReadInternal(uint64_t offset, uint64_t len, char* buf);
  Status ReadFromTree(const index::TreeRoot& root, uint64_t first_block, uint64_t end_block,
                      uint64_t offset, uint64_t len, char* buf);
  // The current bytes of one block (zeros past `size`), read outside mu_ for
  // a read-modify-write; the caller re-checks under mu_ that nothing moved.
  Result<std::string> ReadBlockBase(uint64_t block, uint64_t size);
  // Writes data (or zeros when data is null; whole zero blocks become holes).
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

  struct Built;
  Status BuildSegment(const Batch& batch, uint64_t size, Built* out);
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
  uint64_t mutation_epoch_ = 0;          // bumped by punches; RMW retries when it moves
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
