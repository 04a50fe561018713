// SPDX-License-Identifier: Apache-2.0
#include "file/flush_pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>

#include "format/frame.h"
#include "util/coding.h"

namespace hyperfile::file {

namespace {

// A writer whose parent checkpoint is older than this re-reads the GC
// horizon before acknowledging a flush (docs/design/0002-commit-protocol.md).
constexpr int64_t kHorizonCheckAfterMs = 10 * 60 * 1000;

bool AllZero(const std::string& block) {
  return block.empty() ||
         (block[0] == 0 && std::memcmp(block.data(), block.data() + 1, block.size() - 1) == 0);
}

}  // namespace

// What the prepare stage made of a flight's batch.
struct FlushPipeline::Prepared {
  Prepared(uint32_t block_size, std::shared_ptr<FrameBuffers> buffers)
      : stored(block_size), buffers(std::move(buffers)) {}
  ~Prepared() { ReleaseFrameParts(); }
  Prepared(const Prepared&) = delete;
  Prepared& operator=(const Prepared&) = delete;
  // Gives the frame buffers back for the next flight (nothing may view them
  // any more: the data object is uploaded, or the flight is done).
  void ReleaseFrameParts() {
    for (std::string& part : frame_parts) buffers->Give(std::move(part));
    frame_parts.clear();
  }
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
  uint64_t checkpoint = 0, epoch = 0;           // the flight's (what frames are sealed for)
  const std::shared_ptr<FrameBuffers> buffers;  // where frame_parts come from and go back
};

struct FlushPipeline::Flight {
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

// ------------------------------------------------------------ lifecycle ---

FlushPipeline::FlushPipeline(std::mutex& mu, FlushHost* host, ObjectStore* store, index::Tree* tree,
                             TaskGroup* pool, ThreadPool* stage_pool, const OpenOptions& options,
                             Compression codec, uint32_t block_size)
    : mu_(mu),
      host_(host),
      store_(store),
      tree_(tree),
      pool_(*pool),
      options_(options),
      codec_(codec),
      block_size_(block_size),
      // Each flight in the pipeline uses at most one part per core.
      frame_buffers_(std::make_shared<FrameBuffers>(
          std::max<size_t>(1, std::thread::hardware_concurrency()) * (kPipelineDepth + 1))),
      writer_epoch_(RandomU64()) {
  // Stage tasks wait for pool_ tasks (parallel GETs, uploads), so they run
  // on other workers: one per pipeline place, or the executor's flush pool.
  if (stage_pool) {
    stages_.Reset(stage_pool);
  } else {
    own_stages_ = std::make_unique<ThreadPool>(kPipelineDepth);
    stages_.Reset(own_stages_.get());
  }
}

FlushPipeline::~FlushPipeline() {
  Stop();
  stages_.Wait();
}

void FlushPipeline::Start(std::shared_ptr<const format::Sealer> sealer) {
  sealer_ = std::move(sealer);
  flusher_ = std::thread([this] { FlusherLoop(); });
}

void FlushPipeline::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  flush_cv_.notify_all();
  commit_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
}

void FlushPipeline::WaitStages() { stages_.Wait(); }

size_t FlushPipeline::FlightBlocksLocked() const {
  size_t n = 0;
  for (const auto& f : flights_) n += f->batch->blocks.size();
  return n;
}

// ---------------------------------------------------------------- write ---

// Writers wait here while the dirty budget is full; the flusher frees it by
// committing. A flush that fails while we wait is reported to the writer
// (its bytes were not taken), so a dead store never blocks writers forever.
Status FlushPipeline::WaitForDirtyBudgetLocked(std::unique_lock<std::mutex>& lock) {
  // Only dirty data that a flush can free is worth waiting for: with nothing
  // dirty a writer never waits, whatever the budget.
  auto fits = [&] {
    uint64_t dirty = (host_->CurrentBlocksLocked() + FlightBlocksLocked()) * uint64_t{block_size_};
    return dirty == 0 || dirty < options_.dirty_budget_bytes;
  };
  if (fits()) return Status::OK();
  const uint64_t failures_seen = flush_failures_;
  budget_waiters_++;
  flush_cv_.notify_one();
  commit_cv_.wait(lock, [&] {
    return fits() || flush_failures_ != failures_seen || stopping_ || host_->ClosedLocked() ||
           fenced_;
  });
  budget_waiters_--;
  if (fits() && !host_->ClosedLocked() && !stopping_) return Status::OK();
  if (flush_failures_ != failures_seen) {
    return last_flush_error_.WithContext("write waited for the dirty budget and the flush failed");
  }
  return host_->CheckWritableLocked().ok()
             ? Status::InvalidArgument(store_->Name() + ": file is closing")
             : host_->CheckWritableLocked();
}

void FlushPipeline::NoteMutationLocked(int64_t now_ms) {
  write_seq_++;
  if (oldest_dirty_ms_ == 0) {
    oldest_dirty_ms_ = now_ms;
    if (options_.flush_interval_ms > 0) flush_cv_.notify_one();  // arm the age timer
  }
  if (host_->CurrentBlocksLocked() * block_size_ >= FlushThresholdBytes()) {
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
uint64_t FlushPipeline::FlushThresholdBytes() const {
  uint64_t t =
      options_.flush_dirty_bytes ? options_.flush_dirty_bytes : options_.dirty_budget_bytes / 2;
  return std::max<uint64_t>(t, block_size_);
}

// ---------------------------------------------------------------- flush ---

std::vector<Layer> FlushPipeline::LayersLocked(const Batch* current, size_t skip_newest,
                                               Hold* hold) const {
  std::vector<Layer> layers;
  if (current) layers.push_back({current, nullptr});
  for (size_t i = flights_.size() - std::min(skip_newest, flights_.size()); i-- > 0;) {
    layers.push_back({flights_[i]->batch.get(), flights_[i]->merged.get()});
    if (hold) {
      hold->batches.push_back(flights_[i]->batch);
      hold->merged.push_back(flights_[i]->merged);
    }
  }
  return layers;
}

bool FlushPipeline::StageRunningLocked() const { return stages_running_ > 0; }

void FlushPipeline::FreezeLocked() {
  auto flight = std::make_shared<Flight>();
  flight->batch = std::make_shared<const Batch>(host_->TakeBatchLocked());
  flight->size = host_->SizeLocked();
  flight->seq = write_seq_;
  flight->oldest_ms = oldest_dirty_ms_;
  oldest_dirty_ms_ = 0;
  flights_.push_back(std::move(flight));
}

void FlushPipeline::StartPrepareLocked(const std::shared_ptr<Flight>& flight) {
  size_t pos = 0;
  while (flights_[pos] != flight) pos++;
  flight->id = host_->HeadLocked().self.id + pos + 1;
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
  const index::TreeRoot root = host_->RootLocked();
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

void FlushPipeline::StartCommitLocked(const std::shared_ptr<Flight>& flight) {
  flight->state = Flight::State::kCommitting;
  const format::SegmentHeader head = host_->HeadLocked();
  const index::TreeRoot root = host_->RootLocked();
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
Status FlushPipeline::Prepare(Flight* flight, const std::vector<Layer>& below,
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
          return host_->ReadBelow(root, reads);
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
  auto p = std::make_unique<Prepared>(block_size_, frame_buffers_);
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
  p->framed = codec_.codec != Codec::kNone || sealer_ != nullptr;
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
    p->ReleaseFrameParts();
  }
  flight->prepared = std::move(p);
  return Status::OK();
}

// One frame per block, compressed on up to one pool task per core (a
// flush's blocks are independent), each part into its own buffer. The
// buffers are taken here, in the stage's thread, at their bound (every
// frame fits, so none grows by reallocation, which held 1.5 times a part
// while it copied), and all in this thread's malloc arena: parts reserved
// by whichever pool worker ran them spread each flight's buffers over the
// workers' arenas, which kept them resident (issue 12: 107 MB peak RSS for
// a 256 MiB `hyperfile write`, 72 MB with MALLOC_ARENA_MAX=1; 73 MB now).
// They come from frame_buffers_: a busy handle's next flight reuses the
// pages of the last one instead of faulting fresh ones (frame_buffers.h).
void FlushPipeline::CompressBlocks(Prepared* p) {
  const uint64_t bs = block_size_;
  const size_t n = p->data.size();
  const size_t cores = std::max<size_t>(1, std::thread::hardware_concurrency());
  const size_t parts = n < 8 ? 1 : std::min(n, cores);
  const uint8_t codec = static_cast<uint8_t>(codec_.codec);
  const int level = codec_.level;
  p->frame_parts.assign(parts, std::string());
  p->frame_lengths.assign(n, 0);
  for (size_t k = 0; k < parts; k++) {
    const size_t b = n * k / parts, e = n * (k + 1) / parts;
    p->frame_parts[k] = frame_buffers_->Take((e - b) * format::MaxFrameBytes(block_size_));
  }
  // An encrypted file's frames are sealed for their checkpoint and epoch.
  format::FrameSeal seal{sealer_.get(), {}};
  seal.place.checkpoint = p->checkpoint;
  seal.place.writer_epoch = p->epoch;
  auto work = [&](size_t k) {
    const size_t b = n * k / parts, e = n * (k + 1) / parts;
    std::string& out = p->frame_parts[k];
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
Status FlushPipeline::BuildSegment(const Flight& flight, const format::SegmentHeader& head,
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
  const uint64_t nodes_len = index::Tree::PendingBytes(out->pending, sealer_.get());
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
                                               &out->node_bytes, sealer_.get()));
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
Status FlushPipeline::Commit(const format::SegmentHeader& head, Built* built) {
  const std::string key = format::SegmentKey(built->header.self.id);
  Status st = CreateOnce(store_, key, built->payload, built->header_bytes);
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

void FlushPipeline::FinishCommitLocked() {
  std::shared_ptr<Flight> f = flights_.front();
  host_->InstallLocked(*f->built);
  // Done with its bytes: the frame buffers go back now, not whenever the
  // last stage task lets go of the flight (so the idle check below sees them).
  f->built.reset();
  f->prepared.reset();
  committed_seq_ = std::max(committed_seq_, f->seq);
  flights_.pop_front();
  retry_backoff_ms_ = 0;
  retry_after_ms_ = 0;
  commit_cv_.notify_all();
}

void FlushPipeline::FailFlightsLocked(const Status& error) {
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
  host_->PutBackLocked(std::move(merged));
  for (const auto& f : flights_) {  // no stage runs: their frame buffers go back now
    f->built.reset();
    f->prepared.reset();
  }
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
Status FlushPipeline::WaitFlushedLocked(std::unique_lock<std::mutex>& lock) {
  const uint64_t target = write_seq_;
  if (committed_seq_ >= target) return Status::OK();
  const uint64_t failures_seen = flush_failures_;
  flush_requested_seq_ = std::max(flush_requested_seq_, target);
  flush_cv_.notify_one();
  commit_cv_.wait(lock, [&] {
    return committed_seq_ >= target || flush_failures_ != failures_seen || stopping_;
  });
  if (committed_seq_ >= target) return Status::OK();
  if (flush_failures_ != failures_seen) return last_flush_error_;
  return Status::InvalidArgument(store_->Name() + ": file is closing");
}

bool FlushPipeline::BackgroundFlushDueLocked(int64_t now_ms) const {
  if (fenced_ || now_ms < retry_after_ms_) return false;
  if (budget_waiters_ > 0) return true;
  if (host_->CurrentBlocksLocked() * block_size_ >= FlushThresholdBytes()) return true;
  return options_.flush_interval_ms > 0 && oldest_dirty_ms_ > 0 &&
         now_ms - oldest_dirty_ms_ >= static_cast<int64_t>(options_.flush_interval_ms);
}

// The flusher only decides; the stages run on stage workers and report back
// through flush_cv_. Every decision is taken under mu_, so there is no
// window in which a write, a read or another flush sees half a transition.
void FlushPipeline::FlusherLoop() {
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
        FailFlightsLocked(host_->CheckWritableLocked());
        continue;
      }
      if (flush_requested_seq_ > committed_seq_) {
        flush_failures_++;
        last_flush_error_ = host_->CheckWritableLocked();
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
    const uint64_t newest_size =
        flights_.empty() ? host_->HeadLocked().self.size : flights_.back()->size;
    const bool room = flights_.size() < kPipelineDepth && !fenced_ && !stopping_;
    if (room && write_seq_ > newest_seq &&
        (flush_requested_seq_ > newest_seq || BackgroundFlushDueLocked(now))) {
      if (host_->CurrentEmptyLocked() && host_->SizeLocked() == newest_size) {
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
    } else if (flights_.empty() && frame_buffers_->kept() != 0) {
      // Idle: an idle handle keeps no frame buffers. Freed without the lock
      // (unmapping tens of MiB), then everything is looked at again.
      lock.unlock();
      frame_buffers_->Drop();
      lock.lock();
    } else {
      flush_cv_.wait(lock);
    }
  }
}

void FlushPipeline::FreezeForTesting() {
  std::lock_guard<std::mutex> lock(mu_);
  if (flights_.size() < kPipelineDepth && !host_->CurrentEmptyLocked() && !fenced_) FreezeLocked();
  flush_cv_.notify_one();
}

}  // namespace hyperfile::file
