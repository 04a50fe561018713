// SPDX-License-Identifier: Apache-2.0
// The seal step of encrypted files, as the format layer sees it: an
// interface that frames (frame.h) and index nodes (format.h) call to encrypt
// and authenticate their payload, implemented above this layer
// (src/file/sealing.h, over src/crypto/aead.h). docs/format.md "Sealed
// frames and nodes"; docs/design/0011-encryption-keys.md.
//
// A sealed payload is [24-byte nonce][ciphertext][16-byte tag]: kSealBytes
// more than the plaintext. The associated data binds it to its place: the
// implementation derives the file id from the checkpoint (the file whose
// segment ids cover it: the own file or a clone origin) and adds the
// caller's `header` bytes (the frame's or node's plain header), so a payload
// moved to another place, checkpoint, writer session or file fails to open.
//
// Thread-safety: implementations are immutable once built; Seal and Open may
// be called concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "hyperfile/status.h"

namespace hyperfile::format {

inline constexpr uint32_t kSealBytes = 40;  // nonce + tag
// Cipher ids of the segment header (byte 166): 0 = not encrypted.
inline constexpr uint8_t kCipherNone = 0;
inline constexpr uint8_t kCipherXChaCha20Poly1305 = 1;

enum class SealKind : uint8_t { kDataFrame = 1, kIndexNode = 2 };

struct SealPlace {
  SealKind kind = SealKind::kDataFrame;
  // The segment that holds the payload (or whose data object does).
  uint64_t checkpoint = 0;
  // Its writer epoch (data frames; index nodes use 0: a node reference does
  // not carry its segment's epoch, and the checkpoint and offset are enough
  // there, see the design note).
  uint64_t writer_epoch = 0;
  bool in_data_object = false;
  // Data frame: the block's logical byte offset. Index node: its byte offset
  // in its segment.
  uint64_t offset = 0;
};

class Sealer {
 public:
  virtual ~Sealer() = default;
  // The header cipher id (kCipherXChaCha20Poly1305).
  virtual uint8_t cipher() const = 0;
  // Appends the sealed form of `plain` (kSealBytes longer) to *out.
  // `header` is authenticated with the place, not stored.
  virtual void Seal(const SealPlace& place, std::string_view header, std::string_view plain,
                    std::string* out) const = 0;
  // Replaces *out with the plaintext if `sealed` authenticates for `place`
  // and `header`; else Corrupt "<where>: authentication failed ..." and *out
  // is empty. Nothing of the plaintext is released before the tag checks.
  virtual Status Open(const SealPlace& place, std::string_view header, std::string_view sealed,
                      std::string* out, std::string_view where) const = 0;
};

}  // namespace hyperfile::format
