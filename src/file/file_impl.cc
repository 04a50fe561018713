// SPDX-License-Identifier: Apache-2.0
#include "file/file_impl.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <random>

#include "file/sealing.h"
#include "format/frame.h"
#include "hyperfile/executor.h"
#include "util/coding.h"

namespace hyperfile::file {

using format::kChunkSize;

namespace {

// Upper bound of the readahead window (also capped at half the block cache).
constexpr uint64_t kMaxReadaheadBytes = 32ull << 20;
// A writer whose parent checkpoint is older than this re-reads the GC
// horizon before acknowledging a flush (docs/design/0002-commit-protocol.md).
constexpr int64_t kHorizonCheckAfterMs = 10 * 60 * 1000;

bool AllZero(const std::string& block) {
  return block.empty() ||
         (block[0] == 0 && std::memcmp(block.data(), block.data() + 1, block.size() - 1) == 0);
}

std::string DefaultWriterName() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(getpid());
}

}  // namespace

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t RandomU64() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}() ^ static_cast<uint64_t>(NowMs()) ^
                             static_cast<uint64_t>(getpid()));
  std::lock_guard<std::mutex> lock(mu);
  uint64_t v = 0;
  while (v == 0) v = rng();
  return v;
}

// Handles of one process that name the same directory share one DiskCache
// (its flock keeps other processes out). A directory that cannot be used
// (in use by another process, unwritable) means no disk tier, not an error:
// the cache is an optimization.
std::shared_ptr<DiskCache> SharedDiskCache(const std::string& dir, uint64_t budget) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<DiskCache>> open;
  std::lock_guard<std::mutex> lock(mu);
  if (auto existing = open[dir].lock()) return existing;
  auto cache = DiskCache::Open(dir, budget);
  if (!cache.ok()) return nullptr;
  std::shared_ptr<DiskCache> shared = std::move(cache).value();
  open[dir] = shared;
  return shared;
}

StoreResolver DefaultResolver(const OpenOptions& options) {
  if (options.store_resolver) return options.store_resolver;
  return [](const std::string& uri) { return OpenStore(uri); };
}

// ------------------------------------------------------ flush pipeline ---

// What the prepare stage made of a flight's batch.
struct FileImpl::Prepared {
  explicit Prepared(uint32_t block_size) : stored(block_size) {}
  std::vector<const char*> data;      // the blocks to store (full content), ascending
  std::vector<uint64_t> data_blocks;  // their block numbers
  IntervalSet holes;                  // blocks that became holes (punched or all zeros)
  bool in_object = false;             // data went to the flight's data object
  format::StoredBlocks stored;        // the inline data's stored form (not in_object, not framed)
  // Framed (the handle writes with a codec): one frame per block, back to
  // back in frame_parts (compressed in parallel; emptied once uploaded to
  // the data object); each block's frame offset from the first and length.
  bool framed = false;
  std::vector<std::string> frame_parts;
  std::vector<uint64_t> frame_offsets;
  std::vector<uint32_t> frame_lengths;
  uint64_t framed_bytes = 0;
  uint64_t checkpoint = 0, epoch = 0;  // the flight's (what frames are sealed for)
};

struct FileImpl::Flight {
  enum class State { kFrozen, kPreparing, kPrepared, kCommitting, kCommitted };
  std::shared_ptr<const Batch> batch;
  uint64_t size = 0;      // the file size when it was frozen
  uint64_t seq = 0;       // mutations up to this one are in it
  int64_t oldest_ms = 0;  // its oldest write (restored if the flush fails)
  State state = State::kFrozen;
  Status status;       // of the last stage that ran
  uint64_t id = 0;     // checkpoint id, set when prepare starts
  uint64_t epoch = 0;  // writer epoch of the attempt, set when prepare starts
  // The full content of its partial blocks, published by prepare (under mu_).
  std::shared_ptr<const std::map<uint64_t, std::string>> merged;
  std::unique_ptr<Prepared> prepared;  // owned by the stage that runs
  std::unique_ptr<Built> built;
};

struct FileImpl::Built {
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

// ------------------------------------------------------------ lifecycle ---

FileImpl::FileImpl(std::shared_ptr<ObjectStore> store, const OpenOptions& options,
                   const format::SegmentHeader& head)
    : store_(std::move(store)),
      options_(options),
      block_size_(head.block_size()),
      read_only_(options.read_only),
      head_(head),
      writer_epoch_(RandomU64()) {
  codec_ = options_.compression.value_or(
      Compression{static_cast<Codec>(head.codec), static_cast<int>(head.codec_level)});
  if (options_.writer_name.empty()) options_.writer_name = DefaultWriterName();
  if (options_.writer_name.size() > 255) options_.writer_name.resize(255);
  lineage_ = std::make_unique<Lineage>(store_, head.origins, DefaultResolver(options_));
  nodes_ = std::make_unique<NodeLoader>(lineage_.get(), options_.index_cache_bytes);
  chunks_ = std::make_unique<ChunkReader>(lineage_.get(), block_size_, options_.block_cache_bytes);
  // Never for an encrypted file: the disk tier would hold its plaintext.
  if (!options_.disk_cache_dir.empty() && options_.disk_cache_bytes > 0 &&
      head.cipher == format::kCipherNone) {
    chunks_->SetDiskCache(SharedDiskCache(options_.disk_cache_dir, options_.disk_cache_bytes),
                          head.file_id);
  }
  tree_ = std::make_unique<index::Tree>(nodes_.get(), block_size_);
  // Stage tasks wait for pool_ tasks (parallel GETs, uploads), so they run
  // on other workers: one per pipeline place, or the executor's flush pool.
  if (options_.executor) {
    pool_.Reset(options_.executor->io_pool());
    if (!read_only_) stages_.Reset(options_.executor->flush_pool());
  } else {
    own_pool_ =
        std::make_unique<ThreadPool>(static_cast<size_t>(std::max(1, options_.io_parallelism)));
    pool_.Reset(own_pool_.get());
    if (!read_only_) {
      own_stages_ = std::make_unique<ThreadPool>(kPipelineDepth);
      stages_.Reset(own_stages_.get());
    }
  }
  ReadPlanner::Policy policy;
  policy.unit = std::max<uint64_t>(options_.max_read_request_bytes, kChunkSize);
  // Prefetched data must survive in the block cache until it is read.
  policy.max_window = std::min<uint64_t>(kMaxReadaheadBytes, options_.block_cache_bytes / 2);
  policy.max_streams = 8;
  planner_ = std::make_unique<ReadPlanner>(
      policy, [this](uint64_t lo, uint64_t hi, std::vector<ReadPlanner::Prefetch>* out) {
        return IssuePrefetch(lo, hi, out);
      });
  size_ = head.self.size;
  mtime_ms_ = head.self.time_ms;
  root_.ref = head.self.root;
  root_.height = head.self.height;
  root_.blocks = head.self.allocated_blocks;
}

Result<std::unique_ptr<FileImpl>> FileImpl::Make(std::shared_ptr<ObjectStore> store,
                                                 const OpenOptions& options, const HeaderRead& read,
                                                 const format::Descriptor* at) {
  format::SegmentHeader head = read.header;
  if (at) head.self = *at;
  if (!options.read_only && options.dirty_budget_bytes < head.block_size()) {
    return Status::InvalidArgument("open " + store->Name() + ": dirty_budget_bytes " +
                                   std::to_string(options.dirty_budget_bytes) +
                                   " is less than one block (" + std::to_string(head.block_size()) +
                                   " bytes)");
  }
  std::unique_ptr<FileImpl> file(new FileImpl(std::move(store), options, head));
  // An encrypted file is unlocked before any node or data is read.
  HF_ASSIGN_OR_RETURN(auto sealer, UnlockFile(file->lineage_.get(), head, options.key.get()));
  file->lineage_->SetSealer(std::move(sealer));
  // The root and upper index levels usually arrived with the header; any
  // other node (an old checkpoint's root) is loaded on first use, so opening
  // costs no request beyond finding and reading the header.
  file->nodes_->Seed(read);
  if (!file->read_only_) file->flusher_ = std::thread([f = file.get()] { f->FlusherLoop(); });
  return file;
}

FileImpl::~FileImpl() {
  bool closed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed = closed_;
  }
  if (!closed) (void)Close();
  StopFlusher();
  StopRefresher();
  // Queued readahead and stage tasks use this handle: let them finish
  // before anything they use goes (the executor's workers outlive us).
  stages_.Wait();
  pool_.Wait();
}

Status FileImpl::Close() {
  if (refresher_.joinable() && std::this_thread::get_id() == refresher_.get_id()) {
    return Status::InvalidArgument(store_->Name() + ": Close called from on_refresh");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return Status::InvalidArgument(store_->Name() + ": file already closed");
  }
  Status st;
  if (!read_only_) {
    auto flushed = Flush();
    st = flushed.status();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  commit_cv_.notify_all();  // writers waiting for the budget get "closed"
  StopFlusher();
  StopRefresher();
  return st;
}

void FileImpl::StopFlusher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  flush_cv_.notify_all();
  commit_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
}

Status FileImpl::CheckUsable(bool write) const {
  if (closed_) return Status::InvalidArgument(store_->Name() + ": file is closed");
  if (write && read_only_) {
    return Status::ReadOnly(store_->Name() + ": opened read-only (checkpoint " +
                            std::to_string(head_.self.id) + ")");
  }
  if (write && fenced_) {
    return Status::Conflict(store_->Name() +
                            ": file was changed by another writer; close and reopen it");
  }
  return Status::OK();
}

uint64_t FileImpl::Size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return size_;
}

uint64_t FileImpl::DirtyBytesLocked() const {
  uint64_t n = current_.blocks.size();
  for (const auto& f : flights_) n += f->batch->blocks.size();
  return n * block_size_;
}

// ----------------------------------------------------------------- read ---

// The size taken here is only the readahead planner's hint (and an early
// answer at EOF, true of the state at that moment): the read itself clamps
// to the size of the one state it reads (ReadInternal), so a Refresh or a
// truncate in between never mixes two states.
Result<size_t> FileImpl::PRead(uint64_t offset, void* buf, size_t len) {
  uint64_t size;
  {
    std::lock_guard<std::mutex> lock(mu_);
    HF_RETURN_IF_ERROR(CheckUsable(false));
    size = size_;
  }
  if (len > 0 && buf == nullptr) return Status::InvalidArgument("pread: null buffer");
  if (offset >= size || len == 0) return size_t{0};
  planner_->OnRead(offset, std::min<uint64_t>(len, size - offset), size);
  if (test_hook_) test_hook_("read:planned");
  HF_ASSIGN_OR_RETURN(uint64_t n, ReadInternal(offset, len, static_cast<char*>(buf)));
  return static_cast<size_t>(n);
}

// Requests are cut on a grid that starts where the stream entered each
// segment's run of blocks (not at logical multiples of the unit), and a
// short tail (< unit/4) of a run rides along with the request before it. So
// a stream costs one GET per unit of data even when segment boundaries fall
// at arbitrary offsets, and no GET is smaller than a quarter unit unless the
// run itself is. Returns the end of what was issued (may pass `hi`).
uint64_t FileImpl::IssuePrefetch(uint64_t lo, uint64_t hi,
                                 std::vector<ReadPlanner::Prefetch>* out) {
  const uint64_t bs = block_size_;
  const uint64_t unit = std::max<uint64_t>(options_.max_read_request_bytes, kChunkSize);
  index::TreeRoot root;
  uint64_t size;
  {
    std::lock_guard<std::mutex> lock(mu_);
    root = root_;
    size = size_;
  }
  uint64_t issued_end = hi;
  // Framed blocks (one extent each) are gathered into runs of frames that
  // lie back to back, cut every `unit` logical bytes: one GET per run.
  std::vector<format::ExtentEntry> frames;
  uint64_t frames_lo = 0, frames_hi = 0;
  auto issue_frames = [&] {
    if (frames.empty()) return;
    auto task = pool_.Submit([this, run = frames, s = frames_lo, e = frames_hi] {
      return chunks_->ReadFrames(run, s, e, nullptr);
    });
    out->push_back({frames_lo, frames_hi, task.share()});
    issued_end = std::max(issued_end, frames_hi);
    frames.clear();
  };
  // Visit past hi: requests starting before hi may run on (Visit clips each
  // run to the range, and a clipped run must not look like a short tail).
  const uint64_t reach = std::min(size, hi + unit + unit / 4 + bs);
  (void)tree_->Visit(root, lo / bs, (reach + bs - 1) / bs, [&](const format::ExtentEntry& piece) {
    if (piece.framed()) {
      // As for chunks: a run started before hi goes on to a whole unit.
      const uint64_t s = std::max(lo, piece.start * bs);
      const uint64_t e = std::min(size, piece.end() * bs);
      if (s >= e) return Status::OK();
      if (!frames.empty() && FrameContinues(frames.back(), piece) && frames_hi - frames_lo < unit) {
        frames.push_back(piece);
        frames_hi = e;
        return Status::OK();
      }
      issue_frames();
      if (s >= hi) return Status::OK();
      frames_lo = s;
      frames.push_back(piece);
      frames_hi = e;
      return Status::OK();
    }
    issue_frames();
    const uint64_t run_end = std::min(size, piece.end() * bs);
    for (uint64_t s = std::max(lo, piece.start * bs); s < std::min(hi, run_end);) {
      uint64_t e = std::min(run_end, s + unit);
      if (run_end - e < unit / 4) e = run_end;
      // dst == nullptr: the chunks only go into the caches.
      auto task = pool_.Submit([this, piece, s, e] { return chunks_->Read(piece, s, e, nullptr); });
      out->push_back({s, e, task.share()});
      issued_end = std::max(issued_end, e);
      s = e;
    }
    return Status::OK();
  });
  issue_frames();
  return issued_end;
}

// The current batch's blocks in the window are copied under mu_ (they
// change once we unlock); the flights' batches are immutable and the root
// is a value, so the layers are one consistent picture. Which layer wins is
// decided by ReadThroughLayers (write_buffer.h), the only place that says.
Result<uint64_t> FileImpl::ReadInternal(uint64_t offset, uint64_t len, char* buf) {
  const uint64_t bs = block_size_;
  Batch current;
  std::vector<std::shared_ptr<const Batch>> hold;  // keeps the flights' batches alive
  std::vector<std::shared_ptr<const std::map<uint64_t, std::string>>> hold_merged;
  std::vector<Layer> layers;
  index::TreeRoot root;
  bool layered = false;
  uint64_t b0 = 0, b1 = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (offset >= size_) return uint64_t{0};
    len = std::min(len, size_ - offset);
    b0 = offset / bs;
    b1 = (offset + len - 1) / bs + 1;
    root = root_;
    auto first = current_.blocks.lower_bound(b0);
    const bool dirty = first != current_.blocks.end() && first->first < b1;
    bool punched = false;
    current_.punched.ForEachIn(b0, b1, [&](uint64_t, uint64_t) { punched = true; });
    // Nothing unflushed anywhere near the window: the tree alone answers.
    layered = dirty || punched || !flights_.empty();
    if (layered) {
      for (auto it = first; it != current_.blocks.end() && it->first < b1; ++it) {
        current.blocks.emplace(it->first, it->second);
      }
      current_.punched.ForEachIn(b0, b1,
                                 [&](uint64_t s, uint64_t e) { current.punched.Add(s, e); });
      layers = LayersLocked(&current, 0);
      for (auto it = flights_.rbegin(); it != flights_.rend(); ++it) {
        hold.push_back((*it)->batch);
        hold_merged.push_back((*it)->merged);
      }
    }
  }
  if (test_hook_) test_hook_("read:snapshot");
  if (!layered) {
    HF_RETURN_IF_ERROR(ReadFromTree(root, {BelowRead{b0, b1, offset, len, buf}}));
    return len;
  }
  HF_RETURN_IF_ERROR(ReadThroughLayers(
      {Window{offset, len, buf}}, layers, bs,
      [&](const std::vector<BelowRead>& reads) { return ReadFromTree(root, reads); }));
  return len;
}

// Holes become zeros, data extents are fetched with one ranged GET per piece
// (split at max_read_request_bytes), all in parallel.
Status FileImpl::ReadFromTree(const index::TreeRoot& root, const std::vector<BelowRead>& reads) {
  struct Request {
    format::ExtentEntry piece;
    uint64_t lo, hi;
    char* dst;
    std::vector<format::ExtentEntry> frames;  // framed: the run of frames, one GET
    uint64_t frame_bytes = 0;
  };
  std::vector<Request> requests;
  const uint64_t bs = block_size_;
  const uint64_t max_bytes = std::max<uint64_t>(options_.max_read_request_bytes, kChunkSize);
  for (const BelowRead& r : reads) {
    std::memset(r.buf, 0, r.len);
    const size_t first_request = requests.size();
    HF_RETURN_IF_ERROR(tree_->Visit(root, r.b0, r.b1, [&](const format::ExtentEntry& piece) {
      uint64_t lo = std::max(r.offset, piece.start * bs);
      uint64_t hi = std::min(r.offset + r.len, piece.end() * bs);
      if (piece.framed()) {
        // Frames back to back in one object go in one GET (up to max_bytes).
        if (requests.size() > first_request) {
          Request& last = requests.back();
          if (!last.frames.empty() && last.hi == lo && FrameContinues(last.frames.back(), piece) &&
              last.frame_bytes + piece.stored_length <= max_bytes) {
            last.frames.push_back(piece);
            last.frame_bytes += piece.stored_length;
            last.hi = hi;
            return Status::OK();
          }
        }
        requests.push_back({piece, lo, hi, r.buf + (lo - r.offset), {piece}, piece.stored_length});
        return Status::OK();
      }
      for (uint64_t s = lo; s < hi;) {
        uint64_t e = std::min(hi, (s / kChunkSize) * kChunkSize + max_bytes);
        requests.push_back({piece, s, e, r.buf + (s - r.offset), {}, 0});
        s = e;
      }
      return Status::OK();
    }));
  }
  auto run = [&](const Request& q) {
    return q.frames.empty() ? chunks_->Read(q.piece, q.lo, q.hi, q.dst)
                            : chunks_->ReadFrames(q.frames, q.lo, q.hi, q.dst);
  };
  if (requests.empty()) return Status::OK();
  if (requests.size() == 1) return run(requests[0]);
  std::vector<std::future<Status>> pending;
  pending.reserve(requests.size());
  for (const Request& q : requests) pending.push_back(pool_.Submit([&run, &q] { return run(q); }));
  Status first_error;
  for (auto& f : pending) {
    Status st = f.get();
    if (!st.ok() && first_error.ok()) first_error = st;
  }
  return first_error;
}

// ---------------------------------------------------------------- write ---

// Writers wait here while the dirty budget is full; the flusher frees it by
// committing. A flush that fails while we wait is reported to the writer
// (its bytes were not taken), so a dead store never blocks writers forever.
Status FileImpl::WaitForDirtyBudget() {
  std::unique_lock<std::mutex> lock(mu_);
  // Only dirty data that a flush can free is worth waiting for: with nothing
  // dirty a writer never waits, whatever the budget.
  auto fits = [&] {
    uint64_t dirty = DirtyBytesLocked();
    return dirty == 0 || dirty < options_.dirty_budget_bytes;
  };
  if (fits()) return Status::OK();
  const uint64_t failures_seen = flush_failures_;
  budget_waiters_++;
  flush_cv_.notify_one();
  commit_cv_.wait(lock, [&] {
    return fits() || flush_failures_ != failures_seen || stopping_ || closed_ || fenced_;
  });
  budget_waiters_--;
  if (fits() && !closed_ && !stopping_) return Status::OK();
  if (flush_failures_ != failures_seen) {
    return last_flush_error_.WithContext("write waited for the dirty budget and the flush failed");
  }
  return CheckUsable(true).ok() ? Status::InvalidArgument(store_->Name() + ": file is closing")
                                : CheckUsable(true);
}

void FileImpl::NoteMutationLocked() {
  write_seq_++;
  mtime_ms_ = NowMs();
  if (oldest_dirty_ms_ == 0) {
    oldest_dirty_ms_ = mtime_ms_;
    if (options_.flush_interval_ms > 0) flush_cv_.notify_one();  // arm the age timer
  }
  if (current_.blocks.size() * block_size_ >= FlushThresholdBytes()) {
    // Freeze right here when the pipeline has room, so a size-triggered
    // segment holds exactly the threshold's worth of a stream (segment
    // boundaries then fall on read-unit multiples: one GET per unit when
    // read back) instead of whatever arrived before the flusher woke up.
    if (flights_.size() < kPipelineDepth && !fenced_ && NowMs() >= retry_after_ms_) {
      FreezeLocked();
    }
    flush_cv_.notify_one();
  }
}

// Background flushes by size start at flush_dirty_bytes, by default half
// the dirty budget: one half uploads while writers fill the other.
uint64_t FileImpl::FlushThresholdBytes() const {
  uint64_t t =
      options_.flush_dirty_bytes ? options_.flush_dirty_bytes : options_.dirty_budget_bytes / 2;
  return std::max<uint64_t>(t, block_size_);
}

Status FileImpl::PWrite(uint64_t offset, const void* buf, size_t len) {
  if (len > 0 && buf == nullptr) return Status::InvalidArgument("pwrite: null buffer");
  return WriteInternal(offset, len, static_cast<const char*>(buf), true);
}

Status FileImpl::WriteInternal(uint64_t offset, uint64_t len, const char* data, bool extend) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    HF_RETURN_IF_ERROR(CheckUsable(true));
  }
  if (len == 0) return Status::OK();
  if (offset > format::kMaxFileSize || len > format::kMaxFileSize - offset) {
    return Status::OutOfRange(store_->Name() + ": write at " + std::to_string(offset) + "+" +
                              std::to_string(len) + " exceeds the maximum file size 2^60");
  }
  HF_RETURN_IF_ERROR(WaitForDirtyBudget());
  const uint64_t bs = block_size_;
  const uint64_t end = offset + len;
  const uint64_t b0 = offset / bs, b1 = (end - 1) / bs + 1;
  // One step under the lock: the bytes go into the current batch as written
  // ranges over whatever lies below; nothing is read, so nothing can change
  // between a read and the install.
  std::lock_guard<std::mutex> lock(mu_);
  HF_RETURN_IF_ERROR(CheckUsable(true));
  const uint64_t limit = extend ? std::max(size_, end) : size_;
  for (uint64_t b = b0; b < b1; b++) {
    const uint64_t base = b * bs;
    uint64_t s = std::max(offset, base), e = std::min(end, base + bs);
    if (s >= limit) break;
    e = std::min(e, limit);
    current_.Write(b, s - base, e - base, data ? data + (s - offset) : nullptr, bs);
  }
  size_ = limit;
  NoteMutationLocked();
  return Status::OK();
}

Result<uint64_t> FileImpl::Append(const void* buf, size_t len) {
  std::lock_guard<std::mutex> append_lock(append_mu_);
  uint64_t at = Size();
  HF_RETURN_IF_ERROR(PWrite(at, buf, len));
  return at;
}

Status FileImpl::Truncate(uint64_t size) {
  if (size > format::kMaxFileSize) {
    return Status::OutOfRange(store_->Name() + ": truncate to " + std::to_string(size) +
                              " exceeds the maximum file size 2^60");
  }
  // One atomic step under the lock (a flush or a reader never sees half of
  // it), with no read: blocks past the new end become a hole, and the tail
  // of the last kept block is written as zeros (a range over its unread
  // base), so a later grow reads zeros there.
  const uint64_t bs = block_size_;
  std::lock_guard<std::mutex> lock(mu_);
  HF_RETURN_IF_ERROR(CheckUsable(true));
  if (size >= size_) {
    size_ = size;
    NoteMutationLocked();
    return Status::OK();
  }
  current_.TruncateTo(size, bs);
  size_ = size;
  NoteMutationLocked();
  return Status::OK();
}

Status FileImpl::WriteZeroes(uint64_t offset, uint64_t len) {
  return WriteInternal(offset, len, nullptr, true);
}

Status FileImpl::PunchHole(uint64_t offset, uint64_t len) {
  uint64_t size = Size();
  if (offset >= size) {
    std::lock_guard<std::mutex> lock(mu_);
    return CheckUsable(true);
  }
  return WriteInternal(offset, std::min(len, size - offset), nullptr, false);
}

// ---------------------------------------------------------------- flush ---

std::vector<Layer> FileImpl::LayersLocked(const Batch* current, size_t skip_newest) const {
  std::vector<Layer> layers;
  if (current) layers.push_back({current, nullptr});
  for (size_t i = flights_.size() - std::min(skip_newest, flights_.size()); i-- > 0;) {
    layers.push_back({flights_[i]->batch.get(), flights_[i]->merged.get()});
  }
  return layers;
}

bool FileImpl::StageRunningLocked() const { return stages_running_ > 0; }

void FileImpl::FreezeLocked() {
  auto flight = std::make_shared<Flight>();
  flight->batch = std::make_shared<const Batch>(std::move(current_));
  current_ = Batch{};
  flight->size = size_;
  flight->seq = write_seq_;
  flight->oldest_ms = oldest_dirty_ms_;
  oldest_dirty_ms_ = 0;
  flights_.push_back(std::move(flight));
}

void FileImpl::StartPrepareLocked(const std::shared_ptr<Flight>& flight) {
  size_t pos = 0;
  while (flights_[pos] != flight) pos++;
  flight->id = head_.self.id + pos + 1;
  flight->epoch = writer_epoch_;
  flight->state = Flight::State::kPreparing;
  // The layers below it (older flights, newest first) and the committed
  // tree under them: one consistent picture, kept alive by the task.
  std::vector<std::shared_ptr<const Batch>> batches;
  std::vector<std::shared_ptr<const std::map<uint64_t, std::string>>> merges;
  for (size_t i = pos; i-- > 0;) {
    batches.push_back(flights_[i]->batch);
    merges.push_back(flights_[i]->merged);
  }
  const index::TreeRoot root = root_;
  stages_running_++;
  (void)stages_.Submit([this, flight, batches, merges, root] {
    std::vector<Layer> below;
    for (size_t i = 0; i < batches.size(); i++)
      below.push_back({batches[i].get(), merges[i].get()});
    Status st = Prepare(flight.get(), below, root);
    std::lock_guard<std::mutex> lock(mu_);
    flight->status = st;
    flight->state = Flight::State::kPrepared;
    stages_running_--;
    flush_cv_.notify_all();
  });
}

void FileImpl::StartCommitLocked(const std::shared_ptr<Flight>& flight) {
  flight->state = Flight::State::kCommitting;
  const format::SegmentHeader head = head_;
  const index::TreeRoot root = root_;
  stages_running_++;
  (void)stages_.Submit([this, flight, head, root] {
    if (test_hook_) test_hook_("flush:commit");
    auto built = std::make_unique<Built>();
    Status st = BuildSegment(*flight, head, root, built.get());
    if (st.ok()) st = Commit(head, built.get());
    std::lock_guard<std::mutex> lock(mu_);
    flight->built = std::move(built);
    flight->status = st;
    flight->state = Flight::State::kCommitted;
    stages_running_--;
    flush_cv_.notify_all();
  });
}

// Stage 2: bases, merge, and the data object. Runs while older flights may
// still be committing; it reads through them, never waits for them.
Status FileImpl::Prepare(Flight* flight, const std::vector<Layer>& below,
                         const index::TreeRoot& root) {
  if (test_hook_) test_hook_("flush:frozen");
  if (flight->id > format::kMaxCheckpointId) return Status::OutOfRange("checkpoint ids exhausted");
  const uint64_t bs = block_size_;
  const Batch& batch = *flight->batch;
  auto merged = std::make_shared<std::map<uint64_t, std::string>>();
  std::vector<Window> windows;
  for (const auto& [b, dirty] : batch.blocks) {
    if (dirty.full(bs)) continue;
    std::string& out = (*merged)[b];
    out.resize(bs);
    windows.push_back({b * bs, bs, out.data()});
  }
  if (!windows.empty()) {
    HF_RETURN_IF_ERROR(
        ReadThroughLayers(windows, below, bs, [&](const std::vector<BelowRead>& reads) {
          return ReadFromTree(root, reads);
        }).WithContext("flush: read the bases of partial blocks"));
    for (auto& entry : *merged) {
      char* out = entry.second.data();
      const DirtyBlock& dirty = batch.blocks.at(entry.first);
      dirty.valid.ForEachIn(0, bs, [&](uint64_t x, uint64_t y) {
        std::memcpy(out + x, dirty.data.data() + x, y - x);
      });
    }
    std::lock_guard<std::mutex> lock(mu_);
    flight->merged = merged;  // readers and newer flights now see whole blocks
  }
  auto p = std::make_unique<Prepared>(block_size_);
  p->checkpoint = flight->id;
  p->epoch = flight->epoch;
  p->holes = batch.punched;
  for (const auto& [b, dirty] : batch.blocks) {
    auto m = merged->find(b);
    const std::string& block = m != merged->end() ? m->second : dirty.data;
    if (AllZero(block)) {
      p->holes.Add(b, b + 1);
    } else {
      p->data.push_back(block.data());
      p->data_blocks.push_back(b);
    }
  }
  const uint64_t sbs = format::StoredBlockSize(block_size_);
  p->framed = codec_.codec != Codec::kNone || lineage_->sealer() != nullptr;
  if (p->framed) {
    CompressBlocks(p.get());
    p->in_object = p->framed_bytes > format::kMaxInlineDataBytes;
  } else {
    p->in_object = p->data.size() * sbs > format::kMaxInlineDataBytes;
    for (size_t i = 0; i < p->data.size(); i++) p->stored.Add(p->data[i], p->data_blocks[i] * bs);
  }
  if (p->in_object) {
    // Uploaded before the commit and under a name no other upload can have
    // (the epoch changes after every failed flush): an unconditional put,
    // multipart allowed. It becomes part of the file only if the commit lands.
    Payload payload;
    if (p->framed) {
      for (const std::string& part : p->frame_parts) payload.push_back(part);
    } else {
      p->stored.AppendTo(&payload);
    }
    HF_RETURN_IF_ERROR(
        store_
            ->Put(format::DataObjectKey(flight->id, flight->epoch), payload, PutOptions{}, nullptr)
            .WithContext("flush: upload the data object"));
    p->stored = format::StoredBlocks(block_size_);  // its CRCs are not needed any more
    p->frame_parts.clear();
  }
  flight->prepared = std::move(p);
  return Status::OK();
}

// One frame per block, compressed on up to one pool task per core (a
// flush's blocks are independent), each part into its own buffer.
void FileImpl::CompressBlocks(Prepared* p) {
  const uint64_t bs = block_size_;
  const size_t n = p->data.size();
  const size_t cores = std::max<size_t>(1, std::thread::hardware_concurrency());
  const size_t parts = n < 8 ? 1 : std::min(n, cores);
  const uint8_t codec = static_cast<uint8_t>(codec_.codec);
  const int level = codec_.level;
  p->frame_parts.assign(parts, std::string());
  p->frame_lengths.assign(n, 0);
  // An encrypted file's frames are sealed for their checkpoint and epoch.
  format::FrameSeal seal{lineage_->sealer(), {}};
  seal.place.checkpoint = p->checkpoint;
  seal.place.writer_epoch = p->epoch;
  auto work = [&](size_t k) {
    const size_t b = n * k / parts, e = n * (k + 1) / parts;
    std::string& out = p->frame_parts[k];
    out.reserve((e - b) * (bs / 2 + format::kFrameOverhead));
    for (size_t i = b; i < e; i++) {
      p->frame_lengths[i] = format::EncodeFrame(codec, level, std::string_view(p->data[i], bs),
                                                p->data_blocks[i] * bs, &out, &seal);
    }
  };
  std::vector<std::future<void>> others;
  for (size_t k = 1; k < parts; k++) others.push_back(pool_.Submit([&work, k] { work(k); }));
  work(0);
  for (auto& f : others) f.get();
  p->frame_offsets.resize(n);
  uint64_t pos = 0;
  for (size_t i = 0; i < n; i++) {
    p->frame_offsets[i] = pos;
    pos += p->frame_lengths[i];
  }
  p->framed_bytes = pos;
}

// Stage 3, first half: the index changes on the committed tree, the
// segment's layout, and its header encoded once.
Status FileImpl::BuildSegment(const Flight& flight, const format::SegmentHeader& head,
                              const index::TreeRoot& root, Built* out) {
  const uint64_t id = flight.id;
  if (id != head.self.id + 1) {
    return Status::Corrupt(store_->Name() + ": flush pipeline out of order (checkpoint " +
                           std::to_string(id) + " on head " + std::to_string(head.self.id) + ")");
  }
  const Prepared& p = *flight.prepared;
  const uint64_t sbs = format::StoredBlockSize(block_size_);
  const uint64_t where = p.in_object ? format::kInDataObject : 0;
  std::vector<index::Change> changes;
  for (const auto& [s, e] : p.holes.ranges()) {
    // Dirty data blocks inside a punched range win over the punch.
    uint64_t pos = s;
    auto it = std::lower_bound(p.data_blocks.begin(), p.data_blocks.end(), s);
    for (; it != p.data_blocks.end() && *it < e; ++it) {
      if (*it > pos) changes.push_back({pos, *it - pos, true, 0, 0});
      pos = *it + 1;
    }
    if (pos < e) changes.push_back({pos, e - pos, true, 0, 0});
  }
  for (size_t i = 0; p.framed && i < p.data_blocks.size(); i++) {
    changes.push_back({p.data_blocks[i], 1, false, id, where | p.frame_offsets[i], flight.epoch,
                       p.frame_lengths[i]});
  }
  for (size_t i = 0; !p.framed && i < p.data_blocks.size();) {
    size_t j = i;
    while (j + 1 < p.data_blocks.size() && p.data_blocks[j + 1] == p.data_blocks[j] + 1) j++;
    changes.push_back({p.data_blocks[i], j - i + 1, false, id, where | (i * sbs), flight.epoch});
    i = j + 1;
  }
  std::sort(changes.begin(), changes.end(),
            [](const index::Change& a, const index::Change& b) { return a.start < b.start; });

  HF_ASSIGN_OR_RETURN(out->root, tree_->Apply(root, changes));
  out->pending = tree_->CollectPending(out->root);

  format::SegmentHeader& h = out->header;
  h = head;
  h.self.id = id;
  h.self.time_ms = std::max(NowMs(), head.self.time_ms);
  h.self.size = flight.size;
  h.self.allocated_blocks = out->root.blocks;
  h.self.bytes_changed = p.data.size() * uint64_t{block_size_};
  h.self.restored_from = 0;
  h.self.height = out->root.height;
  h.parent = head.self.id;
  h.parent_crc = head.crc;
  h.writer_epoch = flight.epoch;
  h.writer = options_.writer_name;
  h.codec = static_cast<uint8_t>(codec_.codec);
  h.codec_level = static_cast<uint8_t>(codec_.level);
  format::CarryHistory(head, &h);
  const uint64_t stored_bytes = p.framed ? p.framed_bytes : p.data.size() * sbs;
  const uint64_t inline_bytes = p.in_object ? 0 : stored_bytes;
  h.data_object_length = p.in_object ? stored_bytes : 0;
  const uint64_t header_len = format::EncodedHeaderSize(h);
  const uint64_t nodes_len = index::Tree::PendingBytes(out->pending, lineage_->sealer());
  if (header_len + nodes_len > UINT32_MAX) {
    return Status::OutOfRange(store_->Name() + ": index change too large for one segment");
  }
  h.node_area_offset = header_len;
  h.node_area_length = nodes_len;
  h.data_area_offset = header_len + nodes_len;
  h.data_area_length = inline_bytes;
  // Extents into the data area are relative to it until the layout is known.
  HF_RETURN_IF_ERROR(index::Tree::FinishLayout(&out->root, out->pending, id, header_len,
                                               p.in_object ? 0 : h.data_area_offset,
                                               &out->node_bytes, lineage_->sealer()));
  h.self.root = out->root.empty() ? format::NodeRef{} : out->root.ref;
  out->header_bytes = format::EncodeHeader(h);
  if (out->header_bytes.size() != header_len) {
    return Status::Corrupt(store_->Name() + ": segment header length changed while encoding");
  }
  h.crc = DecodeFixed32(out->header_bytes.data() + out->header_bytes.size() - 4);

  const uint64_t data_base = p.in_object ? format::kInDataObject : h.data_area_offset;
  out->framed = p.framed;
  for (size_t i = 0; i < p.data.size(); i++) {
    const bool run_end = i + 1 == p.data.size() || p.data_blocks[i + 1] != p.data_blocks[i] + 1;
    if (run_end || (flight.merged && flight.merged->count(p.data_blocks[i]))) {
      out->remember.emplace_back(data_base + (p.framed ? p.frame_offsets[i] : i * sbs), p.data[i]);
    }
  }
  out->payload.clear();
  out->payload.push_back(out->header_bytes);
  if (!out->node_bytes.empty()) out->payload.push_back(out->node_bytes);
  if (!p.in_object && p.framed) {
    for (const std::string& part : p.frame_parts) out->payload.push_back(part);
  } else if (!p.in_object) {
    p.stored.AppendTo(&out->payload);
  }
  return Status::OK();
}

// Stage 3, second half: the commit point. A create-only put that was
// retried after a lost response may answer "already exists" although our
// first attempt landed: CreateOnce reads the header back and compares.
Status FileImpl::Commit(const format::SegmentHeader& head, Built* built) {
  const std::string key = format::SegmentKey(built->header.self.id);
  Status st = CreateOnce(store_.get(), key, built->payload, built->header_bytes);
  if (st.IsPreconditionFailed()) {
    return Status::Conflict(store_->Name() + ": file was changed by another writer (checkpoint " +
                            std::to_string(built->header.self.id) + " already exists)");
  }
  HF_RETURN_IF_ERROR(st.WithContext("flush"));
  if (built->header.self.time_ms - head.self.time_ms > kHorizonCheckAfterMs) {
    std::string horizon;  // a decimal id: a bounded read of a small object
    Status hs = store_->Get(format::kHorizonKey, 0, 32, &horizon, nullptr);
    if (hs.ok() && !horizon.empty() &&
        std::strtoull(horizon.c_str(), nullptr, 10) >= built->header.self.id) {
      return Status::Conflict(store_->Name() + ": checkpoint " +
                              std::to_string(built->header.self.id) +
                              " is below the garbage-collection horizon; a newer writer exists");
    }
  }
  return Status::OK();
}

void FileImpl::FinishCommitLocked() {
  std::shared_ptr<Flight> f = flights_.front();
  Built& built = *f->built;
  for (const auto& [stored_offset, bytes] : built.remember) {
    chunks_->Remember(built.header.self.id, stored_offset, std::string_view(bytes, block_size_),
                      built.framed);
  }
  index::Tree::Unpin(built.pending);
  for (const index::NodePtr& n : built.pending) nodes_->Insert(n);
  root_ = built.root;
  head_ = built.header;
  committed_seq_ = std::max(committed_seq_, f->seq);
  flights_.pop_front();
  retry_backoff_ms_ = 0;
  retry_after_ms_ = 0;
  commit_cv_.notify_all();
}

void FileImpl::FailFlightsLocked(const Status& error) {
  // Oldest first, each newer batch laid over the older ones, the current
  // batch (the newest writes) last.
  Batch merged = *flights_.front()->batch;
  int64_t oldest = flights_.front()->oldest_ms;
  for (size_t i = 1; i < flights_.size(); i++) {
    LayerOver(Batch(*flights_[i]->batch), &merged, block_size_);
    if (flights_[i]->oldest_ms != 0 && (oldest == 0 || flights_[i]->oldest_ms < oldest)) {
      oldest = flights_[i]->oldest_ms;
    }
  }
  LayerOver(std::move(current_), &merged, block_size_);
  current_ = std::move(merged);
  flights_.clear();
  if (oldest != 0 && (oldest_dirty_ms_ == 0 || oldest < oldest_dirty_ms_)) {
    oldest_dirty_ms_ = oldest;  // the age trigger counts from the older write
  }
  if (error.IsConflict()) fenced_ = true;
  // The next attempt names its objects afresh: an upload of this attempt
  // (its data object, perhaps its segment) may have landed.
  writer_epoch_ = RandomU64();
  last_flush_error_ = error;
  flush_failures_++;
  flush_requested_seq_ = committed_seq_;  // waiters get the error; new calls ask again
  // Background flushes back off (1 s doubling to 30 s) so a dead store is
  // not hammered; an explicit Flush() still tries at once.
  retry_backoff_ms_ = std::min<int64_t>(retry_backoff_ms_ ? retry_backoff_ms_ * 2 : 1000, 30000);
  retry_after_ms_ = NowMs() + retry_backoff_ms_;
  commit_cv_.notify_all();
}

// Returns once every mutation made before the call is committed, with the
// checkpoint that holds it. Callers that arrive while a flush uploads share
// the next one (group commit).
Result<uint64_t> FileImpl::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) return Status::InvalidArgument(store_->Name() + ": file is closed");
  if (read_only_) return head_.self.id;
  HF_RETURN_IF_ERROR(CheckUsable(true));
  const uint64_t target = write_seq_;
  if (committed_seq_ >= target) return head_.self.id;
  const uint64_t failures_seen = flush_failures_;
  flush_requested_seq_ = std::max(flush_requested_seq_, target);
  flush_cv_.notify_one();
  commit_cv_.wait(lock, [&] {
    return committed_seq_ >= target || flush_failures_ != failures_seen || stopping_;
  });
  if (committed_seq_ >= target) return head_.self.id;
  if (flush_failures_ != failures_seen) return last_flush_error_;
  return Status::InvalidArgument(store_->Name() + ": file is closing");
}

bool FileImpl::BackgroundFlushDueLocked(int64_t now_ms) const {
  if (fenced_ || now_ms < retry_after_ms_) return false;
  if (budget_waiters_ > 0) return true;
  if (current_.blocks.size() * block_size_ >= FlushThresholdBytes()) return true;
  return options_.flush_interval_ms > 0 && oldest_dirty_ms_ > 0 &&
         now_ms - oldest_dirty_ms_ >= static_cast<int64_t>(options_.flush_interval_ms);
}

// The flusher only decides; the stages run on stage workers and report back
// through flush_cv_. Every decision is taken under mu_, so there is no
// window in which a write, a read or another flush sees half a transition.
void FileImpl::FlusherLoop() {
  using State = Flight::State;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (!flights_.empty()) {
      const std::shared_ptr<Flight> front = flights_.front();
      const bool done = front->state == State::kPrepared || front->state == State::kCommitted;
      if (done && !front->status.ok()) {
        // Every flight goes back, so wait until none has a stage running.
        if (StageRunningLocked()) {
          flush_cv_.wait(lock);
          continue;
        }
        FailFlightsLocked(front->status);
        continue;
      }
      if (front->state == State::kCommitted) {
        FinishCommitLocked();
        continue;
      }
      if (front->state == State::kPrepared) {
        StartCommitLocked(front);  // strictly ordered: only the front commits
        continue;
      }
    }
    if (fenced_) {
      // Nothing can commit any more: answer every waiter instead of spinning.
      if (!flights_.empty() && !StageRunningLocked()) {
        FailFlightsLocked(CheckUsable(true));
        continue;
      }
      if (flush_requested_seq_ > committed_seq_) {
        flush_failures_++;
        last_flush_error_ = CheckUsable(true);
        flush_requested_seq_ = committed_seq_;
        commit_cv_.notify_all();
      }
    }
    bool started = false;
    if (!stopping_) {
      for (const auto& f : flights_) {
        if (f->state == State::kFrozen) {
          StartPrepareLocked(f);
          started = true;
        }
      }
    }
    if (started) continue;
    const int64_t now = NowMs();
    const uint64_t newest_seq = flights_.empty() ? committed_seq_ : flights_.back()->seq;
    const uint64_t newest_size = flights_.empty() ? head_.self.size : flights_.back()->size;
    const bool room = flights_.size() < kPipelineDepth && !fenced_ && !stopping_;
    if (room && write_seq_ > newest_seq &&
        (flush_requested_seq_ > newest_seq || BackgroundFlushDueLocked(now))) {
      if (current_.empty() && size_ == newest_size) {
        // Nothing that needs a checkpoint (e.g. a no-op truncate): it is
        // covered by whatever commits next, or already.
        if (flights_.empty()) {
          committed_seq_ = write_seq_;
          commit_cv_.notify_all();
        } else {
          flights_.back()->seq = write_seq_;
        }
        oldest_dirty_ms_ = 0;
        continue;
      }
      FreezeLocked();
      continue;
    }
    if (stopping_ && !StageRunningLocked() &&
        (flights_.empty() || flights_.front()->state == State::kFrozen)) {
      return;
    }
    // Sleep until a stage reports, a caller asks, or the age trigger (or a
    // retry pause) is due.
    int64_t wake = 0;
    if (room && write_seq_ > newest_seq) {
      if (options_.flush_interval_ms > 0 && oldest_dirty_ms_ > 0) {
        wake = oldest_dirty_ms_ + options_.flush_interval_ms;
      }
      if (retry_after_ms_ > now) wake = wake ? std::max(wake, retry_after_ms_) : retry_after_ms_;
    }
    if (wake) {
      flush_cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(1, wake - now)));
    } else {
      flush_cv_.wait(lock);
    }
  }
}

void FileImpl::SetTestHook(std::function<void(std::string_view)> hook) {
  test_hook_ = std::move(hook);
}

void FileImpl::FreezeForTesting() {
  std::lock_guard<std::mutex> lock(mu_);
  if (flights_.size() < kPipelineDepth && !current_.empty() && !fenced_) FreezeLocked();
  flush_cv_.notify_one();
}

// ---------------------------------------------------------- stat, seek ---

Result<FileStat> FileImpl::Stat() {
  std::lock_guard<std::mutex> lock(mu_);
  HF_RETURN_IF_ERROR(CheckUsable(false));
  FileStat st;
  st.size = size_;
  st.allocated_bytes = root_.blocks * block_size_;
  st.block_size = block_size_;
  st.compression = codec_;
  st.cipher = head_.cipher;
  st.checkpoint = head_.self.id;
  st.create_time_ms = head_.create_time_ms;
  st.mtime_ms = mtime_ms_;
  st.checkpoint_time_ms = head_.self.time_ms;
  st.read_only = read_only_;
  st.dirty_bytes = DirtyBytesLocked();
  st.block_cache_bytes = chunks_->cached_bytes();
  st.index_cache_bytes = nodes_->cached_bytes();
  st.block_cache_hits = chunks_->hits();
  st.block_cache_misses = chunks_->misses();
  st.index_cache_hits = nodes_->hits();
  st.index_cache_misses = nodes_->misses();
  if (DiskCache* disk = chunks_->disk_cache()) st.disk_cache_bytes = disk->used_bytes();
  return st;
}

Status FileImpl::DataBlockRanges(uint64_t b0, uint64_t b1, IntervalSet* out, uint64_t* size) {
  index::TreeRoot root;
  std::vector<std::shared_ptr<const Batch>> flights;  // oldest first
  Batch current_copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    HF_RETURN_IF_ERROR(CheckUsable(false));
    *size = size_;
    b1 = std::min(b1, (size_ + block_size_ - 1) / block_size_);
    if (b0 >= b1) return Status::OK();
    root = root_;
    for (const auto& f : flights_) flights.push_back(f->batch);
    current_copy.punched = current_.punched;
    for (auto it = current_.blocks.lower_bound(b0); it != current_.blocks.end() && it->first < b1;
         ++it) {
      current_copy.blocks.emplace(it->first, DirtyBlock{});
    }
  }
  HF_RETURN_IF_ERROR(tree_->Visit(root, b0, b1, [&](const format::ExtentEntry& e) {
    out->Add(e.start, e.end());
    return Status::OK();
  }));
  auto apply = [&](const Batch& batch) {
    // Remove punched ranges, then add dirty blocks.
    IntervalSet kept;
    for (const auto& [s, e] : out->ranges()) {
      batch.punched.ForEachGap(s, e, [&](uint64_t gs, uint64_t ge) { kept.Add(gs, ge); });
    }
    *out = std::move(kept);
    for (auto it = batch.blocks.lower_bound(b0); it != batch.blocks.end() && it->first < b1; ++it) {
      out->Add(it->first, it->first + 1);
    }
  };
  for (const auto& f : flights) apply(*f);
  apply(current_copy);
  return Status::OK();
}

// The ranges and the size come from one state (DataBlockRanges takes both
// under one lock), so a Refresh or a truncate in between never mixes two.
Result<std::vector<Extent>> FileImpl::Extents(uint64_t offset, uint64_t len) {
  std::vector<Extent> out;
  const uint64_t bs = block_size_;
  if (len == 0 || offset >= format::kMaxFileSize) {
    std::lock_guard<std::mutex> lock(mu_);
    HF_RETURN_IF_ERROR(CheckUsable(false));
    return out;
  }
  const uint64_t want_end = offset + std::min(len, format::kMaxFileSize - offset);
  IntervalSet data;
  uint64_t size = 0;
  HF_RETURN_IF_ERROR(DataBlockRanges(offset / bs, (want_end - 1) / bs + 1, &data, &size));
  if (offset >= size) return out;
  const uint64_t end = std::min(want_end, size);
  uint64_t pos = offset;
  auto push = [&](uint64_t s, uint64_t e, bool is_data) {
    if (s >= e) return;
    if (!out.empty() && out.back().data == is_data && out.back().offset + out.back().length == s) {
      out.back().length += e - s;
    } else {
      out.push_back({s, e - s, is_data});
    }
  };
  for (const auto& [s, e] : data.ranges()) {
    uint64_t ds = std::max(offset, s * bs), de = std::min(end, e * bs);
    if (ds >= de) continue;
    push(pos, ds, false);
    push(ds, de, true);
    pos = de;
  }
  push(pos, end, false);
  return out;
}

// Both answer from the one state Extents reads (empty extents: the offset
// is at or past that state's end).
Result<uint64_t> FileImpl::SeekData(uint64_t offset) {
  HF_ASSIGN_OR_RETURN(std::vector<Extent> extents, Extents(offset, UINT64_MAX));
  if (extents.empty()) return Status::InvalidArgument("seek_data: offset at or past end of file");
  for (const Extent& e : extents) {
    if (e.data) return e.offset;
  }
  return Status::NotFound("seek_data: no data after offset " + std::to_string(offset));
}

Result<uint64_t> FileImpl::SeekHole(uint64_t offset) {
  HF_ASSIGN_OR_RETURN(std::vector<Extent> extents, Extents(offset, UINT64_MAX));
  if (extents.empty()) return Status::InvalidArgument("seek_hole: offset at or past end of file");
  for (const Extent& e : extents) {
    if (!e.data) return e.offset;
  }
  return extents.back().offset + extents.back().length;  // the end of file counts as a hole
}

}  // namespace hyperfile::file
