// SPDX-License-Identifier: Apache-2.0
#include "gc/ledger.h"

#include <algorithm>
#include <set>

#include "file/file_impl.h"
#include "file/sealing.h"

namespace hyperfile::gc {

namespace {
constexpr uint64_t kLoaderBudget = 256ull << 20;
constexpr uint64_t kMaxNodeArea = 256ull << 20;
constexpr uint64_t kMaxNodesPerApply = 64ull << 20;

std::string ExtentKey(const format::ExtentEntry& e) {
  return e.in_data_object() ? format::DataObjectKey(e.segment, e.epoch)
                            : format::SegmentKey(e.segment);
}
}  // namespace

std::vector<std::pair<std::string, uint64_t>> ObjectsOf(const file::HeaderRead& read) {
  const format::SegmentHeader& h = read.header;
  uint64_t size = std::max({read.object_size, h.data_area_offset + h.data_area_length,
                            h.node_area_offset + h.node_area_length});
  std::vector<std::pair<std::string, uint64_t>> out{{format::SegmentKey(h.self.id), size}};
  if (h.data_object_length > 0) {
    out.emplace_back(format::DataObjectKey(h.self.id, h.writer_epoch), h.data_object_length);
  }
  return out;
}

Accountant::Accountant(std::shared_ptr<ObjectStore> store, std::vector<format::Origin> origins,
                       format::Ledger* ledger)
    : store_(store),
      lineage_(store, origins, file::DefaultResolver(OpenOptions{})),
      loader_(&lineage_, kLoaderBudget),
      ledger_(ledger) {
  for (const format::Origin& o : origins) own_first_ = std::max(own_first_, o.max_id + 1);
  for (format::LedgerObject& o : ledger_->objects) index_[o.key] = &o;
}

Status Accountant::Unlock(const format::SegmentHeader& head, const KeySource* key) {
  HF_ASSIGN_OR_RETURN(auto sealer, file::UnlockFile(&lineage_, head, key));
  lineage_.SetSealer(std::move(sealer));
  return Status::OK();
}

// The segment's node area: its first bytes came with the header, the rest
// is one more GET.
Status Accountant::Seed(const file::HeaderRead& read) {
  const format::SegmentHeader& h = read.header;
  if (h.node_area_length > kMaxNodeArea) {
    return Status::Corrupt(store_->Name() + "/" + format::SegmentKey(h.self.id) +
                           ": node area of " + std::to_string(h.node_area_length) +
                           " bytes is larger than any flush writes");
  }
  uint64_t node_end = h.node_area_offset + h.node_area_length;
  seeded_.insert(h.self.id);
  if (node_end <= read.bytes.size()) {
    loader_.Seed(read);
    return Status::OK();
  }
  file::HeaderRead full = read;
  std::string rest;
  uint64_t have = full.bytes.size();
  HF_RETURN_IF_ERROR(
      store_->Get(format::SegmentKey(h.self.id), have, node_end - have, &rest, nullptr));
  full.bytes += rest;
  loader_.Seed(full);
  return Status::OK();
}

Result<index::NodePtr> Accountant::Load(const format::NodeRef& ref, uint8_t level) {
  if (++nodes_read_ > kMaxNodesPerApply) {
    return Status::OutOfRange(store_->Name() + ": more than " + std::to_string(kMaxNodesPerApply) +
                              " index nodes to account");
  }
  // A node of a segment not read yet: read that segment's whole node area
  // (one or two GETs) rather than one GET per node, so a run's GETs are at
  // most two per segment whose nodes it meets.
  if (!seeded_.count(ref.segment) && Own(ref.segment)) {
    auto read = file::ReadHeader(store_.get(), ref.segment);
    if (read.ok()) {
      HF_RETURN_IF_ERROR(Seed(*read));
    } else if (!read.status().IsNotFound()) {
      return read.status();
    }  // missing: the loader's GET reports it, naming the node
  }
  return loader_.Load(ref, level);
}

void Accountant::CountNode(const index::Node& node, int64_t sign,
                           std::map<std::string, int64_t>* out) {
  (*out)[format::SegmentKey(node.ref.segment)] += sign;
  if (node.data.level != 0) return;
  for (const format::ExtentEntry& e : node.data.extents) {
    if (Own(e.segment)) (*out)[ExtentKey(e)] += sign;
  }
}

Status Accountant::CountTree(const format::Descriptor& d, std::map<std::string, int64_t>* out) {
  if (Own(d.id)) (*out)[format::SegmentKey(d.id)] += 1;
  if (d.height == 0) return Status::OK();
  struct Item {
    format::NodeRef ref;
    uint8_t level;
  };
  std::set<std::pair<uint64_t, uint32_t>> seen;
  std::vector<Item> stack{{d.root, static_cast<uint8_t>(d.height - 1)}};
  while (!stack.empty()) {
    Item item = stack.back();
    stack.pop_back();
    if (!Own(item.ref.segment)) continue;
    if (!seen.insert({item.ref.segment, item.ref.offset}).second) {
      return Status::Corrupt(loader_.Describe(item.ref) + ": index node used twice in one tree");
    }
    HF_ASSIGN_OR_RETURN(index::NodePtr node, Load(item.ref, item.level));
    CountNode(*node, +1, out);
    if (node->data.level == 0) continue;
    for (const format::ChildEntry& c : node->data.children) {
      stack.push_back({c.ref, static_cast<uint8_t>(item.level - 1)});
    }
  }
  return Status::OK();
}

Status Accountant::Apply(const file::HeaderRead& next, const format::Descriptor& parent) {
  const format::Descriptor& c = next.header.self;
  const std::string where = store_->Name() + "/" + format::SegmentKey(c.id);
  HF_RETURN_IF_ERROR(Seed(next));
  std::map<std::string, int64_t> delta;
  struct Item {
    format::NodeRef ref;
    uint8_t level;
  };
  // 1. C's new nodes (stored in segment C), and the old nodes they point to.
  std::set<std::pair<uint64_t, uint32_t>> shared;       // old subtrees C keeps
  bool regular = c.restored_from == 0;                  // a restore is counted whole
  if (Own(c.id)) delta[format::SegmentKey(c.id)] += 1;  // the checkpoint itself
  if (Own(parent.id)) delta[format::SegmentKey(parent.id)] -= 1;
  if (regular && c.height > 0 && Own(c.root.segment)) {
    if (c.root.segment != c.id) {
      shared.insert({c.root.segment, c.root.offset});
    } else {
      std::vector<Item> stack{{c.root, static_cast<uint8_t>(c.height - 1)}};
      while (!stack.empty() && regular) {
        Item item = stack.back();
        stack.pop_back();
        HF_ASSIGN_OR_RETURN(index::NodePtr node, Load(item.ref, item.level));
        CountNode(*node, +1, &delta);
        if (node->data.level == 0) continue;
        for (const format::ChildEntry& ch : node->data.children) {
          if (ch.ref.segment == c.id) {
            stack.push_back({ch.ref, static_cast<uint8_t>(item.level - 1)});
          } else if (ch.ref.segment > c.id) {
            return Status::Corrupt(where + ": index node points into a later segment");
          } else if (Own(ch.ref.segment)) {
            // Used twice: not a tree built from the parent's; count it whole.
            if (!shared.insert({ch.ref.segment, ch.ref.offset}).second) regular = false;
          }
        }
      }
    }
  }
  // 2. P's nodes that C no longer uses: P's tree down to the shared subtrees.
  std::set<std::pair<uint64_t, uint32_t>> found;
  if (regular && parent.height > 0 && Own(parent.root.segment)) {
    std::vector<Item> stack{{parent.root, static_cast<uint8_t>(parent.height - 1)}};
    while (!stack.empty()) {
      Item item = stack.back();
      stack.pop_back();
      if (!Own(item.ref.segment)) continue;
      std::pair<uint64_t, uint32_t> k{item.ref.segment, item.ref.offset};
      if (shared.count(k)) {
        if (!found.insert(k).second) regular = false;
        continue;
      }
      HF_ASSIGN_OR_RETURN(index::NodePtr node, Load(item.ref, item.level));
      CountNode(*node, -1, &delta);
      if (node->data.level == 0) continue;
      for (const format::ChildEntry& ch : node->data.children) {
        stack.push_back({ch.ref, static_cast<uint8_t>(item.level - 1)});
      }
    }
  }
  // Every old node C keeps must be one of P's (a restore points elsewhere).
  if (!regular || found.size() != shared.size()) {
    recounts_++;
    std::map<std::string, int64_t> counts;
    HF_RETURN_IF_ERROR(CountTree(c, &counts));
    delta.clear();
    for (const auto& [key, obj] : index_) {
      if (obj->refs > 0) delta[key] -= static_cast<int64_t>(obj->refs);
    }
    for (const auto& [key, n] : counts) delta[key] += n;
  }
  // 3. Apply: new objects first, then every changed count (checked before
  // anything changes, so a failure leaves the ledger as it was).
  std::vector<format::LedgerObject> born;
  for (const auto& [key, size] : ObjectsOf(next)) {
    if (index_.count(key)) return Status::Corrupt(where + ": the ledger already holds " + key);
    format::LedgerObject o;
    o.key = key;
    o.born = c.id;
    o.size = size;
    born.push_back(std::move(o));
  }
  auto find = [&](const std::string& key) -> format::LedgerObject* {
    auto it = index_.find(key);
    if (it != index_.end()) return it->second;
    for (format::LedgerObject& o : born) {
      if (o.key == key) return &o;
    }
    return nullptr;
  };
  for (const auto& [key, d] : delta) {
    if (d == 0) continue;
    format::LedgerObject* o = find(key);
    if (!o) {
      return Status::Corrupt(where + " references " + store_->Name() + "/" + key +
                             ", which the collector's ledger does not hold (deleted?)");
    }
    if (static_cast<int64_t>(o->refs) + d < 0) {
      return Status::Corrupt(where + ": the collector's ledger counts fewer references to " + key +
                             " than the index drops (gc/ledger disagrees with the index)");
    }
  }
  // Insert the new objects, keeping the ledger sorted by key.
  for (format::LedgerObject& o : born) ledger_->objects.push_back(std::move(o));
  std::sort(
      ledger_->objects.begin(), ledger_->objects.end(),
      [](const format::LedgerObject& a, const format::LedgerObject& b) { return a.key < b.key; });
  index_.clear();
  for (format::LedgerObject& o : ledger_->objects) index_[o.key] = &o;
  for (const auto& [key, d] : delta) {
    if (d == 0) continue;
    format::LedgerObject* o = index_.at(key);
    uint64_t refs = static_cast<uint64_t>(static_cast<int64_t>(o->refs) + d);
    if (o->refs == 0 && refs > 0) {
      o->spans.emplace_back(c.id, format::kOpenSpan);
      o->unkept_since_ms = 0;
      if (o->spans.size() > format::kMaxLedgerSpans) {
        // Merge the two oldest spans: the result covers more, never less.
        o->spans[1].first = o->spans[0].first;
        o->spans.erase(o->spans.begin());
      }
    } else if (o->refs > 0 && refs == 0) {
      o->spans.back().second = c.id;
    }
    o->refs = refs;
  }
  ledger_->processed = c.id;
  ledger_->processed_crc = next.header.crc;
  return Status::OK();
}

}  // namespace hyperfile::gc
