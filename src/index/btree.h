// SPDX-License-Identifier: Apache-2.0
// The copy-on-write B+tree that maps logical blocks to where their data is
// stored. Keys are block numbers; leaves hold extents (runs of consecutive
// blocks stored contiguously in one segment); interior entries carry the
// number of blocks mapped below them.
//
// The store is untrusted: every stored node reached through a parent is
// checked against the key range [lo, hi) the parent gives it (extents fully
// inside, child keys inside and ascending), its level (parent - 1) and the
// parent's block count for it; a violation is Corrupt naming the node. So a
// node can be reached at most once per walk, and the work of any walk is
// bounded by the nodes really stored.
//
// Trees are persistent values: Apply() never modifies a node that is already
// stored or shared with readers; it builds new (pending) nodes along the
// changed paths and returns a new root. Readers holding an older TreeRoot
// keep reading it safely. Stored nodes are loaded lazily through a
// NodeSource (which caches them).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "format/format.h"
#include "hyperfile/status.h"

namespace hyperfile::index {

struct Node {
  format::NodeData data;
  // Interior nodes: for each child, the in-memory node if it is pending (not
  // yet stored), else null (load by data.children[i].ref).
  std::vector<std::shared_ptr<Node>> pending;
  // Set when the node has been laid out into a segment.
  format::NodeRef ref;
};
using NodePtr = std::shared_ptr<Node>;

// Entries the tree puts in a leaf (format::kNodeCapacity, the most any node
// may hold, for interior nodes). Smaller leaves make the copy-on-write path
// of a small scattered flush cheaper (each changed block rewrites its whole
// leaf); interior nodes stay wide so the tree stays shallow.
// Measured with bench/index_bench (256 scattered blocks flushed into a tree
// of ~195k extents): node bytes per flush 156 KB at 112, 130 KB at 80,
// 121 KB at 64, 117 KB at 56, 115 KB at 48.
inline constexpr size_t kLeafCapacity = 64;
static_assert(kLeafCapacity >= 4 && kLeafCapacity <= format::kNodeCapacity);

class NodeSource {
 public:
  virtual ~NodeSource() = default;
  // Loads and validates the stored node at ref, which must be at `level`.
  virtual Result<NodePtr> Load(const format::NodeRef& ref, uint8_t level) = 0;
  // Names the stored node at ref for messages ("<object> at offset N").
  virtual std::string Describe(const format::NodeRef& ref);
  // A hint from a walk that covers several children of one node: the
  // stored nodes at `refs` (all at `level`, in key order) are about to be
  // loaded, the first `needed` of them certainly, the rest if the walk goes
  // on (a scan). A source may fetch runs of them at once; it reports
  // nothing (the Load that follows does) and may ignore the hint. Nothing
  // it caches may skip Load's checks.
  virtual void Prefetch(std::span<const format::NodeRef> refs, size_t needed, uint8_t level) {
    (void)refs;
    (void)needed;
    (void)level;
  }
};

struct TreeRoot {
  NodePtr node;         // null for an empty tree, or not yet loaded
  format::NodeRef ref;  // where the root is stored (segment 0 if pending/empty)
  uint8_t height = 0;   // 0 = empty; 1 = the root is a leaf
  uint64_t blocks = 0;  // data blocks mapped
  bool empty() const { return height == 0; }
};

// One change to apply: blocks [start, start+count) become a hole, or are
// stored contiguously in `segment` from byte `offset`; `epoch` is the writer
// epoch of that segment's header (required, nonzero, for data).
struct Change {
  uint64_t start = 0;
  uint64_t count = 0;
  bool hole = false;
  uint64_t segment = 0;
  uint64_t offset = 0;
  uint64_t epoch = 0;
  // Nonzero: the data is one frame of this many bytes (count must be 1).
  uint32_t stored_length = 0;
};

class Tree {
 public:
  Tree(NodeSource* source, uint32_t block_size)
      : source_(source),
        stored_block_size_(format::StoredBlockSize(block_size)),
        max_blocks_(format::MaxBlocks(block_size)) {}

  // Returns a new root with `changes` (sorted by start, non-overlapping)
  // applied to `base`. New nodes are pending until Layout().
  Result<TreeRoot> Apply(const TreeRoot& base, std::span<const Change> changes);

  // Calls fn for every data extent overlapping blocks [first, end), clipped
  // to that range, in ascending order.
  Status Visit(const TreeRoot& root, uint64_t first, uint64_t end,
               const std::function<Status(const format::ExtentEntry&)>& fn);

  // Every node reachable from root (stored and pending), parents first.
  // Used by verify; returns the number of nodes visited.
  Result<uint64_t> VisitNodes(const TreeRoot& root, const std::function<Status(const Node&)>& fn);

  // Lays out the pending nodes of `root` into segment `segment`: collects
  // them parents-first (so the root comes first after the header), assigns
  // refs starting at `node_area_offset`, and returns the total size in
  // *node_area_length. Call FinishLayout() once data offsets are final.
  std::vector<NodePtr> CollectPending(const TreeRoot& root) const;
  // With `sealer` (an encrypted file) every node is sealed and
  // format::kSealedNodeOverhead bytes longer.
  static uint64_t PendingBytes(const std::vector<NodePtr>& pending,
                               const format::Sealer* sealer = nullptr);
  // Assigns node refs (sizes as PendingBytes reported), adds
  // `data_area_offset` to every extent of `segment` in its data area in the
  // pending leaves (they were built with offsets relative to it), fills
  // parents' child refs, encodes the nodes into *out, and updates root->ref.
  // `data_area_offset` must be node_area_offset + PendingBytes(pending), or
  // 0 if the segment's new data is all in its data object. A failure means
  // a caller bug (the segment must not be written).
  static Status FinishLayout(TreeRoot* root, const std::vector<NodePtr>& pending, uint64_t segment,
                             uint64_t node_area_offset, uint64_t data_area_offset, std::string* out,
                             const format::Sealer* sealer = nullptr);
  // After the segment is committed: drops the in-memory links to the now
  // stored nodes so they can be evicted from caches (the root stays pinned).
  static void Unpin(const std::vector<NodePtr>& pending);

 private:
  struct Built;
  // Loads child i of parent, which covers keys [lo, hi), and checks it.
  Result<NodePtr> Child(const Node& parent, size_t i, uint64_t lo, uint64_t hi);
  Result<NodePtr> LoadRoot(const TreeRoot& root);
  Status CheckNode(const Node& node, uint64_t lo, uint64_t hi) const;
  Status UpdateNode(const Node& node, uint64_t lo, uint64_t hi, std::span<const Change> changes,
                    std::vector<Built>* out);
  std::vector<format::ExtentEntry> MergeLeaf(const std::vector<format::ExtentEntry>& old,
                                             std::span<const Change> changes) const;
  static void Chunk(uint8_t level, std::vector<Built>* items, std::vector<Built>* out);
  Status VisitNode(const Node& node, uint64_t lo, uint64_t hi, uint64_t first, uint64_t end,
                   const std::function<Status(const format::ExtentEntry&)>& fn);

  NodeSource* source_;
  uint64_t stored_block_size_;
  uint64_t max_blocks_;
};

}  // namespace hyperfile::index
