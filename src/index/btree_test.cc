// SPDX-License-Identifier: Apache-2.0
// The B+tree against a model, and its walks on hostile (CRC-valid but
// inconsistent) trees: every walk must end quickly with Corrupt.
#include "index/btree.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <random>
#include <set>
#include <span>

#include "support/time_limit.h"

namespace hyperfile::index {
namespace {

using ::hyperfile::testing::RunsWithin;

using format::ChildEntry;
using format::ExtentEntry;
using format::NodeData;
using format::NodeRef;

constexpr uint32_t kBlock = 4096;

// Stored nodes in memory, decoded with the real decoder on every load.
class MemSource : public NodeSource {
 public:
  Result<NodePtr> Load(const NodeRef& ref, uint8_t level) override {
    loads++;
    auto it = bytes.find({ref.segment, ref.offset});
    if (it == bytes.end()) return Status::Corrupt("missing node");
    HF_ASSIGN_OR_RETURN(NodeData d, format::DecodeNode(it->second, ref, Describe(ref)));
    if (d.level != level) return Status::Corrupt(Describe(ref) + ": wrong level");
    auto n = std::make_shared<Node>();
    n->data = std::move(d);
    n->ref = ref;
    return n;
  }
  NodeRef Store(const NodeData& d, uint64_t segment) {
    std::string enc;
    // Nodes stored here all lie before a data area at 2^31.
    Status st = format::EncodeNode(d, segment, kDataArea, &enc);
    EXPECT_TRUE(st.ok()) << st.ToString();
    NodeRef ref{segment, next_offset, static_cast<uint32_t>(enc.size())};
    next_offset += static_cast<uint32_t>(enc.size());
    bytes[{segment, ref.offset}] = enc;
    return ref;
  }
  static constexpr uint64_t kDataArea = 1ull << 31;
  std::map<std::pair<uint64_t, uint32_t>, std::string> bytes;
  uint32_t next_offset = 1000;
  uint64_t loads = 0;
};

// A tree of `height` levels in which every interior entry of every node
// points at the same child: 112^(height-1) paths to one leaf.
TreeRoot SameChildEverywhere(MemSource* src, int height) {
  NodeData leaf;
  leaf.extents.push_back({0, 1, 1, 0, 7});
  NodeRef ref = src->Store(leaf, 2);
  uint64_t blocks = 1;
  for (int level = 1; level < height; level++) {
    NodeData in;
    in.level = static_cast<uint8_t>(level);
    for (uint64_t i = 0; i < format::kNodeCapacity; i++) in.children.push_back({i, ref, blocks});
    ref = src->Store(in, 2);
    blocks *= format::kNodeCapacity;
  }
  TreeRoot root;
  root.ref = ref;
  root.height = static_cast<uint8_t>(height);
  return root;
}

TEST(BTreeHostile, InteriorNodesAllPointingAtOneChildAreCorrupt) {
  for (int height : {3, 6}) {
    EXPECT_TRUE(RunsWithin(
        10,
        [&] {
          MemSource src;
          Tree tree(&src, kBlock);
          TreeRoot root = SameChildEverywhere(&src, height);
          auto nodes = tree.VisitNodes(root, [](const Node&) { return Status::OK(); });
          if (nodes.ok() || !nodes.status().IsCorrupt()) return false;
          if (nodes.status().message().find("segment 2 at offset") == std::string::npos)
            return false;
          Status st =
              tree.Visit(root, 0, ~uint64_t{0}, [](const ExtentEntry&) { return Status::OK(); });
          if (!st.IsCorrupt()) return false;
          // A write into the range of the second child descends through it.
          Change c{1, 1, false, 3, 0, 9};
          auto applied = tree.Apply(root, std::span<const Change>(&c, 1));
          return !applied.ok() && applied.status().IsCorrupt();
        }))
        << "height " << height;
  }
}

TEST(BTreeHostile, ChildEntriesOutsideTheParentsRangeAreCorrupt) {
  MemSource src;
  Tree tree(&src, kBlock);
  NodeData a, b;
  a.extents.push_back({0, 10, 1, 0, 7});
  b.extents.push_back({5, 10, 1, 0, 7});  // starts inside child a's range [0, 8)
  NodeRef ra = src.Store(a, 2), rb = src.Store(b, 2);
  NodeData in;
  in.level = 1;
  in.children.push_back({0, ra, 10});
  in.children.push_back({8, rb, 10});
  TreeRoot root;
  root.ref = src.Store(in, 2);
  root.height = 2;
  auto n = tree.VisitNodes(root, [](const Node&) { return Status::OK(); });
  ASSERT_FALSE(n.ok());
  EXPECT_TRUE(n.status().IsCorrupt()) << n.status().ToString();
  EXPECT_NE(n.status().message().find("outside the node's key range"), std::string::npos)
      << n.status().ToString();
  // Reads of the damaged child see it too.
  Status st = tree.Visit(root, 0, 4, [](const ExtentEntry&) { return Status::OK(); });
  EXPECT_TRUE(st.IsCorrupt()) << st.ToString();  // child a ends at 10, past 8
  // Wrong "blocks below" count.
  NodeData c;
  c.extents.push_back({0, 4, 1, 0, 7});
  NodeData in2;
  in2.level = 1;
  in2.children.push_back({0, src.Store(c, 2), 5});
  in2.children.push_back({100, src.Store(c, 2), 4});
  TreeRoot root2;
  root2.ref = src.Store(in2, 2);
  root2.height = 2;
  st = tree.Visit(root2, 0, 4, [](const ExtentEntry&) { return Status::OK(); });
  EXPECT_TRUE(st.IsCorrupt()) << st.ToString();
}

// A stored leaf may hold up to format::kNodeCapacity entries; the tree
// writes leaves of at most kLeafCapacity, so changing such a leaf splits it.
TEST(BTree, FullStoredLeavesAreSplitToTheLeafCapacity) {
  MemSource src;
  Tree tree(&src, kBlock);
  NodeData leaf;
  for (uint64_t i = 0; i < format::kNodeCapacity; i++) leaf.extents.push_back({i * 2, 1, 1, 0, 7});
  TreeRoot root;
  root.ref = src.Store(leaf, 2);
  root.height = 1;
  root.blocks = format::kNodeCapacity;
  std::vector<Change> one{{1, 1, false, 3, 0, 9}};
  auto next = tree.Apply(root, one);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  auto pending = tree.CollectPending(*next);
  size_t leaves = 0, extents = 0;
  for (const NodePtr& n : pending) {
    if (n->data.level != 0) continue;
    leaves++;
    extents += n->data.extents.size();
    EXPECT_LE(n->data.extents.size(), kLeafCapacity);
  }
  EXPECT_EQ(extents, format::kNodeCapacity + 1);
  EXPECT_EQ(leaves, (extents + kLeafCapacity - 1) / kLeafCapacity);
}

TEST(BTreeHostile, ExtentPastTheMaximumFileSizeForTheBlockSizeIsCorrupt) {
  MemSource src;
  Tree tree(&src, 1u << 22);  // 4 MiB blocks: at most 2^38 blocks
  NodeData leaf;
  leaf.extents.push_back({(1ull << 38) - 1, 2, 1, 0, 7});
  TreeRoot root;
  root.ref = src.Store(leaf, 2);
  root.height = 1;
  Status st = tree.Visit(root, 0, ~uint64_t{0}, [](const ExtentEntry&) { return Status::OK(); });
  EXPECT_TRUE(st.IsCorrupt()) << st.ToString();
}

// Random writes and punches with a new writer epoch per flush: after every
// flush the stored tree maps every block to the (segment, offset, epoch) the
// model says, through splits, merges and coalescing.
TEST(BTree, EpochsSurviveSplitsMergesAndReloads) {
  MemSource src;
  Tree tree(&src, kBlock);
  const uint64_t sbs = format::StoredBlockSize(kBlock);
  struct Loc {
    uint64_t segment, offset, epoch;
  };
  std::map<uint64_t, Loc> model;
  std::mt19937_64 rng(5);
  TreeRoot root;
  for (uint64_t seg = 1; seg <= 40; seg++) {
    const uint64_t epoch = 1000 + seg * 7;
    // Every third flush puts its data in the segment's data object.
    const bool in_object = seg % 3 == 0;
    std::map<uint64_t, Change> changes;
    uint64_t data_offset = 0;
    for (int k = 0; k < 30; k++) {
      uint64_t start = rng() % 5000, count = 1 + rng() % 40;
      bool clash = false;
      for (auto& [s, c] : changes) clash |= s < start + count && start < s + c.count;
      if (clash) continue;
      bool hole = rng() % 4 == 0;
      changes[start] = Change{start,
                              count,
                              hole,
                              hole ? 0 : seg,
                              hole ? 0 : (in_object ? format::kInDataObject : 0) | data_offset,
                              hole ? 0 : epoch};
      for (uint64_t b = start; b < start + count; b++) {
        if (hole)
          model.erase(b);
        else
          model[b] = {seg, 0, epoch};  // offset filled below
      }
      if (!hole) data_offset += count * sbs;
    }
    std::vector<Change> list;
    for (auto& [s, c] : changes) list.push_back(c);
    auto next = tree.Apply(root, list);
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    root = *next;
    auto pending = tree.CollectPending(root);
    std::string area;
    const uint64_t node_area = 100000;
    uint64_t data_area = node_area + Tree::PendingBytes(pending);
    ASSERT_TRUE(
        Tree::FinishLayout(&root, pending, seg, node_area, in_object ? 0 : data_area, &area).ok());
    ASSERT_EQ(area.size(), data_area - node_area);
    // Store the encoded nodes where their refs say.
    for (const NodePtr& n : pending) {
      src.bytes[{seg, n->ref.offset}] = area.substr(n->ref.offset - node_area, n->ref.length);
    }
    Tree::Unpin(pending);
    for (auto& [s, c] : changes) {
      if (c.hole) continue;
      for (uint64_t b = s; b < s + c.count; b++) {
        model[b].offset = (in_object ? 0 : data_area) + c.offset + (b - s) * sbs;
      }
    }
    // Reload from the store: a fresh root (the cache is the store itself).
    TreeRoot stored;
    stored.ref = root.ref;
    stored.height = root.height;
    std::map<uint64_t, Loc> seen;
    Status st = tree.Visit(stored, 0, ~uint64_t{0}, [&](const ExtentEntry& e) {
      for (uint64_t b = e.start; b < e.end(); b++) {
        seen[b] = {e.segment, e.offset + (b - e.start) * sbs, e.epoch};
      }
      return Status::OK();
    });
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_EQ(seen.size(), model.size()) << "flush " << seg;
    for (auto& [b, loc] : model) {
      const Loc& got = seen[b];
      ASSERT_EQ(got.segment, loc.segment) << b;
      ASSERT_EQ(got.offset, loc.offset) << b;
      ASSERT_EQ(got.epoch, loc.epoch) << b;
    }
    auto nodes = tree.VisitNodes(stored, [](const Node&) { return Status::OK(); });
    ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  }
  EXPECT_GE(root.height, 2);
}

// A walk over many leaves (a scan) hints each leaf to the source before it
// loads it, with the leaves it needs counted; a lookup inside one block
// hints nothing (its one node per level is all it reads).
class HintSource : public MemSource {
 public:
  void Prefetch(std::span<const NodeRef> refs, size_t needed, uint8_t level) override {
    ASSERT_LE(needed, refs.size());
    ASSERT_GT(needed, 0u);
    calls++;
    for (size_t i = 0; i < needed; i++) hinted_needed.insert({refs[i].segment, refs[i].offset});
    levels.push_back(level);
  }
  Result<NodePtr> Load(const NodeRef& ref, uint8_t level) override {
    if (level == 0) leaves_loaded.push_back({ref.segment, ref.offset});
    return MemSource::Load(ref, level);
  }
  uint64_t calls = 0;
  std::set<std::pair<uint64_t, uint32_t>> hinted_needed;
  std::vector<std::pair<uint64_t, uint32_t>> leaves_loaded;
  std::vector<uint8_t> levels;
};

TEST(BTree, ScansHintTheLeavesTheyLoadAndLookupsHintNothing) {
  HintSource src;
  Tree tree(&src, kBlock);
  // 20,000 one-block extents that do not merge (every other block): some
  // 300 leaves under a height-3 tree, all in segment 9.
  std::vector<Change> changes;
  for (uint64_t b = 0; b < 40000; b += 2)
    changes.push_back({b, 1, false, 9, format::kInDataObject | (b * 8192), 77});
  auto built = tree.Apply(TreeRoot{}, changes);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  TreeRoot root = *built;
  auto pending = tree.CollectPending(root);
  std::string area;
  const uint64_t node_area = 100000;
  ASSERT_TRUE(Tree::FinishLayout(&root, pending, 9, node_area, 0, &area).ok());
  for (const NodePtr& n : pending) {
    src.bytes[{9, n->ref.offset}] = area.substr(n->ref.offset - node_area, n->ref.length);
  }
  Tree::Unpin(pending);
  TreeRoot stored;
  stored.ref = root.ref;
  stored.height = root.height;
  ASSERT_GE(stored.height, 3);
  auto count = [](const ExtentEntry&) { return Status::OK(); };

  // Lookups, one block each, anywhere: no hint.
  for (uint64_t b : {0ull, 1ull, 12345ull, 39998ull}) {
    ASSERT_TRUE(tree.Visit(stored, b, b + 1, count).ok());
  }
  EXPECT_EQ(src.calls, 0u);

  // A scan of everything: every leaf it loads was hinted as needed first,
  // and the hints are of leaves (level 0) or of the interior level below.
  src.leaves_loaded.clear();
  ASSERT_TRUE(tree.Visit(stored, 0, ~uint64_t{0}, count).ok());
  EXPECT_GT(src.calls, 0u);
  EXPECT_GE(src.leaves_loaded.size(), 300u);
  for (const auto& leaf : src.leaves_loaded) {
    EXPECT_TRUE(src.hinted_needed.count(leaf)) << "leaf at " << leaf.second << " not hinted";
  }
  for (uint8_t level : src.levels) EXPECT_LT(level, stored.height - 1);

  // A range that crosses one leaf boundary is a scan too.
  src.calls = 0;
  ASSERT_TRUE(tree.Visit(stored, 0, 40000, count).ok());
  EXPECT_GT(src.calls, 0u);
}

}  // namespace
}  // namespace hyperfile::index
