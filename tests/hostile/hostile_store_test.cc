// SPDX-License-Identifier: Apache-2.0
// The hostile-store suite: damaged, foreign and crafted store contents, each
// run through the commands a user would type, under a time limit and a
// memory limit. Every case must end quickly with a clear error (or, for
// foreign keys that do not belong to the format, be ignored) — never hang,
// never grow without bound, never create or delete anything. The cases about
// a file's content run on each data path (tests/support/codecs.h: HostileData):
// a crafted index of an encrypted file is sealed with its key, and its
// commands get the key in HYPERFILE_KEY.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>

#include "cli/cli_run.h"
#include "file/sealing.h"
#include "file/segment_io.h"
#include "format/format.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "support/codecs.h"
#include "util/coding.h"

namespace hyperfile {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif

// Runs the command with a hard time limit (KILL after `seconds`) and, except
// under ASan (whose shadow memory needs a huge address space), a 1.5 GiB
// address-space limit. Exit 124/137 means the limit was hit. `env`: shell
// commands run first ("export HYPERFILE_KEY=...;").
CliRun Limited(const std::string& args, int seconds = 20, const std::string& env = "") {
  std::string prefix = env + (kAsan ? "" : "ulimit -v 1500000;");
  prefix += " exec timeout -s KILL " + std::to_string(seconds);
  return testing::RunHyperfile(args, "", prefix);
}

// A clear, prompt error: exit 1 (not killed by a limit), one error line that
// contains `what`.
void ExpectCleanError(const CliRun& r, const std::string& what, const std::string& cmd) {
  EXPECT_NE(r.code, 137) << cmd << ": killed (time or memory limit)";
  EXPECT_NE(r.code, 124) << cmd << ": timed out";
  EXPECT_EQ(r.code, 1) << cmd << "\nstdout: " << r.out << "\nstderr: " << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << cmd << ": " << r.err;
}

std::set<std::string> Tree(const std::string& dir) {
  std::set<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) out.insert(e.path().string());
  return out;
}

class Hostile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(name.begin(), name.end(), '/', '-');  // a parameterised test's name
    dir_ =
        fs::temp_directory_path().string() + "/hfhostile-" + std::to_string(getpid()) + "-" + name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = dir_ + "/file";
    store_ = OpenStore(path_).value();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs a command on the file as Limited does, with its key if it has one.
  CliRun Run(const std::string& args, int seconds = 20) const {
    return Limited(args, seconds, env_);
  }

  // A healthy file: 4 KiB blocks, checkpoints 1 (create) and 2 (data).
  void MakeHealthy() {
    auto f = File::Create(store_, co_).value();
    std::string data(3 * 4096, 'd');
    ASSERT_TRUE(f->PWrite(0, data.data(), data.size()).ok());
    ASSERT_TRUE(f->Flush().ok());
    ASSERT_TRUE(f->Close().ok());
  }

  // Commits a CRC-valid segment `id` on top of the head whose index is the
  // given nodes (nodes[i] is encoded at the i-th position of the node area;
  // the root is nodes[root]; children refer to earlier nodes by index through
  // `fix`), with `data_bytes` of data area. Extents of `id` outside its data
  // object give offsets relative to its data area (the format stores them so).
  void CraftSegment(uint64_t id, std::vector<format::NodeData> nodes, size_t root, uint8_t height,
                    uint64_t size, uint64_t data_bytes = 0) {
    auto head = file::ReadHeader(store_.get(), id - 1);
    ASSERT_TRUE(head.ok()) << head.status().ToString();
    format::SegmentHeader h = head->header;
    format::CarryHistory(head->header, &h);
    h.parent = id - 1;
    h.parent_crc = head->header.crc;
    h.self.id = id;
    h.self.time_ms = head->header.self.time_ms + 1;
    h.self.size = size;
    h.self.height = height;
    h.self.root = {id, 0, 0};
    h.self.allocated_blocks = 1;
    const uint64_t header_len = format::EncodeHeader(h).size();
    // An encrypted file's nodes are sealed with its data key.
    file::Lineage lineage(store_, head->header.origins, nullptr);
    auto sealer = file::UnlockFile(&lineage, head->header, co_.encryption_key.get());
    ASSERT_TRUE(sealer.ok()) << sealer.status().ToString();
    const format::Sealer* sealing = sealer->get();
    std::vector<format::NodeRef> refs;
    uint64_t pos = header_len;
    for (const auto& n : nodes) {
      // Children refs are still indexes (segment 0): sized as refs into `id`.
      uint32_t len = static_cast<uint32_t>(format::EncodedNodeSize(n) +
                                           (sealing ? format::kSealedNodeOverhead : 0));
      refs.push_back({id, static_cast<uint32_t>(pos), len});
      pos += len;
    }
    std::string node_bytes;
    for (auto& n : nodes) {
      for (auto& c : n.children) c.ref = refs[c.ref.offset];  // index -> real ref
      for (auto& e : n.extents) {
        if (e.segment == id && !e.in_data_object()) e.offset += pos;
      }
      Status st =
          format::EncodeNode(n, id, pos, &node_bytes, sealing, header_len + node_bytes.size());
      ASSERT_TRUE(st.ok()) << st.ToString();
    }
    h.self.root = refs[root];
    h.node_area_offset = header_len;
    h.node_area_length = node_bytes.size();
    h.data_area_offset = header_len + node_bytes.size();
    h.data_area_length = data_bytes;
    std::string bytes = format::EncodeHeader(h) + node_bytes + std::string(data_bytes, 'z');
    ASSERT_EQ(format::EncodeHeader(h).size(), header_len);
    ASSERT_TRUE(store_->Put(format::SegmentKey(id), bytes).ok());
  }

  std::string dir_, path_;
  std::shared_ptr<ObjectStore> store_;
  CreateOptions co_{4096};
  std::string env_;  // for the commands: the key of an encrypted file
};

// The cases about a file's content, on each data path.
class HostileData : public Hostile, public ::testing::WithParamInterface<testing::DataPath> {
 protected:
  void SetUp() override {
    Hostile::SetUp();
    co_.compression = GetParam();
    co_.encryption_key = GetParam().key;
    if (GetParam().key) env_ = "export HYPERFILE_KEY=" + testing::DataPathKeyText() + ";";
  }
  OpenOptions Oo(OpenOptions o = {}) const {
    o.key = GetParam().key;
    return o;
  }
};
HF_INSTANTIATE_DATA_PATHS(HostileData);

// #7: a FIFO at a segment key or a snapshot key never blocks a command.
// (Not per data path: special files at keys are refused before any frame,
// node or key is read.)
TEST_F(Hostile, FifoAtSegmentOrSnapshotKeyNeverBlocks) {
  MakeHealthy();
  fs::create_directories(path_ + "/snap");
  ASSERT_EQ(::mkfifo((path_ + "/snap/pipe").c_str(), 0644), 0);
  fs::remove(path_ + "/" + format::SegmentKey(1));
  ASSERT_EQ(::mkfifo((path_ + "/" + format::SegmentKey(1)).c_str(), 0644), 0);
  // A special file is not an object: commands that need it fail with an
  // error naming it, listings do not see it; none of them waits on it.
  for (std::string cmd : {"read " + path_ + " --at pipe", "read " + path_ + " --at 1",
                          "restore " + path_ + " --to 1"}) {
    CliRun r = Limited(cmd, 15);
    EXPECT_NE(r.code, 137) << cmd << ": blocked";
    EXPECT_EQ(r.code, 1) << cmd;
    EXPECT_EQ(r.err.find("hyperfile: error:"), 0u) << cmd << ": " << r.err;
  }
  CliRun list = Limited("snapshot list " + path_, 15);
  EXPECT_EQ(list.code, 0) << list.err;
  EXPECT_EQ(list.out.find("pipe"), std::string::npos) << list.out;
  CliRun verify = Limited("verify " + path_ + " --at 1", 15);
  EXPECT_EQ(verify.code, 3) << verify.out << verify.err;  // damage found
  EXPECT_NE(verify.out.find("not a regular file"), std::string::npos) << verify.out;
}

// #8: a CRC-valid leaf extent claiming 2^32-1 blocks.
TEST_P(HostileData, HugeExtentIsBoundedInVerifyDeep) {
  MakeHealthy();
  format::NodeData leaf;
  leaf.level = 0;
  leaf.extents.push_back({0, 0xFFFFFFFFu, 3, 0});
  CraftSegment(3, {leaf}, 0, 1, uint64_t{0xFFFFFFFF} * 4096, 4100);
  // at the start of segment 3's data area, which holds one block.
  CliRun r = Run("verify " + path_ + " --deep", 30);
  EXPECT_NE(r.code, 137) << "verify --deep ran without bound";
  EXPECT_EQ(r.code, 3) << r.out << r.err;  // damage found
  EXPECT_LT(r.out.size(), 64u << 10) << "problems are capped and summarised";
  EXPECT_NE(r.out.find("DAMAGED"), std::string::npos) << r.out;
  // The crafted index itself reads (sealed right in an encrypted file).
  EXPECT_NE(r.out.find("outside the data area"), std::string::npos) << r.out;
  // diff works from the index alone: it answers, with a bounded output.
  CliRun d = Run("diff " + path_ + " 2 3", 20);
  EXPECT_NE(d.code, 137);
  EXPECT_LT(d.out.size(), 1024u);
  ExpectCleanError(Run("read " + path_ + " --length 4096", 20), "Corrupt", "read");
}

// #9: every interior slot points at the same child.
TEST_P(HostileData, InteriorNodesSharingOneChildAreCorrupt) {
  for (uint8_t height : {3, 6}) {
    SCOPED_TRACE("height " + std::to_string(height));
    fs::remove_all(path_);
    store_ = OpenStore(path_).value();
    MakeHealthy();
    std::vector<format::NodeData> nodes;
    format::NodeData leaf;
    leaf.level = 0;
    leaf.extents.push_back({0, 1, 2, 0});
    nodes.push_back(leaf);
    for (uint8_t level = 1; level < height; level++) {
      format::NodeData in;
      in.level = level;
      for (uint32_t i = 0; i < format::kNodeCapacity; i++) {
        format::ChildEntry c;
        c.first_key = i;
        c.ref.offset = level - 1;  // index of the node below (CraftSegment fixes it)
        c.blocks = 1;
        in.children.push_back(c);
      }
      nodes.push_back(in);
    }
    CraftSegment(3, nodes, nodes.size() - 1, height, 1 << 20);
    CliRun v = Run("verify " + path_, 20);
    EXPECT_NE(v.code, 137) << "verify never finished";
    EXPECT_EQ(v.code, 3) << "a shared child passed as healthy: " << v.out;
    EXPECT_NE(v.out.find("DAMAGED"), std::string::npos) << v.out;
    EXPECT_EQ(v.out.find("authentication failed"), std::string::npos) << "badly sealed: " << v.out;
    CliRun d = Run("diff " + path_ + " 2 3", 20);
    EXPECT_NE(d.code, 137) << "diff ran without bound";
    ExpectCleanError(d, "Corrupt", "diff");
  }
}

// #10: a 1 GiB object at snap/NAME is never read whole. (Not per data path:
// snapshot records are plain and alike on every path.)
TEST_F(Hostile, HugeSnapshotObjectIsNotReadWhole) {
  MakeHealthy();
  fs::create_directories(path_ + "/snap");
  { std::ofstream(path_ + "/snap/huge").put('x'); }
  fs::resize_file(path_ + "/snap/huge", 1ull << 30);  // sparse: costs no disk
  ExpectCleanError(Limited("read " + path_ + " --at huge"), "snap/huge", "read --at");
  ExpectCleanError(Limited("snapshot list " + path_), "snap/huge", "snapshot list");
  CliRun log = Limited("log " + path_);
  EXPECT_EQ(log.code, 0) << log.err;  // log lists checkpoints; the bad record does not block it
}

// #11: stray keys under seg/ never make the file unusable.
TEST_P(HostileData, StrayKeysUnderSegAreIgnored) {
  MakeHealthy();
  std::ofstream(path_ + "/seg/README") << "notes";
  std::ofstream(path_ + "/seg/.DS_Store") << "finder";
  std::ofstream(path_ + "/seg/0123") << "short";
  CliRun stat = Run("stat " + path_);
  ASSERT_EQ(stat.code, 0) << stat.err;
  EXPECT_NE(stat.out.find("checkpoint:  2"), std::string::npos) << stat.out;
  CliRun w = testing::RunHyperfile("write " + path_ + " --offset 0 -", "new", env_);
  ASSERT_EQ(w.code, 0) << w.err;
  EXPECT_NE(w.out.find("checkpoint 3"), std::string::npos) << w.out;
  EXPECT_EQ(Run("log " + path_).code, 0);
  EXPECT_EQ(Run("verify " + path_).code, 0);
}

// #11: an empty directory at the next segment key does not fence writers
// with a misleading "changed by another writer".
TEST_P(HostileData, EmptyDirectoryAtTheNextSegmentKey) {
  MakeHealthy();
  fs::create_directories(path_ + "/" + format::SegmentKey(3));
  CliRun w = testing::RunHyperfile("write " + path_ + " --offset 0 -", "new", env_);
  EXPECT_EQ(w.err.find("another writer"), std::string::npos) << w.err;
  EXPECT_EQ(w.code, 0) << w.err;
}

// #12: a segment cut inside its header is Corrupt naming the object.
TEST_P(HostileData, SegmentTruncatedInsideItsHeaderIsCorrupt) {
  MakeHealthy();
  fs::resize_file(path_ + "/" + format::SegmentKey(2), 100);
  for (std::string cmd : {"stat " + path_, "read " + path_}) {
    CliRun r = Run(cmd);
    ExpectCleanError(r, "Corrupt", cmd);
    EXPECT_NE(r.err.find(format::SegmentKey(2)), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
  }
  CliRun v = Run("verify " + path_);  // damage is a finding: exit 3, named
  EXPECT_EQ(v.code, 3) << v.out << v.err;
  EXPECT_NE(v.out.find("DAMAGED"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find(format::SegmentKey(2)), std::string::npos) << v.out;
}

// Damaged data: a flipped byte inside the stored blocks (a chunk or a
// frame), a cut object, foreign bytes and a huge (sparse) object, both for a
// segment's data area and for a data object. A read of the damaged data is a
// clear error naming the object (or, for an object that only grew, the right
// bytes), never other data; verify --deep names it; what was flushed before
// reads exactly.
TEST_P(HostileData, DamagedDataIsCorruptNamingItAndEarlierCheckpointsRead) {
  MakeHealthy();  // checkpoint 2: 12 KiB of 'd'
  std::mt19937_64 rng(3);
  std::string small(4096, '\0'), big(3 << 20, '\0');
  for (auto& c : small) c = static_cast<char>('a' + rng() % 26);
  for (auto& c : big) c = static_cast<char>(rng());  // stored > 2 MiB: a data object
  {
    auto f = File::Open(store_, Oo()).value();
    ASSERT_TRUE(f->PWrite(16384, small.data(), small.size()).ok());
    ASSERT_EQ(f->Flush().value(), 3u);
    ASSERT_TRUE(f->PWrite(1 << 20, big.data(), big.size()).ok());
    ASSERT_EQ(f->Flush().value(), 4u);
    ASSERT_TRUE(f->Close().ok());
  }
  std::vector<ObjectInfo> objects;
  ASSERT_TRUE(store_->List(format::kDataObjectPrefix, "", 0, &objects).ok());
  ASSERT_EQ(objects.size(), 1u) << "the large flush made no data object";
  auto seg3 = file::ReadHeader(store_.get(), 3);
  ASSERT_TRUE(seg3.ok()) << seg3.status().ToString();
  struct Target {
    std::string key;
    uint64_t data_begin, data_end;  // the stored blocks in the object
    std::string read;               // the read of the damaged data
    uint64_t earlier;               // a checkpoint flushed before, and its content
    std::string earlier_content;
  };
  const std::string healthy(3 * 4096, 'd');
  const std::string at3 = healthy + std::string(4096, '\0') + small;
  const Target targets[] = {
      {format::SegmentKey(3), seg3->header.data_area_offset,
       seg3->header.data_area_offset + seg3->header.data_area_length,
       "read " + path_ + " --offset 16384 --length 4096", 2, healthy},
      {objects[0].key, 0, objects[0].size,
       // 64 KiB around the middle of the data, where the byte is flipped.
       "read " + path_ + " --offset " + std::to_string((1 << 20) + (3 << 19) - 32768) +
           " --length 65536",
       3, at3},
  };
  for (const Target& t : targets) {
    const std::string file = path_ + "/" + t.key;
    std::string pristine;
    ASSERT_TRUE(store_->Get(t.key, &pristine).ok());
    for (const char* kind : {"flipped byte", "cut", "foreign bytes", "huge"}) {
      SCOPED_TRACE(t.key + ": " + kind);
      std::string damaged = pristine;
      const uint64_t middle = t.data_begin + (t.data_end - t.data_begin) / 2;
      if (kind == std::string("flipped byte")) {
        damaged[middle] ^= 0x10;
      } else if (kind == std::string("cut")) {
        damaged.resize(middle);
      } else if (kind == std::string("foreign bytes")) {
        for (auto& c : damaged) c = static_cast<char>(rng());
      }
      fs::remove(file);
      { std::ofstream(file, std::ios::binary) << damaged; }
      if (kind == std::string("huge")) fs::resize_file(file, 1ull << 30);  // sparse
      CliRun r = Run(t.read);
      if (kind == std::string("huge") && r.code == 0) {
        // Only grown: the bytes the index names are still the right ones.
        EXPECT_TRUE(r.out == (t.earlier == 2 ? small : big.substr((3 << 19) - 32768, 65536)));
      } else {
        ExpectCleanError(r, "Corrupt", t.read);
        EXPECT_NE(r.err.find(t.key), std::string::npos) << r.err;
      }
      CliRun earlier = Run("read " + path_ + " --at " + std::to_string(t.earlier));
      EXPECT_EQ(earlier.code, 0) << earlier.err;
      EXPECT_TRUE(earlier.out == t.earlier_content) << "checkpoint " << t.earlier << " changed";
      CliRun v = Run("verify " + path_ + " --deep", 60);
      EXPECT_EQ(v.code, 3) << v.out << v.err;  // damage found
      EXPECT_NE(v.out.find("DAMAGED"), std::string::npos) << v.out;
      EXPECT_NE(v.out.find(t.key), std::string::npos) << v.out;
    }
    fs::remove(file);
    { std::ofstream(file, std::ios::binary) << pristine; }
  }
  CliRun v = Run("verify " + path_ + " --deep", 60);
  EXPECT_EQ(v.code, 0) << v.out << v.err;
}

// An encrypted file's key: none, a wrong one, a damaged or missing key
// record. Each is a clear error before any data is read (Auth for the key,
// Corrupt naming the record), never data, and never shows the key.
TEST_P(HostileData, MissingWrongOrDamagedKeysAreClearErrors) {
  if (!GetParam().key) GTEST_SKIP() << "not encrypted";
  MakeHealthy();
  const std::string wrong = "export HYPERFILE_KEY=" + std::string(64, '8') + ";";
  const std::string record = path_ + "/key/0000000000000001";
  std::string pristine;
  ASSERT_TRUE(store_->Get("key/0000000000000001", &pristine).ok());
  for (std::string cmd :
       {"read " + path_, "verify " + path_ + " --deep", "diff " + path_ + " 1 2"}) {
    SCOPED_TRACE(cmd);
    CliRun none = Limited(cmd);
    ExpectCleanError(none, "Auth", cmd + " (no key)");
    EXPECT_NE(none.err.find("no key was given"), std::string::npos) << none.err;
    EXPECT_TRUE(none.out.empty()) << none.out;
    CliRun bad = Limited(cmd, 20, wrong);
    ExpectCleanError(bad, "Auth", cmd + " (wrong key)");
    EXPECT_NE(bad.err.find("wrong key"), std::string::npos) << bad.err;
    EXPECT_TRUE(bad.out.empty()) << bad.out;
    for (const CliRun* r : {&none, &bad}) {
      EXPECT_EQ(r->err.find(std::string(64, '8')), std::string::npos) << r->err;
      EXPECT_EQ(r->err.find(testing::DataPathKeyText()), std::string::npos) << r->err;
    }
    std::string damaged = pristine;
    damaged[damaged.size() / 2] ^= 0x01;
    { std::ofstream(record, std::ios::binary) << damaged; }
    CliRun r = Run(cmd);
    ExpectCleanError(r, "Corrupt", cmd + " (damaged key record)");
    EXPECT_NE(r.err.find("key/0000000000000001"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    fs::remove(record);
    r = Run(cmd);
    ExpectCleanError(r, "Corrupt", cmd + " (no key record)");
    EXPECT_TRUE(r.out.empty()) << r.out;
    { std::ofstream(record, std::ios::binary) << pristine; }
  }
  CliRun r = Run("read " + path_);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::string(3 * 4096, 'd'));
}

// #13: a crafted clone origin makes a reader create or delete nothing there.
TEST_P(HostileData, CloneOriginNeverMakesAReaderCreateOrDelete) {
  MakeHealthy();
  const std::string victim = dir_ + "/victim";
  fs::create_directories(victim + "/.hftmp");
  std::ofstream(victim + "/.hftmp/old-temp") << "someone's file";
  fs::last_write_time(victim + "/.hftmp/old-temp",
                      fs::file_time_type::clock::now() - std::chrono::hours(48));
  const std::string elsewhere = dir_ + "/does/not/exist";
  for (const std::string& origin : {victim, elsewhere}) {
    auto head = file::ReadHeader(store_.get(), 2);
    ASSERT_TRUE(head.ok());
    format::SegmentHeader h = head->header;
    format::CarryHistory(head->header, &h);
    h.parent = 2;
    h.parent_crc = head->header.crc;
    h.self.id = 3;
    h.self.time_ms++;
    h.origins = {{2, "file://" + origin}};
    const uint64_t len = format::EncodeHeader(h).size();
    h.node_area_offset = h.data_area_offset = len;
    h.node_area_length = h.data_area_length = 0;
    std::string bytes = format::EncodeHeader(h);
    fs::remove(path_ + "/" + format::SegmentKey(3));
    ASSERT_TRUE(store_->Put(format::SegmentKey(3), bytes).ok());
    auto before = Tree(dir_ + "/victim");
    CliRun r = Run("read " + path_ + " --length 4096 --at 3");
    EXPECT_NE(r.code, 137);
    (void)Run("verify " + path_ + " --deep --at 3");
    EXPECT_EQ(Tree(dir_ + "/victim"), before) << "a reader changed the origin directory";
    EXPECT_FALSE(fs::exists(elsewhere)) << "a reader created the origin directory";
    EXPECT_TRUE(fs::exists(victim + "/.hftmp/old-temp"));
  }
}

// #17: a name that create accepts is usable; one that --at would read as a
// time is refused at create. (Not per data path: about names only.)
TEST_F(Hostile, SnapshotNamesAreOneRule) {
  MakeHealthy();
  ExpectCleanError(Limited("snapshot create " + path_ + " 2026-11-25T10-00-00"),
                   "bad snapshot name", "snapshot create");
  ASSERT_EQ(Limited("snapshot create " + path_ + " before-2026-11-25T10-00-00").code, 0);
  CliRun r = Limited("read " + path_ + " --length 3 --at before-2026-11-25T10-00-00");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "ddd");
}

// #18: read-only commands on a mistyped path create nothing and fail.
// (This and the rest: no file content involved, so not per data path.)
TEST_F(Hostile, ReadOnlyCommandsOnAMissingFileCreateNothing) {
  const std::string missing = dir_ + "/typo/file";
  for (std::string cmd :
       {"read " + missing, "stat " + missing, "log " + missing, "verify " + missing,
        "snapshot list " + missing, "diff " + missing + " 1 2", "read " + missing + " --at 1"}) {
    CliRun r = Limited(cmd);
    ExpectCleanError(r, "NotFound", cmd);
    EXPECT_FALSE(fs::exists(dir_ + "/typo")) << cmd << " created the directory";
  }
}

// #1: rm of a directory of ordinary files deletes nothing.
TEST_F(Hostile, RmOfOrdinaryFilesOrAParentDeletesNothing) {
  MakeHealthy();
  std::ofstream(dir_ + "/notes.txt") << "mine";
  auto before = Tree(dir_);
  ExpectCleanError(Limited("rm " + dir_ + " --yes"), "NotFound", "rm parent");
  EXPECT_EQ(Tree(dir_), before);
  std::ofstream(path_ + "/notes.txt") << "mine too";
  before = Tree(dir_);
  ExpectCleanError(Limited("rm " + path_ + " --yes"), "not part of a hyperfile", "rm");
  EXPECT_EQ(Tree(dir_), before);
}

// #4: the filesystem root is never a hyperfile.
TEST_F(Hostile, TheFilesystemRootIsRefused) {
  for (std::string cmd :
       {"create file:///", "create /", "rm file:/// --yes", "stat /", "create /tmp/../"}) {
    CliRun r = Limited(cmd);
    EXPECT_EQ(r.code, 1) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("root"), std::string::npos) << cmd << ": " << r.err;
  }
  EXPECT_FALSE(fs::exists("/seg"));
}

}  // namespace
}  // namespace hyperfile
