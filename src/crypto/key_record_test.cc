// SPDX-License-Identifier: Apache-2.0
// Key records: the codec (layout, strict decoding of hostile bytes) and the
// store functions (create, unwrap, key change) on the memory, local and S3
// stores.
#include "crypto/key_record.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <map>

#include "hyperfile/store_layers.h"
#include "support/store_testing.h"
#include "util/coding.h"
#include "util/crc32c.h"

namespace hyperfile::crypto {
namespace {

constexpr uint64_t kFileId = 0x0123456789abcdef;

SecretKey KeyFrom(char fill) {
  auto k = SecretKey::FromBytes(std::string(32, fill), "test");
  EXPECT_TRUE(k.ok());
  return std::move(*k);
}

KekSource RawKek(char fill) { return KekSource::FromKey(KeyFrom(fill)); }

// Cheap Argon2id cost so the tests stay fast (the bounds' minimum).
KekSource Passphrase(std::string_view p) {
  auto s = KekSource::FromPassphrase(p, 1, 8192);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(*s);
}

std::string Raw(const SecretKey& k) { return {reinterpret_cast<const char*>(k.data()), 32}; }

// Recomputes the trailing CRC after a test edits a record.
std::string Reseal(std::string bytes) {
  bytes.resize(kKeyRecordBytes - 4);
  PutFixed32(&bytes, crc32c::Value(bytes.data(), bytes.size()));
  return bytes;
}

std::map<std::string, std::string> Contents(ObjectStore* store) {
  std::vector<ObjectInfo> all;
  EXPECT_TRUE(store->List("", "", 0, &all).ok());
  std::map<std::string, std::string> out;
  for (const ObjectInfo& o : all) EXPECT_TRUE(store->Get(o.key, &out[o.key]).ok());
  return out;
}

std::vector<std::string> RecordKeys(ObjectStore* store) {
  std::vector<std::string> out;
  for (const auto& [k, v] : Contents(store)) {
    if (ParseKeyRecordKey(k)) out.push_back(k);
  }
  return out;
}

// ---- names and codec ---------------------------------------------------------

TEST(KeyRecordKeys, FormatAndStrictParse) {
  EXPECT_EQ(KeyRecordKey(1), "key/0000000000000001");
  EXPECT_EQ(KeyRecordKey(0xabc), "key/0000000000000abc");
  EXPECT_EQ(ParseKeyRecordKey("key/0000000000000001"), 1u);
  EXPECT_EQ(ParseKeyRecordKey(KeyRecordKey(kMaxKeyRecordNumber)), kMaxKeyRecordNumber);
  for (std::string_view foreign :
       {"key/0000000000000000", "key/4000000000000001", "key/ffffffffffffffff",
        "key/000000000000001", "key/00000000000000001", "key/000000000000000A", "key/README",
        "key/0000000000000001/x", "keys/0000000000000001", "key/", "Key/0000000000000001"}) {
    EXPECT_FALSE(ParseKeyRecordKey(foreign).has_value()) << foreign;
  }
}

KeyRecord SampleRecord() {
  KeyRecord r;
  r.number = 3;
  r.file_id = kFileId;
  for (size_t i = 0; i < 16; i++) {
    r.data_key_id[i] = static_cast<uint8_t>(i);
    r.kek_id[i] = static_cast<uint8_t>(0x10 + i);
    r.kdf.salt[i] = static_cast<uint8_t>(0x20 + i);
  }
  r.kdf.id = KdfId::kArgon2id;
  r.kdf.ops = 3;
  r.kdf.mem_bytes = 256ull << 20;
  r.created_ms = 1700000000000;
  for (size_t i = 0; i < r.wrap_nonce.size(); i++) r.wrap_nonce[i] = static_cast<uint8_t>(0x40 + i);
  for (size_t i = 0; i < r.wrapped_key.size(); i++) {
    r.wrapped_key[i] = static_cast<uint8_t>(0x80 + i);
  }
  return r;
}

TEST(KeyRecordCodec, LayoutIsTheDocumentedOne) {
  const KeyRecord r = SampleRecord();
  const std::string b = EncodeKeyRecord(r);
  ASSERT_EQ(b.size(), kKeyRecordBytes);
  const char* p = b.data();
  EXPECT_EQ(b.substr(0, 8), "HFKEYREC");
  EXPECT_EQ(DecodeFixed32(p + 8), 1u);
  EXPECT_EQ(p[12], 1);  // XChaCha20-Poly1305
  EXPECT_EQ(p[13], 1);  // Argon2id
  EXPECT_EQ(p[14] | p[15], 0);
  EXPECT_EQ(DecodeFixed64(p + 16), 3u);
  EXPECT_EQ(DecodeFixed64(p + 24), kFileId);
  EXPECT_EQ(std::memcmp(p + 32, r.data_key_id.data(), 16), 0);
  EXPECT_EQ(std::memcmp(p + 48, r.kek_id.data(), 16), 0);
  EXPECT_EQ(DecodeFixed64(p + 64), 3u);
  EXPECT_EQ(DecodeFixed64(p + 72), 256ull << 20);
  EXPECT_EQ(std::memcmp(p + 80, r.kdf.salt.data(), 16), 0);
  EXPECT_EQ(DecodeFixed64(p + 96), 1700000000000u);
  EXPECT_EQ(std::memcmp(p + 104, r.wrap_nonce.data(), 24), 0);
  EXPECT_EQ(std::memcmp(p + 128, r.wrapped_key.data(), 48), 0);
  EXPECT_EQ(DecodeFixed32(p + 176), crc32c::Value(p, 176));

  auto d = DecodeKeyRecord(b, 3, "key/0000000000000003");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(EncodeKeyRecord(*d), b);
  EXPECT_EQ(d->kdf, r.kdf);
  EXPECT_EQ(d->wrapped_key, r.wrapped_key);
}

TEST(KeyRecordCodec, HostileRecordsAreRefusedNamingTheObject) {
  const std::string good = EncodeKeyRecord(SampleRecord());
  const std::string where = "memory://x/key/0000000000000003";
  struct Case {
    std::string name;
    std::string bytes;
    Status::Code code;
    std::string message;
  };
  std::vector<Case> cases;
  cases.push_back({"empty", "", Status::Code::kCorrupt, "not a key record (0 bytes)"});
  cases.push_back({"truncated", good.substr(0, 179), Status::Code::kCorrupt, "not a key record"});
  cases.push_back({"extended", good + "x", Status::Code::kCorrupt, "not a key record (181"});
  std::string bad = good;
  bad[0] = 'X';
  cases.push_back({"magic", Reseal(bad), Status::Code::kCorrupt, "not a key record"});
  bad = good;
  bad[150] ^= 4;
  cases.push_back({"crc", bad, Status::Code::kCorrupt, "checksum mismatch"});
  bad = good;
  bad[8] = 2;
  cases.push_back({"version", Reseal(bad), Status::Code::kNotSupported, "version 2"});
  bad = good;
  bad[12] = 9;
  cases.push_back({"cipher", Reseal(bad), Status::Code::kCorrupt, "unknown cipher id 9"});
  bad = good;
  bad[13] = 5;
  cases.push_back({"kdf", Reseal(bad), Status::Code::kCorrupt, "unknown KDF id 5"});
  bad = good;
  bad[15] = 1;
  cases.push_back({"reserved", Reseal(bad), Status::Code::kCorrupt, "reserved"});
  bad = good;
  EncodeFixed64(bad.data() + 16, 2);
  cases.push_back({"number", Reseal(bad), Status::Code::kCorrupt, "stored under the key"});
  bad = good;
  EncodeFixed64(bad.data() + 72, 1ull << 40);  // 1 TiB of Argon2 memory
  cases.push_back({"huge memory", Reseal(bad), Status::Code::kCorrupt, "Argon2id memory"});
  bad = good;
  EncodeFixed64(bad.data() + 64, 1u << 20);  // a million passes
  cases.push_back({"huge passes", Reseal(bad), Status::Code::kCorrupt, "Argon2id passes"});
  bad = good;
  EncodeFixed64(bad.data() + 64, 0);
  cases.push_back({"zero passes", Reseal(bad), Status::Code::kCorrupt, "Argon2id passes"});
  bad = good;
  bad[13] = 0;  // "raw key" but parameters set
  cases.push_back({"raw with params", Reseal(bad), Status::Code::kCorrupt, "no KDF parameters"});
  for (const Case& c : cases) {
    auto r = DecodeKeyRecord(c.bytes, 3, where);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), c.code) << c.name << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find(c.message), std::string::npos)
        << c.name << ": " << r.status().ToString();
    EXPECT_TRUE(r.status().message().starts_with(where)) << c.name << ": " << r.status().ToString();
  }
}

// ---- on a store ----------------------------------------------------------------

class KeyRecords : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    HF_REQUIRE_BACKEND(GetParam());
    auto s = testing::MakeStoreForBackend(GetParam(), "keys");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = *s;
  }
  std::shared_ptr<ObjectStore> store_;
};

TEST_P(KeyRecords, CreateThenOpenGivesTheSameDataKey) {
  KekSource kek = RawKek('k');
  EXPECT_FALSE(*HasKeyRecords(store_.get()));
  auto created = CreateFileKey(store_.get(), kFileId, kek);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->record, 1u);
  EXPECT_EQ(RecordKeys(store_.get()), std::vector<std::string>{"key/0000000000000001"});
  EXPECT_TRUE(*HasKeyRecords(store_.get()));
  // The stored record holds neither the data key nor the KEK.
  std::string body = Contents(store_.get())["key/0000000000000001"];
  EXPECT_EQ(body.size(), kKeyRecordBytes);
  EXPECT_EQ(body.find(Raw(created->data_key)), std::string::npos);
  EXPECT_EQ(body.find(std::string(32, 'k')), std::string::npos);

  auto opened = OpenFileKey(store_.get(), kFileId, &kek);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(Raw(opened->data_key), Raw(created->data_key));
  EXPECT_EQ(opened->data_key_id, created->data_key_id);
  EXPECT_EQ(opened->record, 1u);
  // A frame sealed with the created key opens with the unwrapped one.
  FramePlace place;
  place.file_id = kFileId;
  place.checkpoint = 1;
  auto frame = Seal(created->data_key, FrameAssociatedData(place), "data");
  ASSERT_TRUE(frame.ok());
  auto plain = Open(opened->data_key, FrameAssociatedData(place), *frame, "frame");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, "data");
}

TEST_P(KeyRecords, CreateRefusesAFileThatHasAKeyAndChangesNothing) {
  ASSERT_TRUE(CreateFileKey(store_.get(), kFileId, RawKek('a')).ok());
  auto before = Contents(store_.get());
  auto again = CreateFileKey(store_.get(), kFileId, RawKek('b'));
  EXPECT_TRUE(again.status().IsAlreadyExists()) << again.status().ToString();
  EXPECT_EQ(Contents(store_.get()), before);
}

TEST_P(KeyRecords, WrongAndMissingKeysAreClearErrors) {
  KekSource right = RawKek('r'), wrong = RawKek('w');
  ASSERT_TRUE(CreateFileKey(store_.get(), kFileId, right).ok());
  auto r = OpenFileKey(store_.get(), kFileId, &wrong);
  ASSERT_TRUE(r.status().IsAuth()) << r.status().ToString();
  EXPECT_EQ(r.status().message(), "wrong key for " + store_->Name() + ": " + wrong.Describe() +
                                      " opens none of its 1 key record");
  EXPECT_EQ(r.status().message().find(KeyIdHex(KeyId{})), std::string::npos);

  auto none = OpenFileKey(store_.get(), kFileId, nullptr);
  ASSERT_TRUE(none.status().IsAuth()) << none.status().ToString();
  EXPECT_NE(none.status().message().find("is encrypted"), std::string::npos);
  EXPECT_NE(none.status().message().find("no key was given"), std::string::npos);

  auto p = Passphrase("not a key file");
  auto kind = OpenFileKey(store_.get(), kFileId, &p);
  ASSERT_TRUE(kind.status().IsAuth()) << kind.status().ToString();
  EXPECT_NE(kind.status().message().find("locked with a key (a key file), but a passphrase"),
            std::string::npos);
}

TEST_P(KeyRecords, NoRecordIsNotFound) {
  KekSource kek = RawKek('k');
  auto r = OpenFileKey(store_.get(), kFileId, &kek);
  ASSERT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("no key record"), std::string::npos);
  // Foreign keys under key/ are no records.
  ASSERT_TRUE(store_->Put("key/README", "mine").ok());
  ASSERT_TRUE(store_->Put("key/0000000000000001.bak", "mine").ok());
  EXPECT_TRUE(OpenFileKey(store_.get(), kFileId, &kek).status().IsNotFound());
  EXPECT_FALSE(*HasKeyRecords(store_.get()));
}

TEST_P(KeyRecords, PassphraseRecords) {
  KekSource pass = Passphrase("correct horse battery staple");
  auto created = CreateFileKey(store_.get(), kFileId, pass);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  std::string body = Contents(store_.get())["key/0000000000000001"];
  auto rec = DecodeKeyRecord(body, 1, "r");
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->kdf.id, KdfId::kArgon2id);
  EXPECT_EQ(rec->kdf.ops, 1u);
  EXPECT_EQ(rec->kdf.mem_bytes, 8192u);
  EXPECT_EQ(body.find("correct horse"), std::string::npos);

  // Opening uses the record's cost, not the source's.
  auto other_cost = KekSource::FromPassphrase("correct horse battery staple", 2, 16384);
  ASSERT_TRUE(other_cost.ok());
  auto opened = OpenFileKey(store_.get(), kFileId, &*other_cost);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(Raw(opened->data_key), Raw(created->data_key));

  KekSource wrong = Passphrase("correct horse battery stapler");
  auto r = OpenFileKey(store_.get(), kFileId, &wrong);
  ASSERT_TRUE(r.status().IsAuth()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("wrong key for"), std::string::npos);
  EXPECT_NE(r.status().message().find("the passphrase opens none"), std::string::npos);
  EXPECT_EQ(r.status().message().find("stapler"), std::string::npos);

  KekSource key = RawKek('k');
  auto kind = OpenFileKey(store_.get(), kFileId, &key);
  ASSERT_TRUE(kind.status().IsAuth());
  EXPECT_NE(kind.status().message().find("locked with a passphrase, but a key was given"),
            std::string::npos);
}

TEST_P(KeyRecords, KeyChangeKeepsTheDataKeyAndRetiresTheOldKek) {
  KekSource first = RawKek('1');
  auto created = CreateFileKey(store_.get(), kFileId, first);
  ASSERT_TRUE(created.ok());
  FramePlace place;
  place.file_id = kFileId;
  place.checkpoint = 9;
  auto frame = Seal(created->data_key, FrameAssociatedData(place), "written before");
  ASSERT_TRUE(frame.ok());
  ASSERT_TRUE(store_->Put("key/README", "foreign").ok());

  KekSource second = Passphrase("second");
  auto n = ChangeFileKey(store_.get(), kFileId, first, second);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 2u);
  EXPECT_EQ(RecordKeys(store_.get()), std::vector<std::string>{"key/0000000000000002"});
  EXPECT_TRUE(OpenFileKey(store_.get(), kFileId, &first).status().IsAuth());

  KekSource third = RawKek('3');
  n = ChangeFileKey(store_.get(), kFileId, second, third);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 3u);
  EXPECT_EQ(RecordKeys(store_.get()), std::vector<std::string>{"key/0000000000000003"});
  EXPECT_TRUE(OpenFileKey(store_.get(), kFileId, &second).status().IsAuth());
  EXPECT_TRUE(OpenFileKey(store_.get(), kFileId, &first).status().IsAuth());

  auto opened = OpenFileKey(store_.get(), kFileId, &third);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(Raw(opened->data_key), Raw(created->data_key));
  auto plain = Open(opened->data_key, FrameAssociatedData(place), *frame, "frame");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, "written before");
  // The foreign object is untouched.
  EXPECT_EQ(Contents(store_.get())["key/README"], "foreign");

  // A change with a wrong old key changes nothing.
  auto before = Contents(store_.get());
  KekSource wrong = RawKek('w');
  EXPECT_TRUE(ChangeFileKey(store_.get(), kFileId, wrong, first).status().IsAuth());
  EXPECT_EQ(Contents(store_.get()), before);
}

INSTANTIATE_TEST_SUITE_P(Backends, KeyRecords, ::testing::Values("memory", "local", "s3"));

// ---- failures, races and hostile records (memory store) --------------------------

class KeyRecordFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = NewMemoryStore("key-faults-" + std::to_string(reinterpret_cast<uintptr_t>(this)));
    faulty_ = std::make_shared<FaultInjectionStore>(base_);
  }
  std::shared_ptr<ObjectStore> base_;
  std::shared_ptr<FaultInjectionStore> faulty_;
};

TEST_F(KeyRecordFaults, InterruptedKeyChangeLeavesBothRecordsAndEitherKeyOpens) {
  KekSource old_kek = RawKek('o'), new_kek = RawKek('n');
  auto created = CreateFileKey(base_.get(), kFileId, old_kek);
  ASSERT_TRUE(created.ok());
  faulty_->FailWhen([](const StoreCall& c) { return c.verb == StoreVerb::kDelete; },
                    Status::Transient("injected: delete failed"));
  auto n = ChangeFileKey(faulty_.get(), kFileId, old_kek, new_kek);
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("is written, but deleting the old ones failed"),
            std::string::npos)
      << n.status().ToString();
  EXPECT_EQ(RecordKeys(base_.get()),
            (std::vector<std::string>{"key/0000000000000001", "key/0000000000000002"}));
  for (const KekSource* k : {&old_kek, &new_kek}) {
    auto opened = OpenFileKey(base_.get(), kFileId, k);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_EQ(Raw(opened->data_key), Raw(created->data_key));
  }
  auto opened = OpenFileKey(base_.get(), kFileId, &old_kek);
  EXPECT_EQ(opened->record, 1u);
  // Running the change again with the new key finishes it.
  faulty_->ClearFaults();
  auto again = ChangeFileKey(faulty_.get(), kFileId, new_kek, new_kek);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(RecordKeys(base_.get()), std::vector<std::string>{"key/0000000000000003"});
  EXPECT_TRUE(OpenFileKey(base_.get(), kFileId, &old_kek).status().IsAuth());
}

TEST_F(KeyRecordFaults, ALostCreateResponseIsStillOurs) {
  KekSource kek = RawKek('k');
  faulty_->LoseResponseWhen([](const StoreCall& c) { return c.verb == StoreVerb::kPut; },
                            Status::Transient("injected: response lost"));
  // The retry layer would retry the put; do it by hand: the first attempt
  // landed, so the retried create-only put sees our own record.
  auto first = CreateFileKey(faulty_.get(), kFileId, kek);
  EXPECT_TRUE(first.status().IsTransient());
  faulty_->ClearFaults();
  // A create now sees the record (which is ours, but CreateFileKey can no
  // longer know that: the data key of the lost attempt is gone).
  EXPECT_TRUE(CreateFileKey(faulty_.get(), kFileId, kek).status().IsAlreadyExists());

  // Within one call: a retry layer over a put whose response was lost.
  auto store2 = NewMemoryStore("key-faults-retry");
  auto lossy = std::make_shared<FaultInjectionStore>(store2);
  int lost = 0;
  lossy->LoseResponseWhen(
      [&lost](const StoreCall& c) { return c.verb == StoreVerb::kPut && lost++ == 0; },
      Status::Transient("injected: response lost"));
  RetryOptions ro;
  ro.base_delay_ms = 0;
  auto retrying = NewRetryStore(lossy, ro);
  auto created = CreateFileKey(retrying.get(), kFileId, kek);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  auto opened = OpenFileKey(store2.get(), kFileId, &kek);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(Raw(opened->data_key), Raw(created->data_key));
}

// A store that runs a hook before the first create-only put of a key record.
class HookStore : public StoreWrapper {
 public:
  HookStore(std::shared_ptr<ObjectStore> base, std::function<void()> hook)
      : StoreWrapper(std::move(base)), hook_(std::move(hook)) {}
  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    if (options.if_absent && key.starts_with("key/") && hook_) std::exchange(hook_, nullptr)();
    return StoreWrapper::Put(key, data, options, info);
  }
  using ObjectStore::Put;

 private:
  std::function<void()> hook_;
};

TEST_F(KeyRecordFaults, OfTwoConcurrentKeyChangesOneWinsAndTheOtherChangesNothing) {
  KekSource old_kek = RawKek('o'), mine = RawKek('m'), theirs = RawKek('t');
  ASSERT_TRUE(CreateFileKey(base_.get(), kFileId, old_kek).ok());
  Status their_change;
  auto racing = std::make_shared<HookStore>(
      base_, [&] { their_change = ChangeFileKey(base_.get(), kFileId, old_kek, theirs).status(); });
  auto n = ChangeFileKey(racing.get(), kFileId, old_kek, mine);
  ASSERT_TRUE(their_change.ok()) << their_change.ToString();
  ASSERT_TRUE(n.status().IsConflict()) << n.status().ToString();
  EXPECT_EQ(RecordKeys(base_.get()), std::vector<std::string>{"key/0000000000000002"});
  EXPECT_TRUE(OpenFileKey(base_.get(), kFileId, &theirs).ok());
  EXPECT_TRUE(OpenFileKey(base_.get(), kFileId, &mine).status().IsAuth());
}

TEST_F(KeyRecordFaults, DamagedNewestRecordFallsBackAndAllDamagedIsCorrupt) {
  KekSource a = RawKek('a'), b = RawKek('b');
  auto created = CreateFileKey(base_.get(), kFileId, a);
  ASSERT_TRUE(created.ok());
  faulty_->FailWhen([](const StoreCall& c) { return c.verb == StoreVerb::kDelete; },
                    Status::Transient("injected"));
  ASSERT_FALSE(ChangeFileKey(faulty_.get(), kFileId, a, b).ok());  // leaves records 1 and 2
  std::string two;
  ASSERT_TRUE(base_->Get("key/0000000000000002", &two).ok());
  two[140] ^= 1;
  ASSERT_TRUE(base_->Put("key/0000000000000002", two).ok());
  // a still opens (record 1); b's record is damaged (checksum).
  EXPECT_TRUE(OpenFileKey(base_.get(), kFileId, &a).ok());
  auto r = OpenFileKey(base_.get(), kFileId, &b);
  EXPECT_TRUE(r.status().IsAuth()) << r.status().ToString();
  // Damage record 1 too: nothing valid is left.
  std::string one;
  ASSERT_TRUE(base_->Get("key/0000000000000001", &one).ok());
  ASSERT_TRUE(base_->Put("key/0000000000000001", one.substr(0, 100)).ok());
  r = OpenFileKey(base_.get(), kFileId, &a);
  ASSERT_TRUE(r.status().IsCorrupt()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("key/000000000000000"), std::string::npos);
}

TEST_F(KeyRecordFaults, TamperedWrapWithAValidChecksumIsCorruptNotWrongKey) {
  KekSource kek = RawKek('k');
  ASSERT_TRUE(CreateFileKey(base_.get(), kFileId, kek).ok());
  std::string body;
  ASSERT_TRUE(base_->Get("key/0000000000000001", &body).ok());
  for (size_t at : {size_t{40} /* data key id */, size_t{100} /* created time (AD) */,
                    size_t{110} /* nonce */, size_t{150} /* wrapped key */}) {
    std::string bad = body;
    bad[at] ^= 0x20;
    ASSERT_TRUE(base_->Put("key/0000000000000001", Reseal(bad)).ok());
    auto r = OpenFileKey(base_.get(), kFileId, &kek);
    ASSERT_TRUE(r.status().IsCorrupt()) << at << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find("fails to authenticate"), std::string::npos)
        << at << ": " << r.status().ToString();
  }
  // A changed KEK id looks like another key.
  std::string bad = body;
  bad[50] ^= 1;
  ASSERT_TRUE(base_->Put("key/0000000000000001", Reseal(bad)).ok());
  EXPECT_TRUE(OpenFileKey(base_.get(), kFileId, &kek).status().IsAuth());
}

TEST_F(KeyRecordFaults, ARecordOfAnotherFileOrDisagreeingRecordsAreCorrupt) {
  KekSource kek = RawKek('k');
  ASSERT_TRUE(CreateFileKey(base_.get(), kFileId, kek).ok());
  auto r = OpenFileKey(base_.get(), kFileId + 1, &kek);
  ASSERT_TRUE(r.status().IsCorrupt()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("belongs to file id"), std::string::npos);

  // A second record with another data key (copied in from another file with
  // the same file id and KEK).
  auto other = NewMemoryStore("key-faults-other");
  ASSERT_TRUE(CreateFileKey(other.get(), kFileId, kek).ok());
  std::string body;
  ASSERT_TRUE(other->Get("key/0000000000000001", &body).ok());
  EncodeFixed64(body.data() + 16, 2);
  ASSERT_TRUE(base_->Put("key/0000000000000002", Reseal(body)).ok());
  r = OpenFileKey(base_.get(), kFileId, &kek);
  ASSERT_TRUE(r.status().IsCorrupt()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("disagree on the data key"), std::string::npos);
}

TEST_F(KeyRecordFaults, NewerVersionIsNotSupportedAndTooManyRecordsCorrupt) {
  KekSource kek = RawKek('k');
  ASSERT_TRUE(CreateFileKey(base_.get(), kFileId, kek).ok());
  std::string body;
  ASSERT_TRUE(base_->Get("key/0000000000000001", &body).ok());
  std::string v2 = body;
  v2[8] = 2;
  EncodeFixed64(v2.data() + 16, 2);
  ASSERT_TRUE(base_->Put("key/0000000000000002", Reseal(v2)).ok());
  EXPECT_TRUE(OpenFileKey(base_.get(), kFileId, &kek).status().IsNotSupported());
  ASSERT_TRUE(base_->Delete("key/0000000000000002").ok());
  for (uint64_t n = 2; n <= kMaxKeyRecords + 1; n++) {
    ASSERT_TRUE(base_->Put(KeyRecordKey(n), "x").ok());
  }
  auto r = OpenFileKey(base_.get(), kFileId, &kek);
  ASSERT_TRUE(r.status().IsCorrupt()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("65 key records"), std::string::npos);
}

TEST_F(KeyRecordFaults, AHugeObjectAtARecordKeyIsRefusedWithoutReadingIt) {
  KekSource kek = RawKek('k');
  ASSERT_TRUE(base_->Put("key/0000000000000001", std::string(1 << 20, 'x')).ok());
  auto metrics = std::make_shared<MetricsStore>(base_);
  auto r = OpenFileKey(metrics.get(), kFileId, &kek);
  ASSERT_TRUE(r.status().IsCorrupt()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("not a key record (181 bytes)"), std::string::npos);
  EXPECT_LE(metrics->Snapshot().bytes_in, 4096u);
}

TEST(KekSource, InputsAreValidated) {
  EXPECT_TRUE(KekSource::FromPassphrase("").status().IsInvalidArgument());
  EXPECT_TRUE(KekSource::FromPassphrase(std::string(4097, 'p')).status().IsInvalidArgument());
  EXPECT_TRUE(KekSource::FromPassphrase("p", 0, 8192).status().IsInvalidArgument());
  EXPECT_TRUE(KekSource::FromPassphrase("p", 1, 2ull << 30).status().IsInvalidArgument());
  KekSource empty = KekSource::FromKey(SecretKey());
  auto store = NewMemoryStore("kek-empty");
  EXPECT_TRUE(CreateFileKey(store.get(), 1, empty).status().IsInvalidArgument());
  EXPECT_TRUE(Contents(store.get()).empty());
  EXPECT_TRUE(CreateFileKey(nullptr, 1, RawKek('k')).status().IsInvalidArgument());
  EXPECT_TRUE(OpenFileKey(nullptr, 1, nullptr).status().IsInvalidArgument());
  EXPECT_EQ(RawKek('k').Describe().substr(0, 8), "the key ");
  EXPECT_EQ(Passphrase("x").Describe(), "the passphrase");
}

}  // namespace
}  // namespace hyperfile::crypto
