// SPDX-License-Identifier: Apache-2.0
#include "crypto/aead.h"

#include <sodium.h>

#include "util/coding.h"

namespace hyperfile::crypto {

static_assert(kNonceBytes == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
static_assert(kTagBytes == crypto_aead_xchacha20poly1305_ietf_ABYTES);
static_assert(SecretKey::kSize == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);

namespace {

class CsprngNonces final : public NonceSource {
 public:
  void Next(unsigned char nonce[kNonceBytes]) override { RandomBytes(nonce, kNonceBytes); }
};

const unsigned char* U(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

std::string FrameAssociatedData(const FramePlace& place) {
  std::string ad = "HFAD";
  PutFixed8(&ad, 1);
  PutFixed8(&ad, static_cast<uint8_t>(place.kind));
  PutFixed8(&ad, place.in_data_object ? 1 : 0);
  PutFixed8(&ad, 0);
  PutFixed64(&ad, place.file_id);
  PutFixed64(&ad, place.checkpoint);
  PutFixed64(&ad, place.writer_epoch);
  PutFixed64(&ad, place.offset);
  return ad;
}

NonceSource& RandomNonces() {
  static CsprngNonces source;
  return source;
}

Status SealTo(const SecretKey& key, std::string_view ad, std::string_view plaintext,
              std::string* out, NonceSource& nonces) {
  HF_RETURN_IF_ERROR(InitSodium());
  if (key.empty()) return Status::InvalidArgument("seal: no key");
  if (plaintext.size() > kMaxSealPlaintext) {
    return Status::InvalidArgument("seal: " + std::to_string(plaintext.size()) +
                                   " bytes is more than a frame may hold (1 GiB)");
  }
  const size_t start = out->size();
  out->resize(start + kSealOverhead + plaintext.size());
  auto* p = reinterpret_cast<unsigned char*>(out->data() + start);
  nonces.Next(p);
  unsigned long long written = 0;
  if (crypto_aead_xchacha20poly1305_ietf_encrypt(p + kNonceBytes, &written, U(plaintext),
                                                 plaintext.size(), U(ad), ad.size(), nullptr, p,
                                                 key.data()) != 0 ||
      written != plaintext.size() + kTagBytes) {
    out->resize(start);
    return Status::IOError("seal: XChaCha20-Poly1305 encryption failed");
  }
  return Status::OK();
}

Result<std::string> Seal(const SecretKey& key, std::string_view ad, std::string_view plaintext,
                         NonceSource& nonces) {
  std::string out;
  HF_RETURN_IF_ERROR(SealTo(key, ad, plaintext, &out, nonces));
  return out;
}

Status OpenTo(const SecretKey& key, std::string_view ad, std::string_view sealed, std::string* out,
              std::string_view where) {
  // *out is cleared on every failure below; on success every byte of it is
  // written. Not clearing it first saves zero-filling a reused buffer.
  Status init = InitSodium();
  if (!init.ok()) {
    out->clear();
    return init;
  }
  if (key.empty()) {
    out->clear();
    return Status::InvalidArgument(std::string(where) + ": no key to open it with");
  }
  if (sealed.size() < kSealOverhead) {
    out->clear();
    return Status::Corrupt(std::string(where) + ": sealed frame of " +
                           std::to_string(sealed.size()) +
                           " bytes is shorter than its 40-byte overhead");
  }
  const size_t n = sealed.size() - kSealOverhead;
  out->resize(n);
  unsigned long long written = 0;
  // libsodium verifies the tag before it decrypts anything into *out.
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          reinterpret_cast<unsigned char*>(out->data()), &written, nullptr, U(sealed) + kNonceBytes,
          sealed.size() - kNonceBytes, U(ad), ad.size(), U(sealed), key.data()) != 0 ||
      written != n) {
    out->clear();
    return Status::Corrupt(std::string(where) +
                           ": authentication failed (the bytes were changed, or belong to another "
                           "place, checkpoint or file, or to another key)");
  }
  return Status::OK();
}

Result<std::string> Open(const SecretKey& key, std::string_view ad, std::string_view sealed,
                         std::string_view where) {
  std::string out;
  HF_RETURN_IF_ERROR(OpenTo(key, ad, sealed, &out, where));
  return out;
}

}  // namespace hyperfile::crypto
