// SPDX-License-Identifier: Apache-2.0
// Authenticated encryption of frames: XChaCha20-Poly1305-IETF
// (draft-irtf-cfrg-xchacha-03: libsodium's HChaCha20 for the subkey, then
// OpenSSL's vectorised RFC 8439 ChaCha20-Poly1305; the bytes are those of
// libsodium's crypto_aead_xchacha20poly1305_ietf_*), with associated data
// that binds a frame to its place in a file. docs/design/0011-encryption-keys.md says why
// this cipher and this nonce scheme.
//
// A sealed frame is
//
//   [24-byte nonce][ciphertext, as long as the plaintext][16-byte tag]
//
// i.e. kSealOverhead = 40 bytes more than the plaintext. Nothing else is in
// it: which cipher a file uses is in its key record (key_record.h), and
// where the frame belongs is not stored but re-derived by the reader and fed
// in as associated data, so a frame read from anywhere else fails.
//
// Nonces (the argument in full is in the design note): every Seal draws a
// fresh 192-bit nonce from the operating system's CSPRNG. Nothing about a
// nonce depends on state a crash, a clone, a copied prefix or a second writer
// could repeat, and the chance that any two of 2^64 frames sealed under one
// key share a nonce is below 2^-64. NonceSource exists only so that
// known-answer tests can fix the nonce; production code never passes one.
//
// Thread-safety: every function may be called concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "crypto/secret.h"
#include "hyperfile/status.h"

namespace hyperfile::crypto {

inline constexpr size_t kNonceBytes = 24;
inline constexpr size_t kTagBytes = 16;
inline constexpr size_t kSealOverhead = kNonceBytes + kTagBytes;
// The largest plaintext Seal accepts (frames are far smaller).
inline constexpr size_t kMaxSealPlaintext = size_t{1} << 30;

// The cipher ids stored in key records (one byte).
enum class CipherId : uint8_t {
  kXChaCha20Poly1305 = 1,
};

// What the associated data of a frame binds it to. Every field is checked
// by authentication: a frame read at another place fails to Open.
enum class FrameKind : uint8_t {
  kDataFrame = 1,  // file data (a data area or a data object)
  kIndexNode = 2,  // an index node
};
struct FramePlace {
  FrameKind kind = FrameKind::kDataFrame;
  // The file that wrote the frame: the file id of the segment that holds
  // it (its header, offset 48). A clone reading its origin's frames uses
  // the origin's file id (the one in the origin's segment headers).
  uint64_t file_id = 0;
  // The checkpoint that wrote the frame: the id of the segment that holds it
  // (or whose data object holds it). A frame replayed from another
  // checkpoint has another id.
  uint64_t checkpoint = 0;
  // The writer epoch of that segment (its header, offset 40; it also names
  // the data object dat/<~checkpoint>-<epoch>).
  uint64_t writer_epoch = 0;
  // True if the frame is in the data object, false if in the segment.
  bool in_data_object = false;
  // Data frame: the logical byte offset of its first byte in the file.
  // Index node: the byte offset of the node in its object.
  uint64_t offset = 0;
};

// The associated data for a frame at `place`, kFrameAdBytes long:
//
//   0  4  "HFAD"            (domain separation: no other hyperfile AD starts so)
//   4  1  layout version (1)
//   5  1  kind (FrameKind)
//   6  1  1 if in the data object, else 0
//   7  1  reserved, 0
//   8  8  file id            16  8  checkpoint (segment id)
//   24 8  writer epoch       32  8  offset
//
// little-endian (docs/format.md, "Key records" and "Associated data").
inline constexpr size_t kFrameAdBytes = 40;
std::string FrameAssociatedData(const FramePlace& place);

// Where nonces come from. Only tests implement this; see above.
class NonceSource {
 public:
  virtual ~NonceSource() = default;
  virtual void Next(unsigned char nonce[kNonceBytes]) = 0;
};
// The CSPRNG source every caller outside the known-answer tests uses.
NonceSource& RandomNonces();

// Appends the sealed form of `plaintext` (nonce, ciphertext, tag) to *out.
// InvalidArgument for an empty key or a plaintext over kMaxSealPlaintext.
// `ad` may be any length (a FrameAssociatedData, or a key record's prefix).
Status SealTo(const SecretKey& key, std::string_view ad, std::string_view plaintext,
              std::string* out, NonceSource& nonces = RandomNonces());
Result<std::string> Seal(const SecretKey& key, std::string_view ad, std::string_view plaintext,
                         NonceSource& nonces = RandomNonces());

// Replaces *out with the plaintext of `sealed` if it authenticates under
// `key` and `ad`. Otherwise *out is left empty and the status is Corrupt:
//   "<where>: sealed frame of N bytes is shorter than its 40-byte overhead"
//   "<where>: authentication failed (the bytes were changed, or belong to
//    another place, checkpoint or file, or to another key)"
// `where` names the object and offset for the message. Nothing of the
// plaintext is released before the tag is verified.
Status OpenTo(const SecretKey& key, std::string_view ad, std::string_view sealed, std::string* out,
              std::string_view where);
Result<std::string> Open(const SecretKey& key, std::string_view ad, std::string_view sealed,
                         std::string_view where);

}  // namespace hyperfile::crypto
