// SPDX-License-Identifier: Apache-2.0
#include "util/parse_number.h"

#include <limits>
#include <string>

namespace hyperfile::util {

Result<uint64_t> ParseNumber(std::string_view text, bool allow_suffix) {
  const std::string expected = allow_suffix
                                   ? "expected a whole number of bytes (digits, optionally "
                                     "followed by K, M, G or T)"
                                   : "expected a whole number (digits only)";
  auto bad = [](const std::string& why) { return Status::InvalidArgument(why); };
  if (text.empty()) return bad("empty; " + expected);
  uint64_t v = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; i++) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      return bad("too large (at most 18446744073709551615)");
    }
    v = v * 10 + digit;
  }
  if (i == 0) return bad(expected);
  std::string_view unit = text.substr(i);
  if (unit.empty()) return v;
  if (!allow_suffix) return bad(expected);
  int shift = -1;
  switch (unit[0]) {
    case 'K':
    case 'k':
      shift = 10;
      break;
    case 'M':
    case 'm':
      shift = 20;
      break;
    case 'G':
    case 'g':
      shift = 30;
      break;
    case 'T':
    case 't':
      shift = 40;
      break;
    case 'B':
    case 'b':
      shift = 0;
      break;
  }
  std::string_view rest = unit.substr(1);
  if (shift > 0 && !rest.empty() && rest[0] == 'i') rest.remove_prefix(1);
  if (shift > 0 && !rest.empty() && (rest[0] == 'B' || rest[0] == 'b')) rest.remove_prefix(1);
  if (shift < 0 || !rest.empty()) return bad("bad size unit; " + expected);
  if (shift > 0 && v > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return bad("too large (at most 18446744073709551615 bytes)");
  }
  return v << shift;
}

Result<uint64_t> ParseDurationMs(std::string_view text) {
  if (text == "0") return uint64_t{0};
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') digits++;
  if (digits == 0) return Status::InvalidArgument("expected digits then a unit (e.g. 250ms, 5s)");
  const std::string_view unit = text.substr(digits);
  uint64_t scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60'000;
  } else if (unit == "h") {
    scale = 3'600'000;
  } else {
    return Status::InvalidArgument("the unit must be ms, s, m or h (e.g. 250ms, 5s)");
  }
  HF_ASSIGN_OR_RETURN(uint64_t n, ParseNumber(text.substr(0, digits), /*allow_suffix=*/false));
  constexpr uint64_t kDayMs = 86'400'000;
  if (n > kDayMs / scale) return Status::InvalidArgument("more than one day");
  return n * scale;
}

}  // namespace hyperfile::util
