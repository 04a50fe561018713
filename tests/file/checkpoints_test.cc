// SPDX-License-Identifier: Apache-2.0
// Checkpoint tools: list, snapshots, restore (PITR), clone, diff, verify, rm.
#include "hyperfile/checkpoints.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "hyperfile/file.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

std::string ReadAll(File* f) {
  std::string out(f->Size(), '\0');
  auto n = f->PRead(0, out.data(), out.size());
  return n.ok() ? out : "ERROR " + n.status().ToString();
}

class Checkpoints : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "memory") {
      store_ = NewMemoryStore("ckpt-a");
      other_ = NewMemoryStore("ckpt-b");
      // Clones find their origin by URI: let the resolver hand out our store.
      options_.store_resolver =
          [this](const std::string& uri) -> Result<std::shared_ptr<ObjectStore>> {
        if (uri == store_->Name()) return store_;
        return Status::NotFound(uri);
      };
    } else {
      dir_ =
          std::filesystem::temp_directory_path().string() + "/hfckpt-" + std::to_string(getpid());
      store_ = OpenStore(dir_ + "/a").value();
      other_ = OpenStore(dir_ + "/b").value();
    }
    CreateOptions co;
    co.block_size = 4096;
    auto f = File::Create(store_, co).value();
    for (int i = 0; i < 4; i++) {
      std::string v = "version " + std::to_string(i);
      ASSERT_TRUE(f->PWrite(static_cast<uint64_t>(i) * 10000, v.data(), v.size()).ok());
      ids_.push_back(f->Flush().value());
      contents_.push_back(ReadAll(f.get()));
    }
    ASSERT_TRUE(f->Close().ok());
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  std::shared_ptr<ObjectStore> store_, other_;
  OpenOptions options_;
  std::string dir_;
  std::vector<uint64_t> ids_;
  std::vector<std::string> contents_;
};

TEST_P(Checkpoints, ListNewestFirstWithSizesAndChanges) {
  auto list = ListCheckpoints(store_);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 5u);  // the empty first checkpoint plus four flushes
  EXPECT_EQ((*list)[0].id, ids_.back());
  EXPECT_EQ((*list)[0].size, contents_.back().size());
  EXPECT_EQ((*list)[0].bytes_changed, 4096u);
  EXPECT_EQ((*list)[4].id, 1u);
  for (size_t i = 1; i < list->size(); i++) EXPECT_LE((*list)[i].time_ms, (*list)[i - 1].time_ms);
  EXPECT_EQ(ListCheckpoints(store_, 2)->size(), 2u);
}

TEST_P(Checkpoints, SnapshotsPinAndResolve) {
  ASSERT_TRUE(CreateSnapshot(store_, "v1", At::Checkpoint(ids_[1])).ok());
  EXPECT_TRUE(CreateSnapshot(store_, "v1").IsAlreadyExists());
  EXPECT_TRUE(CreateSnapshot(store_, "123").IsInvalidArgument());
  EXPECT_TRUE(CreateSnapshot(store_, "bad/name").IsInvalidArgument());
  EXPECT_TRUE(CreateSnapshot(store_, "x", At::Checkpoint(999)).IsNotFound());
  auto snaps = ListSnapshots(store_);
  ASSERT_TRUE(snaps.ok());
  ASSERT_EQ(snaps->size(), 1u);
  EXPECT_EQ((*snaps)[0].checkpoint, ids_[1]);
  auto f = File::OpenAt(store_, At::Snapshot("v1"));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(ReadAll(f->get()), contents_[1]);
  auto list = ListCheckpoints(store_);
  bool tagged = false;
  for (const auto& c : *list)
    tagged |= c.id == ids_[1] && c.snapshots == std::vector<std::string>{"v1"};
  EXPECT_TRUE(tagged);
  ASSERT_TRUE(DeleteSnapshot(store_, "v1").ok());
  EXPECT_TRUE(DeleteSnapshot(store_, "v1").IsNotFound());
  EXPECT_TRUE(File::OpenAt(store_, At::Snapshot("v1")).status().IsNotFound());
}

TEST_P(Checkpoints, RestoreMakesAnOldStateTheHeadAndKeepsHistory) {
  auto writer = File::Open(store_).value();  // a writer open during the restore
  auto restored = Restore(store_, At::Checkpoint(ids_[0]));
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  EXPECT_EQ(*restored, ids_.back() + 1);
  auto f = File::Open(store_).value();
  EXPECT_EQ(ReadAll(f.get()), contents_[0]);
  // Writes continue on top of the restored state.
  ASSERT_TRUE(f->PWrite(0, "after", 5).ok());
  ASSERT_TRUE(f->Flush().ok());
  // History is kept: the newest pre-restore state is still there.
  EXPECT_EQ(ReadAll(File::OpenAt(store_, At::Checkpoint(ids_.back())).value().get()),
            contents_.back());
  EXPECT_EQ(ListCheckpoints(store_).value()[1].restored_from, ids_[0]);
  // The writer that was open is fenced, not silently merged.
  ASSERT_TRUE(writer->PWrite(0, "stale", 5).ok());
  EXPECT_TRUE(writer->Flush().status().IsConflict());
}

TEST_P(Checkpoints, CloneSharesDataAndTouchesTheSourceOnlyWithItsPin) {
  std::vector<ObjectInfo> before;
  ASSERT_TRUE(store_->List("", "", 0, &before).ok());
  auto id = Clone(store_, At::Checkpoint(ids_[2]), other_);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto c = File::Open(other_, options_);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(ReadAll(c->get()), contents_[2]);
  ASSERT_TRUE((*c)->PWrite(5, "CLONE", 5).ok());
  ASSERT_TRUE((*c)->Flush().ok());
  std::string expect = contents_[2];
  expect.replace(5, 5, "CLONE");
  EXPECT_EQ(ReadAll(c->get()), expect);
  ASSERT_TRUE((*c)->Close().ok());
  // The clone holds only its own small segments; the source gained only the
  // clone's pin (which keeps the shared checkpoint from being collected).
  std::vector<ObjectInfo> after, clone_objects;
  ASSERT_TRUE(store_->List("", "", 0, &after).ok());
  ASSERT_EQ(after.size(), before.size() + 1);
  size_t pins = 0;
  for (const auto& o : after) pins += o.key.starts_with("pin/");
  EXPECT_EQ(pins, 1u);
  ASSERT_TRUE(other_->List("", "", 0, &clone_objects).ok());
  uint64_t clone_bytes = 0;
  for (auto& o : clone_objects) clone_bytes += o.size;
  EXPECT_LT(clone_bytes, 3u * 4096 + 4096);
  EXPECT_EQ(ReadAll(File::Open(store_).value().get()), contents_.back());
  EXPECT_TRUE(Clone(store_, At::Latest(), other_).status().IsAlreadyExists());
  // Removing the clone drops its pin: the source is as before.
  RemoveOptions rm;
  rm.store_resolver = options_.store_resolver;
  ASSERT_TRUE(RemoveFile(other_, rm).ok());
  std::vector<ObjectInfo> after_rm;
  ASSERT_TRUE(store_->List("", "", 0, &after_rm).ok());
  EXPECT_EQ(after_rm.size(), before.size());
}

TEST_P(Checkpoints, DiffFromTheIndexAlone) {
  auto d = Diff(store_, At::Checkpoint(ids_[1]), At::Checkpoint(ids_[3]));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  // Checkpoints 3 and 4 wrote at 20000 and 30000: blocks 4 and 7, and the
  // file grew from 10009 to 30009 bytes.
  uint64_t covered = 0;
  for (const ByteRange& r : *d) covered += r.length;
  EXPECT_GE(covered, 2u * 4096);
  bool has_20000 = false, has_30000 = false;
  for (const ByteRange& r : *d) {
    has_20000 |= r.offset <= 20000 && 20000 < r.offset + r.length;
    has_30000 |= r.offset <= 30000 && 30000 < r.offset + r.length;
    EXPECT_FALSE(r.offset <= 5 && 5 < r.offset + r.length);  // block 0 unchanged
  }
  EXPECT_TRUE(has_20000 && has_30000);
  EXPECT_TRUE(Diff(store_, At::Latest(), At::Latest())->empty());
}

TEST_P(Checkpoints, VerifyAndRemove) {
  auto v = Verify(store_, At::Latest(), true);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->ok());
  EXPECT_EQ(v->blocks_checked, 4u);
  ASSERT_TRUE(RemoveFile(store_).ok());
  EXPECT_TRUE(File::Open(store_).status().IsNotFound());
  EXPECT_TRUE(RemoveFile(store_).IsNotFound());
}

TEST(AtParse, UserSpellings) {
  EXPECT_EQ(At::Parse("latest")->kind, At::Kind::kLatest);
  EXPECT_EQ(At::Parse("42")->checkpoint, 42u);
  EXPECT_EQ(At::Parse("@1764064800")->time_ms, 1764064800000);
  EXPECT_EQ(At::Parse("2025-11-25T10:00:00Z")->time_ms, 1764064800000);
  EXPECT_EQ(At::Parse("2025-11-25 10:00:00.250")->time_ms, 1764064800250);
  EXPECT_EQ(At::Parse("nightly-1")->snapshot, "nightly-1");
  EXPECT_FALSE(At::Parse("").ok());
  EXPECT_FALSE(At::Parse("bad name").ok());
  EXPECT_EQ(At::Time(1764064800250).ToString(), "2025-11-25T10:00:00.250Z");
}

INSTANTIATE_TEST_SUITE_P(Backends, Checkpoints, ::testing::Values("memory", "local"));

}  // namespace
}  // namespace hyperfile
