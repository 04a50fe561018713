// SPDX-License-Identifier: Apache-2.0
// Client-side encryption of hyperfiles (docs/design/0011-encryption-keys.md,
// docs/format.md "Key records" and "Sealed frames and nodes").
//
// An encrypted file seals every data frame and index node with its own
// random 256-bit data key (XChaCha20-Poly1305). The data key is stored only
// wrapped under a key-encryption key (KEK) the user holds: a KeySource.
// Create an encrypted file with CreateOptions::encryption_key; open it with
// OpenOptions::key. Without the key, or with a wrong one, File::Open fails
// with Auth before any index node or data is read; it never returns data
// decrypted with the wrong key. Keys never appear in errors, logs or
// Describe().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "hyperfile/object_store.h"
#include "hyperfile/status.h"

namespace hyperfile {

// The user's key-encryption key. Immutable and thread-safe once made; the
// secret lives in guarded memory (sodium_malloc) and is wiped when the last
// reference goes.
class HYPERFILE_EXPORT KeySource {
 public:
  // A key file: exactly 32 raw bytes, or key text (64 hex digits or base64
  // of 32 bytes; docs/format.md "Key file / key text"); at most 4096 bytes.
  // NotFound / IOError naming the path; InvalidArgument for another form
  // (never quoting the contents).
  static Result<std::shared_ptr<const KeySource>> FromKeyFile(const std::string& path);
  // Key text as above.
  static Result<std::shared_ptr<const KeySource>> FromKeyText(std::string_view text);
  // A passphrase (1..4096 bytes), stretched with Argon2id. `ops` and
  // `mem_bytes` are the cost of records this source creates (0 = the
  // defaults: 3 passes over 256 MiB); records it opens carry their own.
  static Result<std::shared_ptr<const KeySource>> FromPassphrase(std::string_view passphrase,
                                                                 uint64_t ops = 0,
                                                                 uint64_t mem_bytes = 0);
  // "key <fingerprint>" or "passphrase": safe to print.
  std::string Describe() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }
  explicit KeySource(std::unique_ptr<Impl> impl);
  ~KeySource();

 private:
  std::unique_ptr<Impl> impl_;
};

// Rewraps the data key of the encrypted file in `store` from `old_key` to
// `new_key` (a new key record, then the old ones deleted): no data is
// rewritten, every checkpoint, snapshot and clone stays readable, and
// afterwards only `new_key` opens the file. Returns the new record's number.
// Auth if `old_key` is wrong; NotFound if the file is not encrypted;
// Conflict if a concurrent key change won (nothing changed).
HYPERFILE_EXPORT Result<uint64_t> ChangeKey(std::shared_ptr<ObjectStore> store,
                                            const KeySource& old_key, const KeySource& new_key);

// The cipher name of a header cipher id: "none", "xchacha20-poly1305".
HYPERFILE_EXPORT std::string CipherName(uint8_t cipher);

}  // namespace hyperfile
