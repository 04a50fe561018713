// SPDX-License-Identifier: Apache-2.0
// Log collection from the command line: streaming `append` / `write` from
// stdin, and `read --follow` (like tail -f) on a file that grows on another
// machine. See the README's "Logs" section.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "hyperfile/status.h"

namespace hyperfile::cli {

// A duration as users type it: "250ms", "5s", "2m", "1h" (digits then a
// unit; "0" alone is 0). Returns milliseconds; InvalidArgument naming `what`
// for anything else or more than 1 day.
Result<uint64_t> ParseDurationMs(std::string_view what, std::string_view text);

// `hyperfile append URI [FILE] [--flush-every D] [--flush-bytes N]` and
// `hyperfile write URI --offset N [FILE]`: stream the input into the file.
//
// The input is read in chunks of at most 1 MiB and written as it arrives;
// memory stays bounded (about 3 x flush_bytes of unflushed data plus small
// caches) whatever the input's size. A checkpoint is committed when
// flush_bytes are unflushed, and when the oldest unflushed byte is
// flush_every_ms old (0 = never by age), so while data arrives no byte waits
// longer than that, and an idle input costs nothing. On EOF, SIGINT or
// SIGTERM what was read is flushed, printing "checkpoint N: B bytes at
// OFFSET" (or JSON); the exit code is 0, or 130 after a SIGINT. A progress
// bar shows on a terminal unless quiet. Appends of one writer are ordered; a
// second writer on the file makes one of them fail with a Conflict naming
// what happened (exit 1). Bad arguments exit 2 before anything is opened.
struct StreamRequest {
  std::string uri;
  std::string input = "-";  // a path, or "-" for stdin
  bool append = true;       // false: write at `offset`
  uint64_t offset = 0;      // where `write` starts
  uint64_t flush_every_ms = 0;
  uint64_t flush_bytes = 8ull << 20;  // 64 KiB .. 1 GiB
  bool quiet = false;
};
int RunStream(const StreamRequest& request);

// `hyperfile read URI --follow [--from-end] [--offset N] [--poll D]`: prints
// the file from `offset` (or from its end) and then every new byte as
// checkpoints appear, polling every poll_ms (one LIST per poll while nothing
// changes). A writer that restarts is simply followed. A restore prints a
// notice on stderr and continues from the restored size; a truncation prints
// a notice and continues from the new size; a removed (or replaced) file
// ends the command with an error (exit 1). SIGTERM ends it with 0, SIGINT
// with 130.
// Store errors that may pass (timeouts, throttling) print a warning and the
// next poll tries again.
struct FollowRequest {
  std::string uri;
  std::string output;  // empty = stdout
  uint64_t offset = 0;
  bool from_end = false;
  uint64_t poll_ms = 250;  // 10 ms .. 1 day
};
int RunFollow(const FollowRequest& request);

}  // namespace hyperfile::cli
