// SPDX-License-Identifier: Apache-2.0
// The key hierarchy of an encrypted file (docs/format.md, "Key records";
// docs/design/0011-encryption-keys.md):
//
//   KEK (key-encryption key): what the user holds — a 256-bit key (a key
//        file, HYPERFILE_KEY) or a passphrase (-> Argon2id -> 256 bits).
//        Never stored.
//   data key: 256 random bits per file, drawn at create and never changed.
//        Seals every frame (aead.h). Stored only wrapped (sealed) under the
//        KEK in a key record.
//
// Key records are objects `key/<16 lowercase hex digits of n>`, n = 1, 2, ...
// created with create-only puts and never modified. A key change writes
// record n+1 (the same data key under the new KEK) and then deletes the
// older records: no data is rewritten, and at no moment is there no record.
// Readers try the records newest first and use the first that the KEK they
// were given opens (an interrupted key change leaves both the old and the new
// record, and either key opens the file until a key change completes).
//
// Every function here reads only key/ objects and writes or deletes only
// key/<16 hex> objects; foreign keys under key/ are ignored.
//
// Thread-safety: the functions may be called concurrently; two concurrent
// key changes of one file cannot both win (create-only put: the loser gets
// Conflict and changes nothing).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "crypto/aead.h"
#include "crypto/kdf.h"
#include "crypto/secret.h"
#include "hyperfile/object_store.h"
#include "hyperfile/status.h"

namespace hyperfile::crypto {

inline constexpr std::string_view kKeyRecordPrefix = "key/";
inline constexpr std::string_view kKeyRecordMagic = "HFKEYREC";
inline constexpr uint32_t kKeyRecordVersion = 1;
// A version-1 record is exactly this long; a reader GETs at most one byte
// more and refuses any other size.
inline constexpr size_t kKeyRecordBytes = 180;
// The part of a record that the wrap authenticates as associated data
// (everything before the wrap nonce).
inline constexpr size_t kKeyRecordAdBytes = 104;
// Record numbers are 1..kMaxKeyRecordNumber; a file has at most
// kMaxKeyRecords at once (normally 1, 2 after an interrupted key change).
inline constexpr uint64_t kMaxKeyRecordNumber = uint64_t{1} << 62;
inline constexpr size_t kMaxKeyRecords = 64;

std::string KeyRecordKey(uint64_t number);
// The number of a key record's key, or nullopt for any other key (including
// keys under key/ that are not exactly 16 lowercase hex digits in range:
// those are foreign).
std::optional<uint64_t> ParseKeyRecordKey(std::string_view key);

// One decoded record. Only what opening needs before the key is known is
// here, in plain: ids, the KDF's public parameters, the sealed data key.
struct KeyRecord {
  uint64_t number = 0;  // the n of its key (the decoder checks they match)
  CipherId cipher = CipherId::kXChaCha20Poly1305;
  uint64_t file_id = 0;  // the file it belongs to (a clone's own file id)
  KeyId data_key_id{};   // DataKeyId(data key): equal in every record of a file
  KeyId kek_id{};        // KekId(KEK, file id): which KEK wrapped it
  KdfParams kdf;
  int64_t created_ms = 0;  // informational (writer's clock)
  std::array<uint8_t, kNonceBytes> wrap_nonce{};
  std::array<uint8_t, SecretKey::kSize + kTagBytes> wrapped_key{};
};
std::string EncodeKeyRecord(const KeyRecord& record);
// Strict decoder for untrusted bytes read from `key/<16 hex of number>`:
// exactly kKeyRecordBytes, the magic, a CRC32C over the rest, version 1
// (another version is NotSupported), a known cipher and KDF, KDF parameters
// inside the bounds of kdf.h (so no hostile record can make a reader spend
// more than 1 GiB or 16 passes), reserved bytes zero, the record number
// equal to `number`. Corrupt naming `where` otherwise. The wrap itself is
// checked only by unwrapping.
Result<KeyRecord> DecodeKeyRecord(std::string_view bytes, uint64_t number, std::string_view where);

// The ids stored in records (keyed BLAKE2b, secret.h): the data key's does
// not depend on the file (a clone shares its origin's data key and id); the
// KEK's does, so one key file used for many files does not link them.
Result<KeyId> DataKeyId(const SecretKey& data_key);
Result<KeyId> KekId(const SecretKey& kek, uint64_t file_id);

// What the user supplied to unlock files: a 256-bit key, or a passphrase
// (kept in secure memory) with the Argon2id cost for records it creates
// (records it opens carry their own). Never printed: Describe() says "key
// 1f2e..." (a fingerprint) or "passphrase".
class KekSource {
 public:
  static KekSource FromKey(SecretKey key);
  // InvalidArgument for an empty or too long (> 4096 bytes) passphrase, or a
  // cost outside kdf.h's bounds.
  static Result<KekSource> FromPassphrase(std::string_view passphrase,
                                          uint64_t ops = kDefaultKdfOps,
                                          uint64_t mem_bytes = kDefaultKdfMemBytes);
  KdfId kind() const { return kind_; }
  std::string Describe() const;

  // The KEK for a record with these parameters: the key itself (kNone), or
  // Argon2id of the passphrase with the record's salt and cost. Auth if the
  // record wants the other kind ("... is locked with a passphrase, but a key
  // was given"), naming `where`.
  Result<SecretKey> KekFor(const KdfParams& params, std::string_view where) const;
  // A KEK for a new record and the parameters to store with it (a fresh
  // salt for a passphrase).
  Result<SecretKey> NewKek(KdfParams* params) const;

 private:
  KdfId kind_ = KdfId::kNone;
  SecretKey key_;
  SecureBuffer passphrase_;
  uint64_t ops_ = 0;
  uint64_t mem_bytes_ = 0;
};

// A file's data key, unwrapped.
struct FileKey {
  SecretKey data_key;
  KeyId data_key_id{};
  CipherId cipher = CipherId::kXChaCha20Poly1305;
  uint64_t record = 0;  // the number of the record it was read from or written to
};

// Makes the first key record of a new file: a fresh random data key, wrapped
// under `kek`, written create-only as key/0000000000000001. AlreadyExists if
// the store holds any key record already (nothing is written then).
// With `data_key` (a clone: it shares its origin's data key) that key is
// wrapped instead of a fresh one.
Result<FileKey> CreateFileKey(ObjectStore* store, uint64_t file_id, const KekSource& kek,
                              const SecretKey* data_key = nullptr);

// Unwraps the file's data key: lists key/ (one LIST), then GETs records
// newest first (each a bounded GET of kKeyRecordBytes + 1) until one opens.
// Errors, each before any data of the file is read:
//   NotFound  no key record (the file is not encrypted, or they were deleted)
//   Auth      `kek` is null: "<store> is encrypted; no key was given"
//   Auth      "wrong key for <store>: <kek> opens none of its key records"
//             (or a passphrase given for a key-file record, or the reverse)
//   Corrupt   every record is damaged, belongs to another file id, or the
//             records disagree on the data key; a record whose KEK id
//             matches but whose wrap fails to authenticate (tampered)
//   NotSupported  a record of a newer version
Result<FileKey> OpenFileKey(ObjectStore* store, uint64_t file_id, const KekSource* kek);

// Key change: unwraps with `old_kek` (as OpenFileKey), writes record n+1
// (n = the highest record number present) wrapping the same data key under
// `new_kek`, then deletes every older record. Returns the new record's
// number. Conflict if a concurrent key change took n+1 first (nothing
// written). If deleting the old records fails, the new record is in place
// (both keys open the file) and the error says so: running the change again
// with the new key finishes it. The data key, and so every frame, stays.
Result<uint64_t> ChangeFileKey(ObjectStore* store, uint64_t file_id, const KekSource& old_kek,
                               const KekSource& new_kek);

// Whether the store holds any key record (one LIST of key/, at most 1000 keys).
Result<bool> HasKeyRecords(ObjectStore* store);

}  // namespace hyperfile::crypto
