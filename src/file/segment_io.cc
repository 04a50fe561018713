// SPDX-License-Identifier: Apache-2.0
#include "file/segment_io.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <limits>

#include "format/frame.h"
#include "format/removal_marker.h"
#include "util/coding.h"

namespace hyperfile::file {

using format::kChunkCrcSize;
using format::kChunkSize;

Lineage::Lineage(std::shared_ptr<ObjectStore> own, std::vector<format::Origin> origins,
                 StoreResolver resolver)
    : own_(std::move(own)),
      origins_(std::move(origins)),
      resolver_(std::move(resolver)),
      opened_(origins_.size()) {}

Result<ObjectStore*> Lineage::StoreFor(uint64_t segment) {
  for (size_t i = 0; i < origins_.size(); i++) {
    if (segment > origins_[i].max_id) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (!opened_[i]) {
      if (!resolver_) return Status::NotSupported("no way to open clone origin " + origins_[i].uri);
      auto store = resolver_(origins_[i].uri);
      if (!store.ok()) return store.status().WithContext("open clone origin " + origins_[i].uri);
      opened_[i] = *store;
    }
    return opened_[i].get();
  }
  return own_.get();
}

std::string Lineage::Where(uint64_t segment) {
  return WhereKey(segment, format::SegmentKey(segment));
}

std::string Lineage::WhereKey(uint64_t segment, const std::string& key) {
  std::string name = own_->Name();
  for (const format::Origin& o : origins_) {
    if (segment <= o.max_id) {
      name = o.uri;
      break;
    }
  }
  return name + "/" + key;
}

Result<uint64_t> LatestCheckpointId(ObjectStore* store) {
  // Valid keys run from SegmentKey(kMaxCheckpointId) to SegmentKey(1); this
  // key sorts just below the first of them (it is not a valid key itself).
  static const std::string kBelowFirst = [] {
    std::string k = format::SegmentKey(format::kMaxCheckpointId);
    k.back() = static_cast<char>(k.back() - 1);
    return k;
  }();
  constexpr size_t kPage = 1000;
  constexpr int kMaxPages = 4;
  std::string after = kBelowFirst;
  std::string foreign;
  for (int page = 0; page <= kMaxPages; page++) {
    std::vector<ObjectInfo> keys;
    size_t limit = page == 0 ? 1 : kPage;  // the common case: one LIST, one key
    HF_RETURN_IF_ERROR(store->List(format::kSegmentPrefix, after, limit, &keys));
    for (const ObjectInfo& k : keys) {
      if (auto id = format::ParseSegmentKey(k.key)) return *id;
      if (foreign.empty()) foreign = k.key;
    }
    if (keys.size() < limit) {
      std::string msg = "no hyperfile at " + store->Name();
      if (!foreign.empty()) msg += " (" + foreign + " is not a segment key)";
      return Status::NotFound(msg);
    }
    after = keys.back().key;
  }
  return Status::Corrupt(store->Name() + "/" + foreign + ": more than " +
                         std::to_string(kMaxPages * kPage) +
                         " keys under seg/ that are not segment keys; gave up looking for the "
                         "newest segment");
}

Status CreateOnce(ObjectStore* store, const std::string& key, const Payload& payload,
                  std::string_view identity) {
  PutOptions put;
  put.if_absent = true;
  Status st = store->Put(key, payload, put, nullptr);
  if (!st.IsPreconditionFailed()) return st;
  std::string back;
  if (store->Get(key, 0, identity.size(), &back, nullptr).ok() && back == identity) {
    return Status::OK();
  }
  return st;
}

Result<HeaderRead> ReadHeader(ObjectStore* store, uint64_t id) {
  std::string key = format::SegmentKey(id);
  std::string where = store->Name() + "/" + key;
  HeaderRead read;
  ObjectInfo info;
  uint64_t asked = format::kHeaderPrefetch;
  Status st = store->Get(key, 0, asked, &read.bytes, &info);
  if (st.IsNotFound()) {
    return Status::NotFound("checkpoint " + std::to_string(id) + " does not exist (" + where + ")");
  }
  HF_RETURN_IF_ERROR(st);
  if (format::LooksLikeRemovalMarker(read.bytes)) {
    return Status::NotFound(where +
                            ": the file is partly removed (a removal was interrupted); "
                            "remove it again to finish");
  }
  auto truncated = [&](uint64_t needed) {
    return Status::Corrupt(where + " at offset " + std::to_string(read.bytes.size()) +
                           ": segment truncated inside its header (" +
                           std::to_string(read.bytes.size()) + " of " + std::to_string(needed) +
                           " bytes)");
  };
  uint64_t needed = 0;
  auto header = format::DecodeHeader(read.bytes, where, &needed);
  if (!header.ok() && needed > read.bytes.size()) {
    // A short first GET means the object ended there: it cannot hold more.
    if (read.bytes.size() < format::kHeaderPrefetch) return truncated(needed);
    asked = needed;
    HF_RETURN_IF_ERROR(store->Get(key, 0, asked, &read.bytes, &info));
    header = format::DecodeHeader(read.bytes, where, &needed);
    if (!header.ok() && needed > read.bytes.size()) return truncated(needed);
  }
  if (!header.ok()) {
    // The decoder's OutOfRange only means "more bytes needed", handled above.
    if (header.status().IsOutOfRange()) return Status::Corrupt(header.status().message());
    return header.status();
  }
  if (header->self.id != id) {
    return Status::Corrupt(where + ": header names checkpoint " + std::to_string(header->self.id));
  }
  read.header = std::move(header).value();
  const format::SegmentHeader& h = read.header;
  if (h.data_area_length > std::numeric_limits<uint64_t>::max() - h.data_area_offset) {
    return Status::Corrupt(where + " at offset 152: data area length out of range");
  }
  const uint64_t expect = h.data_area_offset + h.data_area_length;
  // The object's size, where it is certain: a GET that returned less than it
  // asked for ended at the object's end; a size larger than the bytes
  // returned came from the server (Content-Range). A server that reports
  // only the returned length otherwise says nothing.
  uint64_t known = 0;
  if (read.bytes.size() < asked) {
    known = read.bytes.size();
  } else if (info.size > read.bytes.size()) {
    known = info.size;
  }
  if (known != 0 && known != expect) {
    return Status::Corrupt(where + ": segment is " + std::to_string(known) +
                           " bytes but its header describes " + std::to_string(expect) +
                           (known < expect ? " (truncated)" : ""));
  }
  read.object_size = known;
  return read;
}

Result<index::NodePtr> NodeLoader::Load(const format::NodeRef& ref, uint8_t level) {
  auto key = std::make_pair(ref.segment, ref.offset);
  if (auto hit = cache_.Get(key)) {
    // A node cached by a prefetch was found by its own length; a parent
    // naming another length at that place disagrees with the segment.
    if ((*hit)->ref.length != ref.length) {
      return Status::Corrupt(lineage_->Where(ref.segment) + " at offset " +
                             std::to_string(ref.offset) + ": index node is " +
                             std::to_string((*hit)->ref.length) + " bytes, its parent says " +
                             std::to_string(ref.length));
    }
    if ((*hit)->data.level != level) {
      return Status::Corrupt(lineage_->Where(ref.segment) + " at offset " +
                             std::to_string(ref.offset) + ": index node at the wrong level");
    }
    return *hit;
  }
  HF_ASSIGN_OR_RETURN(ObjectStore * store, lineage_->StoreFor(ref.segment));
  std::string bytes;
  std::string where = lineage_->Where(ref.segment);
  Status st = store->Get(format::SegmentKey(ref.segment), ref.offset, ref.length, &bytes, nullptr);
  if (st.IsNotFound())
    return Status::Corrupt(where + ": segment referenced by the index is missing");
  HF_RETURN_IF_ERROR(st);
  where += " at offset " + std::to_string(ref.offset);
  if (bytes.size() != ref.length) return Status::Corrupt(where + ": index node truncated");
  HF_ASSIGN_OR_RETURN(format::NodeData data,
                      format::DecodeNode(bytes, ref, where, lineage_->sealer()));
  if (data.level != level) return Status::Corrupt(where + ": index node at the wrong level");
  auto node = std::make_shared<index::Node>();
  node->data = std::move(data);
  node->ref = ref;
  Insert(node);
  return node;
}

void NodeLoader::Prefetch(std::span<const format::NodeRef> refs, size_t needed, uint8_t level) {
  // Runs of refs that lie back to back in one segment, none cached yet, each
  // fetched with one GET of at most kMaxPrefetchRun bytes; only runs that
  // start with a needed node are fetched (the rest is the walk's guess).
  // Each node is checked as Load checks it; the first that fails ends its
  // run uncached, so its own Load reports the damage.
  size_t i = 0;
  while (i < needed && i < refs.size()) {
    const format::NodeRef& first = refs[i];
    if (cache_.Contains({first.segment, first.offset})) {
      i++;
      continue;
    }
    size_t j = i + 1;
    uint64_t run_end = uint64_t{first.offset} + first.length;
    while (j < refs.size() && refs[j].segment == first.segment && refs[j].offset == run_end &&
           run_end + refs[j].length - first.offset <= kMaxPrefetchRun &&
           !cache_.Contains({refs[j].segment, refs[j].offset})) {
      run_end += refs[j].length;
      j++;
    }
    if (j - i < 2) {  // one node: its Load fetches it
      i = j;
      continue;
    }
    auto store = lineage_->StoreFor(first.segment);
    if (!store.ok()) return;  // the Loads report
    std::string bytes;
    if (!(*store)
             ->Get(format::SegmentKey(first.segment), first.offset, run_end - first.offset, &bytes,
                   nullptr)
             .ok()) {
      return;
    }
    for (size_t k = i; k < j; k++) {
      const format::NodeRef& ref = refs[k];
      const uint64_t at = ref.offset - first.offset;
      if (at + ref.length > bytes.size()) break;  // truncated: its Load reports
      auto data = format::DecodeNode(std::string_view(bytes).substr(at, ref.length), ref,
                                     "prefetch", lineage_->sealer());
      if (!data.ok() || data->level != level) break;
      auto node = std::make_shared<index::Node>();
      node->data = std::move(data).value();
      node->ref = ref;
      Insert(node);
    }
    i = j;
  }
}

std::string NodeLoader::Describe(const format::NodeRef& ref) {
  return lineage_->Where(ref.segment) + " at offset " + std::to_string(ref.offset);
}

void NodeLoader::Insert(const index::NodePtr& node) {
  cache_.Put({node->ref.segment, node->ref.offset}, node, node->ref.length + 64,
             node->data.level > 0);
}

void NodeLoader::Seed(const HeaderRead& read) {
  const format::SegmentHeader& h = read.header;
  uint64_t pos = h.node_area_offset;
  uint64_t end = std::min<uint64_t>(read.bytes.size(), h.data_area_offset);
  while (pos + format::kNodeHeaderBytes <= end) {
    const char* p = read.bytes.data() + pos;
    // Nodes are laid out back to back, each declaring its length.
    uint64_t size = format::PeekNodeLength(std::string_view(p, end - pos));
    if (size < format::kMinNodeBytes || size > format::kMaxNodeBytes) break;  // not a node: stop
    if (pos + size > end) break;
    format::NodeRef ref{h.self.id, static_cast<uint32_t>(pos), static_cast<uint32_t>(size)};
    auto data = format::DecodeNode(std::string_view(p, size), ref, "prefetch", lineage_->sealer());
    if (!data.ok()) break;  // a real load will report the damage with context
    auto node = std::make_shared<index::Node>();
    node->data = std::move(data).value();
    node->ref = ref;
    Insert(node);
    pos += size;
  }
}

Status ChunkReader::Read(const format::ExtentEntry& piece, uint64_t lo, uint64_t hi, char* dst) {
  if (piece.framed()) return ReadFrames({&piece, 1}, lo, hi, dst);
  if (lineage_->sealer()) return UnsealedInEncrypted(piece);
  const uint64_t base = piece.start * block_size_;  // logical offset of the piece
  const uint64_t stored_chunk = kChunkSize + kChunkCrcSize;
  uint64_t c0 = (lo - base) / kChunkSize;
  uint64_t c1 = (hi - base + kChunkSize - 1) / kChunkSize;
  // Serve cached chunks at both ends; fetch the rest with one ranged GET.
  auto copy_chunk = [&](uint64_t c, const char* data) {
    if (dst == nullptr) return;  // a prefetch: only fill the caches
    uint64_t cs = base + c * kChunkSize, ce = cs + kChunkSize;
    uint64_t s = std::max(cs, lo), e = std::min(ce, hi);
    std::memcpy(dst + (s - lo), data + (s - cs), e - s);
  };
  auto key = [&](uint64_t c) {
    return std::make_pair(piece.segment, piece.offset + c * stored_chunk);
  };
  while (c0 < c1) {
    auto hit = Cached(piece.segment, piece.epoch, key(c0).second, kChunkSize, dst != nullptr);
    if (!hit) break;
    copy_chunk(c0++, (*hit)->data());
  }
  while (c1 > c0) {
    auto hit = Cached(piece.segment, piece.epoch, key(c1 - 1).second, kChunkSize, dst != nullptr);
    if (!hit) break;
    copy_chunk(--c1, (*hit)->data());
  }
  if (c0 == c1) return Status::OK();
  std::string bytes, where;
  const uint64_t offset = piece.object_offset() + c0 * stored_chunk;
  HF_RETURN_IF_ERROR(Fetch(piece, offset, (c1 - c0) * stored_chunk, &bytes, &where));
  return CheckChunks(piece, c0, c1, bytes, offset, where, copy_chunk, dst == nullptr);
}

Status ChunkReader::UnsealedInEncrypted(const format::ExtentEntry& piece) const {
  return Status::Corrupt(lineage_->Where(piece.segment) +
                         ": the index names unsealed chunk data, but the file is encrypted "
                         "(tampered)");
}

Status ChunkReader::Fetch(const format::ExtentEntry& e, uint64_t offset, uint64_t length,
                          std::string* bytes, std::string* where) {
  HF_ASSIGN_OR_RETURN(ObjectStore * store, lineage_->StoreFor(e.segment));
  // The bytes live in the segment or in its data object.
  const bool in_object = e.in_data_object();
  const std::string object =
      in_object ? format::DataObjectKey(e.segment, e.epoch) : format::SegmentKey(e.segment);
  *where = in_object ? lineage_->WhereKey(e.segment, object) : lineage_->Where(e.segment);
  std::shared_ptr<const std::string> prefix;
  if (!in_object) {
    std::lock_guard<std::mutex> lock(prefix_mu_);
    if (prefix_segment_ == e.segment) prefix = prefix_;
  }
  Status st;
  if (prefix && offset <= prefix->size() && length <= prefix->size() - offset) {
    bytes->assign(*prefix, offset, length);  // fetched with the header: no GET
  } else {
    st = store->Get(object, offset, length, bytes, nullptr);
  }
  if (st.IsNotFound()) {
    return Status::Corrupt(*where + (in_object ? ": data object" : ": segment") +
                           " referenced by the index is missing");
  }
  HF_RETURN_IF_ERROR(st);
  if (bytes->size() != length) {
    return Status::Corrupt(*where + " at offset " + std::to_string(offset) +
                           ": data truncated (object shorter than its index says)");
  }
  return Status::OK();
}

Status ChunkReader::CheckChunks(const format::ExtentEntry& piece, uint64_t c0, uint64_t c1,
                                std::string_view bytes, uint64_t bytes_offset,
                                const std::string& where,
                                const std::function<void(uint64_t, const char*)>& copy_chunk,
                                bool readahead) {
  const uint64_t base = piece.start * block_size_;
  const uint64_t stored_chunk = kChunkSize + kChunkCrcSize;
  for (uint64_t c = c0; c < c1; c++) {
    const uint64_t at = piece.object_offset() + c * stored_chunk;
    const char* chunk = bytes.data() + (at - bytes_offset);
    uint32_t stored_crc = DecodeFixed32(chunk + kChunkSize);
    if (format::ChunkCrc(chunk, base + c * kChunkSize) != stored_crc) {
      return Status::Corrupt(where + " at offset " + std::to_string(at) +
                             ": data checksum mismatch");
    }
    if (copy_chunk) copy_chunk(c, chunk);
    const uint64_t key = piece.offset + c * stored_chunk;
    cache_.Put({piece.segment, key}, std::make_shared<const Buffer>(chunk, kChunkSize),
               kChunkSize + 96, /*high_priority=*/readahead);
    if (disk_) disk_->Put({file_id_, piece.segment, piece.epoch, key}, {chunk, kChunkSize});
  }
  return Status::OK();
}

// One GET's frames, decoded by the reading thread and any helpers. The
// borrowed fields (frames, bytes, dst, where) are used only to decode a
// claimed frame, which happens before the reader's WaitAll returns; a helper
// that starts later claims nothing and touches only the counters.
struct ChunkReader::FrameJob {
  std::span<const format::ExtentEntry> frames;
  std::string_view bytes;  // the frames' stored bytes, from object offset `offset`
  uint64_t offset = 0;
  uint64_t lo = 0, hi = 0;  // logical bytes wanted in dst (nullptr: none)
  char* dst = nullptr;
  uint32_t block_size = 0;
  const std::string* where = nullptr;
  format::FrameSeal seal;
  std::vector<std::shared_ptr<Buffer>> blocks;  // [i]: decoded block of frames[i]
  std::vector<Status> status;                   // [i]: its outcome
  std::atomic<size_t> next{0};                  // the next frame to claim
  std::mutex mu;
  std::condition_variable cv;
  size_t done = 0;  // frames decoded (guarded by mu)

  void Work() {
    const size_t n = frames.size();
    for (;;) {
      const size_t i = next.fetch_add(1);
      if (i >= n) return;
      Decode(i);
      std::lock_guard<std::mutex> lock(mu);
      if (++done == n) cv.notify_all();
    }
  }
  void WaitAll() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done == frames.size(); });
  }
  void Decode(size_t i) {
    const format::ExtentEntry& f = frames[i];
    const uint64_t bs = block_size;
    const uint64_t at = f.object_offset();
    auto block = std::make_shared<Buffer>(bs);
    status[i] =
        format::DecodeFrame(bytes.substr(at - offset, f.stored_length), f.start * bs, block_size,
                            block->data(), *where + " at offset " + std::to_string(at), &seal);
    if (!status[i].ok()) return;
    if (dst != nullptr) {
      const uint64_t bstart = f.start * bs;
      const uint64_t s = std::max(bstart, lo), e = std::min(bstart + bs, hi);
      if (s < e) std::memcpy(dst + (s - lo), block->data() + (s - bstart), e - s);
    }
    blocks[i] = std::move(block);
  }
};

Status ChunkReader::ReadFrames(std::span<const format::ExtentEntry> frames, uint64_t lo,
                               uint64_t hi, char* dst) {
  const uint64_t bs = block_size_;
  if (frames.empty() || lo >= hi || lo < frames.front().start * bs ||
      hi > frames.back().end() * bs) {
    return Status::InvalidArgument("frame read outside its run");
  }
  for (size_t i = 0; i < frames.size(); i++) {
    if (!frames[i].framed() || (i > 0 && !FrameContinues(frames[i - 1], frames[i]))) {
      return Status::InvalidArgument("frame read of a run that does not continue");
    }
  }
  auto copy_block = [&](size_t i, const char* block) {
    if (dst == nullptr) return;  // a prefetch: only fill the caches
    const uint64_t bstart = frames[i].start * bs;
    const uint64_t s = std::max(bstart, lo), e = std::min(bstart + bs, hi);
    if (s < e) std::memcpy(dst + (s - lo), block + (s - bstart), e - s);
  };
  const uint64_t segment = frames.front().segment, epoch = frames.front().epoch;
  // Only frames holding bytes of [lo, hi) matter; serve cached ones at both
  // ends, fetch the rest with one GET.
  size_t a = (lo / bs) - frames.front().start;
  size_t b = (hi + bs - 1) / bs - frames.front().start;
  while (a < b) {
    auto hit = Cached(segment, epoch, FrameKey(frames[a].offset), bs, dst != nullptr);
    if (!hit) break;
    copy_block(a++, (*hit)->data());
  }
  while (b > a) {
    auto hit = Cached(segment, epoch, FrameKey(frames[b - 1].offset), bs, dst != nullptr);
    if (!hit) break;
    copy_block(--b, (*hit)->data());
  }
  if (a == b) return Status::OK();
  const uint64_t offset = frames[a].object_offset();
  const uint64_t length = frames[b - 1].object_offset() + frames[b - 1].stored_length - offset;
  std::string bytes, where;
  HF_RETURN_IF_ERROR(Fetch(frames[a], offset, length, &bytes, &where));
  return DecodeFrames(frames.subspan(a, b - a), bytes, offset, where, lo, hi, dst);
}

Status ChunkReader::DecodeFrames(std::span<const format::ExtentEntry> frames,
                                 std::string_view bytes, uint64_t offset, const std::string& where,
                                 uint64_t lo, uint64_t hi, char* dst) {
  const uint64_t bs = block_size_;
  const uint64_t segment = frames.front().segment, epoch = frames.front().epoch;
  auto job = std::make_shared<FrameJob>();
  job->frames = frames;
  job->bytes = bytes;
  job->offset = offset;
  job->lo = lo;
  job->hi = hi;
  job->dst = dst;
  job->block_size = block_size_;
  job->where = &where;
  job->seal.sealer = lineage_->sealer();
  job->seal.place.checkpoint = segment;
  job->seal.place.writer_epoch = epoch;
  job->blocks.resize(frames.size());
  job->status.resize(frames.size());
  const size_t helpers = spawn_ ? std::min(max_helpers_, frames.size() - 1) : 0;
  for (size_t h = 0; h < helpers; h++) spawn_([job] { job->Work(); });
  job->Work();
  job->WaitAll();
  // Everything is decoded (by whichever thread): cache in storage order and
  // report the first damaged frame.
  Status first_error;
  for (size_t i = 0; i < job->blocks.size(); i++) {
    if (!job->status[i].ok()) {
      if (first_error.ok()) first_error = job->status[i];
      continue;
    }
    const format::ExtentEntry& f = job->frames[i];
    Chunk block = std::move(job->blocks[i]);
    if (disk_) {
      disk_->Put({file_id_, segment, epoch, FrameKey(f.offset)}, {block->data(), block->size()});
    }
    cache_.Put({segment, FrameKey(f.offset)}, std::move(block), bs + 96,
               /*high_priority=*/job->dst == nullptr);
  }
  return first_error;
}

bool ChunkReader::IsCached(const format::ExtentEntry& e) {
  if (e.framed())
    return Cached(e.segment, e.epoch, FrameKey(e.offset), block_size_, false).has_value();
  const uint64_t stored_chunk = kChunkSize + kChunkCrcSize;
  const uint64_t chunks = (uint64_t{e.count} * block_size_ + kChunkSize - 1) / kChunkSize;
  for (uint64_t c = 0; c < chunks; c++) {
    if (!Cached(e.segment, e.epoch, e.offset + c * stored_chunk, kChunkSize, false)) return false;
  }
  return true;
}

Status ChunkReader::Prefetch(std::span<const format::ExtentEntry> pieces) {
  if (pieces.empty()) return Status::OK();
  const format::ExtentEntry& first = pieces.front();
  for (size_t i = 0; i < pieces.size(); i++) {
    const format::ExtentEntry& p = pieces[i];
    if (p.count == 0 || p.segment != first.segment || p.epoch != first.epoch ||
        p.in_data_object() != first.in_data_object() ||
        (i > 0 && p.object_offset() < pieces[i - 1].object_offset() +
                                          format::ExtentStoredBytes(pieces[i - 1], block_size_))) {
      return Status::InvalidArgument("prefetch of pieces that are not of one object, in order");
    }
  }
  for (const format::ExtentEntry& p : pieces) {
    if (!p.framed() && lineage_->sealer()) return UnsealedInEncrypted(p);
  }
  // Only what is not cached yet, fetched from the first such piece's first
  // byte to the last one's last byte (the gaps between come along).
  std::vector<format::ExtentEntry> need;
  for (const format::ExtentEntry& p : pieces) {
    if (!IsCached(p)) need.push_back(p);
  }
  if (need.empty()) return Status::OK();
  const uint64_t offset = need.front().object_offset();
  const uint64_t length =
      need.back().object_offset() + format::ExtentStoredBytes(need.back(), block_size_) - offset;
  std::string bytes, where;
  HF_RETURN_IF_ERROR(Fetch(need.front(), offset, length, &bytes, &where));
  std::vector<format::ExtentEntry> frames;
  for (const format::ExtentEntry& p : need) {
    if (p.framed()) {
      frames.push_back(p);
      continue;
    }
    const uint64_t chunks = (uint64_t{p.count} * block_size_ + kChunkSize - 1) / kChunkSize;
    HF_RETURN_IF_ERROR(CheckChunks(p, 0, chunks, bytes, offset, where, nullptr, true));
  }
  if (frames.empty()) return Status::OK();
  return DecodeFrames(frames, bytes, offset, where, 0, 0, nullptr);
}

void ChunkReader::Remember(uint64_t segment, uint64_t stored_offset, std::string_view block,
                           bool framed) {
  if (framed) {
    cache_.Put({segment, FrameKey(stored_offset)},
               std::make_shared<const Buffer>(block.data(), block.size()), block.size() + 96);
    return;
  }
  const uint64_t stored_chunk = kChunkSize + kChunkCrcSize;
  for (uint64_t c = 0; c * kChunkSize < block.size(); c++) {
    cache_.Put(
        {segment, stored_offset + c * stored_chunk},
        std::make_shared<const Buffer>(block.data() + c * kChunkSize,
                                       std::min<size_t>(kChunkSize, block.size() - c * kChunkSize)),
        kChunkSize + 96);
  }
}

void ChunkReader::SeedPrefix(uint64_t segment, std::shared_ptr<const std::string> bytes) {
  std::lock_guard<std::mutex> lock(prefix_mu_);
  prefix_segment_ = segment;
  prefix_ = std::move(bytes);
}

std::optional<ChunkReader::Chunk> ChunkReader::Cached(uint64_t segment, uint64_t epoch,
                                                      uint64_t stored_offset, uint64_t size,
                                                      bool use) {
  auto key = std::make_pair(segment, stored_offset);
  if (auto hit = use ? cache_.GetAndDemote(key) : cache_.Get(key)) {
    if ((*hit)->size() == size) return *hit;
    return std::nullopt;
  }
  std::string bytes;
  if (!disk_ || !disk_->Get({file_id_, segment, epoch, stored_offset}, &bytes) ||
      bytes.size() != size) {
    return std::nullopt;
  }
  auto chunk = std::make_shared<const Buffer>(std::move(bytes));
  cache_.Put(key, chunk, size + 96, /*high_priority=*/!use);
  return chunk;
}

}  // namespace hyperfile::file
