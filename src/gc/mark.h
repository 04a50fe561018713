// SPDX-License-Identifier: Apache-2.0
// The mark phase shared by Collect, DiskUsage and Compact: which of a file's
// own objects the index of each kept checkpoint references, walking every
// distinct node once per reason (subtrees that checkpoints share are read
// once) and loading each referenced segment's node area with at most two
// GETs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "file/segment_io.h"
#include "format/format.h"
#include "hyperfile/encryption.h"
#include "hyperfile/object_store.h"

namespace hyperfile::gc {

// Why an object is live (bits; an object may have several).
enum Reason : uint8_t {
  kHead = 1,      // the head references it
  kHistory = 2,   // a checkpoint kept by the retention policy or a lease
  kSnapshot = 4,  // a named snapshot
  kPin = 8,       // a clone's pin
};

struct ObjectUse {
  uint8_t reasons = 0;
  uint64_t head_bytes = 0;  // stored bytes of it that the head's index uses
};

class Marker {
 public:
  // `store` is the file's own store; `origins` those of the head (segments
  // up to the last origin's max id live in other files and are not ours).
  Marker(std::shared_ptr<ObjectStore> store, std::vector<format::Origin> origins,
         uint32_t block_size);
  // An encrypted file's index nodes are sealed: unlock it (head = the head's
  // header) before marking. No-op for a file that is not encrypted; Auth
  // without the key or with a wrong one.
  Status Unlock(const format::SegmentHeader& head, const KeySource* key);

  // Marks checkpoint `d` (its segment, its nodes, its data) for `reason`.
  Status Mark(const format::Descriptor& d, Reason reason);
  // The same by id: reads the checkpoint's header (which also seeds its
  // nodes), NotFound if its segment is gone.
  Status MarkCheckpoint(uint64_t id, Reason reason);

  // Keys (seg/..., dat/...) of the file's own objects that were referenced.
  const std::unordered_map<std::string, ObjectUse>& uses() const { return uses_; }
  // Head extents (logical blocks) that live in each own object (for compaction).
  const std::map<std::string, std::vector<format::ExtentEntry>>& head_extents() const {
    return head_extents_;
  }
  // References from the head's index to each own object: one per node stored
  // in it, one per extent in it, one for the head's own segment (the
  // ledger's counts, docs/design/0006).
  const std::unordered_map<std::string, uint64_t>& head_refs() const { return head_refs_; }
  uint64_t nodes_visited() const { return nodes_visited_; }
  uint64_t own_first_id() const { return own_first_; }

 private:
  Status EnsureSeeded(uint64_t segment, bool missing_is_corrupt = true);
  void Use(const std::string& key, Reason reason, uint64_t head_bytes);

  std::shared_ptr<ObjectStore> store_;
  file::Lineage lineage_;
  file::NodeLoader loader_;
  uint64_t stored_block_size_;
  uint64_t own_first_ = 1;
  std::set<uint64_t> seeded_;
  std::map<uint64_t, format::Descriptor> headers_;  // self descriptors of seeded segments
  std::map<std::pair<uint64_t, uint32_t>, uint8_t> node_reasons_;
  std::unordered_map<std::string, ObjectUse> uses_;
  std::unordered_map<std::string, uint64_t> head_refs_;
  std::map<std::string, std::vector<format::ExtentEntry>> head_extents_;
  uint64_t nodes_visited_ = 0;
};

}  // namespace hyperfile::gc
