// SPDX-License-Identifier: Apache-2.0
// The removal marker: what `RemoveFile` commits as the newest checkpoint
// before it deletes anything (docs/format.md, "Removal marker").
//
// It sits at a segment key (seg/<~id>), so it is the head that every open
// finds first, and it was created with a create-only put, so no writer can
// commit after it. An interrupted removal therefore leaves a file that fails
// to open with a clear "partly removed" error instead of an older state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "hyperfile/status.h"

namespace hyperfile::format {

inline constexpr std::string_view kRemovalMagic = "HFREMOVE";
inline constexpr size_t kRemovalMarkerBytes = 28;

struct RemovalMarker {
  uint64_t checkpoint = 0;  // the id it occupies
  int64_t time_ms = 0;      // when the removal started
};

std::string EncodeRemovalMarker(const RemovalMarker& marker);
// True if the first bytes of an object are a removal marker's magic.
bool LooksLikeRemovalMarker(std::string_view bytes);
Result<RemovalMarker> DecodeRemovalMarker(std::string_view bytes, std::string_view where);

}  // namespace hyperfile::format
