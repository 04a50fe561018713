// SPDX-License-Identifier: Apache-2.0
#include "crypto/secret.h"

#include <sodium.h>

#include <cstring>
#include <utility>

namespace hyperfile::crypto {

namespace {

constexpr size_t kMaxSecureBuffer = 1u << 20;
constexpr size_t kMaxKeyFileBytes = 4096;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

Status InitSodium() {
  // sodium_init is itself thread-safe and idempotent (0 = initialised now,
  // 1 = already, -1 = failure).
  static const int rc = sodium_init();
  if (rc < 0) return Status::IOError("libsodium could not be initialised (no random source?)");
  return Status::OK();
}

void RandomBytes(void* out, size_t n) { randombytes_buf(out, n); }

Result<SecureBuffer> SecureBuffer::Allocate(size_t n) {
  HF_RETURN_IF_ERROR(InitSodium());
  if (n > kMaxSecureBuffer) {
    return Status::InvalidArgument("secure buffer of " + std::to_string(n) +
                                   " bytes (at most 1 MiB)");
  }
  SecureBuffer b;
  if (n == 0) return b;
  b.data_ = static_cast<unsigned char*>(sodium_malloc(n));
  if (b.data_ == nullptr) return Status::IOError("cannot allocate guarded memory for a secret");
  b.size_ = n;
  sodium_memzero(b.data_, n);
  return b;
}

Result<SecureBuffer> SecureBuffer::CopyOf(std::string_view bytes) {
  auto b = Allocate(bytes.size());
  if (!b.ok()) return b.status();
  if (!bytes.empty()) std::memcpy(b->data(), bytes.data(), bytes.size());
  return b;
}

SecureBuffer::SecureBuffer(SecureBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

SecureBuffer& SecureBuffer::operator=(SecureBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) sodium_free(data_);  // zeroes before unmapping
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SecureBuffer::~SecureBuffer() {
  if (data_ != nullptr) sodium_free(data_);
}

void SecureBuffer::Shrink(size_t n) {
  if (n >= size_) return;
  sodium_memzero(data_ + n, size_ - n);
  size_ = n;
}

Result<SecretKey> SecretKey::Zeroed() {
  auto b = SecureBuffer::Allocate(kSize);
  if (!b.ok()) return b.status();
  return SecretKey(std::move(*b));
}

Result<SecretKey> SecretKey::Random() {
  auto k = Zeroed();
  if (!k.ok()) return k.status();
  RandomBytes(k->mutable_data(), kSize);
  return k;
}

Result<SecretKey> SecretKey::FromBytes(std::string_view raw, std::string_view what) {
  if (raw.size() != kSize) {
    return Status::InvalidArgument(std::string(what) + ": a key is 32 bytes, not " +
                                   std::to_string(raw.size()));
  }
  auto b = SecureBuffer::CopyOf(raw);
  if (!b.ok()) return b.status();
  return SecretKey(std::move(*b));
}

Result<SecretKey> SecretKey::FromText(std::string_view text, std::string_view what) {
  std::string_view t = Trim(text);
  auto k = Zeroed();
  if (!k.ok()) return k.status();
  size_t len = 0;
  const char* end = nullptr;
  bool decoded = false;
  if (t.size() == 2 * kSize) {
    decoded =
        sodium_hex2bin(k->mutable_data(), kSize, t.data(), t.size(), nullptr, &len, &end) == 0 &&
        len == kSize && end == t.data() + t.size();
  } else if (t.size() == 44 || t.size() == 43) {
    int variant =
        t.size() == 44 ? sodium_base64_VARIANT_ORIGINAL : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
    decoded = sodium_base642bin(k->mutable_data(), kSize, t.data(), t.size(), nullptr, &len, &end,
                                variant) == 0 &&
              len == kSize && end == t.data() + t.size();
  }
  if (!decoded) {
    return Status::InvalidArgument(
        std::string(what) + ": not a key (expected 64 hexadecimal digits or 44 base64 " +
        "characters for 32 bytes; got " + std::to_string(t.size()) + " characters)");
  }
  return k;
}

Result<SecretKey> SecretKey::FromKeyFileContents(std::string_view contents, std::string_view what) {
  if (contents.size() > kMaxKeyFileBytes) {
    return Status::InvalidArgument(std::string(what) + ": a key file is at most 4096 bytes, not " +
                                   std::to_string(contents.size()));
  }
  if (contents.size() == kSize) return FromBytes(contents, what);
  return FromText(contents, what);
}

std::string SecretKey::Describe() const {
  if (empty()) return "no key";
  auto id = DeriveKeyId(*this, "hyperfile key fingerprint v1", "");
  if (!id.ok()) return "key (fingerprint unavailable)";
  return "key " + KeyIdHex(*id).substr(0, 16);
}

Result<KeyId> DeriveKeyId(const SecretKey& key, std::string_view label, std::string_view context) {
  HF_RETURN_IF_ERROR(InitSodium());
  if (key.empty()) return Status::InvalidArgument("key id of an empty key");
  crypto_generichash_state st;
  KeyId id{};
  if (crypto_generichash_init(&st, key.data(), SecretKey::kSize, id.size()) != 0 ||
      crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(label.data()),
                                label.size()) != 0 ||
      crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(context.data()),
                                context.size()) != 0 ||
      crypto_generichash_final(&st, id.data(), id.size()) != 0) {
    sodium_memzero(&st, sizeof st);
    return Status::IOError("BLAKE2b failed");
  }
  sodium_memzero(&st, sizeof st);
  return id;
}

std::string KeyIdHex(const KeyId& id) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  s.reserve(2 * id.size());
  for (uint8_t b : id) {
    s.push_back(digits[b >> 4]);
    s.push_back(digits[b & 15]);
  }
  return s;
}

}  // namespace hyperfile::crypto
