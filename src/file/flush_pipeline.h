// SPDX-License-Identifier: Apache-2.0
// The flush pipeline: turns frozen batches of a handle's write buffer into
// checkpoints (docs/design/0005-write-path-v2.md, 0014-flush-pipeline-class.md).
//
// One background thread per writable handle (the flusher) plus two stage
// workers (or the shared executor's flush workers, see hyperfile/executor.h),
// at most kPipelineDepth flushes in flight:
//   1. freeze: the host's current batch becomes a flight (new writes go to a
//      fresh batch); its checkpoint id is the head's + its place in the queue;
//   2. prepare (stage worker, may overlap the previous flight's commit): the
//      bases of its partial blocks are read through the older flights and
//      the committed tree and merged; data larger than the inline size is
//      uploaded as the flight's data object (its name carries the writer
//      epoch, so it can collide with nothing);
//   3. commit (stage worker, strictly after the previous flight's commit
//      answered): the index changes are applied to the committed tree and
//      the small segment (header + changed nodes + inline data) is created
//      with one create-only put — the commit point;
//   4. the flusher has the host install the new head and drops the flight.
// A flight that fails (in 2 or 3) puts itself and every newer flight back
// under the host's current batch (LayerOver), so nothing acknowledged is
// lost, and the writer epoch changes so a retry never reuses an object name.
//
// The flusher freezes when a Flush() caller asks (all callers waiting at
// that moment share one segment: group commit), when the current batch
// holds the flush threshold, when its oldest write is flush_interval_ms old,
// or when a writer waits for the dirty budget.
//
// Locking (LevelDB's DBImpl pattern): the pipeline has no mutex of its own.
// It is given the file's mutex by reference at construction; every method
// named *Locked, and every FlushHost method named *Locked, is called with it
// held. The flusher and the stage tasks take it themselves; the stages run
// without it and publish their results under it.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "file/frame_buffers.h"
#include "file/interval_set.h"
#include "file/segment_io.h"
#include "file/write_buffer.h"
#include "format/format.h"
#include "format/seal.h"
#include "hyperfile/file.h"
#include "index/btree.h"
#include "util/task_group.h"
#include "util/thread_pool.h"

namespace hyperfile::file {

int64_t NowMs();       // wall clock, ms since the epoch (file_impl.cc)
uint64_t RandomU64();  // a non-zero random value (file_impl.cc)

// What a flight's commit made: the new head's header, the segment's bytes
// and the index nodes it wrote. Handed to FlushHost::InstallLocked.
struct BuiltSegment {
  format::SegmentHeader header;
  std::string header_bytes;
  std::string node_bytes;
  Payload payload;
  index::TreeRoot root;
  std::vector<index::NodePtr> pending;
  // Blocks kept in the chunk cache once committed: the merged partial ones
  // and the last block of each run (an append continues there).
  std::vector<std::pair<uint64_t, const char*>> remember;  // stored offset, bytes
  bool framed = false;                                     // remember's offsets are frames
};

// What the pipeline needs from the file it flushes: the write buffer's
// current batch, the committed state, and reads below the write buffer.
class FlushHost {
 public:
  virtual ~FlushHost() = default;
  // --- called with the file's mutex held ---
  // Blocks in the current batch (the size trigger), and whether it is empty.
  virtual size_t CurrentBlocksLocked() const = 0;
  virtual bool CurrentEmptyLocked() const = 0;
  // The file size of the current state (a frozen flight records it).
  virtual uint64_t SizeLocked() const = 0;
  // Moves the current batch out; new writes go to a fresh one.
  virtual Batch TakeBatchLocked() = 0;
  // After a failed flush: `older` (the failed flights' batches, merged)
  // becomes the current batch with the current one laid over it (LayerOver).
  virtual void PutBackLocked(Batch&& older) = 0;
  // The committed state the next flight builds on.
  virtual const format::SegmentHeader& HeadLocked() const = 0;
  virtual index::TreeRoot RootLocked() const = 0;
  // Makes `built` (the front flight's commit, which answered OK) the
  // committed state: head, root, its index nodes and cached blocks.
  virtual void InstallLocked(const BuiltSegment& built) = 0;
  // OK if the handle may still write, else the error a writer gets (closed,
  // fenced).
  virtual Status CheckWritableLocked() const = 0;
  virtual bool ClosedLocked() const = 0;
  // --- called without the mutex ---
  // Reads logical bytes from the committed tree `root` (holes are zeros):
  // the bases of a flight's partial blocks that no newer layer covers.
  virtual Status ReadBelow(const index::TreeRoot& root, const std::vector<BelowRead>& reads) = 0;
};

class FlushPipeline {
 public:
  // Flushes in flight at most: one committing while the next prepares.
  static constexpr size_t kPipelineDepth = 2;

  // `mu` is the file's mutex (guards the pipeline's state too); `store` gets
  // the data objects and segments; `tree` applies index changes; `pool` runs
  // the store requests and compression tasks; `stage_pool` runs the stages
  // (null: two workers of its own). Stages wait for `pool` tasks, so the two
  // must be different pools. Nothing runs until Start().
  FlushPipeline(std::mutex& mu, FlushHost* host, ObjectStore* store, index::Tree* tree,
                TaskGroup* pool, ThreadPool* stage_pool, const OpenOptions& options,
                Compression codec, uint32_t block_size);
  // Stops the flusher and waits for the stage tasks.
  ~FlushPipeline();
  FlushPipeline(const FlushPipeline&) = delete;
  FlushPipeline& operator=(const FlushPipeline&) = delete;

  // Starts the flusher thread (writable handles only). `sealer` (an
  // encrypted file's, else null) seals every frame and index node this
  // pipeline writes; it is fixed from here on.
  void Start(std::shared_ptr<const format::Sealer> sealer = nullptr);
  // Stops the flusher (flights still frozen stay unflushed; waiting Flush()
  // callers get "closing") and returns once it has left. Idempotent.
  void Stop();
  // Waits for every stage task submitted so far.
  void WaitStages();

  // --- with the file's mutex held ---
  // Records a mutation (the host already applied it to its current batch):
  // bumps the write sequence, arms the age trigger at `now_ms` and freezes
  // right here when the size trigger is reached and the pipeline has room.
  void NoteMutationLocked(int64_t now_ms);
  // Blocks in the flights (dirty memory the pipeline holds).
  size_t FlightBlocksLocked() const;
  bool FlightsEmptyLocked() const { return flights_.empty(); }
  // The layers for a read: `current` (may be null), then the flights newest
  // first, from the `skip_newest`-th newest on. `hold` (may be null) gets
  // what keeps those layers alive once the mutex is released.
  struct Hold {
    std::vector<std::shared_ptr<const Batch>> batches;
    std::vector<std::shared_ptr<const std::map<uint64_t, std::string>>> merged;
  };
  std::vector<Layer> LayersLocked(const Batch* current, size_t skip_newest, Hold* hold) const;
  // True once a commit lost to another writer: nothing can commit any more.
  bool fenced_locked() const { return fenced_; }
  // Waits (releasing `lock`, the file's mutex) until every mutation made
  // before the call is committed: OK, or the error of the flush that failed
  // meanwhile, or "closing" if the pipeline stops.
  Status WaitFlushedLocked(std::unique_lock<std::mutex>& lock);
  // Waits (releasing `lock`) while the dirty data (the host's current batch
  // and the flights) is at or above dirty_budget_bytes and not zero: OK when
  // a write fits; the failed flush's error, or the reason the handle cannot
  // write (closed, closing, fenced), otherwise.
  Status WaitForDirtyBudgetLocked(std::unique_lock<std::mutex>& lock);
  // Wakes every waiter (Flush() callers, writers waiting for the budget):
  // the host calls it when it closes (with or without the mutex).
  void NotifyWaiters() { commit_cv_.notify_all(); }

  // Test hooks. The hook is called at "flush:frozen" (a flight's prepare is
  // about to start) and "flush:commit" (its commit is about to start) with
  // the mutex released; it may block. Two flights may prepare at once, so
  // the hook can run on two threads at the same time. FreezeForTesting (takes the mutex)
  // freezes the current batch now (if the pipeline has room) and wakes the
  // flusher.
  void SetTestHook(std::function<void(std::string_view point)> hook) {
    test_hook_ = std::move(hook);
  }
  void FreezeForTesting();
  // The frame buffers kept for the next flight (tests; thread-safe).
  const FrameBuffers& frame_buffers() const { return *frame_buffers_; }

 private:
  struct Flight;
  struct Prepared;
  using Built = BuiltSegment;

  void FlusherLoop();
  // Moves the current batch into a new flight (a free place in the pipeline).
  void FreezeLocked();
  uint64_t FlushThresholdBytes() const;
  bool BackgroundFlushDueLocked(int64_t now_ms) const;
  // Starts the stage the flight is ready for on a stage worker.
  void StartPrepareLocked(const std::shared_ptr<Flight>& flight);
  void StartCommitLocked(const std::shared_ptr<Flight>& flight);
  // Stage 2 and 3 (no lock held).
  Status Prepare(Flight* flight, const std::vector<Layer>& below, const index::TreeRoot& root);
  void CompressBlocks(Prepared* p);
  Status BuildSegment(const Flight& flight, const format::SegmentHeader& head,
                      const index::TreeRoot& root, Built* out);
  Status Commit(const format::SegmentHeader& head, Built* built);
  // Installs the committed front flight.
  void FinishCommitLocked();
  // Puts every flight back under the current batch after the front failed
  // with `error` (no stage running).
  void FailFlightsLocked(const Status& error);
  bool StageRunningLocked() const;

  std::mutex& mu_;  // the file's: guards everything below that is not const
  FlushHost* const host_;
  ObjectStore* const store_;
  index::Tree* const tree_;
  TaskGroup& pool_;
  const OpenOptions options_;
  const Compression codec_;
  std::shared_ptr<const format::Sealer> sealer_;  // set by Start, then constant
  const uint32_t block_size_;
  const std::shared_ptr<FrameBuffers> frame_buffers_;  // the flights' frame parts

  uint64_t writer_epoch_;  // random; changes after every failed flush
  // Flushes in flight, oldest first (the front is the next to commit).
  std::deque<std::shared_ptr<Flight>> flights_;
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

  std::function<void(std::string_view)> test_hook_;  // set before use, by tests only
};

}  // namespace hyperfile::file
