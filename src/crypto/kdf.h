// SPDX-License-Identifier: Apache-2.0
// Passphrase -> key-encryption key: Argon2id (v1.3, parallelism 1) through
// libsodium's crypto_pwhash. The salt and the two cost parameters are
// stored in the key record (key_record.h) so that any reader can derive the
// same key; a record is untrusted input, so ValidateKdfParams bounds what it
// may ask for before any memory is allocated.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "crypto/secret.h"
#include "hyperfile/status.h"

namespace hyperfile::crypto {

// The KDF ids stored in key records (one byte).
enum class KdfId : uint8_t {
  kNone = 0,      // the KEK is a 256-bit key given as is (key file, HYPERFILE_KEY)
  kArgon2id = 1,  // the KEK is Argon2id(passphrase, salt, ops, mem)
};

inline constexpr size_t kSaltBytes = 16;

// Bounds on the cost parameters (inclusive). The maximum memory is
// libsodium's "sensitive" level (1 GiB); the maximum passes is 4 times its
// "sensitive" count. Records asking for more are refused as Corrupt, so a
// hostile store cannot make a reader allocate or spin without bound.
inline constexpr uint64_t kMinKdfOps = 1;
inline constexpr uint64_t kMaxKdfOps = 16;
inline constexpr uint64_t kMinKdfMemBytes = 8 * 1024;
inline constexpr uint64_t kMaxKdfMemBytes = uint64_t{1} << 30;
// Defaults for new passphrase records: libsodium's "moderate" level
// (3 passes over 256 MiB; well under a second on a current core).
inline constexpr uint64_t kDefaultKdfOps = 3;
inline constexpr uint64_t kDefaultKdfMemBytes = uint64_t{256} << 20;

// Passphrases are 1..4096 bytes.
inline constexpr size_t kMaxPassphraseBytes = 4096;

struct KdfParams {
  KdfId id = KdfId::kNone;
  uint64_t ops = 0;                        // Argon2 passes (kNone: 0)
  uint64_t mem_bytes = 0;                  // Argon2 memory, a multiple of 1024 (kNone: 0)
  std::array<uint8_t, kSaltBytes> salt{};  // kNone: all zeros
  bool operator==(const KdfParams&) const = default;
};

// OK if `p` is a well-formed parameter set within the bounds above (kNone:
// every field zero). Otherwise Corrupt naming `where` and the field.
Status ValidateKdfParams(const KdfParams& p, std::string_view where);

// Argon2id parameters with a fresh random salt. InvalidArgument outside the
// bounds.
Result<KdfParams> NewArgon2idParams(uint64_t ops = kDefaultKdfOps,
                                    uint64_t mem_bytes = kDefaultKdfMemBytes);

// Derives the 32-byte KEK from `passphrase` (1..4096 bytes, InvalidArgument
// otherwise) with `params` (which must be kArgon2id and valid). IOError if
// libsodium cannot (out of memory).
Result<SecretKey> DeriveKek(std::string_view passphrase, const KdfParams& params);

}  // namespace hyperfile::crypto
