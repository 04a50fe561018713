#include "file/file_impl.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>
#include <random>

#include "util/coding.h"

namespace hyperfile::file {

using format::kChunkSize;

namespace {

constexpr uint64_t kNoEnd = ~uint64_t{0};
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

// ------------------------------------------------------------ lifecycle ---

FileImpl::FileImpl(std::shared_ptr<ObjectStore> store, const OpenOptions& options,
                   const format::SegmentHeader& head)
    : store_(std::move(store)),
      options_(options),
      block_size_(head.block_size()),
      read_only_(options.read_only),
      writer_epoch_(RandomU64()),
      head_(head) {
  if (options_.writer_name.empty()) options_.writer_name = DefaultWriterName();
  if (options_.writer_name.size() > 255) options_.writer_name.resize(255);
  lineage_ = std::make_unique<Lineage>(store_, head.origins, DefaultResolver(options_));
  nodes_ = std::make_unique<NodeLoader>(lineage_.get(), options_.index_cache_bytes);
  chunks_ = std::make_unique<ChunkReader>(lineage_.get(), block_size_, options_.block_cache_bytes);
  if (!options_.disk_cache_dir.empty() && options_.disk_cache_bytes > 0) {
    chunks_->SetDiskCache(SharedDiskCache(options_.disk_cache_dir, options_.disk_cache_bytes),
                          head.file_id);
  }
  tree_ = std::make_unique<index::Tree>(nodes_.get(), block_size_);
  pool_ = std::make_unique<ThreadPool>(static_cast<size_t>(std::max(1, options_.io_parallelism)));
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
}

Status FileImpl::Close() {
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
  if (frozen_) n += frozen_->blocks.size();
  return n * block_size_;
}

// ----------------------------------------------------------------- read ---

Result<size_t> FileImpl::PRead(uint64_t offset, void* buf, size_t len) {
  uint64_t size;
  {
    std::lock_guard<std::mutex> lock(mu_);
    HF_RETURN_IF_ERROR(CheckUsable(false));
    size = size_;
  }
  if (len > 0 && buf == nullptr) return Status::InvalidArgument("pread: null buffer");
  if (offset >= size || len == 0) return size_t{0};
  uint64_t n = std::min<uint64_t>(len, size - offset);
  ReadAhead(offset, n, size);
  HF_RETURN_IF_ERROR(ReadInternal(offset, n, static_cast<char*>(buf)));
  return static_cast<size_t>(n);
}

void FileImpl::ReadAhead(uint64_t offset, uint64_t len, uint64_t size) {
  const uint64_t unit = std::max<uint64_t>(options_.max_read_request_bytes, kChunkSize);
  // Prefetched data must survive in the block cache until it is read.
  const uint64_t max_window =
      std::min<uint64_t>(kMaxReadaheadBytes, options_.block_cache_bytes / 2);
  std::vector<std::shared_future<Status>> overlapping;
  {
    std::lock_guard<std::mutex> lock(readahead_mu_);
    std::erase_if(prefetches_, [](const Prefetch& p) {
      return p.done.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    });
    if (offset == ra_next_) {
      ra_streak_++;
    } else {
      ra_streak_ = 0;
      ra_issued_end_ = 0;
    }
    ra_next_ = offset + len;
    if (ra_streak_ >= 2 && max_window >= unit) {
      // The window doubles with every adjacent read, from one unit.
      uint64_t window = std::min(max_window, unit << std::min(ra_streak_ - 2, 12));
      uint64_t want = std::min(size, offset + len + window);
      uint64_t start = std::max(ra_issued_end_, offset);
      if (start < want) ra_issued_end_ = std::max(want, IssuePrefetchLocked(start, want, size));
    }
    for (const Prefetch& p : prefetches_) {
      if (p.lo < offset + len && offset < p.hi) overlapping.push_back(p.done);
    }
  }
  // A failed prefetch is not an error: the read below fetches (and reports).
  for (auto& f : overlapping) f.wait();
}

// Requests are cut on a grid that starts where the stream entered each
// segment's run of blocks (not at logical multiples of the unit), and a
// short tail (< unit/4) of a run rides along with the request before it. So
// a stream costs one GET per unit of data even when segment boundaries fall
// at arbitrary offsets, and no GET is smaller than a quarter unit unless the
// run itself is. Returns the end of what was issued (may pass `hi`).
uint64_t FileImpl::IssuePrefetchLocked(uint64_t lo, uint64_t hi, uint64_t size) {
  const uint64_t bs = block_size_;
  const uint64_t unit = std::max<uint64_t>(options_.max_read_request_bytes, kChunkSize);
  index::TreeRoot root;
  {
    std::lock_guard<std::mutex> lock(mu_);
    root = root_;
  }
  uint64_t issued_end = hi;
  // Visit past hi: requests starting before hi may run on (Visit clips each
  // run to the range, and a clipped run must not look like a short tail).
  const uint64_t reach = std::min(size, hi + unit + unit / 4 + bs);
  (void)tree_->Visit(root, lo / bs, (reach + bs - 1) / bs, [&](const format::ExtentEntry& piece) {
    const uint64_t run_end = std::min(size, piece.end() * bs);
    for (uint64_t s = std::max(lo, piece.start * bs); s < std::min(hi, run_end);) {
      uint64_t e = std::min(run_end, s + unit);
      if (run_end - e < unit / 4) e = run_end;
      // dst == nullptr: the chunks only go into the caches.
      auto task =
          pool_->Submit([this, piece, s, e] { return chunks_->Read(piece, s, e, nullptr); });
      prefetches_.push_back({s, e, task.share()});
      issued_end = std::max(issued_end, e);
      s = e;
    }
    return Status::OK();
  });
  return issued_end;
}

// Where the bytes of one block inside the read window come from, newest
// layer first: the current batch, the frozen batch, the committed tree. A
// layer ends the search when it punched the block (zeros) or its written
// bytes cover the window; partial layers above that point are overlaid on
// it, oldest first.
Status FileImpl::ReadInternal(uint64_t offset, uint64_t len, char* buf) {
  const uint64_t bs = block_size_;
  const uint64_t end = offset + len;
  const uint64_t b0 = offset / bs, b1 = (end - 1) / bs + 1;
  // The current batch's bytes inside the window, copied under mu_ (it
  // changes once we unlock); the frozen batch is immutable and the root is
  // a value, so the three layers are one consistent picture.
  struct Copied {
    bool zero = false;  // punched in the current batch
    IntervalSet valid;  // logical byte ranges written, clipped to the window
    std::string bytes;  // the window part of the block, from its start s
  };
  std::map<uint64_t, Copied> current;
  std::shared_ptr<const Batch> frozen;
  index::TreeRoot root;
  auto window = [&](uint64_t b) {
    return std::make_pair(std::max(offset, b * bs), std::min(end, (b + 1) * bs));
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = current_.blocks.lower_bound(b0); it != current_.blocks.end() && it->first < b1;
         ++it) {
      const auto w_ = window(it->first);
      const uint64_t ws = w_.first, we = w_.second;
      Copied& c = current[it->first];
      const uint64_t base = it->first * bs;
      it->second.valid.ForEachIn(ws - base, we - base,
                                 [&](uint64_t x, uint64_t y) { c.valid.Add(base + x, base + y); });
      c.bytes.assign(it->second.data.data() + (ws - base), we - ws);
    }
    current_.punched.ForEachIn(b0, b1, [&](uint64_t ps, uint64_t pe) {
      for (uint64_t b = ps; b < pe; b++) {
        if (!current.count(b)) current[b].zero = true;
      }
    });
    frozen = frozen_;
    root = root_;
  }
  enum Stop : uint8_t { kCurrent, kFrozen, kTree };
  std::vector<Stop> stop(b1 - b0);
  std::vector<TreeRead> tree_reads;
  for (uint64_t b = b0; b < b1; b++) {
    const auto w_ = window(b);
    const uint64_t ws = w_.first, we = w_.second;
    auto c = current.find(b);
    Stop& st = stop[b - b0];
    if (c != current.end() && (c->second.zero || c->second.valid.Covers(ws, we))) {
      st = kCurrent;
      continue;
    }
    if (frozen) {
      auto f = frozen->blocks.find(b);
      if (f != frozen->blocks.end() ? f->second.valid.Covers(ws - b * bs, we - b * bs)
                                    : frozen->punched.Contains(b)) {
        st = kFrozen;
        continue;
      }
    }
    st = kTree;
    if (!tree_reads.empty() && tree_reads.back().b1 == b) {
      tree_reads.back().b1 = b + 1;
      tree_reads.back().len = we - tree_reads.back().offset;
    } else {
      tree_reads.push_back({b, b + 1, ws, we - ws, buf + (ws - offset)});
    }
  }
  if (!tree_reads.empty()) HF_RETURN_IF_ERROR(ReadFromTree(root, tree_reads));
  for (uint64_t b = b0; b < b1; b++) {
    const auto w_ = window(b);
    const uint64_t ws = w_.first, we = w_.second;
    char* dst = buf + (ws - offset);
    const Stop st = stop[b - b0];
    if (st != kCurrent && frozen) {
      auto f = frozen->blocks.find(b);
      if (f != frozen->blocks.end()) {
        f->second.valid.ForEachIn(ws - b * bs, we - b * bs, [&](uint64_t x, uint64_t y) {
          std::memcpy(buf + (b * bs + x - offset), f->second.data.data() + x, y - x);
        });
      } else if (st == kFrozen) {
        std::memset(dst, 0, we - ws);  // punched in the frozen batch
      }
    }
    auto c = current.find(b);
    if (c == current.end()) continue;
    if (c->second.zero) {
      std::memset(dst, 0, we - ws);
      continue;
    }
    c->second.valid.ForEachIn(ws, we, [&](uint64_t x, uint64_t y) {
      std::memcpy(buf + (x - offset), c->second.bytes.data() + (x - ws), y - x);
    });
  }
  return Status::OK();
}

// Holes become zeros, data extents are fetched with one ranged GET per piece
// (split at max_read_request_bytes), all in parallel.
Status FileImpl::ReadFromTree(const index::TreeRoot& root, const std::vector<TreeRead>& reads) {
  struct Request {
    format::ExtentEntry piece;
    uint64_t lo, hi;
    char* dst;
  };
  std::vector<Request> requests;
  const uint64_t bs = block_size_;
  const uint64_t max_bytes = std::max<uint64_t>(options_.max_read_request_bytes, kChunkSize);
  for (const TreeRead& r : reads) {
    std::memset(r.buf, 0, r.len);
    HF_RETURN_IF_ERROR(tree_->Visit(root, r.b0, r.b1, [&](const format::ExtentEntry& piece) {
      uint64_t lo = std::max(r.offset, piece.start * bs);
      uint64_t hi = std::min(r.offset + r.len, piece.end() * bs);
      for (uint64_t s = lo; s < hi;) {
        uint64_t e = std::min(hi, (s / kChunkSize) * kChunkSize + max_bytes);
        requests.push_back({piece, s, e, r.buf + (s - r.offset)});
        s = e;
      }
      return Status::OK();
    }));
  }
  auto run = [&](const Request& q) { return chunks_->Read(q.piece, q.lo, q.hi, q.dst); };
  if (requests.empty()) return Status::OK();
  if (requests.size() == 1) return run(requests[0]);
  std::vector<std::future<Status>> pending;
  pending.reserve(requests.size());
  for (const Request& q : requests) pending.push_back(pool_->Submit([&run, &q] { return run(q); }));
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
    // Freeze right here when the flusher is idle, so a size-triggered
    // segment holds exactly the threshold's worth of a stream (segment
    // boundaries then fall on read-unit multiples: one GET per unit when
    // read back) instead of whatever arrived before the flusher woke up.
    if (!frozen_ && !fenced_ && NowMs() >= retry_after_ms_) FreezeLocked();
    flush_cv_.notify_one();
  }
}

void FileImpl::FreezeLocked() {
  frozen_ = std::make_shared<const Batch>(std::move(current_));
  current_ = Batch{};
  frozen_size_ = size_;
  frozen_seq_ = write_seq_;
  frozen_oldest_ms_ = oldest_dirty_ms_;
  oldest_dirty_ms_ = 0;
  frozen_pending_ = true;
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
    if (!data && s == base && e == base + bs) {  // a whole block of zeros: a hole, no data
      current_.blocks.erase(b);
      current_.punched.Add(b, b + 1);
      continue;
    }
    auto it = current_.blocks.find(b);
    if (it == current_.blocks.end()) {
      it = current_.blocks.emplace(b, DirtyBlock{std::string(bs, '\0'), {}}).first;
      // Punched in this batch: the block below is known to be zeros.
      if (current_.punched.Contains(b)) it->second.valid.Add(0, bs);
    }
    if (data)
      std::memcpy(it->second.data.data() + (s - base), data + (s - offset), e - s);
    else
      std::memset(it->second.data.data() + (s - base), 0, e - s);
    it->second.valid.Add(s - base, e - base);
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
  const uint64_t keep = (size + bs - 1) / bs;
  if (size % bs != 0) {
    const uint64_t tail = size / bs;
    auto it = current_.blocks.find(tail);
    if (it == current_.blocks.end() && !current_.punched.Contains(tail)) {
      it = current_.blocks.emplace(tail, DirtyBlock{std::string(bs, '\0'), {}}).first;
    }
    if (it != current_.blocks.end()) {
      std::memset(it->second.data.data() + size % bs, 0, bs - size % bs);
      it->second.valid.Add(size % bs, bs);
    }
  }
  current_.blocks.erase(current_.blocks.lower_bound(keep), current_.blocks.end());
  current_.punched.Add(keep, kNoEnd);
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

struct FileImpl::Built {
  format::SegmentHeader header;
  std::string header_bytes;
  std::string node_bytes;
  std::vector<char> crcs;
  Payload payload;
  index::TreeRoot root;
  std::vector<index::NodePtr> pending;
  // Blocks kept in the chunk cache once committed: the merged partial ones
  // and the last block of each run (an append continues there).
  std::vector<std::pair<uint64_t, const std::string*>> remember;  // stored offset, bytes
};

Status FileImpl::BuildSegment(const Batch& batch, const std::map<uint64_t, std::string>& merged,
                              uint64_t size, Built* out) {
  const uint64_t id = head_.self.id + 1;
  if (id > format::kMaxCheckpointId) return Status::OutOfRange("checkpoint ids exhausted");
  const uint64_t sbs = format::StoredBlockSize(block_size_);
  // Changes: data runs (offsets relative to the data area) and holes.
  std::vector<const std::string*> data;  // in block order
  std::vector<uint64_t> data_blocks;
  IntervalSet holes = batch.punched;
  for (const auto& [b, dirty] : batch.blocks) {
    auto m = merged.find(b);
    const std::string& block = m != merged.end() ? m->second : dirty.data;
    if (AllZero(block)) {
      holes.Add(b, b + 1);
    } else {
      data.push_back(&block);
      data_blocks.push_back(b);
    }
  }
  std::vector<index::Change> changes;
  for (const auto& [s, e] : holes.ranges()) {
    // Dirty data blocks inside a punched range win over the punch.
    uint64_t pos = s;
    auto it = std::lower_bound(data_blocks.begin(), data_blocks.end(), s);
    for (; it != data_blocks.end() && *it < e; ++it) {
      if (*it > pos) changes.push_back({pos, *it - pos, true, 0, 0});
      pos = *it + 1;
    }
    if (pos < e) changes.push_back({pos, e - pos, true, 0, 0});
  }
  for (size_t i = 0; i < data_blocks.size();) {
    size_t j = i;
    while (j + 1 < data_blocks.size() && data_blocks[j + 1] == data_blocks[j] + 1) j++;
    changes.push_back({data_blocks[i], j - i + 1, false, id, i * sbs, writer_epoch_});
    i = j + 1;
  }
  std::sort(changes.begin(), changes.end(),
            [](const index::Change& a, const index::Change& b) { return a.start < b.start; });

  HF_ASSIGN_OR_RETURN(out->root, tree_->Apply(root_, changes));
  out->pending = tree_->CollectPending(out->root);

  format::SegmentHeader& h = out->header;
  h = head_;
  h.self.id = id;
  h.self.time_ms = std::max(NowMs(), head_.self.time_ms);
  h.self.size = size;
  h.self.allocated_blocks = out->root.blocks;
  h.self.bytes_changed = data.size() * uint64_t{block_size_};
  h.self.restored_from = 0;
  h.self.height = out->root.height;
  h.self.root = out->root.empty() ? format::NodeRef{} : out->root.ref;
  if (!out->pending.empty()) h.self.root = {id, 0, 0};  // placeholder, fixed width
  h.parent = head_.self.id;
  h.parent_crc = head_.crc;
  h.writer_epoch = writer_epoch_;
  h.writer = options_.writer_name;
  format::CarryHistory(head_, &h);
  const uint64_t header_len = format::EncodeHeader(h).size();
  const uint64_t nodes_len = index::Tree::PendingBytes(out->pending);
  if (header_len + nodes_len > UINT32_MAX) {
    return Status::OutOfRange(store_->Name() + ": index change too large for one segment");
  }
  h.node_area_offset = header_len;
  h.node_area_length = nodes_len;
  h.data_area_offset = header_len + nodes_len;
  h.data_area_length = data.size() * sbs;
  index::Tree::FinishLayout(&out->root, out->pending, id, header_len, h.data_area_offset,
                            &out->node_bytes);
  if (!out->pending.empty()) h.self.root = out->root.ref;
  out->header_bytes = format::EncodeHeader(h);
  h.crc = DecodeFixed32(out->header_bytes.data() + out->header_bytes.size() - 4);

  for (size_t i = 0; i < data.size(); i++) {
    const bool run_end = i + 1 == data.size() || data_blocks[i + 1] != data_blocks[i] + 1;
    if (run_end || merged.count(data_blocks[i])) {
      out->remember.emplace_back(h.data_area_offset + i * sbs, data[i]);
    }
  }
  // Gather list: header, nodes, then each 4 KiB chunk followed by its CRC.
  const uint64_t chunks_per_block = block_size_ / kChunkSize;
  out->crcs.resize(data.size() * chunks_per_block * format::kChunkCrcSize);
  out->payload.clear();
  out->payload.reserve(2 + data.size() * chunks_per_block * 2);
  out->payload.push_back(out->header_bytes);
  if (!out->node_bytes.empty()) out->payload.push_back(out->node_bytes);
  for (size_t i = 0; i < data.size(); i++) {
    for (uint64_t c = 0; c < chunks_per_block; c++) {
      const char* chunk = data[i]->data() + c * kChunkSize;
      char* crc = out->crcs.data() + (i * chunks_per_block + c) * format::kChunkCrcSize;
      EncodeFixed32(crc, format::ChunkCrc(chunk, data_blocks[i] * block_size_ + c * kChunkSize));
      out->payload.emplace_back(chunk, kChunkSize);
      out->payload.emplace_back(crc, format::kChunkCrcSize);
    }
  }
  return Status::OK();
}

// Creates the segment. A create-only put that was retried after a lost
// response may answer "already exists" although our first attempt landed:
// read the header back and compare before calling it a conflict.
Status FileImpl::Commit(Built* built) {
  const std::string key = format::SegmentKey(built->header.self.id);
  Status st = CreateOnce(store_.get(), key, built->payload, built->header_bytes);
  if (st.IsPreconditionFailed()) {
    return Status::Conflict(store_->Name() + ": file was changed by another writer (checkpoint " +
                            std::to_string(built->header.self.id) + " already exists)");
  }
  HF_RETURN_IF_ERROR(st.WithContext("flush"));
  if (built->header.self.time_ms - head_.self.time_ms > kHorizonCheckAfterMs) {
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

void LayerOver(Batch&& newer, Batch* older, uint64_t bs) {
  for (const auto& [s, e] : newer.punched.ranges()) {
    older->blocks.erase(older->blocks.lower_bound(s), older->blocks.lower_bound(e));
    older->punched.Add(s, e);
  }
  for (auto& entry : newer.blocks) {
    const uint64_t b = entry.first;
    DirtyBlock& block = entry.second;
    auto it = older->blocks.find(b);
    if (block.full(bs) || (it == older->blocks.end() && !older->punched.Contains(b))) {
      older->blocks[b] = std::move(block);  // nothing below it in `older` to keep
      continue;
    }
    if (it == older->blocks.end()) {
      // The older batch punched it (a newer punch of b would have erased the
      // partial block): the base is zeros, and `data` is zero outside `valid`.
      block.valid.Add(0, bs);
      older->blocks[b] = std::move(block);
      continue;
    }
    block.valid.ForEachIn(0, bs, [&](uint64_t x, uint64_t y) {
      std::memcpy(it->second.data.data() + x, block.data.data() + x, y - x);
      it->second.valid.Add(x, y);
    });
  }
}

void FileImpl::MergeBack(const std::shared_ptr<const Batch>& frozen) {
  // Caller holds mu_. The writes that arrived meanwhile are newer.
  Batch merged = *frozen;
  LayerOver(std::move(current_), &merged, block_size_);
  current_ = std::move(merged);
  frozen_.reset();
  frozen_pending_ = false;
  if (frozen_oldest_ms_ != 0 && (oldest_dirty_ms_ == 0 || frozen_oldest_ms_ < oldest_dirty_ms_)) {
    oldest_dirty_ms_ = frozen_oldest_ms_;  // the age trigger counts from the older write
  }
}

Status FileImpl::MergeBases(const Batch& batch, const index::TreeRoot& root,
                            std::map<uint64_t, std::string>* merged) {
  const uint64_t bs = block_size_;
  std::vector<TreeRead> reads;
  for (const auto& [b, dirty] : batch.blocks) {
    if (dirty.full(bs)) continue;
    std::string& out = (*merged)[b];
    out.resize(bs);
    reads.push_back({b, b + 1, b * bs, bs, out.data()});
  }
  if (reads.empty()) return Status::OK();
  HF_RETURN_IF_ERROR(
      ReadFromTree(root, reads).WithContext("flush: read the bases of partial blocks"));
  for (auto& entry : *merged) {
    std::string& out = entry.second;
    const DirtyBlock& dirty = batch.blocks.at(entry.first);
    dirty.valid.ForEachIn(0, bs, [&](uint64_t x, uint64_t y) {
      std::memcpy(out.data() + x, dirty.data.data() + x, y - x);
    });
  }
  return Status::OK();
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

void FileImpl::FlusherLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    const int64_t now = NowMs();
    const bool asked = flush_requested_seq_ > committed_seq_;
    if (asked || frozen_pending_ ||
        (write_seq_ > committed_seq_ && BackgroundFlushDueLocked(now))) {
      if (fenced_) {
        // Nothing can commit any more: answer every waiter instead of spinning.
        if (frozen_pending_) MergeBack(frozen_);
        flush_failures_++;
        last_flush_error_ = CheckUsable(true);
        flush_requested_seq_ = committed_seq_;
        commit_cv_.notify_all();
        continue;
      }
      FlushOnceLocked(lock);
      continue;
    }
    if (stopping_) return;
    // Sleep until asked, or until the age trigger (or a retry pause) is due.
    int64_t wake = 0;
    if (write_seq_ > committed_seq_ && options_.flush_interval_ms > 0 && oldest_dirty_ms_ > 0) {
      wake = oldest_dirty_ms_ + options_.flush_interval_ms;
    }
    if (write_seq_ > committed_seq_ && retry_after_ms_ > now) {
      wake = wake ? std::max(wake, retry_after_ms_) : retry_after_ms_;
    }
    if (wake) {
      flush_cv_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(1, wake - now)));
    } else {
      flush_cv_.wait(lock);
    }
  }
}

void FileImpl::FlushOnceLocked(std::unique_lock<std::mutex>& lock) {
  if (!frozen_pending_) {
    if (current_.empty() && size_ == head_.self.size) {
      committed_seq_ = write_seq_;  // nothing that needs a checkpoint (e.g. a no-op truncate)
      oldest_dirty_ms_ = 0;
      commit_cv_.notify_all();
      return;
    }
    FreezeLocked();
  }
  frozen_pending_ = false;
  const std::shared_ptr<const Batch> frozen = frozen_;
  const uint64_t size = frozen_size_;
  const uint64_t covered = frozen_seq_;
  const index::TreeRoot root = root_;  // the frozen batch lies directly on it
  lock.unlock();
  if (test_hook_) test_hook_("flush:frozen");
  Built built;
  std::map<uint64_t, std::string> merged;
  Status st = MergeBases(*frozen, root, &merged);
  if (st.ok()) st = BuildSegment(*frozen, merged, size, &built);
  if (st.ok()) st = Commit(&built);
  lock.lock();
  if (!st.ok()) {
    if (st.IsConflict()) fenced_ = true;
    MergeBack(frozen);
    last_flush_error_ = st;
    flush_failures_++;
    flush_requested_seq_ = committed_seq_;  // waiters get the error; new calls ask again
    // Background flushes back off (1 s doubling to 30 s) so a dead store is
    // not hammered; an explicit Flush() still tries at once.
    retry_backoff_ms_ = std::min<int64_t>(retry_backoff_ms_ ? retry_backoff_ms_ * 2 : 1000, 30000);
    retry_after_ms_ = NowMs() + retry_backoff_ms_;
    commit_cv_.notify_all();
    return;
  }
  for (const auto& [stored_offset, bytes] : built.remember) {
    chunks_->Remember(built.header.self.id, stored_offset, *bytes);
  }
  index::Tree::Unpin(built.pending);
  for (const index::NodePtr& n : built.pending) nodes_->Insert(n);
  root_ = built.root;
  head_ = built.header;
  frozen_.reset();
  committed_seq_ = covered;
  retry_backoff_ms_ = 0;
  retry_after_ms_ = 0;
  commit_cv_.notify_all();
}

void FileImpl::SetTestHook(std::function<void(std::string_view)> hook) {
  test_hook_ = std::move(hook);
}

void FileImpl::FreezeForTesting() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!frozen_ && !current_.empty() && !fenced_) FreezeLocked();
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
  st.checkpoint = head_.self.id;
  st.create_time_ms = head_.create_time_ms;
  st.mtime_ms = mtime_ms_;
  st.checkpoint_time_ms = head_.self.time_ms;
  st.read_only = read_only_;
  st.dirty_bytes = DirtyBytesLocked();
  st.block_cache_bytes = chunks_->cached_bytes();
  st.index_cache_bytes = nodes_->cached_bytes();
  if (DiskCache* disk = chunks_->disk_cache()) st.disk_cache_bytes = disk->used_bytes();
  return st;
}

Status FileImpl::DataBlockRanges(uint64_t b0, uint64_t b1, IntervalSet* out) {
  index::TreeRoot root;
  std::shared_ptr<const Batch> frozen;
  Batch current_copy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    root = root_;
    frozen = frozen_;
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
  if (frozen) apply(*frozen);
  apply(current_copy);
  return Status::OK();
}

Result<std::vector<Extent>> FileImpl::Extents(uint64_t offset, uint64_t len) {
  uint64_t size;
  {
    std::lock_guard<std::mutex> lock(mu_);
    HF_RETURN_IF_ERROR(CheckUsable(false));
    size = size_;
  }
  std::vector<Extent> out;
  if (offset >= size || len == 0) return out;
  uint64_t end = offset + std::min(len, size - offset);
  const uint64_t bs = block_size_;
  IntervalSet data;
  HF_RETURN_IF_ERROR(DataBlockRanges(offset / bs, (end - 1) / bs + 1, &data));
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

Result<uint64_t> FileImpl::SeekData(uint64_t offset) {
  uint64_t size = Size();
  if (offset >= size) return Status::InvalidArgument("seek_data: offset at or past end of file");
  HF_ASSIGN_OR_RETURN(std::vector<Extent> extents, Extents(offset, size - offset));
  for (const Extent& e : extents) {
    if (e.data) return e.offset;
  }
  return Status::NotFound("seek_data: no data after offset " + std::to_string(offset));
}

Result<uint64_t> FileImpl::SeekHole(uint64_t offset) {
  uint64_t size = Size();
  if (offset >= size) return Status::InvalidArgument("seek_hole: offset at or past end of file");
  HF_ASSIGN_OR_RETURN(std::vector<Extent> extents, Extents(offset, size - offset));
  for (const Extent& e : extents) {
    if (!e.data) return e.offset;
  }
  return size;
}

}  // namespace hyperfile::file
