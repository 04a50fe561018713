// Small helpers shared by the subcommands of the `hyperfile` command.
#pragma once

#include <cstdio>
#include <string>
#include <utility>

#include "hyperfile/status.h"

namespace hyperfile::cli {

// The one error line every subcommand prints on failure:
// "hyperfile: error: <text>". Newlines are flattened so it stays one line.
inline void PrintErrorLine(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::fprintf(stderr, "hyperfile: error: %s\n", text.c_str());
}

// "hyperfile: error: <Code>: <message>".
inline void PrintError(const Status& st) { PrintErrorLine(st.ToString()); }

// Splits "uri@selector" into the URI and the selector (empty when absent).
// The '@' must come after the last '/', so '@' inside a bucket or directory
// name is left alone; the first such '@' splits, so "@1764064800" (Unix
// seconds) survives as a selector: "s3://b/f@@1764064800".
inline std::pair<std::string, std::string> SplitAt(const std::string& spec) {
  size_t slash = spec.rfind('/');
  size_t at = spec.find('@', slash == std::string::npos ? 0 : slash + 1);
  if (at == std::string::npos) return {spec, ""};
  return {spec.substr(0, at), spec.substr(at + 1)};
}

}  // namespace hyperfile::cli
