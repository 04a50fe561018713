// SPDX-License-Identifier: Apache-2.0
#include "format/removal_marker.h"

#include "util/coding.h"
#include "util/crc32c.h"

namespace hyperfile::format {

std::string EncodeRemovalMarker(const RemovalMarker& marker) {
  std::string out(kRemovalMagic);
  PutFixed64(&out, marker.checkpoint);
  PutFixed64(&out, static_cast<uint64_t>(marker.time_ms));
  PutFixed32(&out, crc32c::Value(out.data(), out.size()));
  return out;
}

bool LooksLikeRemovalMarker(std::string_view bytes) { return bytes.starts_with(kRemovalMagic); }

Result<RemovalMarker> DecodeRemovalMarker(std::string_view bytes, std::string_view where) {
  if (bytes.size() != kRemovalMarkerBytes || !LooksLikeRemovalMarker(bytes)) {
    return Status::Corrupt(std::string(where) + ": not a removal marker");
  }
  if (crc32c::Value(bytes.data(), 24) != DecodeFixed32(bytes.data() + 24)) {
    return Status::Corrupt(std::string(where) + ": removal marker checksum mismatch");
  }
  RemovalMarker m;
  m.checkpoint = DecodeFixed64(bytes.data() + 8);
  m.time_ms = static_cast<int64_t>(DecodeFixed64(bytes.data() + 16));
  return m;
}

}  // namespace hyperfile::format
