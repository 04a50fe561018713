// SPDX-License-Identifier: Apache-2.0
#include "gc/mark.h"

#include "file/file_impl.h"
#include "file/sealing.h"

namespace hyperfile::gc {

namespace {
// Bounds of one mark: distinct nodes, and the node area read per segment.
constexpr uint64_t kMaxNodes = 64ull << 20;
constexpr uint64_t kMaxNodeArea = 256ull << 20;
constexpr uint64_t kLoaderBudget = 256ull << 20;
}  // namespace

Marker::Marker(std::shared_ptr<ObjectStore> store, std::vector<format::Origin> origins,
               uint32_t block_size)
    : store_(store),
      lineage_(store, origins, file::DefaultResolver(OpenOptions{})),
      loader_(&lineage_, kLoaderBudget),
      stored_block_size_(format::StoredBlockSize(block_size)) {
  for (const format::Origin& o : origins) own_first_ = std::max(own_first_, o.max_id + 1);
}

Status Marker::Unlock(const format::SegmentHeader& head, const KeySource* key) {
  HF_ASSIGN_OR_RETURN(auto sealer, file::UnlockFile(&lineage_, head, key));
  lineage_.SetSealer(std::move(sealer));
  return Status::OK();
}

void Marker::Use(const std::string& key, Reason reason, uint64_t head_bytes) {
  ObjectUse& u = uses_[key];
  u.reasons |= reason;
  u.head_bytes += head_bytes;
}

// One GET of the segment's first 64 KiB (header, root and upper levels), and
// one more for the rest of its node area if that is larger.
Status Marker::EnsureSeeded(uint64_t segment, bool missing_is_corrupt) {
  if (seeded_.count(segment)) return Status::OK();
  auto read = file::ReadHeader(store_.get(), segment);
  if (!read.ok()) {
    if (read.status().IsNotFound() && missing_is_corrupt) {
      return Status::Corrupt(store_->Name() + "/" + format::SegmentKey(segment) +
                             ": segment referenced by a kept checkpoint is missing");
    }
    return read.status();
  }
  file::HeaderRead r = std::move(read).value();
  const format::SegmentHeader& h = r.header;
  headers_[segment] = h.self;
  uint64_t node_end = h.node_area_offset + h.node_area_length;
  if (h.node_area_length > kMaxNodeArea) {
    return Status::Corrupt(store_->Name() + "/" + format::SegmentKey(segment) + ": node area of " +
                           std::to_string(h.node_area_length) +
                           " bytes is larger than any flush writes");
  }
  if (node_end > r.bytes.size()) {
    std::string rest;
    uint64_t have = r.bytes.size();
    HF_RETURN_IF_ERROR(
        store_->Get(format::SegmentKey(segment), have, node_end - have, &rest, nullptr));
    r.bytes += rest;
  }
  loader_.Seed(r);
  seeded_.insert(segment);
  return Status::OK();
}

Status Marker::MarkCheckpoint(uint64_t id, Reason reason) {
  if (!headers_.count(id)) HF_RETURN_IF_ERROR(EnsureSeeded(id, /*missing_is_corrupt=*/false));
  return Mark(headers_.at(id), reason);
}

Status Marker::Mark(const format::Descriptor& d, Reason reason) {
  if (d.id >= own_first_) {
    Use(format::SegmentKey(d.id), reason, 0);
    if (reason == kHead) head_refs_[format::SegmentKey(d.id)]++;
  }
  if (d.height == 0) return Status::OK();
  struct Item {
    format::NodeRef ref;
    uint8_t level;
  };
  std::vector<Item> stack{{d.root, static_cast<uint8_t>(d.height - 1)}};
  while (!stack.empty()) {
    Item item = stack.back();
    stack.pop_back();
    // A node in an origin's segment references only older segments: the
    // whole subtree belongs to the files this one was cloned from.
    if (item.ref.segment < own_first_) continue;
    uint8_t& seen = node_reasons_[{item.ref.segment, item.ref.offset}];
    if ((seen & reason) != 0) continue;
    seen |= reason;
    if (++nodes_visited_ > kMaxNodes) {
      return Status::OutOfRange(store_->Name() + ": more than " + std::to_string(kMaxNodes) +
                                " index nodes to walk");
    }
    HF_RETURN_IF_ERROR(EnsureSeeded(item.ref.segment));
    // Levels strictly decrease along a path (the loader checks each child's
    // level), so the walk ends; the seen map makes it visit each node once.
    HF_ASSIGN_OR_RETURN(index::NodePtr node, loader_.Load(item.ref, item.level));
    Use(format::SegmentKey(item.ref.segment), reason, reason == kHead ? item.ref.length : 0);
    if (reason == kHead) head_refs_[format::SegmentKey(item.ref.segment)]++;
    if (node->data.level == 0) {
      for (const format::ExtentEntry& e : node->data.extents) {
        if (e.segment < own_first_) continue;
        std::string key = e.in_data_object() ? format::DataObjectKey(e.segment, e.epoch)
                                             : format::SegmentKey(e.segment);
        uint64_t bytes = reason == kHead ? (e.framed() ? uint64_t{e.stored_length}
                                                       : uint64_t{e.count} * stored_block_size_)
                                         : 0;
        Use(key, reason, bytes);
        if (reason == kHead) head_refs_[key]++;
        // A data object belongs to the file only while the segment whose
        // header names it exists (docs/format.md "Data objects"; readers and
        // verify check the extent's epoch against that header): the segment
        // stays, even when none of its own nodes or data are live any more.
        if (e.in_data_object()) Use(format::SegmentKey(e.segment), reason, 0);
        if (reason == kHead) head_extents_[key].push_back(e);
      }
    } else {
      if (item.level == 0) return Status::Corrupt(loader_.Describe(item.ref) + ": bad level");
      for (const format::ChildEntry& c : node->data.children) {
        stack.push_back({c.ref, static_cast<uint8_t>(item.level - 1)});
      }
    }
  }
  return Status::OK();
}

}  // namespace hyperfile::gc
