// SPDX-License-Identifier: Apache-2.0
#include "file/file_impl.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <random>
#include <thread>
#include <tuple>

#include "file/sealing.h"
#include "file/writer_lease.h"
#include "format/frame.h"
#include "hyperfile/executor.h"
#include "util/coding.h"

namespace hyperfile::file {

using format::kChunkSize;

namespace {

// Upper bound of the readahead window (also capped at half the block cache).
constexpr uint64_t kMaxReadaheadBytes = 32ull << 20;
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

// ------------------------------------------------------------ lifecycle ---

FileImpl::FileImpl(std::shared_ptr<ObjectStore> store, const OpenOptions& options,
                   const format::SegmentHeader& head)
    : store_(std::move(store)),
      options_(options),
      block_size_(head.block_size()),
      read_only_(options.read_only),
      head_(head) {
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
  // The pipeline's stage tasks wait for pool_ tasks (parallel GETs,
  // uploads), so they run on other workers: the pipeline's own, or the
  // executor's flush pool.
  ThreadPool* stage_pool = nullptr;
  if (options_.executor) {
    pool_.Reset(options_.executor->io_pool());
    stage_pool = options_.executor->flush_pool();
  } else {
    own_pool_ =
        std::make_unique<ThreadPool>(static_cast<size_t>(std::max(1, options_.io_parallelism)));
    pool_.Reset(own_pool_.get());
  }
  if (!read_only_) {
    pipeline_ = std::make_unique<FlushPipeline>(mu_, static_cast<FlushHost*>(this), store_.get(),
                                                tree_.get(), &pool_, stage_pool, options_, codec_,
                                                block_size_);
  }
  // The frames of one GET are decoded by the reader and up to one helper
  // per further core, on this handle's pool (the group waits for them).
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  chunks_->SetDecodeHelpers([this](std::function<void()> fn) { (void)pool_.Submit(std::move(fn)); },
                            cores - 1);
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
  file->lineage_->SetSealer(sealer);
  // The root and upper index levels usually arrived with the header; any
  // other node (an old checkpoint's root) is loaded on first use, so opening
  // costs no request beyond finding and reading the header.
  file->nodes_->Seed(read);
  if (file->pipeline_) file->pipeline_->Start(std::move(sealer));
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
  if (pipeline_) pipeline_->WaitStages();
  pool_.Wait();
  pipeline_.reset();
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
  if (pipeline_) pipeline_->NotifyWaiters();  // writers waiting for the budget get "closed"
  StopFlusher();
  StopRefresher();
  // No commit of this handle can follow: the writer lease can go.
  if (writer_lease_) {
    Status released = writer_lease_->Release();
    if (st.ok()) st = released;
  }
  return st;
}

void FileImpl::AdoptWriterLease(std::unique_ptr<file::WriterLease> lease) {
  writer_lease_ = std::move(lease);
}

void FileImpl::StopFlusher() {
  if (pipeline_) pipeline_->Stop();
}

Status FileImpl::CheckUsable(bool write) const {
  if (closed_) return Status::InvalidArgument(store_->Name() + ": file is closed");
  if (write && read_only_) {
    return Status::ReadOnly(store_->Name() + ": opened read-only (checkpoint " +
                            std::to_string(head_.self.id) + ")");
  }
  if (write && pipeline_ && pipeline_->fenced_locked()) {
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
  if (pipeline_) n += pipeline_->FlightBlocksLocked();
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

void FileImpl::PrefetchStored(std::span<const format::ExtentEntry> extents) {
  std::vector<format::ExtentEntry> sorted(extents.begin(), extents.end());
  auto object = [](const format::ExtentEntry& e) {
    return std::make_tuple(e.segment, e.epoch, e.in_data_object());
  };
  std::sort(sorted.begin(), sorted.end(),
            [&](const format::ExtentEntry& a, const format::ExtentEntry& b) {
              return std::make_tuple(object(a), a.object_offset(), a.start) <
                     std::make_tuple(object(b), b.object_offset(), b.start);
            });
  std::vector<std::future<Status>> tasks;
  size_t first = 0;  // the run [first, i) goes in one GET
  uint64_t run_end = 0;
  auto issue = [&](size_t end) {
    if (end > first) {
      tasks.push_back(pool_.Submit([this, run = std::vector<format::ExtentEntry>(
                                              sorted.begin() + first, sorted.begin() + end)] {
        return chunks_->Prefetch(run);
      }));
    }
    first = end;
  };
  for (size_t i = 0; i < sorted.size(); i++) {
    const format::ExtentEntry& e = sorted[i];
    const uint64_t at = e.object_offset(), end = at + format::ExtentStoredBytes(e, block_size_);
    if (i > first) {
      const format::ExtentEntry& head = sorted[first];
      // Another object, a gap or span too long, or bytes that overlap the
      // run's (cannot happen: ChunkReader::Prefetch would refuse them).
      if (object(e) != object(head) || at < run_end || at - run_end > kPrefetchMaxGap ||
          end - head.object_offset() > kPrefetchMaxSpan) {
        issue(i);
      }
    }
    run_end = end;
  }
  issue(sorted.size());
  // Meanwhile the index: the calls' lookups would load the leaves they meet
  // one GET at a time (a handle opened just for the compaction has none
  // cached). A walk over the extents' logical span is a scan, so the tree
  // hints each interior node's stored leaves to the node loader, which
  // fetches the runs of them that lie back to back with one GET each
  // (docs/design/0016); with them cached the lookups cost nothing.
  uint64_t lo = ~uint64_t{0}, hi = 0;
  for (const format::ExtentEntry& e : sorted) {
    lo = std::min(lo, e.start);
    hi = std::max(hi, e.end());
  }
  if (lo < hi) {
    index::TreeRoot root;
    {
      std::lock_guard<std::mutex> lock(mu_);
      root = root_;
    }
    (void)tree_->Visit(root, lo, hi, [](const format::ExtentEntry&) { return Status::OK(); });
  }
  // Errors are the reads' to report (see the header).
  for (auto& t : tasks) (void)t.get();
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
  FlushPipeline::Hold hold;  // keeps the flights' batches alive
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
    layered = dirty || punched || (pipeline_ && !pipeline_->FlightsEmptyLocked());
    if (layered) {
      for (auto it = first; it != current_.blocks.end() && it->first < b1; ++it) {
        current.blocks.emplace(it->first, it->second);
      }
      current_.punched.ForEachIn(b0, b1,
                                 [&](uint64_t s, uint64_t e) { current.punched.Add(s, e); });
      layers = pipeline_ ? pipeline_->LayersLocked(&current, 0, &hold)
                         : std::vector<Layer>{{&current, nullptr}};
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

// Writers wait here while the dirty budget is full (the pipeline frees it by
// committing; FlushPipeline::WaitForDirtyBudgetLocked).
Status FileImpl::WaitForDirtyBudget() {
  std::unique_lock<std::mutex> lock(mu_);
  return pipeline_->WaitForDirtyBudgetLocked(lock);
}

void FileImpl::NoteMutationLocked() {
  mtime_ms_ = NowMs();
  pipeline_->NoteMutationLocked(mtime_ms_);
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

// Returns once every mutation made before the call is committed, with the
// checkpoint that holds it. Callers that arrive while a flush uploads share
// the next one (group commit).
Result<uint64_t> FileImpl::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) return Status::InvalidArgument(store_->Name() + ": file is closed");
  if (read_only_) return head_.self.id;
  HF_RETURN_IF_ERROR(CheckUsable(true));
  HF_RETURN_IF_ERROR(pipeline_->WaitFlushedLocked(lock));
  return head_.self.id;
}

Batch FileImpl::TakeBatchLocked() {
  Batch taken = std::move(current_);
  current_ = Batch{};
  return taken;
}

void FileImpl::PutBackLocked(Batch&& older) {
  LayerOver(std::move(current_), &older, block_size_);
  current_ = std::move(older);
}

void FileImpl::InstallLocked(const BuiltSegment& built) {
  for (const auto& [stored_offset, bytes] : built.remember) {
    chunks_->Remember(built.header.self.id, stored_offset, std::string_view(bytes, block_size_),
                      built.framed);
  }
  index::Tree::Unpin(built.pending);
  for (const index::NodePtr& n : built.pending) nodes_->Insert(n);
  root_ = built.root;
  head_ = built.header;
}

void FileImpl::SetTestHook(std::function<void(std::string_view)> hook) {
  if (pipeline_) pipeline_->SetTestHook(hook);
  test_hook_ = std::move(hook);
}

void FileImpl::FreezeForTesting() {
  if (pipeline_) pipeline_->FreezeForTesting();  // takes mu_
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
    if (pipeline_) {
      FlushPipeline::Hold hold;  // newest first
      (void)pipeline_->LayersLocked(nullptr, 0, &hold);
      flights.assign(hold.batches.rbegin(), hold.batches.rend());
    }
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
