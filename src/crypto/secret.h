// SPDX-License-Identifier: Apache-2.0
// Secrets in memory: SecureBuffer (bytes in libsodium's guarded memory) and
// SecretKey (exactly 32 bytes: a data key or a key-encryption key).
//
// Rules every secret here follows:
// - It lives in sodium_malloc'd memory (guard pages, locked when the system
//   allows) and is wiped (sodium_free zeroes it) when it is destroyed or
//   moved from. It is move-only: no copy exists by accident.
// - It is never printed. Describe() gives only a fingerprint that reveals
//   nothing about the key (a keyed BLAKE2b of a constant), and no error
//   message built here contains key bytes or key text.
//
// Thread-safety: a const object may be read from many threads at once.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "hyperfile/status.h"

namespace hyperfile::crypto {

// Initialises libsodium once (thread-safe, idempotent). Every entry point of
// this layer calls it; a failure (no usable random source) is IOError.
Status InitSodium();

// Fills `out[0, n)` with bytes from the operating system's CSPRNG
// (getrandom). Requires InitSodium() to have succeeded.
void RandomBytes(void* out, size_t n);

// A fixed-size block of secret bytes. Empty (size 0) after a move.
class SecureBuffer {
 public:
  SecureBuffer() = default;
  // n bytes of zeros; n <= 1 MiB. IOError if the guarded allocation fails.
  static Result<SecureBuffer> Allocate(size_t n);
  // A copy of `bytes` (which the caller then wipes if it can).
  static Result<SecureBuffer> CopyOf(std::string_view bytes);
  SecureBuffer(SecureBuffer&& other) noexcept;
  SecureBuffer& operator=(SecureBuffer&& other) noexcept;
  SecureBuffer(const SecureBuffer&) = delete;
  SecureBuffer& operator=(const SecureBuffer&) = delete;
  ~SecureBuffer();

  unsigned char* data() { return data_; }
  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }
  // Shortens the logical size (the bytes past it are wiped). n <= size().
  void Shrink(size_t n);

 private:
  unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

// A 256-bit key. A default-constructed or moved-from key is empty, and
// every function taking a key refuses an empty one (InvalidArgument).
class SecretKey {
 public:
  static constexpr size_t kSize = 32;
  SecretKey() = default;
  // A fresh random key.
  static Result<SecretKey> Random();
  // Exactly 32 raw bytes (InvalidArgument naming `what` otherwise).
  static Result<SecretKey> FromBytes(std::string_view raw, std::string_view what);
  // Key text: 64 hexadecimal digits, or the standard base64 of 32 bytes
  // (44 characters with the '=' padding, or 43 without). Whitespace around
  // it (a trailing newline) is ignored. Anything else is InvalidArgument
  // naming `what` and the length, never echoing the text.
  static Result<SecretKey> FromText(std::string_view text, std::string_view what);
  // A key file: exactly 32 bytes is a raw key; anything else is key text
  // (FromText). At most 4096 bytes are considered (more is refused).
  static Result<SecretKey> FromKeyFileContents(std::string_view contents, std::string_view what);

  bool empty() const { return bytes_.empty(); }
  const unsigned char* data() const { return bytes_.data(); }
  unsigned char* mutable_data() { return bytes_.data(); }

  // 16 hex digits of a keyed BLAKE2b of a fixed string under this key
  // ("key 1f2e3d4c5b6a7988"): tells two keys apart and reveals nothing of
  // them. "no key" when empty.
  std::string Describe() const;

  // Builds an all-zero key to be filled through mutable_data() (the KDF).
  static Result<SecretKey> Zeroed();

 private:
  explicit SecretKey(SecureBuffer bytes) : bytes_(std::move(bytes)) {}
  SecureBuffer bytes_;
};

// A 16-byte identifier derived from a key with a keyed BLAKE2b (the key is
// the BLAKE2b key, the message a fixed label and `context`): stored in plain
// in key records, it lets a reader tell "wrong key" from "damaged record"
// without revealing the key. Different labels give unrelated ids.
using KeyId = std::array<uint8_t, 16>;
Result<KeyId> DeriveKeyId(const SecretKey& key, std::string_view label, std::string_view context);
std::string KeyIdHex(const KeyId& id);

}  // namespace hyperfile::crypto
