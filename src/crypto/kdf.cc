// SPDX-License-Identifier: Apache-2.0
#include "crypto/kdf.h"

#include <sodium.h>

#include <string>

namespace hyperfile::crypto {

static_assert(kSaltBytes == crypto_pwhash_argon2id_SALTBYTES);
static_assert(kMinKdfOps >= crypto_pwhash_argon2id_OPSLIMIT_MIN);
static_assert(kMinKdfMemBytes >= crypto_pwhash_argon2id_MEMLIMIT_MIN);

Status ValidateKdfParams(const KdfParams& p, std::string_view where) {
  const std::string w(where);
  switch (p.id) {
    case KdfId::kNone: {
      bool zero_salt = true;
      for (uint8_t b : p.salt) zero_salt = zero_salt && b == 0;
      if (p.ops != 0 || p.mem_bytes != 0 || !zero_salt) {
        return Status::Corrupt(w + ": a raw key has no KDF parameters, but some are set");
      }
      return Status::OK();
    }
    case KdfId::kArgon2id:
      if (p.ops < kMinKdfOps || p.ops > kMaxKdfOps) {
        return Status::Corrupt(w + ": Argon2id passes " + std::to_string(p.ops) +
                               " outside [1, 16]");
      }
      if (p.mem_bytes < kMinKdfMemBytes || p.mem_bytes > kMaxKdfMemBytes ||
          p.mem_bytes % 1024 != 0) {
        return Status::Corrupt(w + ": Argon2id memory " + std::to_string(p.mem_bytes) +
                               " bytes is not a multiple of 1 KiB in [8 KiB, 1 GiB]");
      }
      return Status::OK();
  }
  return Status::Corrupt(w + ": unknown KDF id " + std::to_string(static_cast<int>(p.id)));
}

Result<KdfParams> NewArgon2idParams(uint64_t ops, uint64_t mem_bytes) {
  HF_RETURN_IF_ERROR(InitSodium());
  KdfParams p;
  p.id = KdfId::kArgon2id;
  p.ops = ops;
  p.mem_bytes = mem_bytes;
  Status st = ValidateKdfParams(p, "Argon2id parameters");
  if (!st.ok()) return Status::InvalidArgument(st.message());
  RandomBytes(p.salt.data(), p.salt.size());
  return p;
}

Result<SecretKey> DeriveKek(std::string_view passphrase, const KdfParams& params) {
  HF_RETURN_IF_ERROR(InitSodium());
  if (passphrase.empty() || passphrase.size() > kMaxPassphraseBytes) {
    return Status::InvalidArgument("a passphrase is 1 to 4096 bytes, not " +
                                   std::to_string(passphrase.size()));
  }
  if (params.id != KdfId::kArgon2id) {
    return Status::InvalidArgument("DeriveKek: the parameters are not Argon2id");
  }
  Status st = ValidateKdfParams(params, "Argon2id parameters");
  if (!st.ok()) return Status::InvalidArgument(st.message());
  auto kek = SecretKey::Zeroed();
  if (!kek.ok()) return kek.status();
  if (crypto_pwhash(kek->mutable_data(), SecretKey::kSize, passphrase.data(), passphrase.size(),
                    params.salt.data(), params.ops, static_cast<size_t>(params.mem_bytes),
                    crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Status::IOError("Argon2id failed (out of memory for " +
                           std::to_string(params.mem_bytes >> 20) + " MiB?)");
  }
  return kek;
}

}  // namespace hyperfile::crypto
