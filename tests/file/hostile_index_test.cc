// SPDX-License-Identifier: Apache-2.0
// Hostile index content end to end: CRC-valid segments whose index lies,
// truncated headers, foreign keys under seg/, and copies of a prefix sharing
// a disk cache. Walks that could run away run in a forked child with an alarm.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <random>

#include "file/segment_io.h"
#include "format/format.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "support/time_limit.h"

namespace hyperfile {
namespace {

using ::hyperfile::testing::RunsWithin;

namespace fs = std::filesystem;
using format::NodeData;

CreateOptions Blocks4k() {
  CreateOptions c;
  c.block_size = 4096;
  return c;
}

std::string Pattern(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>('A' + rng() % 26);
  return s;
}

// A file with one flushed block of data (checkpoint 2 after create).
std::shared_ptr<ObjectStore> SmallFile() {
  auto store = NewMemoryStore();
  auto f = File::Create(store, Blocks4k());
  EXPECT_TRUE(f.ok());
  std::string data = Pattern(1, 4096);
  EXPECT_TRUE((*f)->PWrite(0, data.data(), data.size()).ok());
  EXPECT_TRUE((*f)->Flush().ok());
  EXPECT_TRUE((*f)->Close().ok());
  return store;
}

// Commits the next checkpoint with a node area of the nodes `build` returns
// (given the new id and the node area's offset; the last node is the root),
// an empty data area and file size `size`. Returns the old head's header.
format::SegmentHeader CommitCrafted(
    ObjectStore* store, uint64_t size,
    const std::function<std::vector<NodeData>(const format::SegmentHeader& head, uint64_t id,
                                              uint64_t node_area)>& build) {
  auto latest = file::LatestCheckpointId(store);
  EXPECT_TRUE(latest.ok());
  auto read = file::ReadHeader(store, *latest);
  EXPECT_TRUE(read.ok()) << read.status().ToString();
  const format::SegmentHeader& head = read->header;
  format::SegmentHeader h = head;
  h.self.id = head.self.id + 1;
  h.parent = head.self.id;
  h.parent_crc = head.crc;
  format::CarryHistory(head, &h);
  h.self.size = size;
  h.self.root = {h.self.id, 0, 0};
  const uint64_t header_len = format::EncodeHeader(h).size();
  std::vector<NodeData> nodes = build(head, h.self.id, header_len);
  // Node sizes do not depend on the data area offset (the end of the nodes).
  uint64_t nodes_len = 0;
  for (const NodeData& n : nodes) nodes_len += format::EncodedNodeSize(n, h.self.id, 0);
  std::string area;
  for (const NodeData& n : nodes) {
    Status st = format::EncodeNode(n, h.self.id, header_len + nodes_len, &area);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  EXPECT_EQ(area.size(), nodes_len);
  const NodeData& root = nodes.back();
  const uint32_t root_len = static_cast<uint32_t>(format::EncodedNodeSize(root, h.self.id, 0));
  h.self.root = {h.self.id, static_cast<uint32_t>(header_len + area.size() - root_len), root_len};
  h.self.height = static_cast<uint8_t>(root.level + 1);
  h.node_area_offset = header_len;
  h.node_area_length = area.size();
  h.data_area_offset = header_len + area.size();
  h.data_area_length = 0;
  std::string header = format::EncodeHeader(h);
  EXPECT_EQ(header.size(), header_len);
  PutOptions po;
  po.if_absent = true;
  EXPECT_TRUE(store->Put(format::SegmentKey(h.self.id), {header, area}, po, nullptr).ok());
  return head;
}

NodeData Leaf(std::vector<format::ExtentEntry> extents) {
  NodeData n;
  n.extents = std::move(extents);
  return n;
}

// #8: one extent of 2^32-1 blocks (file size covering it) into a segment
// whose data area holds one block.
TEST(HostileIndex, HugeExtentVerifyDeepIsBoundedAndNamesTheSegment) {
  auto store = SmallFile();
  CommitCrafted(
      store.get(), (1ull << 32) * 4096, [](const format::SegmentHeader& head, uint64_t, uint64_t) {
        return std::vector<NodeData>{
            Leaf({{0, 0xFFFFFFFFu, head.self.id, head.data_area_offset, head.writer_epoch}})};
      });
  EXPECT_TRUE(RunsWithin(20, [&] {
    auto report = Verify(store, At::Latest(), true);
    if (!report.ok() || report->problems.size() != 1) return false;
    const std::string& p = report->problems[0];
    return p.find("outside the data area") != std::string::npos &&
           p.find(format::SegmentKey(2)) != std::string::npos &&
           p.find(format::SegmentKey(3)) != std::string::npos;
  }));
}

TEST(HostileIndex, ExtentsPastTheFileSizeAreProblemsCappedAt100) {
  auto store = SmallFile();
  CommitCrafted(store.get(), 4096, [](const format::SegmentHeader& head, uint64_t, uint64_t) {
    std::vector<format::ExtentEntry> ext;
    for (uint64_t i = 0; i < format::kNodeCapacity; i++) {
      ext.push_back(
          {10 + (i << 24), 0xFFFFFFu, head.self.id, head.data_area_offset, head.writer_epoch});
    }
    return std::vector<NodeData>{Leaf(ext)};
  });
  EXPECT_TRUE(RunsWithin(20, [&] {
    auto report = Verify(store, At::Latest(), true);
    if (!report.ok() || report->problems.size() != 101) return false;
    return report->problems[0].find("past the file size") != std::string::npos &&
           report->problems[100].find("... and more problems") != std::string::npos;
  }));
  EXPECT_TRUE(RunsWithin(20, [&] {
    auto d = Diff(store, At::Checkpoint(2), At::Latest());
    return !d.ok() && d.status().IsCorrupt();
  }));
}

// #9: every interior entry points at the same child.
TEST(HostileIndex, SameChildEverywhereIsCorruptAtEveryHeight) {
  for (int height : {3, 6}) {
    auto store = SmallFile();
    CommitCrafted(store.get(), 4096,
                  [height](const format::SegmentHeader& head, uint64_t id, uint64_t node_area) {
                    std::vector<NodeData> nodes{
                        Leaf({{0, 1, head.self.id, head.data_area_offset, head.writer_epoch}})};
                    format::NodeRef ref{
                        id, static_cast<uint32_t>(node_area),
                        static_cast<uint32_t>(format::EncodedNodeSize(nodes[0], id, 0))};
                    uint64_t offset = node_area + ref.length, blocks = 1;
                    for (int level = 1; level < height; level++) {
                      NodeData in;
                      in.level = static_cast<uint8_t>(level);
                      for (uint64_t i = 0; i < format::kNodeCapacity; i++) {
                        in.children.push_back({i, ref, blocks});
                      }
                      blocks *= format::kNodeCapacity;
                      ref = {id, static_cast<uint32_t>(offset),
                             static_cast<uint32_t>(format::EncodedNodeSize(in, id, 0))};
                      offset += ref.length;
                      nodes.push_back(in);
                    }
                    return nodes;
                  });
    EXPECT_TRUE(RunsWithin(20,
                           [&] {
                             auto report = Verify(store, At::Latest(), true);
                             if (!report.ok() || report->ok()) return false;
                             auto d = Diff(store, At::Checkpoint(2), At::Latest());
                             return !d.ok() && d.status().IsCorrupt();
                           }))
        << "height " << height;
  }
}

// #12: a segment cut inside its header is Corrupt naming it, not OutOfRange.
TEST(HostileIndex, SegmentTruncatedInsideItsHeaderIsCorrupt) {
  auto store = SmallFile();
  std::string bytes;
  ASSERT_TRUE(store->Get(format::SegmentKey(2), 0, kToEnd, &bytes, nullptr).ok());
  ASSERT_TRUE(
      store->Put(format::SegmentKey(2), {std::string_view(bytes).substr(0, 100)}, {}, nullptr)
          .ok());
  auto f = File::Open(store);
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(f.status().IsCorrupt()) << f.status().ToString();
  EXPECT_NE(f.status().message().find("truncated inside its header (100 of"), std::string::npos)
      << f.status().ToString();
  EXPECT_NE(f.status().message().find(format::SegmentKey(2)), std::string::npos);
  auto report = Verify(store, At::Latest(), false);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_NE(report->problems[0].find("truncated inside its header"), std::string::npos);
  // Cut in the index: the store reports the real size, the header a larger one.
  ASSERT_TRUE(
      store->Put(format::SegmentKey(2), {std::string_view(bytes).substr(0, 300)}, {}, nullptr)
          .ok());
  f = File::Open(store);
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(f.status().IsCorrupt()) << f.status().ToString();
}

// #11: keys under seg/ that are not segment keys.
TEST(HostileIndex, ForeignKeysUnderSegAreSkipped) {
  auto store = SmallFile();
  for (const char* k : {"seg/README", "seg/.DS_Store", "seg/zzz", "seg/ffffffffffffffff",
                        "seg/fffffffffffffffe/x", "seg/bffffffffffffffe"}) {
    ASSERT_TRUE(store->Put(k, {std::string_view("x")}, {}, nullptr).ok());
  }
  auto latest = file::LatestCheckpointId(store.get());
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ(*latest, 2u);
  auto f = File::Open(store);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  std::string data = Pattern(2, 4096);
  ASSERT_TRUE((*f)->PWrite(4096, data.data(), data.size()).ok());
  auto id = (*f)->Flush();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, 3u);
  ASSERT_TRUE((*f)->Close().ok());

  // Only foreign keys: no hyperfile (NotFound), naming one of them.
  auto other = NewMemoryStore();
  for (const char* k :
       {"seg/README", "seg/zzz", "seg/ffffffffffffffff", "seg/fffffffffffffffe/x"}) {
    ASSERT_TRUE(other->Put(k, {std::string_view("x")}, {}, nullptr).ok());
  }
  auto none = file::LatestCheckpointId(other.get());
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(none.status().IsNotFound()) << none.status().ToString();
  EXPECT_NE(none.status().message().find("is not a segment key"), std::string::npos);
  auto g = File::Open(other);
  EXPECT_TRUE(!g.ok() && g.status().IsNotFound()) << g.status().ToString();
}

// #6: two copies of a prefix (same file id, same segment ids) through one
// disk cache directory each read their own bytes.
TEST(HostileIndex, CopiesOfAPrefixDoNotShareDiskCacheEntries) {
  const fs::path root = fs::path(::testing::TempDir()) / ("hf-copy-" + std::to_string(getpid()));
  fs::remove_all(root);
  const fs::path orig = root / "orig", copy = root / "copy", cache = root / "cache";
  fs::create_directories(orig);
  {
    auto store = NewLocalStore(orig.string());
    ASSERT_TRUE(store.ok());
    auto f = File::Create(*store, Blocks4k());
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    for (int i = 0; i < 2; i++) {
      std::string d = Pattern(10 + i, 8192);
      ASSERT_TRUE((*f)->PWrite(0, d.data(), d.size()).ok());
      ASSERT_TRUE((*f)->Flush().ok());
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  fs::copy(orig, copy, fs::copy_options::recursive);
  OpenOptions oo;
  oo.disk_cache_dir = cache.string();
  oo.disk_cache_bytes = 64 << 20;
  const std::string a = Pattern(100, 8192), b = Pattern(200, 8192);
  for (auto [dir, data] : {std::pair{orig, a}, std::pair{copy, b}}) {
    auto store = NewLocalStore(dir.string());
    ASSERT_TRUE(store.ok());
    auto f = File::Open(*store, oo);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_TRUE((*f)->PWrite(0, data.data(), data.size()).ok());
    auto id = (*f)->Flush();
    ASSERT_TRUE(id.ok());
    EXPECT_EQ(*id, 4u);
    ASSERT_TRUE((*f)->Close().ok());
  }
  for (int round = 0; round < 2; round++) {  // round 1 reads through the filled disk cache
    for (auto [dir, data] : {std::pair{orig, a}, std::pair{copy, b}}) {
      auto store = NewLocalStore(dir.string());
      ASSERT_TRUE(store.ok());
      OpenOptions ro = oo;
      ro.read_only = true;
      auto f = File::Open(*store, ro);
      ASSERT_TRUE(f.ok()) << f.status().ToString();
      std::string got(data.size(), '\0');
      auto n = (*f)->PRead(0, got.data(), got.size());
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      EXPECT_TRUE(got == data) << dir << " round " << round;
    }
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace hyperfile
