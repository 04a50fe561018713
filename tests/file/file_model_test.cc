// SPDX-License-Identifier: Apache-2.0
// Randomized model-based tests of File: every operation runs against the real
// file and an in-memory reference; contents are compared byte by byte, and at
// the end every remembered checkpoint is opened by time travel and compared.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/object_store.h"
#include "support/byte_model.h"
#include "support/codecs.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

std::string ReadAll(File* f) {
  uint64_t size = f->Size();
  std::string out(size, '\0');
  auto n = f->PRead(0, out.data(), size);
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  if (n.ok()) {
    EXPECT_EQ(*n, size);
  }
  return out;
}

class FileCodec : public testing::CodecTest {};
HF_INSTANTIATE_CODECS(FileCodec);

TEST_P(FileCodec, CreateWriteReadReopen) {
  auto store = NewMemoryStore("basic");
  CreateOptions co = Co(4096);
  auto f = File::Create(store, co);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  std::string data = "hello, hyperfile";
  ASSERT_TRUE((*f)->PWrite(10000, data.data(), data.size()).ok());
  EXPECT_EQ((*f)->Size(), 10000 + data.size());
  std::string back(data.size(), 0);
  ASSERT_EQ(*(*f)->PRead(10000, back.data(), back.size()), data.size());
  EXPECT_EQ(back, data);
  auto id = (*f)->Flush();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, 2u);
  ASSERT_TRUE((*f)->Close().ok());

  auto g = File::Open(store);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->Size(), 10000 + data.size());
  std::string all = ReadAll(g->get());
  EXPECT_EQ(all.substr(10000), data);
  EXPECT_EQ(all.substr(0, 10000), std::string(10000, '\0'));
  auto st = (*g)->Stat();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->allocated_bytes, 4096u);  // one block touched, holes elsewhere
  EXPECT_TRUE(File::Create(store, co).status().IsAlreadyExists());
}

TEST(File, BadArguments) {
  auto store = NewMemoryStore("bad");
  CreateOptions co;
  co.block_size = 3000;
  EXPECT_TRUE(File::Create(store, co).status().IsInvalidArgument());
  co.block_size = 8 << 20;
  EXPECT_TRUE(File::Create(store, co).status().IsInvalidArgument());
  EXPECT_TRUE(File::Open(store).status().IsNotFound());
  co.block_size = 4096;
  auto f = File::Create(store, co);
  ASSERT_TRUE(f.ok());
  char c = 0;
  EXPECT_TRUE((*f)->PWrite(1ull << 61, &c, 1).IsOutOfRange());
  EXPECT_TRUE((*f)->Truncate(1ull << 61).IsOutOfRange());
  ASSERT_TRUE((*f)->PWrite(0, "x", 1).ok());
  ASSERT_TRUE((*f)->Flush().ok());
  auto ro = File::OpenAt(store, At::Checkpoint(1));
  ASSERT_TRUE(ro.ok());
  EXPECT_TRUE((*ro)->PWrite(0, "x", 1).IsReadOnly());
  EXPECT_TRUE(File::OpenAt(store, At::Checkpoint(99)).status().IsNotFound());
}

TEST(File, SparseHugeFile) {
  auto store = NewMemoryStore("sparse");
  CreateOptions co;
  co.block_size = 4096;
  co.initial_size = 1ull << 40;  // 1 TiB
  auto f = File::Create(store, co);
  ASSERT_TRUE(f.ok());
  for (uint64_t off : {0ull, 1ull << 30, (1ull << 40) - 4096}) {
    ASSERT_TRUE((*f)->PWrite(off, "data", 4).ok());
  }
  ASSERT_TRUE((*f)->Flush().ok());
  auto st = (*f)->Stat();
  EXPECT_EQ(st->size, 1ull << 40);
  EXPECT_EQ(st->allocated_bytes, 3u * 4096);
  auto ext = (*f)->Extents(0, 1ull << 40);
  ASSERT_TRUE(ext.ok());
  int data_extents = 0;
  for (const Extent& e : *ext) data_extents += e.data;
  EXPECT_EQ(data_extents, 3);
  EXPECT_EQ(*(*f)->SeekData(4096), 1ull << 30);
  EXPECT_EQ(*(*f)->SeekHole(0), 4096u);
  std::vector<ObjectInfo> objs;
  ASSERT_TRUE(store->List("", "", 0, &objs).ok());
  uint64_t bytes = 0;
  for (auto& o : objs) bytes += o.size;
  EXPECT_LT(bytes, 64u * 1024);  // a few blocks and nodes, not a terabyte
  // Truncate a terabyte away without reading it.
  ASSERT_TRUE((*f)->Truncate(100).ok());
  ASSERT_TRUE((*f)->Flush().ok());
  EXPECT_EQ((*f)->Stat()->allocated_bytes, 4096u);
}

using Model = testing::ByteModel;

void RunModel(uint64_t seed, int ops, uint32_t block_size, const testing::DataPath& codec,
              std::shared_ptr<ObjectStore> store = nullptr) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  if (!store) store = NewMemoryStore("model");
  CreateOptions co;
  co.block_size = block_size;
  co.compression = codec;
  co.encryption_key = codec.key;
  OpenOptions oo;
  oo.key = codec.key;
  oo.block_cache_bytes = 64 * 1024;  // small, so evictions happen
  oo.index_cache_bytes = 32 * 1024;
  auto created = File::Create(store, co, oo);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  std::unique_ptr<File> f = std::move(created).value();
  Model model;
  std::map<uint64_t, std::string> checkpoints;  // id -> content
  std::map<uint64_t, int64_t> times;
  checkpoints[1] = "";
  const uint64_t span = 24 * block_size;
  auto rnd = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
  for (int i = 0; i < ops; i++) {
    int op = static_cast<int>(rnd(100));
    if (op < 45) {
      uint64_t off = rnd(span);
      uint64_t len = 1 + rnd(rng() % 4 == 0 ? 3 * block_size : 300);
      std::string d(len, '\0');
      for (auto& c : d) c = static_cast<char>('a' + rnd(26));
      ASSERT_TRUE(f->PWrite(off, d.data(), d.size()).ok());
      model.Write(off, d);
    } else if (op < 55) {
      uint64_t size = rnd(span);
      ASSERT_TRUE(f->Truncate(size).ok());
      model.Truncate(size);
    } else if (op < 62) {
      uint64_t off = rnd(span), len = rnd(4 * block_size);
      ASSERT_TRUE(f->PunchHole(off, len).ok());
      model.Zero(off, len, false);
    } else if (op < 66) {
      uint64_t off = rnd(span), len = rnd(4 * block_size);
      ASSERT_TRUE(f->WriteZeroes(off, len).ok());
      model.Zero(off, len, true);
    } else if (op < 70) {
      std::string d(1 + rnd(500), 'z');
      auto at = f->Append(d.data(), d.size());
      ASSERT_TRUE(at.ok());
      model.Write(*at, d);
    } else if (op < 85) {
      uint64_t off = rnd(span), len = rnd(2 * block_size);
      std::string got(len, '\1');
      auto n = f->PRead(off, got.data(), len);
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      uint64_t expect =
          off >= model.bytes.size() ? 0 : std::min<uint64_t>(len, model.bytes.size() - off);
      ASSERT_EQ(*n, expect);
      if (*n > 0) {
        ASSERT_TRUE(got.substr(0, *n) == model.bytes.substr(off, *n)) << "op " << i;
      }
    } else if (op < 95) {
      auto id = f->Flush();
      ASSERT_TRUE(id.ok()) << id.status().ToString();
      checkpoints[*id] = model.bytes;
      times[*id] = f->Stat()->checkpoint_time_ms;
    } else {
      ASSERT_TRUE(f->Close().ok());
      auto reopened = File::Open(store, oo);
      ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
      f = std::move(reopened).value();
      checkpoints[f->Stat()->checkpoint] = model.bytes;
      ASSERT_TRUE(ReadAll(f.get()) == model.bytes) << "after reopen at op " << i;
    }
    ASSERT_EQ(f->Size(), model.bytes.size()) << "op " << i;
  }
  ASSERT_TRUE(ReadAll(f.get()) == model.bytes);
  ASSERT_TRUE(f->Close().ok());
  auto latest = ResolveAt(store, At::Latest());
  ASSERT_TRUE(latest.ok());
  checkpoints[*latest] = model.bytes;  // Close flushed what was left
  // Time travel: every checkpoint by id, and those with a recorded time by time.
  for (const auto& [id, content] : checkpoints) {
    auto old = File::OpenAt(store, At::Checkpoint(id), oo);
    ASSERT_TRUE(old.ok()) << "checkpoint " << id << ": " << old.status().ToString();
    ASSERT_TRUE(ReadAll(old->get()) == content) << "checkpoint " << id;
  }
  for (const auto& [id, t] : times) {
    auto resolved = ResolveAt(store, At::Time(t));
    ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
    // Several checkpoints can share a millisecond: the newest of them wins.
    auto old = File::OpenAt(store, At::Time(t), oo);
    ASSERT_TRUE(old.ok());
    ASSERT_GE(*resolved, id);
    ASSERT_TRUE(checkpoints.count(*resolved)) << "time " << t << " resolved to " << *resolved;
    ASSERT_TRUE(ReadAll(old->get()) == checkpoints[*resolved])
        << "time " << t << " of checkpoint " << id << " resolved to " << *resolved;
  }
}

// Every model run on each codec (tests/support/codecs.h).
// ... and on encrypted files (tests/support/codecs.h: DataPath).
class FileModel : public testing::DataPathTest {};
HF_INSTANTIATE_DATA_PATHS(FileModel);

TEST_P(FileModel, ManySeedsSmallBlocks) {
  int seeds = std::getenv("HYPERFILE_LONG") ? 200 : 12;
  for (int s = 1; s <= seeds; s++) RunModel(static_cast<uint64_t>(s), 1500, 4096, GetParam());
}

TEST_P(FileModel, ManySeedsLargeBlocks) {
  int seeds = std::getenv("HYPERFILE_LONG") ? 100 : 6;
  for (int s = 1; s <= seeds; s++)
    RunModel(1000 + static_cast<uint64_t>(s), 800, 65536, GetParam());
}

TEST_P(FileModel, S3Store) {
  HF_REQUIRE_S3();
  for (int s = 1; s <= 2; s++) {
    auto store = OpenStore(testing::UniqueS3Uri("model"));
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    RunModel(700 + static_cast<uint64_t>(s), 300, 4096, GetParam(), *store);
  }
}

TEST_P(FileModel, LocalDirectoryStore) {
  for (int s = 1; s <= 2; s++) {
    std::string tmpl = "/tmp/hfmodel.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    auto store = OpenStore("file://" + tmpl);
    ASSERT_TRUE(store.ok());
    RunModel(500 + static_cast<uint64_t>(s), 600, 4096, GetParam(), *store);
    std::filesystem::remove_all(tmpl);
  }
}

}  // namespace
}  // namespace hyperfile
