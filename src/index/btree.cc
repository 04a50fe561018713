// SPDX-License-Identifier: Apache-2.0
#include "index/btree.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <set>
#include <string>
#include <utility>

namespace hyperfile::index {

using format::ChildEntry;
using format::ExtentEntry;
using format::kNodeCapacity;

namespace {

constexpr uint64_t kKeyEnd = std::numeric_limits<uint64_t>::max();
// Longest extent one entry may describe (count is a u32 on disk).
constexpr uint64_t kMaxExtentBlocks = 1ull << 31;

uint64_t SaturatingEnd(uint64_t start, uint64_t count) {
  return count > kKeyEnd - start ? kKeyEnd : start + count;
}

// Entries the tree puts in a node at `level`.
size_t Capacity(uint8_t level) { return level == 0 ? kLeafCapacity : kNodeCapacity; }

// Splits n items into the fewest groups of at most `capacity`, evenly.
std::vector<size_t> GroupSizes(size_t n, size_t capacity) {
  std::vector<size_t> sizes;
  if (n == 0) return sizes;
  size_t groups = (n + capacity - 1) / capacity;
  for (size_t g = 0; g < groups; g++) sizes.push_back(n / groups + (g < n % groups ? 1 : 0));
  return sizes;
}

// The part of change c inside [lo, hi), with the data offset moved along.
bool Clip(const Change& c, uint64_t lo, uint64_t hi, uint64_t stored_block_size, Change* out) {
  uint64_t s = std::max(c.start, lo);
  uint64_t e = std::min(SaturatingEnd(c.start, c.count), hi);
  if (s >= e) return false;
  *out = c;
  out->start = s;
  out->count = e - s;
  if (!c.hole) out->offset = c.offset + (s - c.start) * stored_block_size;
  return true;
}

uint64_t BlocksOf(const format::NodeData& d) {
  uint64_t n = 0;
  if (d.level == 0) {
    for (const ExtentEntry& e : d.extents) n += e.count;
  } else {
    for (const ChildEntry& c : d.children) n += c.blocks;
  }
  return n;
}

}  // namespace

std::string NodeSource::Describe(const format::NodeRef& ref) {
  return "index node in segment " + std::to_string(ref.segment) + " at offset " +
         std::to_string(ref.offset);
}

struct Tree::Built {
  ChildEntry entry;  // entry.ref is empty while the node is pending
  NodePtr node;      // non-null if pending (or loaded)
  bool pending() const { return entry.ref.segment == 0; }
};

Status Tree::CheckNode(const Node& node, uint64_t lo, uint64_t hi) const {
  auto range = [](uint64_t a, uint64_t b) {
    return "[" + std::to_string(a) + ", " + (b == kKeyEnd ? "end" : std::to_string(b)) + ")";
  };
  auto bad = [&](size_t i, const std::string& what) {
    return Status::Corrupt(source_->Describe(node.ref) + ": entry " + std::to_string(i) + ": " +
                           what);
  };
  if (node.data.level == 0) {
    for (size_t i = 0; i < node.data.extents.size(); i++) {
      const ExtentEntry& e = node.data.extents[i];
      if (e.count == 0 || e.start < lo || e.start >= hi || e.count > hi - e.start) {
        return bad(i, "extent " + range(e.start, e.start + e.count) +
                          " outside the node's key range " + range(lo, hi));
      }
      if (e.end() > max_blocks_) {
        return bad(i, "extent " + range(e.start, e.end()) + " past the maximum file size");
      }
      if ((e.framed() && e.count != 1) || e.offset > kKeyEnd - e.count * stored_block_size_) {
        return bad(i, "extent data offset out of range");
      }
    }
  } else {
    for (size_t i = 0; i < node.data.children.size(); i++) {
      uint64_t k = node.data.children[i].first_key;
      if (k < lo || k >= hi || (i > 0 && k <= node.data.children[i - 1].first_key)) {
        return bad(i, "child key " + std::to_string(k) + " outside the node's key range " +
                          range(lo, hi) + " or unsorted");
      }
    }
  }
  return Status::OK();
}

Result<NodePtr> Tree::Child(const Node& parent, size_t i, uint64_t lo, uint64_t hi) {
  if (i < parent.pending.size() && parent.pending[i]) return parent.pending[i];
  const ChildEntry& c = parent.data.children[i];
  HF_ASSIGN_OR_RETURN(NodePtr node,
                      source_->Load(c.ref, static_cast<uint8_t>(parent.data.level - 1)));
  HF_RETURN_IF_ERROR(CheckNode(*node, lo, hi));
  if (BlocksOf(node->data) != c.blocks) {
    return Status::Corrupt(source_->Describe(parent.ref) + ": entry " + std::to_string(i) +
                           ": says " + std::to_string(c.blocks) + " blocks below, but " +
                           source_->Describe(c.ref) + " maps " +
                           std::to_string(BlocksOf(node->data)));
  }
  return node;
}

Result<NodePtr> Tree::LoadRoot(const TreeRoot& root) {
  if (root.node) return root.node;
  HF_ASSIGN_OR_RETURN(NodePtr node, source_->Load(root.ref, static_cast<uint8_t>(root.height - 1)));
  HF_RETURN_IF_ERROR(CheckNode(*node, 0, kKeyEnd));
  return node;
}

std::vector<ExtentEntry> Tree::MergeLeaf(const std::vector<ExtentEntry>& old,
                                         std::span<const Change> changes) const {
  std::vector<ExtentEntry> out;
  out.reserve(old.size() + changes.size() * 2);
  // Keep the parts of old extents no change covers.
  size_t ci = 0;
  for (const ExtentEntry& e : old) {
    uint64_t pos = e.start;
    while (ci < changes.size() && SaturatingEnd(changes[ci].start, changes[ci].count) <= pos) ci++;
    for (size_t k = ci; k < changes.size() && changes[k].start < e.end(); k++) {
      const Change& c = changes[k];
      if (c.start > pos) {
        out.push_back({pos, static_cast<uint32_t>(c.start - pos), e.segment,
                       e.offset + (pos - e.start) * stored_block_size_, e.epoch, e.stored_length});
      }
      pos = std::max(pos, SaturatingEnd(c.start, c.count));
      if (pos >= e.end()) break;
    }
    if (pos < e.end()) {
      out.push_back({pos, static_cast<uint32_t>(e.end() - pos), e.segment,
                     e.offset + (pos - e.start) * stored_block_size_, e.epoch, e.stored_length});
    }
  }
  // Add the new data extents (split to the on-disk length limit).
  for (const Change& c : changes) {
    if (c.hole) continue;
    for (uint64_t done = 0; done < c.count; done += kMaxExtentBlocks) {
      uint64_t n = std::min(kMaxExtentBlocks, c.count - done);
      out.push_back({c.start + done, static_cast<uint32_t>(n), c.segment,
                     c.offset + done * stored_block_size_, c.epoch, c.stored_length});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const ExtentEntry& a, const ExtentEntry& b) { return a.start < b.start; });
  // Coalesce runs that continue each other in the same segment.
  std::vector<ExtentEntry> merged;
  merged.reserve(out.size());
  for (const ExtentEntry& e : out) {
    if (!merged.empty()) {
      ExtentEntry& p = merged.back();
      // A framed extent is one block with its own stored length: never merged.
      if (!p.framed() && !e.framed() && p.end() == e.start && p.segment == e.segment &&
          p.epoch == e.epoch && p.offset + p.count * stored_block_size_ == e.offset &&
          uint64_t{p.count} + e.count <= kMaxExtentBlocks) {
        p.count += e.count;
        continue;
      }
    }
    merged.push_back(e);
  }
  return merged;
}

void Tree::Chunk(uint8_t level, std::vector<Built>* items, std::vector<Built>* out) {
  size_t pos = 0;
  for (size_t n : GroupSizes(items->size(), Capacity(level))) {
    auto node = std::make_shared<Node>();
    node->data.level = level;
    for (size_t k = 0; k < n; k++, pos++) {
      Built& b = (*items)[pos];
      node->data.children.push_back(b.entry);
      node->pending.push_back(b.pending() ? b.node : nullptr);
    }
    Built parent;
    parent.entry.first_key = node->data.children.front().first_key;
    parent.entry.blocks = BlocksOf(node->data);
    parent.node = std::move(node);
    out->push_back(std::move(parent));
  }
}

Status Tree::UpdateNode(const Node& node, uint64_t lo, uint64_t hi, std::span<const Change> changes,
                        std::vector<Built>* out) {
  if (node.data.level == 0) {
    std::vector<ExtentEntry> entries = MergeLeaf(node.data.extents, changes);
    size_t pos = 0;
    for (size_t n : GroupSizes(entries.size(), kLeafCapacity)) {
      auto leaf = std::make_shared<Node>();
      leaf->data.extents.assign(entries.begin() + static_cast<ptrdiff_t>(pos),
                                entries.begin() + static_cast<ptrdiff_t>(pos + n));
      pos += n;
      Built b;
      b.entry.first_key = leaf->data.extents.front().start;
      b.entry.blocks = BlocksOf(leaf->data);
      b.node = std::move(leaf);
      out->push_back(std::move(b));
    }
    return Status::OK();
  }
  const auto& children = node.data.children;
  std::vector<Built> kids;
  std::vector<Change> sub;
  size_t first_change = 0;
  for (size_t i = 0; i < children.size(); i++) {
    uint64_t clo = i == 0 ? lo : children[i].first_key;
    uint64_t chi = i + 1 < children.size() ? children[i + 1].first_key : hi;
    sub.clear();
    while (first_change < changes.size() &&
           SaturatingEnd(changes[first_change].start, changes[first_change].count) <= clo) {
      first_change++;
    }
    for (size_t k = first_change; k < changes.size() && changes[k].start < chi; k++) {
      Change c;
      if (Clip(changes[k], clo, chi, stored_block_size_, &c)) sub.push_back(c);
    }
    if (sub.empty()) {
      Built keep;
      keep.entry = children[i];
      if (i < node.pending.size() && node.pending[i]) keep.node = node.pending[i];
      kids.push_back(std::move(keep));
      continue;
    }
    if (sub.size() == 1 && sub[0].hole && sub[0].start == clo &&
        sub[0].start + sub[0].count == chi) {
      continue;  // the whole child becomes a hole: drop it without reading it
    }
    HF_ASSIGN_OR_RETURN(NodePtr child, Child(node, i, clo, chi));
    HF_RETURN_IF_ERROR(UpdateNode(*child, clo, chi, sub, &kids));
  }
  // Merge neighbouring pending nodes that fit in one, so punches and small
  // updates do not leave the tree full of tiny nodes.
  std::vector<Built> compact;
  for (Built& b : kids) {
    if (!compact.empty() && compact.back().pending() && b.pending()) {
      Node& prev = *compact.back().node;
      Node& cur = *b.node;
      size_t a = prev.data.level == 0 ? prev.data.extents.size() : prev.data.children.size();
      size_t c = cur.data.level == 0 ? cur.data.extents.size() : cur.data.children.size();
      const size_t cap = Capacity(cur.data.level);
      if (a + c <= cap && (a < cap / 2 || c < cap / 2)) {
        auto joined = std::make_shared<Node>(prev);
        if (cur.data.level == 0) {
          joined->data.extents.insert(joined->data.extents.end(), cur.data.extents.begin(),
                                      cur.data.extents.end());
        } else {
          joined->data.children.insert(joined->data.children.end(), cur.data.children.begin(),
                                       cur.data.children.end());
          joined->pending.insert(joined->pending.end(), cur.pending.begin(), cur.pending.end());
        }
        compact.back().node = joined;
        compact.back().entry.blocks += b.entry.blocks;
        continue;
      }
    }
    compact.push_back(std::move(b));
  }
  Chunk(node.data.level, &compact, out);
  return Status::OK();
}

Result<TreeRoot> Tree::Apply(const TreeRoot& base, std::span<const Change> changes) {
  if (changes.empty()) return base;
  for (const Change& c : changes) {
    if (c.hole) continue;
    if (c.count == 0 || c.start > max_blocks_ || c.count > max_blocks_ - c.start) {
      return Status::InvalidArgument("index change past the maximum file size");
    }
    if (c.segment == 0 || c.epoch == 0) {
      return Status::InvalidArgument("index change without a segment and writer epoch");
    }
    if (c.stored_length != 0 && c.count != 1) {
      return Status::InvalidArgument("framed index change of more than one block");
    }
  }
  NodePtr root = base.node;
  if (base.empty()) {
    root = std::make_shared<Node>();  // an empty leaf
  } else {
    HF_ASSIGN_OR_RETURN(root, LoadRoot(base));
  }
  std::vector<Built> items;
  HF_RETURN_IF_ERROR(UpdateNode(*root, 0, kKeyEnd, changes, &items));
  uint8_t level = root->data.level;
  while (items.size() > 1) {
    std::vector<Built> up;
    Chunk(static_cast<uint8_t>(level + 1), &items, &up);
    items = std::move(up);
    level++;
  }
  if (items.empty()) return TreeRoot{};
  NodePtr top = items[0].node;
  if (!top) {
    HF_ASSIGN_OR_RETURN(top, source_->Load(items[0].entry.ref, level));
    HF_RETURN_IF_ERROR(CheckNode(*top, 0, kKeyEnd));
  }
  // A root with a single child adds a level and nothing else.
  while (top->data.level > 0 && top->data.children.size() == 1) {
    HF_ASSIGN_OR_RETURN(top, Child(*top, 0, 0, kKeyEnd));
  }
  TreeRoot out;
  out.node = top;
  out.ref = top->ref;
  out.height = static_cast<uint8_t>(top->data.level + 1);
  out.blocks = BlocksOf(top->data);
  return out;
}

Status Tree::VisitNode(const Node& node, uint64_t lo, uint64_t hi, uint64_t first, uint64_t end,
                       const std::function<Status(const ExtentEntry&)>& fn) {
  if (node.data.level == 0) {
    for (const ExtentEntry& e : node.data.extents) {
      if (e.end() <= first) continue;
      if (e.start >= end) break;
      ExtentEntry piece = e;
      uint64_t s = std::max(e.start, first);
      uint64_t t = std::min(e.end(), end);
      piece.start = s;
      piece.count = static_cast<uint32_t>(t - s);
      piece.offset = e.offset + (s - e.start) * stored_block_size_;
      HF_RETURN_IF_ERROR(fn(piece));
    }
    return Status::OK();
  }
  const auto& children = node.data.children;
  // A walk over several children (a scan, not a lookup) tells the source
  // which stored children come next, so it can fetch those that lie back
  // to back in one segment with one request instead of one each.
  auto child_lo = [&](size_t i) { return i == 0 ? lo : children[i].first_key; };
  auto child_hi = [&](size_t i) {
    return i + 1 < children.size() ? children[i + 1].first_key : hi;
  };
  size_t i0 = children.size(), i1 = 0;  // children in range: [i0, i1)
  for (size_t i = 0; i < children.size(); i++) {
    if (child_hi(i) <= first) continue;
    if (child_lo(i) >= end) break;
    i0 = std::min(i0, i);
    i1 = i + 1;
  }
  // A lookup's range lies inside one child at every level; a scan's does
  // not (it covers several children, or goes on into the next node).
  if (i1 > i0 && (i1 > i0 + 1 || first < child_lo(i0) || end > child_hi(i0))) {
    std::vector<format::NodeRef> refs;
    size_t needed = 0;
    for (size_t i = i0; i < children.size(); i++) {
      if (children[i].blocks == 0 || (i < node.pending.size() && node.pending[i])) continue;
      refs.push_back(children[i].ref);
      if (i < i1) needed = refs.size();
    }
    if (needed > 0) source_->Prefetch(refs, needed, static_cast<uint8_t>(node.data.level - 1));
  }
  for (size_t i = i0; i < i1; i++) {
    const uint64_t clo = child_lo(i), chi = child_hi(i);
    if (children[i].blocks == 0) continue;
    HF_ASSIGN_OR_RETURN(NodePtr child, Child(node, i, clo, chi));
    HF_RETURN_IF_ERROR(VisitNode(*child, clo, chi, first, end, fn));
  }
  return Status::OK();
}

Status Tree::Visit(const TreeRoot& root, uint64_t first, uint64_t end,
                   const std::function<Status(const ExtentEntry&)>& fn) {
  if (root.empty() || first >= end) return Status::OK();
  HF_ASSIGN_OR_RETURN(NodePtr node, LoadRoot(root));
  return VisitNode(*node, 0, kKeyEnd, first, end, fn);
}

Result<uint64_t> Tree::VisitNodes(const TreeRoot& root,
                                  const std::function<Status(const Node&)>& fn) {
  if (root.empty()) return uint64_t{0};
  HF_ASSIGN_OR_RETURN(NodePtr top, LoadRoot(root));
  struct Item {
    NodePtr node;
    uint64_t lo, hi;
  };
  uint64_t visited = 0;
  // The range checks already keep a node from being reached twice; the set
  // names the damage plainly (and guards pending nodes too).
  std::set<std::pair<uint64_t, uint32_t>> seen;
  std::vector<Item> stack{{top, 0, kKeyEnd}};
  while (!stack.empty()) {
    Item item = std::move(stack.back());
    stack.pop_back();
    const Node& n = *item.node;
    if (n.ref.segment != 0 && !seen.insert({n.ref.segment, n.ref.offset}).second) {
      return Status::Corrupt(source_->Describe(n.ref) + ": index node reached twice");
    }
    visited++;
    HF_RETURN_IF_ERROR(fn(n));
    const auto& children = n.data.children;
    for (size_t i = children.size(); i-- > 0;) {
      uint64_t clo = i == 0 ? item.lo : children[i].first_key;
      uint64_t chi = i + 1 < children.size() ? children[i + 1].first_key : item.hi;
      HF_ASSIGN_OR_RETURN(NodePtr child, Child(n, i, clo, chi));
      stack.push_back({std::move(child), clo, chi});
    }
  }
  return visited;
}

std::vector<NodePtr> Tree::CollectPending(const TreeRoot& root) const {
  std::vector<NodePtr> order;
  if (!root.node || root.node->ref.segment != 0) return order;
  std::deque<NodePtr> queue{root.node};
  while (!queue.empty()) {
    NodePtr n = queue.front();
    queue.pop_front();
    order.push_back(n);
    for (const NodePtr& child : n->pending) {
      if (child) queue.push_back(child);
    }
  }
  return order;
}

uint64_t Tree::PendingBytes(const std::vector<NodePtr>& pending, const format::Sealer* sealer) {
  uint64_t total = 0;
  const uint64_t extra = sealer ? format::kSealedNodeOverhead : 0;
  for (const NodePtr& n : pending) total += format::EncodedNodeSize(n->data) + extra;
  return total;
}

Status Tree::FinishLayout(TreeRoot* root, const std::vector<NodePtr>& pending, uint64_t segment,
                          uint64_t node_area_offset, uint64_t data_area_offset, std::string* out,
                          const format::Sealer* sealer) {
  // Sizes first: they are those PendingBytes() reported (new extents still
  // relative to the data area, pending children's refs unset).
  uint64_t offset = node_area_offset;
  for (const NodePtr& n : pending) {
    uint32_t size = static_cast<uint32_t>(format::EncodedNodeSize(n->data) +
                                          (sealer ? format::kSealedNodeOverhead : 0));
    n->ref = {segment, static_cast<uint32_t>(offset), size};
    offset += size;
  }
  // The segment's data area starts right after its nodes. Callers whose
  // flush has no data in the data area (it is in the data object) pass 0.
  const uint64_t data_area = offset;
  if (data_area_offset != 0 && data_area_offset != data_area) {
    return Status::InvalidArgument("index layout of segment " + std::to_string(segment) +
                                   ": data area offset " + std::to_string(data_area_offset) +
                                   " is not the end of the nodes (" + std::to_string(data_area) +
                                   ")");
  }
  for (const NodePtr& n : pending) {
    if (n->data.level == 0) {
      for (ExtentEntry& e : n->data.extents) {
        if (e.segment == segment && !e.in_data_object()) e.offset += data_area_offset;
      }
    }
    for (size_t i = 0; i < n->pending.size(); i++) {
      if (n->pending[i]) n->data.children[i].ref = n->pending[i]->ref;
    }
  }
  const size_t start = out->size();
  for (const NodePtr& n : pending) {
    HF_RETURN_IF_ERROR(format::EncodeNode(n->data, segment, data_area, out, sealer, n->ref.offset));
    if (out->size() - start != n->ref.offset + n->ref.length - node_area_offset) {
      return Status::InvalidArgument("index layout of segment " + std::to_string(segment) +
                                     ": node size changed while encoding");
    }
  }
  if (root->node) root->ref = root->node->ref;
  return Status::OK();
}

void Tree::Unpin(const std::vector<NodePtr>& pending) {
  for (const NodePtr& n : pending) {
    for (NodePtr& child : n->pending) child.reset();
  }
}

}  // namespace hyperfile::index
