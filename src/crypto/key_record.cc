// SPDX-License-Identifier: Apache-2.0
#include "crypto/key_record.h"

#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "util/coding.h"
#include "util/crc32c.h"

namespace hyperfile::crypto {

static_assert(kKeyRecordAdBytes + kNonceBytes + SecretKey::kSize + kTagBytes + 4 ==
              kKeyRecordBytes);

namespace {

constexpr std::string_view kDataKeyIdLabel = "hyperfile data key id v1";
constexpr std::string_view kKekIdLabel = "hyperfile kek id v1";
constexpr size_t kListLimit = 1000;

std::string_view KeyView(const SecretKey& k) {
  return {reinterpret_cast<const char*>(k.data()), SecretKey::kSize};
}

std::string Where(ObjectStore* store, uint64_t number) {
  return store->Name() + "/" + KeyRecordKey(number);
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The numbers of the key records present, ascending.
Status ListRecordNumbers(ObjectStore* store, std::vector<uint64_t>* out) {
  std::vector<ObjectInfo> listed;
  HF_RETURN_IF_ERROR(store->List(kKeyRecordPrefix, "", kListLimit, &listed)
                         .WithContext("list the key records of " + store->Name()));
  for (const ObjectInfo& o : listed) {
    if (auto n = ParseKeyRecordKey(o.key)) out->push_back(*n);
  }
  std::sort(out->begin(), out->end());
  out->erase(std::unique(out->begin(), out->end()), out->end());
  if (out->size() > kMaxKeyRecords) {
    return Status::Corrupt(store->Name() + ": " + std::to_string(out->size()) +
                           " key records (a file has at most " + std::to_string(kMaxKeyRecords) +
                           ")");
  }
  return Status::OK();
}

// Reads and decodes one record; NotFound if it is gone.
Result<KeyRecord> ReadRecord(ObjectStore* store, uint64_t number) {
  std::string body;
  const std::string where = Where(store, number);
  Status st = store->Get(KeyRecordKey(number), 0, kKeyRecordBytes + 1, &body, nullptr);
  if (!st.ok()) return st.WithContext("read key record");
  return DecodeKeyRecord(body, number, where);
}

// A create-only put of a key record. A retried put whose first attempt
// landed (its response lost) reports PreconditionFailed although the object
// is ours: the record's random wrap nonce makes equal bytes proof of that.
Status CreateRecord(ObjectStore* store, uint64_t number, const std::string& bytes) {
  PutOptions create_only;
  create_only.if_absent = true;
  const std::string key = KeyRecordKey(number);
  Status st = store->Put(key, bytes, create_only);
  if (st.IsPreconditionFailed()) {
    std::string there;
    if (store->Get(key, 0, kKeyRecordBytes + 1, &there, nullptr).ok() && there == bytes) {
      return Status::OK();
    }
  }
  return st;
}

// Builds and seals a record for `data_key` under `kek`.
Result<std::string> WrapRecord(uint64_t number, uint64_t file_id, const SecretKey& data_key,
                               const KeyId& data_key_id, const SecretKey& kek,
                               const KdfParams& kdf) {
  KeyRecord r;
  r.number = number;
  r.file_id = file_id;
  r.data_key_id = data_key_id;
  auto kek_id = KekId(kek, file_id);
  if (!kek_id.ok()) return kek_id.status();
  r.kek_id = *kek_id;
  r.kdf = kdf;
  r.created_ms = NowMs();
  std::string bytes = EncodeKeyRecord(r);  // wrap fields still zero
  std::string sealed;
  HF_RETURN_IF_ERROR(SealTo(kek, std::string_view(bytes).substr(0, kKeyRecordAdBytes),
                            KeyView(data_key), &sealed));
  std::memcpy(r.wrap_nonce.data(), sealed.data(), kNonceBytes);
  std::memcpy(r.wrapped_key.data(), sealed.data() + kNonceBytes, r.wrapped_key.size());
  return EncodeKeyRecord(r);
}

// Unwraps a decoded record with `kek`. Auth if the KEK is not the one that
// wrapped it; Corrupt if it is but the wrap does not authenticate.
Result<SecretKey> UnwrapRecord(const KeyRecord& r, const SecretKey& kek, std::string_view where) {
  auto kek_id = KekId(kek, r.file_id);
  if (!kek_id.ok()) return kek_id.status();
  if (*kek_id != r.kek_id) return Status::Auth(std::string(where) + ": another key wrapped it");
  std::string bytes = EncodeKeyRecord(r);
  auto key = SecretKey::Zeroed();
  if (!key.ok()) return key.status();
  unsigned long long n = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          key->mutable_data(), &n, nullptr, r.wrapped_key.data(), r.wrapped_key.size(),
          reinterpret_cast<const unsigned char*>(bytes.data()), kKeyRecordAdBytes,
          r.wrap_nonce.data(), kek.data()) != 0 ||
      n != SecretKey::kSize) {
    return Status::Corrupt(std::string(where) +
                           ": the key record's wrap fails to authenticate (the record was "
                           "changed)");
  }
  auto id = DataKeyId(*key);
  if (!id.ok()) return id.status();
  if (*id != r.data_key_id) {
    return Status::Corrupt(std::string(where) +
                           ": the unwrapped data key does not match the record's key id");
  }
  return key;
}

}  // namespace

std::string KeyRecordKey(uint64_t number) {
  static const char* digits = "0123456789abcdef";
  std::string s(kKeyRecordPrefix);
  s.resize(kKeyRecordPrefix.size() + 16, '0');
  for (int i = 15; i >= 0; i--, number >>= 4) s[kKeyRecordPrefix.size() + i] = digits[number & 15];
  return s;
}

std::optional<uint64_t> ParseKeyRecordKey(std::string_view key) {
  if (!key.starts_with(kKeyRecordPrefix) || key.size() != kKeyRecordPrefix.size() + 16) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : key.substr(kKeyRecordPrefix.size())) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    v = v << 4 | static_cast<uint64_t>(d);
  }
  if (v < 1 || v > kMaxKeyRecordNumber) return std::nullopt;
  return v;
}

std::string EncodeKeyRecord(const KeyRecord& r) {
  std::string out(kKeyRecordMagic);
  PutFixed32(&out, kKeyRecordVersion);
  PutFixed8(&out, static_cast<uint8_t>(r.cipher));
  PutFixed8(&out, static_cast<uint8_t>(r.kdf.id));
  PutFixed16(&out, 0);
  PutFixed64(&out, r.number);
  PutFixed64(&out, r.file_id);
  out.append(reinterpret_cast<const char*>(r.data_key_id.data()), r.data_key_id.size());
  out.append(reinterpret_cast<const char*>(r.kek_id.data()), r.kek_id.size());
  PutFixed64(&out, r.kdf.ops);
  PutFixed64(&out, r.kdf.mem_bytes);
  out.append(reinterpret_cast<const char*>(r.kdf.salt.data()), r.kdf.salt.size());
  PutFixed64(&out, static_cast<uint64_t>(r.created_ms));
  out.append(reinterpret_cast<const char*>(r.wrap_nonce.data()), r.wrap_nonce.size());
  out.append(reinterpret_cast<const char*>(r.wrapped_key.data()), r.wrapped_key.size());
  PutFixed32(&out, crc32c::Value(out.data(), out.size()));
  return out;
}

Result<KeyRecord> DecodeKeyRecord(std::string_view bytes, uint64_t number, std::string_view where) {
  const std::string w(where);
  if (bytes.size() != kKeyRecordBytes || !bytes.starts_with(kKeyRecordMagic)) {
    return Status::Corrupt(w + ": not a key record (" + std::to_string(bytes.size()) + " bytes)");
  }
  const char* p = bytes.data();
  if (crc32c::Value(p, kKeyRecordBytes - 4) != DecodeFixed32(p + kKeyRecordBytes - 4)) {
    return Status::Corrupt(w + ": key record checksum mismatch");
  }
  uint32_t version = DecodeFixed32(p + 8);
  if (version != kKeyRecordVersion) {
    return Status::NotSupported(w + ": unsupported key record version " + std::to_string(version) +
                                " (this build reads " + std::to_string(kKeyRecordVersion) + ")");
  }
  KeyRecord r;
  uint8_t cipher = static_cast<uint8_t>(p[12]);
  if (cipher != static_cast<uint8_t>(CipherId::kXChaCha20Poly1305)) {
    return Status::Corrupt(w + ": unknown cipher id " + std::to_string(cipher));
  }
  r.cipher = static_cast<CipherId>(cipher);
  uint8_t kdf = static_cast<uint8_t>(p[13]);
  if (kdf != static_cast<uint8_t>(KdfId::kNone) && kdf != static_cast<uint8_t>(KdfId::kArgon2id)) {
    return Status::Corrupt(w + ": unknown KDF id " + std::to_string(kdf));
  }
  r.kdf.id = static_cast<KdfId>(kdf);
  if (p[14] != 0 || p[15] != 0) return Status::Corrupt(w + ": key record reserved bytes are set");
  r.number = DecodeFixed64(p + 16);
  if (r.number != number) {
    return Status::Corrupt(w + ": key record number " + std::to_string(r.number) +
                           " is stored under the key of record " + std::to_string(number));
  }
  r.file_id = DecodeFixed64(p + 24);
  std::memcpy(r.data_key_id.data(), p + 32, r.data_key_id.size());
  std::memcpy(r.kek_id.data(), p + 48, r.kek_id.size());
  r.kdf.ops = DecodeFixed64(p + 64);
  r.kdf.mem_bytes = DecodeFixed64(p + 72);
  std::memcpy(r.kdf.salt.data(), p + 80, r.kdf.salt.size());
  HF_RETURN_IF_ERROR(ValidateKdfParams(r.kdf, w));
  r.created_ms = static_cast<int64_t>(DecodeFixed64(p + 96));
  std::memcpy(r.wrap_nonce.data(), p + 104, r.wrap_nonce.size());
  std::memcpy(r.wrapped_key.data(), p + 128, r.wrapped_key.size());
  return r;
}

Result<KeyId> DataKeyId(const SecretKey& data_key) {
  return DeriveKeyId(data_key, kDataKeyIdLabel, "");
}

Result<KeyId> KekId(const SecretKey& kek, uint64_t file_id) {
  std::string context;
  PutFixed64(&context, file_id);
  return DeriveKeyId(kek, kKekIdLabel, context);
}

KekSource KekSource::FromKey(SecretKey key) {
  KekSource s;
  s.kind_ = KdfId::kNone;
  s.key_ = std::move(key);
  return s;
}

Result<KekSource> KekSource::FromPassphrase(std::string_view passphrase, uint64_t ops,
                                            uint64_t mem_bytes) {
  if (passphrase.empty() || passphrase.size() > kMaxPassphraseBytes) {
    return Status::InvalidArgument("a passphrase is 1 to 4096 bytes, not " +
                                   std::to_string(passphrase.size()));
  }
  KdfParams check;
  check.id = KdfId::kArgon2id;
  check.ops = ops;
  check.mem_bytes = mem_bytes;
  Status st = ValidateKdfParams(check, "passphrase cost");
  if (!st.ok()) return Status::InvalidArgument(st.message());
  auto buf = SecureBuffer::CopyOf(passphrase);
  if (!buf.ok()) return buf.status();
  KekSource s;
  s.kind_ = KdfId::kArgon2id;
  s.passphrase_ = std::move(*buf);
  s.ops_ = ops;
  s.mem_bytes_ = mem_bytes;
  return s;
}

std::string KekSource::Describe() const {
  return kind_ == KdfId::kArgon2id ? "the passphrase" : "the " + key_.Describe();
}

Result<SecretKey> KekSource::KekFor(const KdfParams& params, std::string_view where) const {
  if (params.id != kind_) {
    return Status::Auth(std::string(where) +
                        (params.id == KdfId::kArgon2id
                             ? " is locked with a passphrase, but a key was given"
                             : " is locked with a key (a key file), but a passphrase was given"));
  }
  if (kind_ == KdfId::kNone) {
    if (key_.empty()) return Status::InvalidArgument(std::string(where) + ": no key");
    return SecretKey::FromBytes(KeyView(key_), where);
  }
  return DeriveKek(passphrase_.view(), params);
}

Result<SecretKey> KekSource::NewKek(KdfParams* params) const {
  if (kind_ == KdfId::kNone) {
    if (key_.empty()) return Status::InvalidArgument("no key");
    *params = KdfParams{};
    return SecretKey::FromBytes(KeyView(key_), "key");
  }
  auto p = NewArgon2idParams(ops_, mem_bytes_);
  if (!p.ok()) return p.status();
  *params = *p;
  return DeriveKek(passphrase_.view(), *params);
}

Result<FileKey> CreateFileKey(ObjectStore* store, uint64_t file_id, const KekSource& kek,
                              const SecretKey* given) {
  if (store == nullptr) return Status::InvalidArgument("CreateFileKey: no store");
  std::vector<uint64_t> present;
  HF_RETURN_IF_ERROR(ListRecordNumbers(store, &present));
  if (!present.empty()) {
    return Status::AlreadyExists(store->Name() + " already has a key record (" +
                                 KeyRecordKey(present.back()) + ")");
  }
  KdfParams kdf;
  auto wrapping = kek.NewKek(&kdf);
  if (!wrapping.ok()) return wrapping.status();
  auto data_key = given ? SecretKey::FromBytes(KeyView(*given), "data key") : SecretKey::Random();
  if (!data_key.ok()) return data_key.status();
  auto id = DataKeyId(*data_key);
  if (!id.ok()) return id.status();
  auto bytes = WrapRecord(1, file_id, *data_key, *id, *wrapping, kdf);
  if (!bytes.ok()) return bytes.status();
  Status st = CreateRecord(store, 1, *bytes);
  if (st.IsPreconditionFailed()) {
    return Status::AlreadyExists(store->Name() + " already has a key record (" + KeyRecordKey(1) +
                                 ", written at the same time)");
  }
  HF_RETURN_IF_ERROR(st.WithContext("write the key record " + Where(store, 1)));
  FileKey out;
  out.data_key = std::move(*data_key);
  out.data_key_id = *id;
  out.record = 1;
  return out;
}

namespace {

// OpenFileKey, also returning the record numbers its one listing found.
Result<FileKey> OpenWithListing(ObjectStore* store, uint64_t file_id, const KekSource* kek,
                                std::vector<uint64_t>* numbers_out) {
  const std::string name = store->Name();
  std::vector<uint64_t>& numbers = *numbers_out;
  HF_RETURN_IF_ERROR(ListRecordNumbers(store, &numbers));
  if (numbers.empty()) {
    return Status::NotFound(name + " has no key record (" + std::string(kKeyRecordPrefix) +
                            "): it is not encrypted, or its key records were deleted");
  }
  // Decode every record, newest first. Damaged ones and ones of another
  // file are skipped (reported if nothing else remains); a newer version
  // stops everything (this build cannot judge it).
  std::vector<KeyRecord> valid;
  Status first_bad;
  for (auto it = numbers.rbegin(); it != numbers.rend(); ++it) {
    auto r = ReadRecord(store, *it);
    if (!r.ok()) {
      if (r.status().IsNotFound()) continue;  // deleted by a key change since the listing
      if (r.status().IsNotSupported()) return r.status();
      if (!r.status().IsCorrupt()) return r.status();
      if (first_bad.ok()) first_bad = r.status();
      continue;
    }
    if (r->file_id != file_id) {
      if (first_bad.ok()) {
        first_bad =
            Status::Corrupt(Where(store, *it) + ": the key record belongs to file id " +
                            std::to_string(r->file_id) + ", not " + std::to_string(file_id));
      }
      continue;
    }
    valid.push_back(std::move(*r));
  }
  if (valid.empty()) {
    if (!first_bad.ok()) return first_bad;
    return Status::NotFound(name + " has no key record left (deleted while being read)");
  }
  for (const KeyRecord& r : valid) {
    if (r.data_key_id != valid.front().data_key_id || r.cipher != valid.front().cipher) {
      return Status::Corrupt(name + ": key records " + KeyRecordKey(valid.front().number) +
                             " and " + KeyRecordKey(r.number) + " disagree on the data key");
    }
  }
  if (kek == nullptr) {
    return Status::Auth(name + " is encrypted (data key id " +
                        KeyIdHex(valid.front().data_key_id).substr(0, 16) + "); no key was given");
  }
  Status mismatch;  // a record of the other kind (passphrase / key)
  size_t tried = 0;
  for (const KeyRecord& r : valid) {
    const std::string where = Where(store, r.number);
    auto wrapping = kek->KekFor(r.kdf, name);
    if (!wrapping.ok()) {
      if (!wrapping.status().IsAuth()) return wrapping.status();
      if (mismatch.ok()) mismatch = wrapping.status();
      continue;
    }
    tried++;
    auto key = UnwrapRecord(r, *wrapping, where);
    if (key.ok()) {
      FileKey out;
      out.data_key = std::move(*key);
      out.data_key_id = r.data_key_id;
      out.cipher = r.cipher;
      out.record = r.number;
      return out;
    }
    if (!key.status().IsAuth()) return key.status();
  }
  if (tried == 0) return mismatch;
  return Status::Auth("wrong key for " + name + ": " + kek->Describe() + " opens none of its " +
                      std::to_string(valid.size()) + " key record" +
                      (valid.size() == 1 ? "" : "s"));
}

}  // namespace

Result<FileKey> OpenFileKey(ObjectStore* store, uint64_t file_id, const KekSource* kek) {
  if (store == nullptr) return Status::InvalidArgument("OpenFileKey: no store");
  std::vector<uint64_t> numbers;
  return OpenWithListing(store, file_id, kek, &numbers);
}

Result<uint64_t> ChangeFileKey(ObjectStore* store, uint64_t file_id, const KekSource& old_kek,
                               const KekSource& new_kek) {
  if (store == nullptr) return Status::InvalidArgument("ChangeFileKey: no store");
  // One listing decides both the key and the next number: a concurrent
  // change that wrote a record since takes that number, so ours fails.
  std::vector<uint64_t> numbers;
  auto key = OpenWithListing(store, file_id, &old_kek, &numbers);
  if (!key.ok()) return key.status();
  const uint64_t newest = std::max(numbers.back(), key->record);
  if (newest >= kMaxKeyRecordNumber) {
    return Status::OutOfRange(store->Name() + ": no key record number is left");
  }
  const uint64_t next = newest + 1;
  KdfParams kdf;
  auto wrapping = new_kek.NewKek(&kdf);
  if (!wrapping.ok()) return wrapping.status();
  auto bytes = WrapRecord(next, file_id, key->data_key, key->data_key_id, *wrapping, kdf);
  if (!bytes.ok()) return bytes.status();
  Status st = CreateRecord(store, next, *bytes);
  if (st.IsPreconditionFailed()) {
    return Status::Conflict(store->Name() + ": another key change wrote " + KeyRecordKey(next) +
                            " at the same time; nothing was changed");
  }
  HF_RETURN_IF_ERROR(st.WithContext("write the key record " + Where(store, next)));
  // The new record is in place: the old ones may go. List again so that
  // records that appeared since the first listing go too.
  numbers.clear();
  HF_RETURN_IF_ERROR(ListRecordNumbers(store, &numbers)
                         .WithContext("the new key record " + KeyRecordKey(next) +
                                      " is written, but the old ones are still there"));
  std::vector<std::string> old;
  for (uint64_t n : numbers) {
    if (n < next) old.push_back(KeyRecordKey(n));
  }
  HF_RETURN_IF_ERROR(store->DeleteMany(old).WithContext(
      "the new key record " + KeyRecordKey(next) +
      " is written, but deleting the old ones failed (the old key still opens the file; run the "
      "key change again with the new key to finish)"));
  return next;
}

Result<bool> HasKeyRecords(ObjectStore* store) {
  if (store == nullptr) return Status::InvalidArgument("HasKeyRecords: no store");
  std::vector<uint64_t> numbers;
  HF_RETURN_IF_ERROR(ListRecordNumbers(store, &numbers));
  return !numbers.empty();
}

}  // namespace hyperfile::crypto
