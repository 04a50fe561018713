// SPDX-License-Identifier: Apache-2.0
// Frames: the stored form of one compressed logical block (docs/format.md
// "Frames"). A file written with a codec stores every data block as one
// frame, so any read of a block costs one ranged GET of at most one frame;
// the index records each frame's offset and stored length
// (format::ExtentEntry::stored_length).
//
//   [codec u8][flags u8][reserved u16][decoded length u32][payload][crc u32]
//
// The CRC32C covers every byte before it and then the block's logical byte
// offset (u64), so a frame served for another place fails like a chunk
// does. Flags bit 0 (sealed): the payload is [nonce][ciphertext][tag] of the
// (compressed) payload under the file's data key (seal.h), authenticated
// with the frame's place and its 8 header bytes. The CRC stays outermost
// (damage is told from tampering).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "format/seal.h"
#include "hyperfile/status.h"

namespace hyperfile::format {

inline constexpr uint8_t kFrameRaw = 0;   // payload = the block's bytes
inline constexpr uint8_t kFrameLz4 = 1;   // payload = one LZ4 block (lz4.h)
inline constexpr uint8_t kFrameZstd = 2;  // payload = one zstd frame
inline constexpr uint8_t kFrameFlagSealed = 1;
inline constexpr uint32_t kFrameHeaderBytes = 8;
inline constexpr uint32_t kFrameOverhead = kFrameHeaderBytes + 4;
// Highest zstd level a writer may use (above it zstd is too slow for a
// flush; readers decode any level).
inline constexpr int kMaxZstdLevel = 19;

// Stored length bound of a frame holding a block of `block_size` bytes.
// (covers the sealed form: kSealBytes more).
inline uint32_t MaxFrameBytes(uint32_t block_size) {
  return block_size + kFrameOverhead + kSealBytes;
}

// How a frame of an encrypted file is sealed: the sealer and the block's
// place (checkpoint, writer epoch, data object or not; the offset is the
// `logical` argument).
struct FrameSeal {
  const Sealer* sealer = nullptr;
  SealPlace place;
};

// Appends the frame of `block` (its first byte at logical byte offset
// `logical`) to *out and returns its length. `codec` is kFrameLz4 or
// kFrameZstd (with `level`), or kFrameRaw. The block is compressed once,
// into a buffer bounded by what would save at least 1/64 of it: if the
// result does not fit (the data is incompressible) the block is stored raw
// — no second attempt, and at most kFrameOverhead bytes of expansion.
// With `seal` (an encrypted file) the payload is sealed after compressing
// (flag bit 0; kSealBytes more).
uint32_t EncodeFrame(uint8_t codec, int level, std::string_view block, uint64_t logical,
                     std::string* out, const FrameSeal* seal = nullptr);

// Checks the frame (CRC over its bytes and `logical`, then its header) and
// decodes it into dst (block_size bytes). Never allocates beyond block_size
// and fixed codec state; a frame whose declared or decoded length is not
// block_size, whose codec is unknown or whose payload does not decode is
// Corrupt "<where>: ..." (`where` names the object and offset). With `seal`
// (the file is encrypted) the frame must be sealed and authenticate for its
// place (else Corrupt: an unsealed frame in an encrypted file is tampering);
// without, a sealed frame is Auth "encrypted frame; no key".
Status DecodeFrame(std::string_view frame, uint64_t logical, uint32_t block_size, char* dst,
                   std::string_view where, const FrameSeal* seal = nullptr);

// The codec byte of a frame that passed DecodeFrame.
inline uint8_t FrameCodec(std::string_view frame) { return static_cast<uint8_t>(frame[0]); }

}  // namespace hyperfile::format
