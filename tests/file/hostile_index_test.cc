// SPDX-License-Identifier: Apache-2.0
// Hostile index content end to end: CRC-valid segments whose index lies,
// truncated headers, foreign keys under seg/, and copies of a prefix sharing
// a disk cache. Walks that could run away run in a forked child with an alarm.
// Every case runs on each data path (tests/support/codecs.h): the lying index
// of an encrypted file is sealed with the file's key (a writer holding the
// key wrote it), and its extents name the frames the file really stored.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <random>

#include "file/sealing.h"
#include "file/segment_io.h"
#include "format/format.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "support/codecs.h"
#include "support/time_limit.h"

namespace hyperfile {
namespace {

using ::hyperfile::testing::RunsWithin;

namespace fs = std::filesystem;
using format::NodeData;

std::string Pattern(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>('A' + rng() % 26);
  return s;
}

NodeData Leaf(std::vector<format::ExtentEntry> extents) {
  NodeData n;
  n.extents = std::move(extents);
  return n;
}

class HostileIndex : public testing::DataPathTest {
 protected:
  bool Framed() const { return GetParam().codec != Codec::kNone || GetParam().key; }

  // A file with one flushed block of data (checkpoint 2 after create).
  std::shared_ptr<ObjectStore> SmallFile() const {
    auto store = NewMemoryStore();
    auto f = File::Create(store, Co(4096), Oo());
    EXPECT_TRUE(f.ok()) << f.status().ToString();
    if (!f.ok()) return store;
    std::string data = Pattern(1, 4096);
    EXPECT_TRUE((*f)->PWrite(0, data.data(), data.size()).ok());
    EXPECT_TRUE((*f)->Flush().ok());
    EXPECT_TRUE((*f)->Close().ok());
    return store;
  }

  // The extent of SmallFile's block (its segment's data area holds it alone:
  // 4100 bytes of chunks, or one frame), moved to logical block `start`.
  static format::ExtentEntry Block0(const format::SegmentHeader& head, uint64_t start = 0) {
    format::ExtentEntry e{start, 1, head.self.id, head.data_area_offset, head.writer_epoch};
    if (head.codec != 0 || head.cipher != format::kCipherNone) {
      e.stored_length = static_cast<uint32_t>(head.data_area_length);
    }
    return e;
  }

  // The size of `n` encoded in segment `id`: sealed in an encrypted file.
  uint32_t NodeSize(const NodeData& n, uint64_t id) const {
    return static_cast<uint32_t>(format::EncodedNodeSize(n, id, 0) +
                                 (GetParam().key ? format::kSealedNodeOverhead : 0));
  }

  // Commits the next checkpoint with a node area of the nodes `build` returns
  // (given the new id and the node area's offset; the last node is the root),
  // an empty data area and file size `size`. In an encrypted file the nodes
  // are sealed with its data key unless !seal. Returns the old head's header.
  format::SegmentHeader CommitCrafted(
      const std::shared_ptr<ObjectStore>& store, uint64_t size,
      const std::function<std::vector<NodeData>(const format::SegmentHeader& head, uint64_t id,
                                                uint64_t node_area)>& build,
      bool seal = true) const {
    auto latest = file::LatestCheckpointId(store.get());
    EXPECT_TRUE(latest.ok());
    auto read = file::ReadHeader(store.get(), *latest);
    EXPECT_TRUE(read.ok()) << read.status().ToString();
    const format::SegmentHeader& head = read->header;
    file::Lineage lineage(store, head.origins, nullptr);
    auto sealer = file::UnlockFile(&lineage, head, GetParam().key.get());
    EXPECT_TRUE(sealer.ok()) << sealer.status().ToString();
    const format::Sealer* sealing = seal && sealer.ok() ? sealer->get() : nullptr;
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
    for (const NodeData& n : nodes) {
      nodes_len += sealing ? NodeSize(n, h.self.id) : format::EncodedNodeSize(n, h.self.id, 0);
    }
    std::string area;
    for (const NodeData& n : nodes) {
      Status st = format::EncodeNode(n, h.self.id, header_len + nodes_len, &area, sealing,
                                     header_len + area.size());
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
    EXPECT_EQ(area.size(), nodes_len);
    const NodeData& root = nodes.back();
    const uint32_t root_len =
        sealing ? NodeSize(root, h.self.id)
                : static_cast<uint32_t>(format::EncodedNodeSize(root, h.self.id, 0));
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

  // Reads `length` bytes at `offset` of the latest checkpoint.
  Result<std::string> ReadLatest(const std::shared_ptr<ObjectStore>& store, uint64_t offset,
                                 size_t length) const {
    OpenOptions ro;
    ro.read_only = true;
    HF_ASSIGN_OR_RETURN(std::unique_ptr<File> f, File::Open(store, Oo(ro)));
    std::string out(length, '\0');
    HF_ASSIGN_OR_RETURN(size_t n, f->PRead(offset, out.data(), out.size()));
    out.resize(n);
    return out;
  }
};
HF_INSTANTIATE_DATA_PATHS(HostileIndex);

// #8: one extent of 2^32-1 blocks (file size covering it) into a segment
// whose data area holds one block. (In chunk form: a frame is one block; an
// encrypted file's sealed leaf may still say so, see HugeFrame... below.)
TEST_P(HostileIndex, HugeExtentVerifyDeepIsBoundedAndNamesTheSegment) {
  auto store = SmallFile();
  CommitCrafted(
      store, (1ull << 32) * 4096, [](const format::SegmentHeader& head, uint64_t, uint64_t) {
        return std::vector<NodeData>{
            Leaf({{0, 0xFFFFFFFFu, head.self.id, head.data_area_offset, head.writer_epoch}})};
      });
  EXPECT_TRUE(RunsWithin(20, [&] {
    auto report = Verify(store, At::Latest(), true, Oo());
    if (!report.ok() || report->problems.size() != 1) return false;
    const std::string& p = report->problems[0];
    return p.find("outside the data area") != std::string::npos &&
           p.find(format::SegmentKey(2)) != std::string::npos &&
           p.find(format::SegmentKey(3)) != std::string::npos;
  }));
}

// The framed equivalent: one block whose frame claims the largest stored
// length a leaf may give (4 MiB + 52) in a data area that holds one frame.
TEST_P(HostileIndex, HugeFrameIsBoundedAndNamesTheSegment) {
  if (!Framed()) GTEST_SKIP() << "the chunk form has no frames";
  auto store = SmallFile();
  CommitCrafted(store, 4096, [](const format::SegmentHeader& head, uint64_t, uint64_t) {
    format::ExtentEntry e = Block0(head);
    e.stored_length = (4u << 20) + 52;
    return std::vector<NodeData>{Leaf({e})};
  });
  EXPECT_TRUE(RunsWithin(20, [&] {
    auto report = Verify(store, At::Latest(), true, Oo());
    if (!report.ok() || report->problems.size() != 1) return false;
    const std::string& p = report->problems[0];
    return p.find("outside the data area") != std::string::npos &&
           p.find(format::SegmentKey(2)) != std::string::npos &&
           p.find(format::SegmentKey(3)) != std::string::npos;
  }));
  EXPECT_TRUE(RunsWithin(20, [&] {
    auto got = ReadLatest(store, 0, 4096);
    return !got.ok() && got.status().IsCorrupt() &&
           got.status().message().find(format::SegmentKey(2)) != std::string::npos;
  }));
}

// The block's real bytes named for another block (a frame or chunk served
// for the wrong place) fail their check: Corrupt naming the object, never
// the other block's data.
TEST_P(HostileIndex, StoredBytesNamedForAnotherBlockAreCorrupt) {
  auto store = SmallFile();
  CommitCrafted(store, 6 * 4096, [](const format::SegmentHeader& head, uint64_t, uint64_t) {
    return std::vector<NodeData>{Leaf({Block0(head), Block0(head, 5)})};
  });
  auto first = ReadLatest(store, 0, 4096);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(*first == Pattern(1, 4096));
  auto moved = ReadLatest(store, 5 * 4096, 4096);
  ASSERT_FALSE(moved.ok()) << "the block's bytes were served at another place";
  EXPECT_TRUE(moved.status().IsCorrupt()) << moved.status().ToString();
  EXPECT_NE(moved.status().message().find(format::SegmentKey(2)), std::string::npos)
      << moved.status().ToString();
  auto report = Verify(store, At::Latest(), true, Oo());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_NE(report->problems[0].find(format::SegmentKey(2)), std::string::npos)
      << report->problems[0];
}

TEST_P(HostileIndex, ExtentsPastTheFileSizeAreProblemsCappedAt100) {
  auto store = SmallFile();
  const bool framed = Framed();
  CommitCrafted(store, 4096, [framed](const format::SegmentHeader& head, uint64_t, uint64_t) {
    std::vector<format::ExtentEntry> ext;
    for (uint64_t i = 0; i < format::kNodeCapacity; i++) {
      format::ExtentEntry e = Block0(head, 10 + (i << 24));
      if (!framed) e.count = 0xFFFFFFu;  // a frame is one block
      ext.push_back(e);
    }
    return std::vector<NodeData>{Leaf(ext)};
  });
  EXPECT_TRUE(RunsWithin(20, [&] {
    auto report = Verify(store, At::Latest(), true, Oo());
    if (!report.ok() || report->problems.size() != 101) return false;
    return report->problems[0].find("past the file size") != std::string::npos &&
           report->problems[100].find("... and more problems") != std::string::npos;
  }));
  EXPECT_TRUE(RunsWithin(20, [&] {
    auto d = Diff(store, At::Checkpoint(2), At::Latest(), Oo());
    return !d.ok() && d.status().IsCorrupt();
  }));
}

// #9: every interior entry points at the same child.
TEST_P(HostileIndex, SameChildEverywhereIsCorruptAtEveryHeight) {
  for (int height : {3, 6}) {
    auto store = SmallFile();
    CommitCrafted(
        store, 4096, [&](const format::SegmentHeader& head, uint64_t id, uint64_t node_area) {
          std::vector<NodeData> nodes{Leaf({Block0(head)})};
          format::NodeRef ref{id, static_cast<uint32_t>(node_area), NodeSize(nodes[0], id)};
          uint64_t offset = node_area + ref.length, blocks = 1;
          for (int level = 1; level < height; level++) {
            NodeData in;
            in.level = static_cast<uint8_t>(level);
            for (uint64_t i = 0; i < format::kNodeCapacity; i++) {
              in.children.push_back({i, ref, blocks});
            }
            blocks *= format::kNodeCapacity;
            ref = {id, static_cast<uint32_t>(offset), NodeSize(in, id)};
            offset += ref.length;
            nodes.push_back(in);
          }
          return nodes;
        });
    EXPECT_TRUE(RunsWithin(20,
                           [&] {
                             auto report = Verify(store, At::Latest(), true, Oo());
                             if (!report.ok() || report->ok()) return false;
                             auto d = Diff(store, At::Checkpoint(2), At::Latest(), Oo());
                             return !d.ok() && d.status().IsCorrupt();
                           }))
        << "height " << height;
  }
}

// An encrypted file's index nodes are sealed: a node in plain (written by
// someone without the key, however well formed) is Corrupt, never data.
TEST_P(HostileIndex, PlainNodesInAnEncryptedFileAreCorrupt) {
  if (!GetParam().key) GTEST_SKIP() << "only an encrypted file refuses plain nodes";
  auto store = SmallFile();
  CommitCrafted(
      store, 4096,
      [](const format::SegmentHeader& head, uint64_t, uint64_t) {
        return std::vector<NodeData>{Leaf({Block0(head)})};
      },
      /*seal=*/false);
  auto got = ReadLatest(store, 0, 4096);
  ASSERT_FALSE(got.ok()) << "a plain node of an encrypted file was used";
  EXPECT_TRUE(got.status().IsCorrupt()) << got.status().ToString();
  EXPECT_NE(got.status().message().find(format::SegmentKey(3)), std::string::npos)
      << got.status().ToString();
  auto report = Verify(store, At::Latest(), true, Oo());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_NE(report->problems[0].find(format::SegmentKey(3)), std::string::npos)
      << report->problems[0];
}

// #12: a segment cut inside its header is Corrupt naming it, not OutOfRange.
TEST_P(HostileIndex, SegmentTruncatedInsideItsHeaderIsCorrupt) {
  auto store = SmallFile();
  std::string bytes;
  ASSERT_TRUE(store->Get(format::SegmentKey(2), 0, kToEnd, &bytes, nullptr).ok());
  ASSERT_TRUE(
      store->Put(format::SegmentKey(2), {std::string_view(bytes).substr(0, 100)}, {}, nullptr)
          .ok());
  auto f = File::Open(store, Oo());
  ASSERT_FALSE(f.ok());
  EXPECT_TRUE(f.status().IsCorrupt()) << f.status().ToString();
  EXPECT_NE(f.status().message().find("truncated inside its header (100 of"), std::string::npos)
      << f.status().ToString();
  EXPECT_NE(f.status().message().find(format::SegmentKey(2)), std::string::npos);
  auto report = Verify(store, At::Latest(), false, Oo());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->problems.size(), 1u);
  EXPECT_NE(report->problems[0].find("truncated inside its header"), std::string::npos);
  // Cut in the index, and in the block's chunks or frame (its last byte):
  // the store reports the real size, the header a larger one.
  for (size_t cut : {size_t{300}, bytes.size() - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(bytes.size()));
    ASSERT_TRUE(
        store->Put(format::SegmentKey(2), {std::string_view(bytes).substr(0, cut)}, {}, nullptr)
            .ok());
    f = File::Open(store, Oo());
    ASSERT_FALSE(f.ok());
    EXPECT_TRUE(f.status().IsCorrupt()) << f.status().ToString();
    EXPECT_NE(f.status().message().find(format::SegmentKey(2)), std::string::npos)
        << f.status().ToString();
  }
}

// #11: keys under seg/ that are not segment keys.
TEST_P(HostileIndex, ForeignKeysUnderSegAreSkipped) {
  auto store = SmallFile();
  for (const char* k : {"seg/README", "seg/.DS_Store", "seg/zzz", "seg/ffffffffffffffff",
                        "seg/fffffffffffffffe/x", "seg/bffffffffffffffe"}) {
    ASSERT_TRUE(store->Put(k, {std::string_view("x")}, {}, nullptr).ok());
  }
  auto latest = file::LatestCheckpointId(store.get());
  ASSERT_TRUE(latest.ok()) << latest.status().ToString();
  EXPECT_EQ(*latest, 2u);
  auto f = File::Open(store, Oo());
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  std::string data = Pattern(2, 4096);
  ASSERT_TRUE((*f)->PWrite(4096, data.data(), data.size()).ok());
  auto id = (*f)->Flush();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, 3u);
  ASSERT_TRUE((*f)->Close().ok());
  auto back = ReadLatest(store, 0, 8192);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(*back == Pattern(1, 4096) + data);

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
  auto g = File::Open(other, Oo());
  EXPECT_TRUE(!g.ok() && g.status().IsNotFound()) << g.status().ToString();
}

// #6: two copies of a prefix (same file id, same segment ids) through one
// disk cache directory each read their own bytes. (An encrypted file does
// not use the disk cache: it would hold plaintext.)
TEST_P(HostileIndex, CopiesOfAPrefixDoNotShareDiskCacheEntries) {
  const fs::path root =
      fs::path(::testing::TempDir()) /
      ("hf-copy-" + std::to_string(getpid()) + "-" + testing::DataPathName({GetParam(), 0}));
  fs::remove_all(root);
  const fs::path orig = root / "orig", copy = root / "copy", cache = root / "cache";
  fs::create_directories(orig);
  {
    auto store = NewLocalStore(orig.string());
    ASSERT_TRUE(store.ok());
    auto f = File::Create(*store, Co(4096), Oo());
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    for (int i = 0; i < 2; i++) {
      std::string d = Pattern(10 + i, 8192);
      ASSERT_TRUE((*f)->PWrite(0, d.data(), d.size()).ok());
      ASSERT_TRUE((*f)->Flush().ok());
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  fs::copy(orig, copy, fs::copy_options::recursive);
  OpenOptions oo = Oo();
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
  if (GetParam().key && fs::exists(cache)) {  // no plaintext of the file on the local disk
    for (const auto& e : fs::recursive_directory_iterator(cache)) {
      EXPECT_FALSE(e.is_regular_file()) << e.path() << ": the disk cache holds an encrypted file";
    }
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace hyperfile
