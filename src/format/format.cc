// SPDX-License-Identifier: Apache-2.0
#include "format/format.h"

#include <algorithm>
#include <cstdio>
#include <limits>

#include "format/frame.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace hyperfile::format {
namespace {

constexpr std::string_view kHeaderMagic = "HFSEGMNT";
constexpr std::string_view kNodeMagic = "HFND";
constexpr std::string_view kSnapshotMagic = "HFSNAP01";
constexpr size_t kHeaderFixedBytes = 180;
constexpr size_t kDescriptorBytes = 72;
constexpr size_t kNodeFixedBytes = kNodeHeaderBytes;
constexpr uint8_t kMaxLevel = kMaxNodeLevel;

Status UnsupportedVersion(std::string_view where, uint32_t version) {
  return Status::NotSupported(std::string(where) + ": unsupported format version " +
                              std::to_string(version) + " (this build reads " +
                              std::to_string(kFormatVersion) + ", and " +
                              std::to_string(kSealedHeaderVersion) + " for encrypted files)");
}

Status CorruptAt(std::string_view where, size_t offset, std::string_view what) {
  return Status::Corrupt(std::string(where) + " at offset " + std::to_string(offset) + ": " +
                         std::string(what));
}

void PutDescriptor(std::string* out, const Descriptor& d) {
  PutFixed64(out, d.id);
  PutFixed64(out, static_cast<uint64_t>(d.time_ms));
  PutFixed64(out, d.size);
  PutFixed64(out, d.allocated_blocks);
  PutFixed64(out, d.bytes_changed);
  PutFixed64(out, d.restored_from);
  PutFixed64(out, d.root.segment);
  PutFixed32(out, d.root.offset);
  PutFixed32(out, d.root.length);
  PutFixed8(out, d.height);
  out->append(7, '\0');
}

Descriptor GetDescriptor(Decoder* in) {
  Descriptor d;
  d.id = in->U64();
  d.time_ms = static_cast<int64_t>(in->U64());
  d.size = in->U64();
  d.allocated_blocks = in->U64();
  d.bytes_changed = in->U64();
  d.restored_from = in->U64();
  d.root.segment = in->U64();
  d.root.offset = in->U32();
  d.root.length = in->U32();
  d.height = in->U8();
  in->Skip(7);
  return d;
}

// Checks the invariants every descriptor must satisfy; returns a reason or "".
std::string CheckDescriptor(const Descriptor& d) {
  if (d.id == 0 || d.id > kMaxCheckpointId) return "checkpoint id out of range";
  if (d.time_ms < 0) return "negative commit time";
  if (d.size > kMaxFileSize) return "file size exceeds the format limit";
  if (d.root.segment > d.id) return "index root points into a later segment";
  if ((d.root.segment == 0) != (d.height == 0)) return "empty tree with a root (or vice versa)";
  if (d.height > kMaxLevel) return "index height out of range";
  if (d.root.segment != 0 && (d.root.length < kNodeFixedBytes + 4 || d.root.length > kMaxNodeBytes))
    return "index root length out of range";
  if (d.restored_from >= d.id) return "restore source is not older than the checkpoint";
  return "";
}

}  // namespace

std::string SegmentKey(uint64_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "seg/%016llx", static_cast<unsigned long long>(~id));
  return buf;
}

namespace {
std::optional<uint64_t> ParseHex16(std::string_view digits) {
  if (digits.size() != 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : digits) {
    int digit;
    if (c >= '0' && c <= '9')
      digit = c - '0';
    else if (c >= 'a' && c <= 'f')
      digit = c - 'a' + 10;
    else
      return std::nullopt;
    v = (v << 4) | static_cast<uint64_t>(digit);
  }
  return v;
}
}  // namespace

std::string DataObjectKey(uint64_t id, uint64_t epoch) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "dat/%016llx-%016llx", static_cast<unsigned long long>(~id),
                static_cast<unsigned long long>(epoch));
  return buf;
}

std::optional<std::pair<uint64_t, uint64_t>> ParseDataObjectKey(std::string_view key) {
  if (key.size() != kDataObjectPrefix.size() + 33 || key.substr(0, 4) != kDataObjectPrefix ||
      key[4 + 16] != '-') {
    return std::nullopt;
  }
  auto inv = ParseHex16(key.substr(4, 16));
  auto epoch = ParseHex16(key.substr(21, 16));
  if (!inv || !epoch) return std::nullopt;
  uint64_t id = ~*inv;
  if (id == 0 || id > kMaxCheckpointId) return std::nullopt;
  return std::make_pair(id, *epoch);
}

size_t EncodedHeaderSize(const SegmentHeader& h) {
  size_t n = kHeaderFixedBytes + h.writer.size() + h.recent.size() * kDescriptorBytes + 4;
  for (const Origin& o : h.origins) n += 8 + 2 + o.uri.size();
  if (!h.sample_times.empty()) {
    n += 8;
    int64_t prev = h.self.time_ms;
    for (int64_t t : h.sample_times) {
      uint64_t v = static_cast<uint64_t>(prev - t);
      do {
        n++;
        v >>= 7;
      } while (v != 0);
      prev = t;
    }
  }
  return n;
}

std::optional<uint64_t> ParseSegmentKey(std::string_view key) {
  if (key.size() != kSegmentPrefix.size() + 16 || key.substr(0, 4) != kSegmentPrefix) {
    return std::nullopt;
  }
  auto parsed = ParseHex16(key.substr(4));
  if (!parsed) return std::nullopt;
  const uint64_t v = *parsed;
  uint64_t id = ~v;
  if (id == 0 || id > kMaxCheckpointId) return std::nullopt;
  return id;
}

// ---------------------------------------------------------------- nodes ---
//
// docs/format.md "Index nodes" is the normative layout. Two rules make a
// node's size computable before the segment's layout is known (see
// EncodedNodeSize): leaf extents name their segment relative to the leaf's
// largest segment (not the node's), and an interior entry for a child in the
// node's own segment stores the child's place in fixed-width fields.

namespace {

size_t VarintLength(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

// Appends to a string, or only counts (out == nullptr).
class NodeWriter {
 public:
  explicit NodeWriter(std::string* out) : out_(out) {}
  void Fixed(uint64_t v, int bytes) {
    size_ += static_cast<size_t>(bytes);
    if (!out_) return;
    for (int i = 0; i < bytes; i++) out_->push_back(static_cast<char>(v >> (8 * i)));
  }
  void Varint(uint64_t v) {
    if (out_) PutVarint64(out_, v);
    size_ += VarintLength(v);
  }
  size_t size() const { return size_; }

 private:
  std::string* out_;
  size_t size_ = 0;
};

uint64_t LeafBaseSegment(const NodeData& node) {
  uint64_t base = 0;
  for (const ExtentEntry& e : node.extents) base = std::max(base, e.segment);
  return base;
}

uint64_t InteriorBaseSegment(const NodeData& node, uint64_t segment) {
  uint64_t base = 0;
  for (const ChildEntry& c : node.children) {
    if (c.ref.segment != segment) base = std::max(base, c.ref.segment);
  }
  return base;
}

// Writes (or sizes) the node. Extents of `segment` in its data area are
// written relative to data_area_offset; `segment` 0 (sizing a pending node:
// its new extents are still relative, its pending children's refs unset)
// matches no extent and every child whose ref is still unset.
bool HasFramed(const NodeData& node) {
  for (const ExtentEntry& e : node.extents) {
    if (e.framed()) return true;
  }
  return false;
}

void WriteNode(const NodeData& node, uint64_t segment, uint64_t data_area_offset, NodeWriter* w) {
  const bool leaf = node.level == 0;
  const size_t count = leaf ? node.extents.size() : node.children.size();
  const bool framed = leaf && HasFramed(node);
  w->Fixed(DecodeFixed32(kNodeMagic.data()), 4);
  w->Fixed(framed ? kFramedNodeVersion : kFormatVersion, 1);
  w->Fixed(node.level, 1);
  w->Fixed(count, 2);
  w->Fixed(0, 4);  // total length, patched by EncodeNode
  w->Fixed(segment, 8);
  w->Fixed(data_area_offset, 8);
  if (leaf) {
    const uint64_t base = LeafBaseSegment(node);
    w->Varint(base);
    std::vector<uint64_t> epochs;  // in order of first use
    std::vector<uint64_t> index(count);
    for (size_t i = 0; i < count; i++) {
      uint64_t epoch = node.extents[i].epoch;
      size_t k = std::find(epochs.begin(), epochs.end(), epoch) - epochs.begin();
      if (k == epochs.size()) epochs.push_back(epoch);
      index[i] = k;
    }
    w->Varint(epochs.size());
    for (uint64_t epoch : epochs) w->Fixed(epoch, 8);
    uint64_t prev_end = 0;
    for (size_t i = 0; i < count; i++) {
      const ExtentEntry& e = node.extents[i];
      const uint64_t gap = e.start - prev_end;
      w->Varint((uint64_t{e.count} - 1) << 2 | (gap != 0 ? 2 : 0) | (e.in_data_object() ? 1 : 0));
      if (gap != 0) w->Varint(gap - 1);
      if (epochs.size() > 1) w->Varint(index[i]);
      w->Varint(base - e.segment);
      if (e.in_data_object()) {
        w->Varint(e.object_offset());
      } else if (e.segment == segment) {
        w->Varint(e.offset - data_area_offset);
      } else {
        w->Varint(e.offset);
      }
      if (framed) w->Varint(e.stored_length);
      prev_end = e.end();
    }
  } else {
    const uint64_t base = InteriorBaseSegment(node, segment);
    w->Varint(base);
    uint64_t prev_key = 0;
    for (const ChildEntry& c : node.children) {
      w->Varint(c.first_key - prev_key);
      w->Varint(c.blocks);
      if (c.ref.segment == segment) {
        w->Varint(0);
        w->Fixed(c.ref.offset, 4);
        w->Fixed(c.ref.length, 2);
      } else {
        w->Varint(base - c.ref.segment + 1);
        w->Varint(c.ref.offset);
        w->Varint(c.ref.length);
      }
      prev_key = c.first_key;
    }
  }
  w->Fixed(0, 4);  // CRC32C, written by EncodeNode
}

// A varint that must be in its shortest form (so every node has exactly one
// encoding and re-encoding a decoded node gives the same bytes).
uint64_t CanonicalVarint(Decoder* in, bool* canonical) {
  size_t at = in->position();
  uint64_t v = in->Varint64();
  if (in->ok() && in->position() - at != VarintLength(v)) *canonical = false;
  return v;
}

}  // namespace

size_t EncodedNodeSize(const NodeData& node, uint64_t segment, uint64_t data_area_offset) {
  NodeWriter w(nullptr);
  WriteNode(node, segment, data_area_offset, &w);
  return w.size();
}

size_t EncodedNodeSize(const NodeData& node) { return EncodedNodeSize(node, 0, 0); }

Status EncodeNode(const NodeData& node, uint64_t segment, uint64_t data_area_offset,
                  std::string* out, const Sealer* sealer, uint64_t node_offset) {
  const bool leaf = node.level == 0;
  const size_t count = leaf ? node.extents.size() : node.children.size();
  auto refuse = [&](const std::string& what) {
    return Status::InvalidArgument("index node for segment " + std::to_string(segment) + ": " +
                                   what);
  };
  if (count == 0 || count > kNodeCapacity || node.level > kMaxNodeLevel) {
    return refuse("bad level or entry count");
  }
  if (segment == 0) return refuse("no segment");
  uint64_t prev_end = 0;
  for (size_t i = 0; leaf && i < count; i++) {
    const ExtentEntry& e = node.extents[i];
    if (e.segment == 0 || e.segment > segment || e.count == 0 || e.start < prev_end ||
        (e.framed() && (e.count != 1 || e.object_offset() >= kMaxFramedOffset))) {
      return refuse("bad extent " + std::to_string(i));
    }
    if (e.segment == segment && !e.in_data_object() && e.offset < data_area_offset) {
      return refuse("extent " + std::to_string(i) + " of this segment at offset " +
                    std::to_string(e.offset) + ", before the data area (" +
                    std::to_string(data_area_offset) + ")");
    }
    prev_end = e.end();
  }
  for (size_t i = 0; !leaf && i < count; i++) {
    const ChildEntry& c = node.children[i];
    if (c.ref.segment == 0 || c.ref.segment > segment ||
        (i > 0 && c.first_key <= node.children[i - 1].first_key) ||
        (c.ref.segment == segment && c.ref.length > 0xFFFF)) {
      return refuse("bad child " + std::to_string(i));
    }
  }
  std::string plain_node;
  std::string* dst = sealer ? &plain_node : out;
  const size_t start = dst->size();
  NodeWriter w(dst);
  WriteNode(node, segment, data_area_offset, &w);
  const size_t size = dst->size() - start;
  EncodeFixed32(dst->data() + start + 8, static_cast<uint32_t>(size));
  EncodeFixed32(dst->data() + dst->size() - 4, crc32c::Value(dst->data() + start, size - 4));
  if (!sealer) return Status::OK();
  // Sealed: the plain header with version 5 and the sealed length, then the
  // seal of [plain version][body], then the CRC of it all.
  std::string header = plain_node.substr(0, kNodeHeaderBytes);
  header[4] = static_cast<char>(kSealedNodeVersion);
  EncodeFixed32(header.data() + 8, static_cast<uint32_t>(size + kSealedNodeOverhead));
  std::string inner;
  inner.reserve(size - kNodeHeaderBytes - 3);
  inner.push_back(plain_node[4]);
  inner.append(plain_node, kNodeHeaderBytes, size - kNodeHeaderBytes - 4);
  const size_t begin = out->size();
  out->append(header);
  SealPlace place;
  place.kind = SealKind::kIndexNode;
  place.checkpoint = segment;
  place.offset = node_offset;
  sealer->Seal(place, header, inner, out);
  PutFixed32(out, crc32c::Value(out->data() + begin, out->size() - begin));
  return Status::OK();
}

uint32_t PeekNodeLength(std::string_view bytes) {
  if (bytes.size() < kNodeHeaderBytes || bytes.substr(0, 4) != kNodeMagic ||
      (static_cast<uint8_t>(bytes[4]) != kFormatVersion &&
       static_cast<uint8_t>(bytes[4]) != kFramedNodeVersion &&
       static_cast<uint8_t>(bytes[4]) != kSealedNodeVersion)) {
    return 0;
  }
  return DecodeFixed32(bytes.data() + 8);
}

Result<NodeData> DecodeNode(std::string_view bytes, const NodeRef& ref, std::string_view where,
                            const Sealer* sealer) {
  if (bytes.size() < kMinNodeBytes) return CorruptAt(where, 0, "index node truncated");
  const bool sealed = static_cast<uint8_t>(bytes[4]) == kSealedNodeVersion;
  if (sealed || sealer) {
    if (bytes.substr(0, 4) != kNodeMagic) return CorruptAt(where, 0, "bad index node magic");
    if (DecodeFixed32(bytes.data() + 8) != bytes.size()) {
      return CorruptAt(where, 8, "index node length does not match the bytes read");
    }
    if (crc32c::Value(bytes.data(), bytes.size() - 4) !=
        DecodeFixed32(bytes.data() + bytes.size() - 4)) {
      return CorruptAt(where, 0, "index node checksum mismatch");
    }
    if (!sealer) return Status::Auth(std::string(where) + ": encrypted index node; no key given");
    if (!sealed) {
      return CorruptAt(where, 4, "index node is not sealed, but the file is encrypted (tampered)");
    }
    if (bytes.size() < kMinNodeBytes + kSealedNodeOverhead) {
      return CorruptAt(where, 0, "sealed index node truncated");
    }
    SealPlace place;
    place.kind = SealKind::kIndexNode;
    place.checkpoint = ref.segment;
    place.offset = ref.offset;
    const std::string_view header = bytes.substr(0, kNodeHeaderBytes);
    std::string inner;
    HF_RETURN_IF_ERROR(sealer->Open(
        place, header, bytes.substr(kNodeHeaderBytes, bytes.size() - kNodeHeaderBytes - 4), &inner,
        where));
    if (inner.empty() || static_cast<uint8_t>(inner[0]) == kSealedNodeVersion) {
      return CorruptAt(where, kNodeHeaderBytes, "sealed index node holds no plain node");
    }
    // Rebuild the plain node and decode it with the strict decoder.
    std::string plain(header);
    plain[4] = inner[0];
    plain.append(inner, 1, std::string::npos);
    EncodeFixed32(plain.data() + 8, static_cast<uint32_t>(plain.size() + 4));
    PutFixed32(&plain, crc32c::Value(plain.data(), plain.size()));
    return DecodeNode(plain, ref, where, nullptr);
  }
  if (bytes.substr(0, 4) != kNodeMagic) return CorruptAt(where, 0, "bad index node magic");
  if (DecodeFixed32(bytes.data() + 8) != bytes.size()) {
    return CorruptAt(where, 8, "index node length does not match the bytes read");
  }
  uint32_t stored_crc = DecodeFixed32(bytes.data() + bytes.size() - 4);
  if (crc32c::Value(bytes.data(), bytes.size() - 4) != stored_crc) {
    return CorruptAt(where, 0, "index node checksum mismatch");
  }
  Decoder in(bytes.substr(0, bytes.size() - 4));
  in.Skip(4);
  uint8_t version = in.U8();
  if (version != kFormatVersion && version != kFramedNodeVersion) {
    return UnsupportedVersion(where, version);
  }
  const bool framed_node = version == kFramedNodeVersion;
  NodeData node;
  node.level = in.U8();
  const uint16_t count = in.U16();
  in.Skip(4);  // length, checked above
  const uint64_t home = in.U64();
  const uint64_t data_area = in.U64();
  if (node.level > kMaxNodeLevel) return CorruptAt(where, 5, "index node level out of range");
  if (count == 0 || count > kNodeCapacity) return CorruptAt(where, 6, "bad index node entry count");
  if (home == 0 || home != ref.segment) {
    return CorruptAt(where, 12, "index node belongs to another segment");
  }
  if (data_area < uint64_t{ref.offset} + bytes.size()) {
    return CorruptAt(where, 20, "index node ends past its segment's data area offset");
  }
  bool canonical = true;
  auto varint = [&] { return CanonicalVarint(&in, &canonical); };
  // The largest offset + count * stored block size below 2^63, any block size.
  const uint64_t kOffsetLimit = kMaxStoredOffset - 1;
  const uint64_t kMaxStoredBlock = StoredBlockSize(1u << kMaxBlockShift);
  if (node.level == 0) {
    const uint64_t base = varint();
    const uint64_t n_epochs = varint();
    if (!in.ok()) return CorruptAt(where, in.position(), "index node truncated");
    if (base == 0 || base > home) return CorruptAt(where, kNodeHeaderBytes, "bad base segment");
    if (n_epochs == 0 || n_epochs > count) {
      return CorruptAt(where, kNodeHeaderBytes, "bad epoch table size");
    }
    std::vector<uint64_t> epochs(n_epochs);
    for (uint64_t& epoch : epochs) epoch = in.U64();
    node.extents.resize(count);
    uint64_t prev_end = 0, used = 0;
    bool base_used = false, any_framed = false;
    for (uint16_t i = 0; i < count; i++) {
      ExtentEntry& e = node.extents[i];
      const size_t at = in.position();
      const uint64_t head = varint();
      const uint64_t gap = (head & 2) != 0 ? std::min(varint(), kMaxBlocksAnySize) + 1 : 0;
      const uint64_t k = n_epochs > 1 ? varint() : 0;
      const uint64_t seg_delta = varint();
      const uint64_t offset = varint();
      const uint64_t stored_length = framed_node ? varint() : 0;
      if (!in.ok()) return CorruptAt(where, at, "index node truncated");
      const uint64_t blocks = (head >> 2) + 1;
      if (stored_length != 0) {
        if (blocks != 1 || stored_length < kFrameOverhead ||
            stored_length > MaxFrameBytes(1u << kMaxBlockShift)) {
          return CorruptAt(where, at, "bad framed extent (block count or stored length)");
        }
        any_framed = true;
      }
      e.stored_length = static_cast<uint32_t>(stored_length);
      if (gap > kMaxBlocksAnySize - prev_end || blocks > 0xFFFFFFFFu ||
          blocks > kMaxBlocksAnySize - (prev_end + gap)) {
        return CorruptAt(where, at,
                         "bad extent (" + std::to_string(blocks) + " blocks from block " +
                             std::to_string(prev_end + std::min(gap, kMaxBlocksAnySize)) +
                             ": past the maximum file size)");
      }
      e.start = prev_end + gap;
      e.count = static_cast<uint32_t>(blocks);
      if (k >= n_epochs || k > used) return CorruptAt(where, at, "bad extent epoch index");
      if (k == used) {
        for (uint64_t j = 0; j < used; j++) {
          if (epochs[j] == epochs[k]) return CorruptAt(where, at, "epoch table repeats an epoch");
        }
        used++;
      }
      e.epoch = epochs[k];
      if (seg_delta >= base) return CorruptAt(where, at, "extent points at an impossible segment");
      if (seg_delta == 0) base_used = true;
      e.segment = base - seg_delta;
      const uint64_t limit = kOffsetLimit - uint64_t{e.count} * kMaxStoredBlock;
      const bool in_object = (head & 1) != 0;
      const bool relative = !in_object && e.segment == home;
      if (relative ? (data_area > limit || offset > limit - data_area) : offset > limit) {
        return CorruptAt(where, at, "extent data offset out of range");
      }
      e.offset = in_object ? (kInDataObject | offset) : relative ? data_area + offset : offset;
      if (e.framed() && e.object_offset() >= kMaxFramedOffset) {
        return CorruptAt(where, at, "framed extent offset out of range");
      }
      prev_end = e.end();
    }
    if (framed_node && !any_framed) {
      return CorruptAt(where, 4, "version 4 node without a framed extent");
    }
    if (used != n_epochs) return CorruptAt(where, kNodeHeaderBytes, "unused epoch table entry");
    if (!base_used) return CorruptAt(where, kNodeHeaderBytes, "base segment names no extent");
  } else {
    if (framed_node) return CorruptAt(where, 4, "version 4 interior node");
    const uint64_t base = varint();
    if (!in.ok()) return CorruptAt(where, in.position(), "index node truncated");
    if (base >= home) return CorruptAt(where, kNodeHeaderBytes, "bad base segment");
    node.children.resize(count);
    bool base_used = false;
    for (uint16_t i = 0; i < count; i++) {
      ChildEntry& c = node.children[i];
      const size_t at = in.position();
      const uint64_t key_delta = varint();
      c.blocks = varint();
      const uint64_t seg_code = varint();
      uint64_t offset = 0, length = 0;
      if (seg_code == 0) {
        c.ref.segment = home;
        offset = in.U32();
        length = in.U16();
      } else {
        offset = varint();
        length = varint();
        if (seg_code > base) return CorruptAt(where, at, "child reference out of range");
        if (seg_code == 1) base_used = true;
        c.ref.segment = base + 1 - seg_code;
      }
      if (!in.ok()) return CorruptAt(where, at, "index node truncated");
      if ((i > 0 && key_delta == 0) || key_delta >= kMaxBlocksAnySize ||
          (i > 0 && key_delta >= kMaxBlocksAnySize - node.children[i - 1].first_key)) {
        return CorruptAt(where, at, "child keys unsorted or past the maximum file size");
      }
      c.first_key = (i > 0 ? node.children[i - 1].first_key : 0) + key_delta;
      if (c.blocks > kMaxBlocksAnySize) {
        return CorruptAt(where, at, "child block count past the maximum file size");
      }
      if (offset > 0xFFFFFFFFu || length > kMaxNodeBytes || length < kMinNodeBytes ||
          (c.ref.segment == home && offset + length > data_area)) {
        return CorruptAt(where, at, "child reference out of range");
      }
      c.ref.offset = static_cast<uint32_t>(offset);
      c.ref.length = static_cast<uint32_t>(length);
    }
    if (base != 0 && !base_used) {
      return CorruptAt(where, kNodeHeaderBytes, "base segment names no child");
    }
  }
  if (!in.ok() || in.remaining() != 0) {
    return CorruptAt(where, in.position(), "index node length does not match its entries");
  }
  if (!canonical) return CorruptAt(where, 0, "index node not in its canonical encoding");
  return node;
}

// --------------------------------------------------------------- header ---

void CarryHistory(const SegmentHeader& parent, SegmentHeader* child) {
  child->recent = parent.recent;
  child->recent.insert(child->recent.begin(), parent.self);
  if (child->recent.size() > kHistoryDescriptors) child->recent.resize(kHistoryDescriptors);
  child->sample_ids = parent.sample_ids;
  child->sample_times = parent.sample_times;
  if (parent.self.id % kSampleStride == 0) {
    child->sample_ids.insert(child->sample_ids.begin(), parent.self.id);
    child->sample_times.insert(child->sample_times.begin(), parent.self.time_ms);
    if (child->sample_ids.size() > kMaxSamples) {
      child->sample_ids.resize(kMaxSamples);
      child->sample_times.resize(kMaxSamples);
    }
  }
}

std::string EncodeHeader(const SegmentHeader& h) {
  std::string out;
  out.reserve(kHeaderFixedBytes + h.recent.size() * kDescriptorBytes + h.sample_times.size() * 4 +
              256);
  out.append(kHeaderMagic);
  PutFixed32(&out, h.cipher != 0 ? kSealedHeaderVersion : kFormatVersion);
  PutFixed32(&out, 0);  // header length, patched below
  PutFixed64(&out, h.self.id);
  PutFixed64(&out, h.parent);
  PutFixed32(&out, h.parent_crc);
  PutFixed8(&out, h.block_shift);
  PutFixed8(&out, h.self.height);
  PutFixed8(&out, h.codec);
  PutFixed8(&out, h.codec_level);
  PutFixed64(&out, h.writer_epoch);
  PutFixed64(&out, h.file_id);
  PutFixed64(&out, h.first_id);
  PutFixed64(&out, static_cast<uint64_t>(h.create_time_ms));
  PutFixed64(&out, static_cast<uint64_t>(h.self.time_ms));
  PutFixed64(&out, h.self.size);
  PutFixed64(&out, h.self.allocated_blocks);
  PutFixed64(&out, h.self.bytes_changed);
  PutFixed64(&out, h.self.restored_from);
  PutFixed64(&out, h.self.root.segment);
  PutFixed32(&out, h.self.root.offset);
  PutFixed32(&out, h.self.root.length);
  PutFixed64(&out, h.node_area_offset);
  PutFixed64(&out, h.node_area_length);
  PutFixed64(&out, h.data_area_offset);
  PutFixed64(&out, h.data_area_length);
  PutFixed16(&out, static_cast<uint16_t>(h.origins.size()));
  PutFixed16(&out, static_cast<uint16_t>(h.recent.size()));
  PutFixed16(&out, static_cast<uint16_t>(h.writer.size()));
  PutFixed8(&out, h.cipher);
  PutFixed8(&out, 0);
  PutFixed32(&out, static_cast<uint32_t>(h.sample_times.size()));
  PutFixed64(&out, h.data_object_length);
  // variable part
  out.append(h.writer);
  for (const Origin& o : h.origins) {
    PutFixed64(&out, o.max_id);
    PutString16(&out, o.uri);
  }
  for (const Descriptor& d : h.recent) PutDescriptor(&out, d);
  if (!h.sample_times.empty()) {
    PutFixed64(&out, h.sample_ids.front());
    int64_t prev = h.self.time_ms;
    for (int64_t t : h.sample_times) {
      PutVarint64(&out, static_cast<uint64_t>(prev - t));  // times never increase going back
      prev = t;
    }
  }
  EncodeFixed32(out.data() + 12, static_cast<uint32_t>(out.size() + 4));
  PutFixed32(&out, crc32c::Value(out.data(), out.size()));
  return out;
}

Result<SegmentHeader> DecodeHeader(std::string_view bytes, std::string_view where,
                                   uint64_t* needed) {
  if (needed) *needed = 0;
  if (bytes.size() < 16) return CorruptAt(where, 0, "segment header truncated");
  if (bytes.substr(0, 8) != kHeaderMagic) {
    return CorruptAt(where, 0, "not a hyperfile segment (bad magic)");
  }
  uint32_t version = DecodeFixed32(bytes.data() + 8);
  if (version != kFormatVersion && version != kSealedHeaderVersion) {
    return UnsupportedVersion(where, version);
  }
  uint32_t length = DecodeFixed32(bytes.data() + 12);
  if (length < kHeaderFixedBytes + 4 || length > kMaxHeaderBytes) {
    return CorruptAt(where, 12, "segment header length out of range");
  }
  if (bytes.size() < length) {
    if (needed) *needed = length;
    return Status::OutOfRange(std::string(where) + ": header needs " + std::to_string(length) +
                              " bytes");
  }
  bytes = bytes.substr(0, length);
  uint32_t stored_crc = DecodeFixed32(bytes.data() + length - 4);
  if (crc32c::Value(bytes.data(), length - 4) != stored_crc) {
    return CorruptAt(where, 0, "segment header checksum mismatch");
  }
  Decoder in(bytes.substr(16, length - 20));
  SegmentHeader h;
  h.crc = stored_crc;
  h.self.id = in.U64();
  h.parent = in.U64();
  h.parent_crc = in.U32();
  h.block_shift = in.U8();
  h.self.height = in.U8();
  h.codec = in.U8();
  h.codec_level = in.U8();
  h.writer_epoch = in.U64();
  h.file_id = in.U64();
  h.first_id = in.U64();
  h.create_time_ms = static_cast<int64_t>(in.U64());
  h.self.time_ms = static_cast<int64_t>(in.U64());
  h.self.size = in.U64();
  h.self.allocated_blocks = in.U64();
  h.self.bytes_changed = in.U64();
  h.self.restored_from = in.U64();
  h.self.root.segment = in.U64();
  h.self.root.offset = in.U32();
  h.self.root.length = in.U32();
  h.node_area_offset = in.U64();
  h.node_area_length = in.U64();
  h.data_area_offset = in.U64();
  h.data_area_length = in.U64();
  uint16_t n_origins = in.U16();
  uint16_t n_recent = in.U16();
  uint16_t writer_len = in.U16();
  h.cipher = in.U8();
  in.Skip(1);
  uint32_t n_samples = in.U32();
  h.data_object_length = in.U64();
  if (h.block_shift < kMinBlockShift || h.block_shift > kMaxBlockShift) {
    return CorruptAt(where, 36, "block size out of range");
  }
  if (std::string reason = CheckDescriptor(h.self); !reason.empty()) {
    return CorruptAt(where, 16, reason);
  }
  // Byte 38 was reserved (0 = none) before codecs existed.
  if (h.codec > 2) {
    return Status::NotSupported(std::string(where) + ": unknown codec " + std::to_string(h.codec) +
                                " at offset 38");
  }
  if ((h.codec == 2) != (h.codec_level != 0) || h.codec_level > 22) {
    return CorruptAt(where, 39, "codec level out of range");
  }
  // Byte 166 was reserved (0) before encryption; version 4 headers are the
  // encrypted ones and must name a known cipher.
  if ((version == kSealedHeaderVersion) != (h.cipher != kCipherNone)) {
    return CorruptAt(where, 166, "cipher id does not match the header version");
  }
  if (h.cipher > kCipherXChaCha20Poly1305) {
    return Status::NotSupported(std::string(where) + ": unknown cipher " +
                                std::to_string(h.cipher) + " at offset 166");
  }
  if (h.parent >= h.self.id || h.first_id == 0 || h.first_id > h.self.id) {
    return CorruptAt(where, 24, "parent or first checkpoint id out of range");
  }
  if (n_origins > kMaxOrigins || n_recent > kHistoryDescriptors || n_samples > kMaxSamples ||
      writer_len > 255) {
    return CorruptAt(where, 160, "header list lengths out of range");
  }
  h.writer = std::string(in.Bytes(writer_len));
  for (uint16_t i = 0; i < n_origins && in.ok(); i++) {
    Origin o;
    o.max_id = in.U64();
    o.uri = std::string(in.String16());
    if (o.max_id >= h.self.id || (!h.origins.empty() && o.max_id <= h.origins.back().max_id)) {
      return CorruptAt(where, kHeaderFixedBytes, "clone origins out of order");
    }
    h.origins.push_back(std::move(o));
  }
  uint64_t expect_id = h.self.id;
  for (uint16_t i = 0; i < n_recent && in.ok(); i++) {
    Descriptor d = GetDescriptor(&in);
    if (!in.ok()) break;
    if (d.id + 1 != expect_id || !CheckDescriptor(d).empty()) {
      return CorruptAt(where, kHeaderFixedBytes, "bad checkpoint history entry");
    }
    expect_id = d.id;
    h.recent.push_back(d);
  }
  if (n_samples > 0) {
    uint64_t id = in.U64();
    int64_t t = h.self.time_ms;
    if (id == 0 || id >= h.self.id || id % kSampleStride != 0) {
      return CorruptAt(where, kHeaderFixedBytes, "bad time sample id");
    }
    for (uint32_t i = 0; i < n_samples && in.ok(); i++) {
      uint64_t delta = in.Varint64();
      if (delta > static_cast<uint64_t>(t)) {  // times are >= 0, so t - delta >= 0
        return CorruptAt(where, kHeaderFixedBytes, "bad time sample");
      }
      t -= static_cast<int64_t>(delta);
      if (id < kSampleStride * i) return CorruptAt(where, kHeaderFixedBytes, "bad time sample");
      h.sample_ids.push_back(id - kSampleStride * i);
      h.sample_times.push_back(t);
    }
    if (!h.sample_ids.empty() && h.sample_ids.back() == 0) {
      return CorruptAt(where, kHeaderFixedBytes, "bad time sample id");
    }
  }
  if (!in.ok() || in.remaining() != 0) {
    return CorruptAt(where, 16 + in.position(), "segment header length mismatch");
  }
  if (h.node_area_offset != length ||
      h.node_area_length > std::numeric_limits<uint64_t>::max() - h.node_area_offset ||
      h.data_area_offset != h.node_area_offset + h.node_area_length) {
    return CorruptAt(where, 128, "segment areas out of place");
  }
  if (h.self.root.segment == h.self.id &&
      (h.self.root.offset < h.node_area_offset ||
       uint64_t{h.self.root.offset} + h.self.root.length > h.data_area_offset)) {
    return CorruptAt(where, 112, "index root outside the node area");
  }
  return h;
}

uint32_t ChunkCrc(const char* data, uint64_t logical_offset) {
  char off[8];
  EncodeFixed64(off, logical_offset);
  return crc32c::Extend(crc32c::Value(data, kChunkSize), off, 8);
}

void StoredBlocks::Add(const char* block, uint64_t logical) {
  blocks_.push_back(block);
  for (uint32_t c = 0; c < block_size_; c += kChunkSize) {
    PutFixed32(&crcs_, ChunkCrc(block + c, logical + c));
  }
}

void StoredBlocks::AppendTo(std::vector<std::string_view>* out) const {
  const uint32_t chunks = block_size_ / kChunkSize;
  out->reserve(out->size() + blocks_.size() * chunks * 2);
  for (size_t i = 0; i < blocks_.size(); i++) {
    for (uint32_t c = 0; c < chunks; c++) {
      out->emplace_back(blocks_[i] + uint64_t{c} * kChunkSize, kChunkSize);
      out->emplace_back(crcs_.data() + (i * chunks + c) * kChunkCrcSize, kChunkCrcSize);
    }
  }
}

// ------------------------------------------------------------ snapshots ---

std::string EncodeSnapshot(const SnapshotRecord& r) {
  std::string out(kSnapshotMagic);
  PutFixed64(&out, r.checkpoint);
  PutFixed64(&out, static_cast<uint64_t>(r.created_ms));
  PutFixed32(&out, crc32c::Value(out));
  return out;
}

Result<SnapshotRecord> DecodeSnapshot(std::string_view bytes, std::string_view where) {
  if (bytes.size() != 28 || bytes.substr(0, 8) != kSnapshotMagic) {
    return CorruptAt(where, 0, "not a hyperfile snapshot record");
  }
  if (crc32c::Value(bytes.data(), 24) != DecodeFixed32(bytes.data() + 24)) {
    return CorruptAt(where, 24, "snapshot record checksum mismatch");
  }
  SnapshotRecord r;
  r.checkpoint = DecodeFixed64(bytes.data() + 8);
  r.created_ms = static_cast<int64_t>(DecodeFixed64(bytes.data() + 16));
  if (r.checkpoint == 0 || r.checkpoint > kMaxCheckpointId) {
    return CorruptAt(where, 8, "snapshot checkpoint id out of range");
  }
  return r;
}

}  // namespace hyperfile::format
