// SPDX-License-Identifier: Apache-2.0
// `--stats`: what a command cost in store requests, bytes and time, printed
// after it ran (a table on stderr, or one JSON object).
//
// Wiring, for a command that opened its store with OpenStoreStack (options
// .metrics = true) and maybe a File:
//
//   StatsRecorder stats;                       // starts the clock
//   ... run the command on stack.store ...
//   stats.Print(stderr, stack.metrics->Snapshot(), file_stat_or_nullopt, json);
#pragma once

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"

namespace hyperfile::cli {

struct CommandStats {
  StoreMetricsSnapshot store;    // the command's store stack (every attempt)
  std::optional<FileStat> file;  // the file's handle at the end, if one was open
  double elapsed_s = 0;          // wall time of the command
};

// The human form: a table of requests by verb (count, errors, retries,
// p50/p99/max latency), bytes in and out with rates, commits, and the
// file's cache hit rates and dirty bytes. Lines end in '\n'.
std::string FormatStatsTable(const CommandStats& stats);

// The JSON form (stable keys, raw numbers; latencies in microseconds):
// {"elapsed_s", "requests": {"put": {"count", "errors", "retries",
//  "throttle_retries", "give_ups", "latency_us": {"p50", "p99", "max",
//  "total"}, "outcomes": {"ok": N, "not_found": N, ...}}, ...},
//  "bytes_in", "bytes_out", "commits": {"count", "latency_us": {...}},
//  "file": {"block_cache_hits", "block_cache_misses", "index_cache_hits",
//  "index_cache_misses", "dirty_bytes", "checkpoint", "size"} (if a file)}.
nlohmann::json StatsJson(const CommandStats& stats);

// Measures the command's wall time from construction and prints the stats
// to `out` (the table, or the JSON on one line).
class StatsRecorder {
 public:
  StatsRecorder() : start_(std::chrono::steady_clock::now()) {}
  CommandStats Collect(const StoreMetricsSnapshot& store,
                       const std::optional<FileStat>& file) const;
  void Print(std::FILE* out, const StoreMetricsSnapshot& store, const std::optional<FileStat>& file,
             bool json) const;

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace hyperfile::cli
