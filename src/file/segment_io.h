// SPDX-License-Identifier: Apache-2.0
// Reading what segments hold: finding the newest checkpoint, decoding
// headers, loading index nodes (cached) and data chunks (verified, cached).
// Shared by the File implementation and the checkpoint tools.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cache/disk_cache.h"
#include "cache/lru_cache.h"
#include "format/format.h"
#include "hyperfile/object_store.h"
#include "index/btree.h"

namespace hyperfile::file {

using StoreResolver = std::function<Result<std::shared_ptr<ObjectStore>>(const std::string& uri)>;

// The stores a file's segments live in: its own, and for a clone the files
// it was cloned from (segment ids <= origin.max_id live there).
class Lineage {
 public:
  Lineage(std::shared_ptr<ObjectStore> own, std::vector<format::Origin> origins,
          StoreResolver resolver);
  Result<ObjectStore*> StoreFor(uint64_t segment);
  ObjectStore* own() const { return own_.get(); }
  const std::shared_ptr<ObjectStore>& own_shared() const { return own_; }
  const std::vector<format::Origin>& origins() const { return origins_; }
  // "s3://bucket/file/seg/..." for messages.
  std::string Where(uint64_t segment);
  // The same for another key of that segment (its data object).
  std::string WhereKey(uint64_t segment, const std::string& key);
  // An encrypted file's sealer (sealing.h: UnlockFile), set once before the
  // first read; nullptr for a file that is not encrypted. Node and frame
  // reads through this lineage require and open sealed nodes and frames.
  void SetSealer(std::shared_ptr<const format::Sealer> sealer) { sealer_ = std::move(sealer); }
  const format::Sealer* sealer() const { return sealer_.get(); }

 private:
  std::shared_ptr<ObjectStore> own_;
  std::vector<format::Origin> origins_;
  StoreResolver resolver_;
  std::mutex mu_;
  std::vector<std::shared_ptr<ObjectStore>> opened_;  // parallel to origins_
  std::shared_ptr<const format::Sealer> sealer_;
};

// The newest checkpoint id in the store: one LIST (limit 1) that starts just
// below the smallest valid segment key. Keys under seg/ that are not segment
// keys (seg/README, seg/.DS_Store, seg/<hex>/x) are skipped, reading at most
// a few pages more. NotFound if there is no segment (naming a foreign key if
// one was seen).
Result<uint64_t> LatestCheckpointId(ObjectStore* store);

// The one create-only put of the format (segments, snapshot records, the
// removal marker). A put retried after a lost response may answer "already
// exists" although its first attempt landed, so on PreconditionFailed the
// object's first identity.size() bytes are read back (a bounded read) and
// compared with `identity` — bytes unique to this writer (a segment header
// carries the writer epoch, a record its creation time): OK if they match,
// PreconditionFailed if the key holds someone else's object.
Status CreateOnce(ObjectStore* store, const std::string& key, const Payload& payload,
                  std::string_view identity);

struct HeaderRead {
  format::SegmentHeader header;
  std::string bytes;         // the first bytes of the segment that were fetched
  uint64_t object_size = 0;  // the segment's size if the store said (else 0)
};
// Reads and decodes segment `id`'s header with one ranged GET (two if the
// header is larger than the prefetch). NotFound names the checkpoint; a
// segment truncated inside its header, or whose size (when the store reports
// it) differs from what its header says, is Corrupt.
Result<HeaderRead> ReadHeader(ObjectStore* store, uint64_t id);

class NodeLoader : public index::NodeSource {
 public:
  // Interior nodes are cached with priority, but in at most half the
  // budget: every flush puts a new copy of the interior nodes it changed,
  // and the copies it superseded, never used again, would otherwise stay
  // until they filled the whole budget, leaving the leaves none (a writer
  // then fetched each leaf anew at every lookup: at 1 GiB of random 4 KiB
  // overwrites compaction reloaded the same 4,100 leaves 12 times per run,
  // docs/design/0006). Within the half, the least recently used go first,
  // and the current tree's are used on every lookup.
  NodeLoader(Lineage* lineage, uint64_t budget_bytes) : lineage_(lineage), cache_(budget_bytes) {
    cache_.set_high_budget(budget_bytes / 2);
  }
  Result<index::NodePtr> Load(const format::NodeRef& ref, uint8_t level) override;
  std::string Describe(const format::NodeRef& ref) override;
  // Caches the nodes that lie completely inside the prefetched first bytes
  // of a segment (the root and upper levels come first after the header).
  void Seed(const HeaderRead& read);
  void Insert(const index::NodePtr& node);
  // Fetches the runs of hinted nodes that lie back to back in one segment
  // with one GET each (see index::NodeSource::Prefetch).
  void Prefetch(std::span<const format::NodeRef> refs, size_t needed, uint8_t level) override;
  // Bytes one prefetch GET may fetch (some 400 leaves of a sequentially
  // written file, about 1.6 GiB of its 64 KiB blocks).
  static constexpr uint64_t kMaxPrefetchRun = 256 * 1024;
  uint64_t cached_bytes() const { return cache_.used_bytes(); }
  uint64_t hits() const { return cache_.hits(); }
  uint64_t misses() const { return cache_.misses(); }

 private:
  struct RefHash {
    size_t operator()(const std::pair<uint64_t, uint32_t>& k) const {
      return std::hash<uint64_t>()(k.first * 0x9E3779B97F4A7C15ull ^ k.second);
    }
  };
  Lineage* lineage_;
  LruCache<std::pair<uint64_t, uint32_t>, index::NodePtr, RefHash> cache_;
};

// True if framed extent `next` continues `prev` in storage: the next block,
// in the same object, its frame right after prev's (one GET reads both).
inline bool FrameContinues(const format::ExtentEntry& prev, const format::ExtentEntry& next) {
  return prev.framed() && next.framed() && next.start == prev.end() &&
         next.segment == prev.segment && next.epoch == prev.epoch &&
         next.in_data_object() == prev.in_data_object() &&
         next.object_offset() == prev.object_offset() + prev.stored_length;
}

// Cache key (the offset part) of the decoded block of the frame at `offset`
// (kInDataObject kept): bit 62, which no chunk offset has (extents end below
// kMaxStoredOffset), so a decoded block never answers for a raw chunk.
inline constexpr uint64_t kFrameKeyBit = 1ull << 62;
inline uint64_t FrameKey(uint64_t offset) { return offset | kFrameKeyBit; }

// Reads data chunks of extents, verifying each chunk's CRC, with a cache of
// clean chunks (and of the decoded blocks of frames).
class ChunkReader {
 public:
  // Readahead (a Read or ReadFrames with dst == nullptr) is cached
  // protected until a read uses it, in at most 3/4 of the budget: blocks a sequential reader
  // already read are evicted before the ones it is about to read, which a plain LRU would evict
  // first (they are older than the ones it just touched).
  ChunkReader(Lineage* lineage, uint32_t block_size, uint64_t cache_budget)
      : lineage_(lineage), block_size_(block_size), cache_(cache_budget) {
    cache_.set_high_budget(cache_budget / 4 * 3);
  }
  // Adds a disk tier below the memory cache; `file_id` names this file's
  // chunks in it, together with each extent's (segment, writer epoch) (see
  // cache/disk_cache.h).
  void SetDiskCache(std::shared_ptr<DiskCache> disk, uint64_t file_id) {
    disk_ = std::move(disk);
    file_id_ = file_id;
  }
  DiskCache* disk_cache() const { return disk_.get(); }
  // Copies logical bytes [lo, hi) (inside the extent piece) into dst; with
  // dst == nullptr it only brings them into the caches (readahead). A
  // framed piece is read as ReadFrames({piece}).
  Status Read(const format::ExtentEntry& piece, uint64_t lo, uint64_t hi, char* dst);
  // The same for a run of framed pieces (FrameContinues from each to the
  // next; [lo, hi) inside the run's blocks): the frames not cached are
  // fetched with one ranged GET, each checked (its CRC binds it to its
  // block's logical offset) and decoded before its bytes are used, and the
  // decoded blocks are cached whole. A run that does not continue is
  // InvalidArgument (a caller bug); a damaged frame is Corrupt naming the
  // object and offset.
  //
  // The frames of one GET are decoded in parallel when decode helpers are
  // set (SetDecodeHelpers): the calling thread and up to `max_helpers`
  // helpers claim frames one at a time, each decoding a claimed frame into
  // its own block and copying its part to its own place in dst. The call
  // returns only when every frame is decoded, and it reports the first
  // damaged frame in storage order; which thread decoded what changes
  // nothing. A helper that starts after the frames are all claimed does
  // nothing (it holds only the shared decode state, never dst or *this).
  Status ReadFrames(std::span<const format::ExtentEntry> frames, uint64_t lo, uint64_t hi,
                    char* dst);
  // Brings the stored pieces (extents) `pieces` into the caches as
  // readahead, for a reader that knows which blocks it will read but not in
  // an order the read planner would see as a stream (compaction rewriting a
  // victim's live blocks). The pieces are of one object (segment, writer
  // epoch, segment or data object), ordered by stored offset, and do not
  // overlap (else InvalidArgument): the ones not cached yet are fetched with
  // one ranged GET from the first one's first byte to the last one's last
  // byte, gaps included (the caller bounds the gaps and the span), and each
  // is checked and decoded as Read does before it is cached. A damaged piece
  // is Corrupt naming the object and offset and is never cached (nor are
  // the raw chunks after a damaged one; good frames are).
  Status Prefetch(std::span<const format::ExtentEntry> pieces);
  // Runs `fn` later on some other thread (a pool). It must run it, or drop
  // it, but may never block on it: the caller does not wait for a helper
  // that has not started.
  using Spawner = std::function<void(std::function<void()> fn)>;
  // Set once before the first read; without it frames are decoded on the
  // calling thread only.
  void SetDecodeHelpers(Spawner spawn, size_t max_helpers) {
    spawn_ = std::move(spawn);
    max_helpers_ = max_helpers;
  }
  uint64_t cached_bytes() const { return cache_.used_bytes(); }
  // Lookups of data chunks (4 KiB) in the memory cache.
  uint64_t hits() const { return cache_.hits(); }
  uint64_t misses() const { return cache_.misses(); }
  // Puts a block this handle has just committed into the memory cache (its
  // first chunk at `stored_offset` of `segment`), so that reading it again or
  // merging a later partial write into it (an append to the tail block)
  // costs no GET. `block` is block_size bytes.
  // `framed`: stored_offset is the block's frame (cached as a decoded block).
  void Remember(uint64_t segment, uint64_t stored_offset, std::string_view block,
                bool framed = false);
  // The first bytes of a segment that were fetched anyway (a new head's
  // header read, HeaderRead::bytes): reads of inline data inside them are
  // served from there (still checked chunk by chunk) instead of with a GET,
  // so following a log costs no request beyond the new head's header when a
  // flush was small. One prefix is kept (the newest seeded), replacing the
  // one before.
  void SeedPrefix(uint64_t segment, std::shared_ptr<const std::string> bytes);

 private:
  struct KeyHash {
    size_t operator()(const std::pair<uint64_t, uint64_t>& k) const {
      return std::hash<uint64_t>()(k.first * 0x9E3779B97F4A7C15ull ^ k.second);
    }
  };
  // A cached chunk or decoded block. Decoded blocks are allocated without
  // being zero-filled first (the decoder writes every byte).
  class Buffer {
   public:
    explicit Buffer(size_t n) : raw_(std::make_unique_for_overwrite<char[]>(n)), size_(n) {}
    Buffer(const char* p, size_t n) : Buffer(n) { std::copy(p, p + n, raw_.get()); }
    explicit Buffer(std::string s) : str_(std::move(s)), size_(str_.size()) {}
    char* data() { return raw_ ? raw_.get() : str_.data(); }
    const char* data() const { return raw_ ? raw_.get() : str_.data(); }
    size_t size() const { return size_; }

   private:
    std::unique_ptr<char[]> raw_;
    std::string str_;  // a block read back from the disk cache
    size_t size_;
  };
  using Chunk = std::shared_ptr<const Buffer>;
  struct FrameJob;
  // The Corrupt error for raw chunks named by an encrypted file's index.
  Status UnsealedInEncrypted(const format::ExtentEntry& piece) const;
  // Stored bytes [offset, offset+length) of the object holding `e` (its
  // segment or data object; from the seeded prefix when inside it) into
  // *bytes, all of them or an error: a missing object or a short one is
  // Corrupt naming it. *where names the object for later errors.
  Status Fetch(const format::ExtentEntry& e, uint64_t offset, uint64_t length, std::string* bytes,
               std::string* where);
  // Checks raw chunks [c0, c1) of `piece` in `bytes` (which hold the object
  // from `bytes_offset`) against their CRCs, hands each to copy_chunk (if
  // set) and caches it (protected when `readahead`).
  Status CheckChunks(const format::ExtentEntry& piece, uint64_t c0, uint64_t c1,
                     std::string_view bytes, uint64_t bytes_offset, const std::string& where,
                     const std::function<void(uint64_t, const char*)>& copy_chunk, bool readahead);
  // Decodes `frames` (of one object, in storage order) from `bytes` (which
  // hold the object from `offset`), copies logical [lo, hi) into dst (if
  // set) and caches every decoded block; the first damaged frame's error.
  Status DecodeFrames(std::span<const format::ExtentEntry> frames, std::string_view bytes,
                      uint64_t offset, const std::string& where, uint64_t lo, uint64_t hi,
                      char* dst);
  // Whether every chunk (or the decoded block) of `e` is cached.
  bool IsCached(const format::ExtentEntry& e);
  // The chunk stored at `stored_offset` of `segment`, from memory or disk.
  // `size` is what a hit must hold: kChunkSize, or block_size_ for a frame's
  // decoded block (keyed by FrameKey, so the two forms never mix). `use`:
  // a read takes its bytes (a readahead block loses its protection), else a
  // prefetch only looks.
  std::optional<Chunk> Cached(uint64_t segment, uint64_t epoch, uint64_t stored_offset,
                              uint64_t size, bool use);
  Lineage* lineage_;
  uint32_t block_size_;
  std::shared_ptr<DiskCache> disk_;
  uint64_t file_id_ = 0;
  LruCache<std::pair<uint64_t, uint64_t>, Chunk, KeyHash> cache_;
  Spawner spawn_;
  size_t max_helpers_ = 0;
  std::mutex prefix_mu_;
  uint64_t prefix_segment_ = 0;  // 0 = none
  std::shared_ptr<const std::string> prefix_;
};

}  // namespace hyperfile::file
