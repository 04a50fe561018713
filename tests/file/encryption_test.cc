// SPDX-License-Identifier: Apache-2.0
// Encrypted files end to end (docs/design/0011-encryption-keys.md): data
// frames and index nodes are sealed and bound to their place; a missing or
// wrong key is Auth before any node or data is read; tampering (flipped
// bits, frames swapped between offsets, checkpoints or files with the same
// key, truncation, unsealed substitutes) is Corrupt, never data; clones,
// restore, key change, verify and gc work with the key.
#include "hyperfile/encryption.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "format/format.h"
#include "format/frame.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/gc.h"
#include "hyperfile/store_layers.h"
#include "support/codecs.h"
#include "support/extents.h"
#include "support/store_testing.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace hyperfile {
namespace {

constexpr uint32_t kBlock = 4096;

std::shared_ptr<const KeySource> Key(char c) {
  return KeySource::FromKeyText(std::string(64, c)).value();
}

std::string Random(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& ch : s) ch = static_cast<char>(rng());
  return s;
}

// Clones resolve their origins here (memory stores are not found by URI).
std::map<std::string, std::shared_ptr<ObjectStore>>& Stores() {
  static std::map<std::string, std::shared_ptr<ObjectStore>> m;
  return m;
}
std::shared_ptr<ObjectStore> Mem(const std::string& name) {
  auto s = NewMemoryStore(name);
  Stores()[s->Name()] = s;
  return s;
}
Result<std::shared_ptr<ObjectStore>> Resolve(const std::string& uri) {
  auto it = Stores().find(uri);
  if (it == Stores().end()) return Status::NotFound(uri);
  return it->second;
}

OpenOptions WithKey(std::shared_ptr<const KeySource> key, bool read_only = false) {
  OpenOptions o;
  o.store_resolver = Resolve;
  o.key = std::move(key);
  o.read_only = read_only;
  return o;
}

CreateOptions Encrypted(Compression c = {Codec::kNone, 0}, char key = 'a') {
  CreateOptions co;
  co.block_size = kBlock;
  co.compression = c;
  co.encryption_key = Key(key);
  return co;
}

std::string Get(ObjectStore* s, const std::string& key) {
  std::string out;
  EXPECT_TRUE(s->Get(key, 0, 1ull << 30, &out, nullptr).ok()) << key;
  return out;
}
void Put(ObjectStore* s, const std::string& key, const std::string& bytes) {
  ASSERT_TRUE(s->Put(key, bytes).ok());
}

// Checkpoint id's framed extents, read with the key.
std::vector<format::ExtentEntry> Extents(std::shared_ptr<ObjectStore> store, uint64_t id,
                                         const KeySource& key) {
  return testing::IndexExtents(std::move(store), id, &key, Resolve);
}

// Writes `blocks` (one flush), returns the checkpoint.
uint64_t WriteFlush(File* f, uint64_t first_block, const std::vector<std::string>& blocks) {
  for (size_t i = 0; i < blocks.size(); i++) {
    EXPECT_TRUE(f->PWrite((first_block + i) * kBlock, blocks[i].data(), kBlock).ok());
  }
  return f->Flush().value();
}

Status ReadBlock(std::shared_ptr<ObjectStore> store, const At& at, uint64_t block, std::string* out,
                 std::shared_ptr<const KeySource> key) {
  auto f = File::OpenAt(store, at, WithKey(key, true));
  if (!f.ok()) return f.status();
  out->assign(kBlock, '\0');
  auto n = (*f)->PRead(block * kBlock, out->data(), kBlock);
  return n.ok() ? Status::OK() : n.status();
}

TEST(Encryption, RoundTripsAndStatShowsTheCipher) {
  for (Compression c : testing::AllCodecs()) {
    auto store = NewMemoryStore("enc");
    auto f = File::Create(store, Encrypted(c)).value();
    std::string data = Random(3 << 20, 1);  // > 2 MiB: a data object
    ASSERT_TRUE(f->PWrite(0, data.data(), data.size()).ok());
    ASSERT_TRUE(f->Flush().ok());
    std::string small = Random(5000, 2);  // inline, a partial block
    ASSERT_TRUE(f->PWrite(100, small.data(), small.size()).ok());
    Status cs = f->Close();
    ASSERT_TRUE(cs.ok()) << cs.ToString();
    data.replace(100, small.size(), small);
    auto g = File::Open(store, WithKey(Key('a'))).value();
    std::string back(data.size(), '\0');
    ASSERT_TRUE(g->PRead(0, back.data(), back.size()).ok());
    EXPECT_TRUE(back == data) << CompressionName(c);
    EXPECT_EQ(g->Stat()->cipher, format::kCipherXChaCha20Poly1305);
    EXPECT_EQ(CipherName(g->Stat()->cipher), "xchacha20-poly1305");
    ASSERT_TRUE(g->Close().ok());
    // Every segment header is version 4 with the cipher; no plaintext block
    // appears in any object.
    std::vector<ObjectInfo> all;
    ASSERT_TRUE(store->List("", "", 1000, &all).ok());
    for (const ObjectInfo& o : all) {
      std::string bytes = Get(store.get(), o.key);
      if (o.key.starts_with("seg/")) {
        EXPECT_EQ(DecodeFixed32(bytes.data() + 8), 4u) << o.key;
        EXPECT_EQ(static_cast<uint8_t>(bytes[166]), 1) << o.key;
      }
      EXPECT_EQ(bytes.find(data.substr(kBlock * 7, 64)), std::string::npos) << o.key;
      EXPECT_EQ(bytes.find(small.substr(0, 64)), std::string::npos) << o.key;
    }
    EXPECT_TRUE(Verify(store, At::Latest(), true, WithKey(Key('a'))).value().ok());
  }
}

TEST(Encryption, MissingOrWrongKeyIsAuthBeforeAnyNodeOrData) {
  auto base = NewMemoryStore("keys");
  {
    auto f = File::Create(base, Encrypted()).value();
    WriteFlush(f.get(), 0, {Random(kBlock, 3)});
    ASSERT_TRUE(f->Close().ok());
  }
  // A store that fails every read of a node area or data: opening must not
  // get there (the header prefix is fetched, nothing is decoded).
  auto metrics = std::make_shared<MetricsStore>(base);
  auto none = File::Open(metrics, OpenOptions{});
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(none.status().IsAuth()) << none.status().ToString();
  EXPECT_NE(none.status().message().find("is encrypted; no key was given"), std::string::npos);
  auto wrong = File::Open(metrics, WithKey(Key('b')));
  ASSERT_FALSE(wrong.ok());
  EXPECT_TRUE(wrong.status().IsAuth()) << wrong.status().ToString();
  EXPECT_NE(wrong.status().message().find("wrong key"), std::string::npos);
  // The key never appears in an error.
  EXPECT_EQ(wrong.status().message().find(std::string(16, 'b')), std::string::npos);
  EXPECT_TRUE(Verify(base, At::Latest(), false).status().IsAuth());
  EXPECT_TRUE(MeasureStorage(base, At::Latest()).status().IsAuth());
  EXPECT_TRUE(Collect(base, GcOptions{}).status().IsAuth());
  // Key records deleted: Corrupt, not "not encrypted".
  ASSERT_TRUE(base->Delete("key/0000000000000001").ok());
  auto gone = File::Open(base, WithKey(Key('a')));
  EXPECT_TRUE(gone.status().IsCorrupt()) << gone.status().ToString();
}

struct TamperFixture {
  std::shared_ptr<ObjectStore> store = Mem("tamper");
  uint64_t c1 = 0, c2 = 0;
  std::string a0, a1, b0;
  TamperFixture() {
    auto f = File::Create(store, Encrypted()).value();
    a0 = Random(kBlock, 10);
    a1 = Random(kBlock, 11);
    b0 = Random(kBlock, 12);
    c1 = WriteFlush(f.get(), 0, {a0, a1});  // blocks 0, 1 in one segment
    c2 = WriteFlush(f.get(), 0, {b0});      // block 0 again
    EXPECT_TRUE(f->Close().ok());
  }
  format::ExtentEntry Frame(uint64_t id, uint64_t block) {
    for (const auto& e : Extents(store, id, *Key('a'))) {
      if (e.start == block) return e;
    }
    ADD_FAILURE() << "no extent";
    return {};
  }
};

void ExpectCorruptAuth(const Status& st, const std::string& object) {
  EXPECT_TRUE(st.IsCorrupt()) << st.ToString();
  EXPECT_NE(st.message().find("authentication failed"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find(object), std::string::npos) << st.ToString();
}

// Re-computes a frame's outer CRC so only the seal can notice the change.
void FixFrameCrc(std::string* seg, uint64_t at, uint32_t len, uint64_t logical) {
  char off[8];
  EncodeFixed64(off, logical);
  uint32_t crc = crc32c::Extend(crc32c::Value(seg->data() + at, len - 4), off, 8);
  EncodeFixed32(seg->data() + at + len - 4, crc);
}

TEST(EncryptionTamper, FlippedBitIsCorrupt) {
  TamperFixture t;
  auto e = t.Frame(t.c2, 0);
  const std::string key = format::SegmentKey(t.c2);
  std::string seg = Get(t.store.get(), key);
  seg[e.object_offset() + 40] ^= 1;  // inside the ciphertext
  Put(t.store.get(), key, seg);
  std::string out;
  Status st = ReadBlock(t.store, At::Latest(), 0, &out, Key('a'));
  EXPECT_TRUE(st.IsCorrupt()) << st.ToString();  // the CRC notices first
  FixFrameCrc(&seg, e.object_offset(), e.stored_length, 0);
  Put(t.store.get(), key, seg);
  ExpectCorruptAuth(ReadBlock(t.store, At::Latest(), 0, &out, Key('a')), key);
  // Deep verify reports it as damage.
  auto report = Verify(t.store, At::Latest(), true, WithKey(Key('a'))).value();
  EXPECT_FALSE(report.ok());
}

TEST(EncryptionTamper, FramesSwappedBetweenOffsetsAreCorrupt) {
  TamperFixture t;
  auto e0 = t.Frame(t.c1, 0), e1 = t.Frame(t.c1, 1);
  ASSERT_EQ(e0.stored_length, e1.stored_length);  // random data: raw frames
  const std::string key = format::SegmentKey(t.c1);
  std::string seg = Get(t.store.get(), key);
  std::string f0 = seg.substr(e0.object_offset(), e0.stored_length);
  std::string f1 = seg.substr(e1.object_offset(), e1.stored_length);
  seg.replace(e0.object_offset(), f1.size(), f1);
  seg.replace(e1.object_offset(), f0.size(), f0);
  // Even with the CRCs made right for the new places.
  FixFrameCrc(&seg, e0.object_offset(), e0.stored_length, 0);
  FixFrameCrc(&seg, e1.object_offset(), e1.stored_length, kBlock);
  Put(t.store.get(), key, seg);
  std::string out;
  ExpectCorruptAuth(ReadBlock(t.store, At::Checkpoint(t.c1), 0, &out, Key('a')), key);
  ExpectCorruptAuth(ReadBlock(t.store, At::Checkpoint(t.c1), 1, &out, Key('a')), key);
}

TEST(EncryptionTamper, FrameReplayedFromAnotherCheckpointIsCorrupt) {
  TamperFixture t;
  auto old = t.Frame(t.c1, 0), cur = t.Frame(t.c2, 0);
  ASSERT_EQ(old.stored_length, cur.stored_length);
  const std::string key2 = format::SegmentKey(t.c2);
  std::string seg1 = Get(t.store.get(), format::SegmentKey(t.c1));
  std::string seg2 = Get(t.store.get(), key2);
  // Block 0 of checkpoint 2 replaced by block 0 of checkpoint 1: the same
  // logical offset, so its CRC still matches; the seal does not.
  seg2.replace(cur.object_offset(), cur.stored_length,
               seg1.substr(old.object_offset(), old.stored_length));
  Put(t.store.get(), key2, seg2);
  std::string out;
  ExpectCorruptAuth(ReadBlock(t.store, At::Latest(), 0, &out, Key('a')), key2);
  // The older checkpoint still reads its own data.
  ASSERT_TRUE(ReadBlock(t.store, At::Checkpoint(t.c1), 0, &out, Key('a')).ok());
  EXPECT_TRUE(out == t.a0);
}

TEST(EncryptionTamper, FrameFromAnotherFileWithTheSameKeyIsCorrupt) {
  TamperFixture t;
  // A clone shares the data key. Both write block 0 as checkpoint c2 + 1.
  auto clone = Mem("clone");
  CloneOptions co;
  co.source_key = Key('a');
  ASSERT_TRUE(Clone(t.store, At::Latest(), clone, co).ok());
  auto fo = File::Open(t.store, WithKey(Key('a'))).value();
  auto fc = File::Open(clone, WithKey(Key('a'))).value();
  const std::string x = Random(kBlock, 20), y = Random(kBlock, 21);
  WriteFlush(fo.get(), 2, {Random(kBlock, 22)});  // the clone's first id is taken there
  uint64_t id_o = WriteFlush(fo.get(), 0, {x});
  uint64_t id_c = WriteFlush(fc.get(), 0, {y});
  ASSERT_TRUE(fo->Close().ok());
  ASSERT_TRUE(fc->Close().ok());
  ASSERT_EQ(id_o, id_c);
  auto eo = t.Frame(id_o, 0);
  std::vector<format::ExtentEntry> ec_all = Extents(clone, id_c, *Key('a'));
  ASSERT_FALSE(ec_all.empty());
  auto ec = ec_all.front();
  ASSERT_EQ(ec.start, 0u);
  ASSERT_EQ(eo.stored_length, ec.stored_length);
  const std::string key = format::SegmentKey(id_o);
  std::string so = Get(t.store.get(), key);
  std::string sc = Get(clone.get(), format::SegmentKey(id_c));
  so.replace(eo.object_offset(), eo.stored_length, sc.substr(ec.object_offset(), ec.stored_length));
  Put(t.store.get(), key, so);
  std::string out;
  ExpectCorruptAuth(ReadBlock(t.store, At::Latest(), 0, &out, Key('a')), key);
  // The clone reads its own block, and the origin's borrowed one.
  ASSERT_TRUE(ReadBlock(clone, At::Latest(), 0, &out, Key('a')).ok());
  EXPECT_TRUE(out == y);
  ASSERT_TRUE(ReadBlock(clone, At::Latest(), 1, &out, Key('a')).ok());
  EXPECT_TRUE(out == t.a1);
}

TEST(EncryptionTamper, TruncatedFrameIsCorrupt) {
  TamperFixture t;
  auto e = t.Frame(t.c2, 0);
  const std::string key = format::SegmentKey(t.c2);
  std::string seg = Get(t.store.get(), key);
  seg.resize(e.object_offset() + e.stored_length - 10);
  Put(t.store.get(), key, seg);
  std::string out;
  Status st = ReadBlock(t.store, At::Checkpoint(t.c2), 0, &out, Key('a'));
  EXPECT_TRUE(st.IsCorrupt()) << st.ToString();
}

TEST(EncryptionTamper, IndexNodeChangedOrUnsealedIsCorrupt) {
  TamperFixture t;
  const std::string key = format::SegmentKey(t.c2);
  std::string seg = Get(t.store.get(), key);
  auto h = format::DecodeHeader(seg, "seg", nullptr).value();
  ASSERT_EQ(h.self.root.segment, t.c2);
  const uint64_t at = h.self.root.offset, len = h.self.root.length;
  EXPECT_EQ(static_cast<uint8_t>(seg[at + 4]), format::kSealedNodeVersion);
  std::string bad = seg;
  bad[at + format::kNodeHeaderBytes + 30] ^= 4;  // the sealed body
  EncodeFixed32(bad.data() + at + len - 4, crc32c::Value(bad.data() + at, len - 4));
  Put(t.store.get(), key, bad);
  std::string out;
  ExpectCorruptAuth(ReadBlock(t.store, At::Latest(), 0, &out, Key('a')), key);
  // A plain (unsealed) node in its place is refused too.
  bad = seg;
  bad[at + 4] = static_cast<char>(format::kFramedNodeVersion);
  EncodeFixed32(bad.data() + at + len - 4, crc32c::Value(bad.data() + at, len - 4));
  Put(t.store.get(), key, bad);
  Status st = ReadBlock(t.store, At::Latest(), 0, &out, Key('a'));
  EXPECT_TRUE(st.IsCorrupt()) << st.ToString();
  EXPECT_NE(st.message().find("not sealed"), std::string::npos) << st.ToString();
}

TEST(Encryption, KeyChangeRewrapsWithoutRewritingData) {
  auto store = NewMemoryStore("change");
  auto f = File::Create(store, Encrypted({Codec::kZstd, 1})).value();
  const std::string a = Random(kBlock, 30);
  WriteFlush(f.get(), 0, {a});
  ASSERT_TRUE(f->Close().ok());
  std::vector<ObjectInfo> before;
  ASSERT_TRUE(store->List("seg/", "", 100, &before).ok());
  auto pass = KeySource::FromPassphrase("correct horse", 1, 8192).value();
  EXPECT_TRUE(ChangeKey(store, *Key('b'), *pass).status().IsAuth());
  ASSERT_EQ(ChangeKey(store, *Key('a'), *pass).value(), 2u);
  std::vector<ObjectInfo> after;
  ASSERT_TRUE(store->List("seg/", "", 100, &after).ok());
  EXPECT_EQ(before.size(), after.size());
  std::string out;
  EXPECT_TRUE(ReadBlock(store, At::Latest(), 0, &out, Key('a')).IsAuth());
  ASSERT_TRUE(ReadBlock(store, At::Latest(), 0, &out, pass).ok());
  EXPECT_TRUE(out == a);
  auto unencrypted = NewMemoryStore("plain");
  ASSERT_TRUE(File::Create(unencrypted, CreateOptions{}).value()->Close().ok());
  EXPECT_TRUE(ChangeKey(unencrypted, *Key('a'), *pass).status().IsNotFound());
}

TEST(Encryption, CloneRestoreGcCompactAndVerifyWorkWithTheKey) {
  auto store = Mem("ops");
  auto f = File::Create(store, Encrypted({Codec::kLz4, 0})).value();
  const std::string a = Random(kBlock, 40), b = Random(kBlock, 41);
  uint64_t c1 = WriteFlush(f.get(), 0, {a});
  WriteFlush(f.get(), 0, {b});
  ASSERT_TRUE(f->Close().ok());
  // Restore the first state.
  ASSERT_TRUE(Restore(store, At::Checkpoint(c1)).ok());
  std::string out;
  ASSERT_TRUE(ReadBlock(store, At::Latest(), 0, &out, Key('a')).ok());
  EXPECT_TRUE(out == a);
  // A clone under its own key; without the source key nothing is written.
  auto clone = Mem("ops-clone");
  EXPECT_TRUE(Clone(store, At::Latest(), clone).status().IsAuth());
  std::vector<ObjectInfo> nothing;
  ASSERT_TRUE(clone->List("", "", 10, &nothing).ok());
  EXPECT_TRUE(nothing.empty());
  CloneOptions co;
  co.source_key = Key('a');
  co.key = Key('c');
  ASSERT_TRUE(Clone(store, At::Latest(), clone, co).ok());
  EXPECT_TRUE(ReadBlock(clone, At::Latest(), 0, &out, Key('a')).IsAuth());
  Status rs = ReadBlock(clone, At::Latest(), 0, &out, Key('c'));
  ASSERT_TRUE(rs.ok()) << rs.ToString();
  EXPECT_TRUE(out == a);
  // GC with the key; verify deep afterwards.
  GcOptions go;
  go.key = Key('a');
  go.grace_ms = 0;
  ASSERT_TRUE(Collect(store, go).ok());
  auto report = Verify(store, At::Latest(), true, WithKey(Key('a'))).value();
  EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems.front());
  EXPECT_GT(report.blocks_checked, 0u);
  // Compaction rewrites (re-seals) through a keyed handle.
  CompactOptions cpo;
  cpo.open_options.key = Key('a');
  cpo.max_live_ratio = 0.99;
  auto cr = Compact(store, cpo);
  ASSERT_TRUE(cr.ok()) << cr.status().ToString();
  ASSERT_TRUE(ReadBlock(store, At::Latest(), 0, &out, Key('a')).ok());
  EXPECT_TRUE(out == a);
  EXPECT_TRUE(DiskUsage(store, Key('a').get()).ok());
  EXPECT_TRUE(DiskUsage(store).status().IsAuth());
}

// After a sweep, a collection runs from the collector's ledger, which reads
// the new checkpoints' sealed index nodes: it needs the key too (Auth, and
// nothing deleted, without it), and with it frees what keep-last 1 expires
// while the head still reads and verifies deep.
TEST(Encryption, IncrementalCollectionFromTheLedgerUnlocksTheNodes) {
  auto store = Mem("ledger");
  auto f = File::Create(store, Encrypted({Codec::kZstd, 1})).value();
  std::vector<std::string> blocks;
  for (int i = 0; i < 4; i++) blocks.push_back(Random(kBlock, 60 + i));
  WriteFlush(f.get(), 0, blocks);
  GcOptions go;
  go.key = Key('a');
  go.grace_ms = 0;
  go.policy = RetentionPolicy{};
  go.policy->keep_last = 1;
  auto first = Collect(store, go);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->swept);                 // no ledger yet
  for (int round = 0; round < 3; round++) {  // the first two become garbage
    blocks[0] = Random(kBlock, 70 + round);
    WriteFlush(f.get(), 0, {blocks[0]});
  }
  std::vector<ObjectInfo> before;
  ASSERT_TRUE(store->List("", "", 1000, &before).ok());
  GcOptions keyless = go;
  keyless.key = nullptr;
  auto refused = Collect(store, keyless);
  EXPECT_TRUE(refused.status().IsAuth()) << refused.status().ToString();
  std::vector<ObjectInfo> same;
  ASSERT_TRUE(store->List("", "", 1000, &same).ok());
  EXPECT_EQ(same.size(), before.size());
  auto second = Collect(store, go);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_FALSE(second->swept);  // from the ledger
  EXPECT_GT(second->deleted_objects, 0u);
  ASSERT_TRUE(f->Close().ok());
  for (int i = 0; i < 4; i++) {
    std::string out;
    ASSERT_TRUE(ReadBlock(store, At::Latest(), i, &out, Key('a')).ok());
    EXPECT_TRUE(out == blocks[i]) << "block " << i;
  }
  auto report = Verify(store, At::Latest(), true, WithKey(Key('a'))).value();
  EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems.front());
}

}  // namespace
}  // namespace hyperfile
