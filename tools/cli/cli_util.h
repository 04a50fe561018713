// SPDX-License-Identifier: Apache-2.0
// Small helpers shared by the subcommands of the `hyperfile` command.
#pragma once

#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/conventions.h"
#include "format/format.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/object_store.h"
#include "hyperfile/status.h"
#include "util/parse_number.h"

namespace hyperfile::cli {

// The one error line every subcommand prints on failure:
// "hyperfile: error: <Code>: <message>" (or JSON under --json; conventions.h).
inline void PrintError(const Status& st) { ReportError(st); }

// Splits "uri@selector" into the URI and the selector (nullopt when there is
// no '@'; an empty selector after a '@' is kept, so At::Parse rejects it
// instead of it silently meaning "latest"). The '@' must come after the last
// '/', so '@' inside a bucket or directory name is left alone; the first such
// '@' splits, so "@1764064800" (Unix seconds) survives as a selector:
// "s3://b/f@@1764064800". What the selector means is At::Parse's business
// alone: nothing here looks inside it.
inline std::pair<std::string, std::optional<std::string>> SplitAt(const std::string& spec) {
  size_t slash = spec.rfind('/');
  size_t at = spec.find('@', slash == std::string::npos ? 0 : slash + 1);
  if (at == std::string::npos) return {spec, std::nullopt};
  return {spec.substr(0, at), spec.substr(at + 1)};
}

// ------------------------------------------------------------ numbers ---

// Every numeric option and argument goes through util::ParseNumber (the
// library's one strict parser); `what` names the option in the error.
inline Result<uint64_t> ParseNumber(std::string_view what, std::string_view text,
                                    bool allow_suffix = true) {
  auto v = util::ParseNumber(text, allow_suffix);
  if (!v.ok()) {
    return Status::InvalidArgument(std::string(what) + " '" + std::string(text) +
                                   "': " + v.status().message());
  }
  return v;
}

// ParseNumber, then checked against [min, max] (before any narrowing).
inline Result<uint64_t> ParseNumberInRange(std::string_view what, std::string_view text,
                                           uint64_t min, uint64_t max, bool allow_suffix = true) {
  HF_ASSIGN_OR_RETURN(uint64_t v, ParseNumber(what, text, allow_suffix));
  if (v < min || v > max) {
    return Status::InvalidArgument(std::string(what) + " '" + std::string(text) +
                                   "': out of range (" + std::to_string(min) + " to " +
                                   std::to_string(max) + ")");
  }
  return v;
}

// A block size: a power of two from 4K to 4M, checked before it is narrowed.
inline Result<uint32_t> ParseBlockSize(std::string_view what, std::string_view text) {
  HF_ASSIGN_OR_RETURN(uint64_t v, ParseNumber(what, text));
  constexpr uint64_t kMin = 1ull << format::kMinBlockShift, kMax = 1ull << format::kMaxBlockShift;
  if (v < kMin || v > kMax || (v & (v - 1)) != 0) {
    return Status::InvalidArgument(std::string(what) + " '" + std::string(text) +
                                   "': must be a power of two from 4K to 4M");
  }
  return static_cast<uint32_t>(v);
}

// ------------------------------------------------- what a root holds ---

// Whether `key` (relative to a file's root) is one of the keys the format
// defines (the library's one rule). RemoveFile is the final judge; this only
// decides what the command refuses up front.
inline bool IsFormatKey(std::string_view key) { return IsHyperfileKey(key); }

struct RootSurvey {
  size_t segments = 0;               // seg/ keys: a hyperfile is here if > 0
  size_t format_keys = 0;            // objects that are keys of the format
  size_t foreign_count = 0;          // objects that are not part of a hyperfile
  std::vector<std::string> foreign;  // the first few of them, for messages
  bool empty() const { return segments == 0 && foreign_count == 0; }
};

// Lists the root and sorts its objects into the format's keys and the rest.
inline Result<RootSurvey> SurveyRoot(ObjectStore& store) {
  std::vector<ObjectInfo> objects;
  HF_RETURN_IF_ERROR(store.List("", "", 0, &objects));
  RootSurvey survey;
  for (const ObjectInfo& o : objects) {
    if (IsFormatKey(o.key)) survey.format_keys++;
    if (format::ParseSegmentKey(o.key).has_value()) {
      survey.segments++;
    } else if (!IsFormatKey(o.key)) {
      survey.foreign_count++;
      if (survey.foreign.size() < 3) survey.foreign.push_back(o.key);
    }
  }
  return survey;
}

// "3 objects that are not part of a hyperfile, e.g. a.txt, b/c"
inline std::string DescribeForeign(const RootSurvey& survey) {
  std::string text = std::to_string(survey.foreign_count) +
                     (survey.foreign_count == 1 ? " object that is" : " objects that are") +
                     " not part of a hyperfile, e.g. ";
  for (size_t i = 0; i < survey.foreign.size(); i++) {
    text += (i ? ", " : "") + survey.foreign[i];
  }
  return text;
}

// For a local-directory URI (file:///dir or a bare path): the directory;
// nullopt for other schemes.
inline std::optional<std::string> LocalDirectory(const std::string& uri) {
  constexpr std::string_view kFile = "file://";
  if (uri.starts_with(kFile)) return uri.substr(kFile.size());
  if (uri.find("://") == std::string::npos) return uri;
  return std::nullopt;
}

}  // namespace hyperfile::cli
