// SPDX-License-Identifier: Apache-2.0
#include "format/frame.h"

#include <lz4.h>
#include <zstd.h>

#include <cstring>
#include <memory>

#include "util/coding.h"
#include "util/crc32c.h"

namespace hyperfile::format {
namespace {

uint32_t FrameCrc(const char* data, size_t n, uint64_t logical) {
  char off[8];
  EncodeFixed64(off, logical);
  return crc32c::Extend(crc32c::Value(data, n), off, 8);
}

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};
// One context per thread: flush and read workers reuse theirs.
ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxFree> ctx(ZSTD_createCCtx());
  return ctx.get();
}
ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxFree> ctx(ZSTD_createDCtx());
  return ctx.get();
}

Status Bad(std::string_view where, size_t at, std::string_view what) {
  return Status::Corrupt(std::string(where) + " (frame byte " + std::to_string(at) +
                         "): " + std::string(what));
}

// Scratch space of a thread's frame work (compressed bytes before sealing,
// plaintext after opening).
std::string& Scratch() {
  thread_local std::string s;
  return s;
}

// Compresses `block` with `codec` (kFrameZstd at `level`, or kFrameLz4) into
// dst (`limit` bytes): the payload's length, or 0 if the codec is raw or
// the result would not save at least 1/64 of the block (store it raw).
size_t CompressPayload(uint8_t codec, int level, std::string_view block, char* dst, size_t limit) {
  if (codec == kFrameZstd) {
    size_t r = ZSTD_compressCCtx(ThreadCCtx(), dst, limit, block.data(), block.size(), level);
    if (!ZSTD_isError(r) && r <= limit) return r;
  } else if (codec == kFrameLz4) {
    int r = LZ4_compress_default(block.data(), dst, static_cast<int>(block.size()),
                                 static_cast<int>(limit));
    if (r > 0) return static_cast<size_t>(r);
  }
  return 0;
}

// A compressed payload must save at least 1/64 of the block to be kept.
size_t PayloadLimit(size_t n) { return n - n / 64 - 1; }

void PutFrameHeader(char* h, uint8_t used, uint8_t flags, size_t n) {
  h[0] = static_cast<char>(used);
  h[1] = static_cast<char>(flags);
  h[2] = h[3] = 0;
  EncodeFixed32(h + 4, static_cast<uint32_t>(n));
}

}  // namespace

uint32_t EncodeFrame(uint8_t codec, int level, std::string_view block, uint64_t logical,
                     std::string* out, const FrameSeal* seal) {
  const size_t start = out->size();
  const size_t n = block.size();
  const size_t limit = PayloadLimit(n);
  if (seal && seal->sealer) {
    // The sealer reads the payload where it is: a raw block straight from
    // the caller's bytes, a compressed one from this thread's scratch (kept
    // at its largest size, so it is not zero-filled again). No unsealed
    // frame is built first: it cost a copy and a CRC of every raw block.
    std::string_view payload = block;
    uint8_t used = kFrameRaw;
    if (codec == kFrameZstd || codec == kFrameLz4) {
      std::string& scratch = Scratch();
      if (scratch.size() < limit) scratch.resize(limit);
      if (size_t r = CompressPayload(codec, level, block, scratch.data(), limit); r > 0) {
        payload = std::string_view(scratch.data(), r);
        used = codec;
      }
    }
    char h[kFrameHeaderBytes];
    PutFrameHeader(h, used, kFrameFlagSealed, n);
    out->append(h, kFrameHeaderBytes);
    SealPlace place = seal->place;
    place.kind = SealKind::kDataFrame;
    place.offset = logical;
    seal->sealer->Seal(place, std::string_view(h, kFrameHeaderBytes), payload, out);
    const size_t body = out->size() - start;
    char crc[4];
    EncodeFixed32(crc, FrameCrc(out->data() + start, body, logical));
    out->append(crc, 4);
    return static_cast<uint32_t>(body + 4);
  }
  out->resize(start + kFrameHeaderBytes + n + 4);
  char* payload = out->data() + start + kFrameHeaderBytes;
  size_t stored = CompressPayload(codec, level, block, payload, limit);
  uint8_t used = stored > 0 ? codec : kFrameRaw;
  if (stored == 0) {
    std::memcpy(payload, block.data(), n);
    stored = n;
  }
  char* h = out->data() + start;
  PutFrameHeader(h, used, 0, n);
  const size_t body = kFrameHeaderBytes + stored;
  EncodeFixed32(h + body, FrameCrc(h, body, logical));
  out->resize(start + body + 4);
  return static_cast<uint32_t>(body + 4);
}

Status DecodeFrame(std::string_view frame, uint64_t logical, uint32_t block_size, char* dst,
                   std::string_view where, const FrameSeal* seal) {
  if (frame.size() < kFrameOverhead || frame.size() > MaxFrameBytes(block_size)) {
    return Bad(where, 0,
               "frame length " + std::to_string(frame.size()) + " out of range (" +
                   std::to_string(kFrameOverhead) + ".." +
                   std::to_string(MaxFrameBytes(block_size)) + ")");
  }
  const size_t body = frame.size() - 4;
  if (FrameCrc(frame.data(), body, logical) != DecodeFixed32(frame.data() + body)) {
    return Bad(where, body, "data checksum mismatch (frame damaged or not this block's)");
  }
  const uint8_t codec = static_cast<uint8_t>(frame[0]);
  const uint8_t flags = static_cast<uint8_t>(frame[1]);
  const bool sealed = (flags & kFrameFlagSealed) != 0;
  const bool keyed = seal && seal->sealer;
  if ((flags & ~kFrameFlagSealed) != 0 || frame[2] != 0 || frame[3] != 0) {
    return Bad(where, 1, "reserved bits set");
  }
  if (sealed && !keyed) {
    return Status::Auth(std::string(where) + ": encrypted frame; no key was given");
  }
  if (!sealed && keyed) {
    return Bad(where, 1, "frame is not sealed, but the file is encrypted (tampered)");
  }
  const uint32_t decoded = DecodeFixed32(frame.data() + 4);
  if (decoded != block_size) {
    return Bad(where, 4,
               "frame declares " + std::to_string(decoded) + " decoded bytes, the block is " +
                   std::to_string(block_size));
  }
  const char* payload = frame.data() + kFrameHeaderBytes;
  size_t n = body - kFrameHeaderBytes;
  if (sealed) {
    if (n < kSealBytes) return Bad(where, 8, "sealed frame shorter than its nonce and tag");
    SealPlace place = seal->place;
    place.kind = SealKind::kDataFrame;
    place.offset = logical;
    std::string& plain = Scratch();
    HF_RETURN_IF_ERROR(seal->sealer->Open(place, frame.substr(0, kFrameHeaderBytes),
                                          std::string_view(payload, n), &plain, where));
    payload = plain.data();
    n = plain.size();
  } else if (frame.size() > block_size + kFrameOverhead) {
    return Bad(where, 0, "unsealed frame longer than a raw block");
  }
  switch (codec) {
    case kFrameRaw:
      if (n != block_size) return Bad(where, 0, "raw frame of the wrong length");
      std::memcpy(dst, payload, n);
      return Status::OK();
    case kFrameLz4: {
      int r = LZ4_decompress_safe(payload, dst, static_cast<int>(n), static_cast<int>(block_size));
      if (r != static_cast<int>(block_size)) return Bad(where, 8, "lz4 payload does not decode");
      return Status::OK();
    }
    case kFrameZstd: {
      size_t r = ZSTD_decompressDCtx(ThreadDCtx(), dst, block_size, payload, n);
      if (ZSTD_isError(r)) {
        return Bad(where, 8, std::string("zstd payload does not decode: ") + ZSTD_getErrorName(r));
      }
      if (r != block_size) return Bad(where, 8, "zstd payload decodes to the wrong length");
      return Status::OK();
    }
    default:
      return Bad(where, 0, "unknown frame codec " + std::to_string(codec));
  }
}

}  // namespace hyperfile::format
