// SPDX-License-Identifier: Apache-2.0
// The byte layout of everything hyperfile keeps in a store (docs/format.md
// is the normative description; keep the two in step).
//
// Keys under a file's root:
//   seg/<16 hex digits of ~id>   segment (checkpoint) `id`; ~id makes a plain
//                                ascending listing return the newest first
//   snap/<name>                  named snapshot pinning a checkpoint id
//   dat/<~id>-<epoch>            data object of segment `id`, written by the
//                                writer session `epoch` (large flushes)
//
// A segment is [header][index nodes][data area]. Decoders here treat their
// input as untrusted and return Corrupt naming the object and offset.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "format/seal.h"
#include "hyperfile/status.h"

namespace hyperfile::format {

inline constexpr uint32_t kFormatVersion = 3;
// Segment headers of encrypted files (cipher byte 166 != 0) carry this
// version, so older builds refuse them with "unsupported format version 4"
// instead of misreading them; unencrypted files stay at kFormatVersion.
inline constexpr uint32_t kSealedHeaderVersion = 4;
// Sealed index nodes (encrypted files): the node header stays plain, the
// body is sealed (seal.h). kSealedNodeOverhead bytes longer than the plain
// node: the seal, and the plain node's version byte inside the plaintext.
inline constexpr uint8_t kSealedNodeVersion = 5;
inline constexpr uint32_t kSealedNodeOverhead = 40 + 1;
// Index nodes holding at least one framed extent (stored_length != 0) carry
// this version; all other nodes stay at kFormatVersion, byte for byte as
// before. Readers accept both.
inline constexpr uint8_t kFramedNodeVersion = 4;
inline constexpr uint32_t kChunkSize = 4096;  // data checksum granularity
inline constexpr uint32_t kChunkCrcSize = 4;
inline constexpr uint32_t kMinBlockShift = 12;  // 4 KiB
inline constexpr uint32_t kMaxBlockShift = 22;  // 4 MiB
inline constexpr uint64_t kMaxFileSize = 1ull << 60;
inline constexpr uint64_t kMaxCheckpointId = (1ull << 62);
inline constexpr uint32_t kNodeCapacity = 112;         // entries per index node
inline constexpr uint32_t kMaxNodeBytes = 64 * 1024;   // decode bound
inline constexpr uint32_t kMaxHeaderBytes = 1u << 20;  // decode bound
inline constexpr uint32_t kHistoryDescriptors = 64;    // recent checkpoints per header
inline constexpr uint32_t kSampleStride = 64;          // sampled checkpoint times
inline constexpr uint32_t kMaxSamples = 4096;
inline constexpr uint32_t kMaxOrigins = 64;
inline constexpr uint32_t kHeaderPrefetch = 64 * 1024;  // first GET of a segment
// No extent may reach past this block number whatever the block size (the
// tree checks the tighter kMaxFileSize / block size).
inline constexpr uint64_t kMaxBlocksAnySize = kMaxFileSize >> kMinBlockShift;
inline uint64_t MaxBlocks(uint32_t block_size) { return kMaxFileSize / block_size; }

// Stored size of one logical block: chunks of 4096 data bytes each followed
// by the chunk's CRC32C.
inline uint64_t StoredBlockSize(uint32_t block_size) {
  return uint64_t{block_size} + uint64_t{block_size / kChunkSize} * kChunkCrcSize;
}

std::string SegmentKey(uint64_t id);
inline constexpr std::string_view kSegmentPrefix = "seg/";
// A flush whose data is larger than kMaxInlineDataBytes uploads it first as
// the data object `dat/<16 hex digits of ~id>-<16 hex digits of epoch>`
// (uploaded before the commit, multipart allowed), then commits the small
// segment that references it. The writer epoch in the name is random per
// writer session and changes after every failed flush, so no two uploads —
// of two writers, or two attempts of one — ever share a name; an object is
// part of the file only when the segment `id` with that epoch references it.
inline constexpr std::string_view kDataObjectPrefix = "dat/";
inline constexpr uint64_t kMaxInlineDataBytes = 2ull << 20;
std::string DataObjectKey(uint64_t id, uint64_t epoch);
// Parses a key produced by DataObjectKey (with the "dat/" prefix).
std::optional<std::pair<uint64_t, uint64_t>> ParseDataObjectKey(std::string_view key);
inline constexpr std::string_view kSnapshotPrefix = "snap/";
inline constexpr size_t kSnapshotRecordBytes = 28;  // snap/<name> body
inline constexpr std::string_view kHorizonKey = "gc/horizon";
// Parses a key produced by SegmentKey (with the "seg/" prefix).
std::optional<uint64_t> ParseSegmentKey(std::string_view key);

// Where an index node lives: segment id, byte offset and length.
struct NodeRef {
  uint64_t segment = 0;  // 0 = none (empty tree)
  uint32_t offset = 0;
  uint32_t length = 0;
  bool operator==(const NodeRef&) const = default;
};

// A leaf entry: `count` logical blocks from `start` are stored contiguously
// in `segment` from byte `offset` (each block StoredBlockSize bytes).
// `epoch` is the writer epoch in that segment's header: (segment, epoch)
// names one segment for ever, even across copies of a file's prefix (the
// disk cache keys on it).
// Bit 63 of `offset` (kInDataObject) says where: set = in the segment's data
// object DataObjectKey(segment, epoch) at offset & ~kInDataObject; clear = in
// the segment itself. Caches key on the whole field, so the two never mix.
inline constexpr uint64_t kInDataObject = 1ull << 63;
//
// `stored_length` != 0 makes the extent framed: exactly one block (count 1),
// stored as one frame (format/frame.h) of that many bytes from `offset`;
// 0 = the chunk form (each block StoredBlockSize bytes). Framed offsets are
// below kMaxFramedOffset (so caches can tag them, see ChunkReader).
inline constexpr uint64_t kMaxFramedOffset = 1ull << 48;
// Every extent ends below this byte offset of its object (bit 62 stays
// free in the offsets caches key on).
inline constexpr uint64_t kMaxStoredOffset = 1ull << 62;
struct ExtentEntry {
  uint64_t start = 0;
  uint32_t count = 0;
  uint64_t segment = 0;
  uint64_t offset = 0;
  uint64_t epoch = 0;
  uint32_t stored_length = 0;
  uint64_t end() const { return start + count; }
  bool framed() const { return stored_length != 0; }
  bool in_data_object() const { return (offset & kInDataObject) != 0; }
  uint64_t object_offset() const { return offset & ~kInDataObject; }
};

// Bytes an extent occupies in its segment or data object.
inline uint64_t ExtentStoredBytes(const ExtentEntry& e, uint32_t block_size) {
  return e.framed() ? uint64_t{e.stored_length} : uint64_t{e.count} * StoredBlockSize(block_size);
}

// An interior entry: the child covering keys from `first_key` on, and the
// number of data blocks mapped below it (for allocation accounting and for
// dropping whole subtrees without reading them).
struct ChildEntry {
  uint64_t first_key = 0;
  NodeRef ref;
  uint64_t blocks = 0;
};

struct NodeData {
  uint8_t level = 0;                 // 0 = leaf
  std::vector<ExtentEntry> extents;  // leaf
  std::vector<ChildEntry> children;  // interior
};

// Index nodes are variable-length (docs/format.md "Index nodes"): a 28-byte
// header, the entries (varints and deltas; a leaf also has a table of the
// writer epochs it uses), and a CRC32C.
inline constexpr size_t kNodeHeaderBytes = 28;
inline constexpr uint8_t kMaxNodeLevel = 16;
// The smallest possible node (an interior node with one entry).
inline constexpr uint32_t kMinNodeBytes = kNodeHeaderBytes + 6 + 4;
// Upper bound of the encoded size of a node with `count` entries at `level`,
// whatever the field values (every varint at its longest).
constexpr size_t MaxEncodedNodeSize(uint8_t level, size_t count) {
  return kNodeHeaderBytes + 10 + 4 +
         (level == 0 ? 10 + count * (8 + 6 * 10) : count * (10 + 10 + 10 + 5 + 5));
}
static_assert(kNodeCapacity <= 0xFFFF);
static_assert(MaxEncodedNodeSize(0, kNodeCapacity) <= kMaxNodeBytes);
static_assert(MaxEncodedNodeSize(1, kNodeCapacity) <= kMaxNodeBytes);
// Own-segment children are stored with a 16-bit length.
static_assert(MaxEncodedNodeSize(0, kNodeCapacity) <= 0xFFFF);
static_assert(MaxEncodedNodeSize(1, kNodeCapacity) <= 0xFFFF);

// Exact size of EncodeNode(node, segment, data_area_offset, ...).
size_t EncodedNodeSize(const NodeData& node, uint64_t segment, uint64_t data_area_offset);
// The size a pending node will have once laid out, whatever segment and data
// area offset it gets: call it while the node's new extents still hold
// offsets relative to the data area and its pending children's refs are
// unset (segment 0), as Tree::PendingBytes does. Equal to
// EncodedNodeSize(node, 0, 0). (Extents of the node's own segment are stored
// relative to its data area, leaf extents name their segment relative to the
// leaf's largest one, and refs to children in the node's own segment have a
// fixed width: so the size cannot depend on where the node goes.)
size_t EncodedNodeSize(const NodeData& node);
// Appends the encoded node. `segment` is the id of the segment it goes into
// and `data_area_offset` that segment's data area offset: extents of
// `segment` in its data area (not in its data object) are stored relative to
// it, so one below it is refused (InvalidArgument, nothing appended), as is
// an empty or over-full node.
// With `sealer` (an encrypted file) the node is appended sealed (version 5,
// kSealedNodeOverhead bytes longer), bound to `segment` and `node_offset`,
// its byte offset in the segment.
Status EncodeNode(const NodeData& node, uint64_t segment, uint64_t data_area_offset,
                  std::string* out, const Sealer* sealer = nullptr, uint64_t node_offset = 0);
// The total length a node declares in its header (bytes 8..11), or 0 if
// `bytes` does not start like a node of this format version. Lets a reader
// walk nodes laid out back to back; DecodeNode checks the rest.
uint32_t PeekNodeLength(std::string_view bytes);
// With `sealer` (the file is encrypted) the node must be sealed and open for
// its place (ref.segment, ref.offset): an unsealed node is Corrupt
// (tampering). Without, a sealed node is Auth "encrypted; no key".
Result<NodeData> DecodeNode(std::string_view bytes, const NodeRef& ref, std::string_view where,
                            const Sealer* sealer = nullptr);

// What a reader needs to open one checkpoint read-only (carried for recent
// checkpoints inside each header, so time travel costs few requests).
struct Descriptor {
  uint64_t id = 0;
  int64_t time_ms = 0;
  uint64_t size = 0;
  uint64_t allocated_blocks = 0;
  uint64_t bytes_changed = 0;
  uint64_t restored_from = 0;
  NodeRef root;
  uint8_t height = 0;  // 0 = empty tree; 1 = root is a leaf
};

// A clone reads segments with id <= max_id from the file at `uri`.
struct Origin {
  uint64_t max_id = 0;
  std::string uri;
};

struct SegmentHeader {
  Descriptor self;            // this checkpoint
  uint64_t parent = 0;        // parent checkpoint id (0 = none)
  uint32_t parent_crc = 0;    // header CRC of the parent segment
  uint64_t writer_epoch = 0;  // random per writer session
  uint64_t file_id = 0;       // random per file (a clone gets a new one)
  uint64_t first_id = 0;      // the file's first checkpoint id
  int64_t create_time_ms = 0;
  uint8_t block_shift = 16;
  uint64_t node_area_offset = 0;
  uint64_t node_area_length = 0;
  uint64_t data_area_offset = 0;
  uint64_t data_area_length = 0;
  // Bytes of this segment's data object (0 = none): blocks stored exactly as
  // in the data area, referenced by extents with kInDataObject.
  uint64_t data_object_length = 0;
  std::string writer;              // <= 255 bytes
  std::vector<Origin> origins;     // ascending max_id
  std::vector<Descriptor> recent;  // ids self.id-1, self.id-2, ... (newest first)
  // Commit times of ids that are multiples of kSampleStride below
  // self.id - recent.size(), newest first: sample_ids[i], sample_times[i].
  std::vector<uint64_t> sample_ids;
  std::vector<int64_t> sample_times;
  uint32_t crc = 0;  // filled by Encode/Decode: CRC of the encoded header
  // The codec this segment's writer stored new blocks with (bytes 38, 39:
  // 0 = none, 1 = lz4, 2 = zstd; the level). Informational for readers
  // (every frame names its codec); a writer continues with the head's.
  uint8_t codec = 0;
  uint8_t codec_level = 0;
  // Byte 166: the cipher of the file's frames and nodes (seal.h:
  // kCipherNone, kCipherXChaCha20Poly1305). Non-zero = encrypted, and the
  // header is written as version kSealedHeaderVersion.
  uint8_t cipher = 0;

  uint32_t block_size() const { return 1u << block_shift; }
};

// Fills child's history (recent descriptors, time samples) from its parent:
// the parent becomes the newest recent entry, and a sample if its id is a
// multiple of kSampleStride. Lists are capped at their format limits.
void CarryHistory(const SegmentHeader& parent, SegmentHeader* child);

// The encoded length of `header` (EncodeHeader(header).size()) without
// encoding it: it depends only on the variable parts (writer, origins,
// history), never on the area fields or the root location, so a segment's
// layout is decided first and its header encoded once.
size_t EncodedHeaderSize(const SegmentHeader& header);
std::string EncodeHeader(const SegmentHeader& header);
// Decodes a header from the first bytes of a segment. If `bytes` is shorter
// than the header, returns OutOfRange with the needed length in
// *needed (caller fetches more and retries; a caller that cannot must report
// Corrupt). Another format version is NotSupported.
Result<SegmentHeader> DecodeHeader(std::string_view bytes, std::string_view where,
                                   uint64_t* needed);

// Data chunk checksum: CRC32C of the chunk bytes followed by the chunk's
// logical byte offset (little-endian u64), so a chunk served for the wrong
// place fails verification.
uint32_t ChunkCrc(const char* data, uint64_t logical_offset);

// The stored form of logical blocks — a segment's data area or a data
// object's body: each 4 KiB chunk followed by its ChunkCrc — as a gather
// list that points into the caller's block buffers, which must stay valid
// and unchanged while the list is used. Computing the CRCs is the costly
// part; it happens in Add.
class StoredBlocks {
 public:
  explicit StoredBlocks(uint32_t block_size) : block_size_(block_size) {}
  // Appends one block (block_size bytes) whose first byte is at logical
  // offset `logical`.
  void Add(const char* block, uint64_t logical);
  size_t blocks() const { return blocks_.size(); }
  uint64_t bytes() const { return blocks_.size() * StoredBlockSize(block_size_); }
  // Appends the pieces, in order, to *out. Call after the last Add.
  void AppendTo(std::vector<std::string_view>* out) const;

 private:
  uint32_t block_size_;
  std::vector<const char*> blocks_;
  std::string crcs_;  // kChunkCrcSize bytes per chunk
};

// Snapshot object body.
struct SnapshotRecord {
  uint64_t checkpoint = 0;
  int64_t created_ms = 0;
};
std::string EncodeSnapshot(const SnapshotRecord& record);
Result<SnapshotRecord> DecodeSnapshot(std::string_view bytes, std::string_view where);

}  // namespace hyperfile::format
