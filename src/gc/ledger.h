// SPDX-License-Identifier: Apache-2.0
// The collector's incremental accounting (docs/design/0006, "The ledger").
// The ledger holds, for every own object, the number of references the
// index of checkpoint `processed` makes to it and the checkpoint ranges
// whose indexes reference it. Applying checkpoint C (parent P = C - 1)
// reads only what changed: C's new nodes (those stored in segment C: a
// flush is copy-on-write, every other node of C is a node of P) and the
// nodes of P that C no longer uses (P's tree walked from the root, stopping
// at every old node a new node of C points to: those subtrees are shared).
// The work is the changed paths, not the tree, and not the history.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "file/segment_io.h"
#include "format/format.h"
#include "format/gc_records.h"
#include "hyperfile/encryption.h"
#include "hyperfile/object_store.h"

namespace hyperfile::gc {

class Accountant {
 public:
  // `ledger` is applied in place; `origins` are the head's (segments at or
  // below the last origin's max id belong to other files and are skipped).
  Accountant(std::shared_ptr<ObjectStore> store, std::vector<format::Origin> origins,
             format::Ledger* ledger);

  // An encrypted file's key (head: the newest header read): the ledger
  // reads sealed index nodes, never data frames. Call before Apply; Auth
  // without the key or with a wrong one.
  Status Unlock(const format::SegmentHeader& head, const KeySource* key);

  // Applies checkpoint `next` (its header read), whose parent is the
  // ledger's processed checkpoint with descriptor `parent`. A checkpoint
  // whose tree is not its parent's plus its own new nodes (a restore, or
  // damage) is counted whole. Corrupt (naming the object) if a reference
  // count would go negative or `next` references an object the ledger does
  // not hold (deleted: the file is damaged); nothing is applied then.
  Status Apply(const file::HeaderRead& next, const format::Descriptor& parent);

  uint64_t nodes_read() const { return nodes_read_; }
  uint64_t recounts() const { return recounts_; }

 private:
  Status Seed(const file::HeaderRead& read);
  Result<index::NodePtr> Load(const format::NodeRef& ref, uint8_t level);
  // Adds every reference of the tree `d` (own nodes and extents) to `out`.
  Status CountTree(const format::Descriptor& d, std::map<std::string, int64_t>* out);
  void CountNode(const index::Node& node, int64_t sign, std::map<std::string, int64_t>* out);
  bool Own(uint64_t segment) const { return segment >= own_first_; }

  std::shared_ptr<ObjectStore> store_;
  file::Lineage lineage_;
  file::NodeLoader loader_;
  format::Ledger* ledger_;
  std::map<std::string, format::LedgerObject*> index_;  // ledger objects by key
  std::set<uint64_t> seeded_;                           // segments whose node area is read
  uint64_t own_first_ = 1;
  uint64_t nodes_read_ = 0;
  uint64_t recounts_ = 0;
};

// Objects of segment `id` with header `h`: the segment, and its data object
// if it has one (key, size).
std::vector<std::pair<std::string, uint64_t>> ObjectsOf(const file::HeaderRead& read);

}  // namespace hyperfile::gc
