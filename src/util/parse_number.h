// SPDX-License-Identifier: Apache-2.0
// The one strict parser of numbers that users type (CLI options, nbdkit
// keys): decimal digits only (no sign, spaces, fraction or hex), overflow
// detected. With `allow_suffix` a binary unit may follow: K, M, G or T (any
// case, optionally followed by "i" and/or "B": 64K, 64k, 64KiB, 64KB), or a
// bare "B". On error: InvalidArgument whose message is only the reason
// ("empty", "too large ...", ...); the caller names the option and value.
#pragma once

#include <cstdint>
#include <string_view>

#include "hyperfile/status.h"

namespace hyperfile::util {

Result<uint64_t> ParseNumber(std::string_view text, bool allow_suffix = true);

// A duration that users type: digits then a unit, ms, s, m or h ("250ms",
// "5s", "2m", "1h"), or "0" alone; at most one day. Returns milliseconds.
// On error: InvalidArgument whose message is only the reason.
Result<uint64_t> ParseDurationMs(std::string_view text);

}  // namespace hyperfile::util
