// SPDX-License-Identifier: Apache-2.0
#include "cli/stats.h"

#include <cinttypes>

#include "cli/progress.h"

namespace hyperfile::cli {
namespace {

using S = StoreMetricsSnapshot;

std::string Millis(uint64_t us) {
  char buf[32];
  if (us < 10000) {
    std::snprintf(buf, sizeof buf, "%.2f ms", us / 1000.0);
  } else if (us < 10000000) {
    std::snprintf(buf, sizeof buf, "%.0f ms", us / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f s", us / 1e6);
  }
  return buf;
}

nlohmann::json LatencyJson(const LatencyHistogram& h) {
  return {{"p50", h.QuantileUs(0.5)},
          {"p99", h.QuantileUs(0.99)},
          {"max", h.max_us},
          {"total", h.total_us}};
}

std::string Percent(uint64_t hits, uint64_t misses) {
  if (hits + misses == 0) return "-";
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * static_cast<double>(hits) / (hits + misses));
  return buf;
}

}  // namespace

std::string FormatStatsTable(const CommandStats& s) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-8s %9s %7s %8s %10s %10s %10s\n", "request", "count",
                "errors", "retries", "p50", "p99", "max");
  out += line;
  for (int v = 0; v < S::kVerbs; v++) {
    const LatencyHistogram& h = s.store.latency[v];
    if (s.store.requests[v] == 0 && s.store.retries[v] == 0) continue;
    std::snprintf(line, sizeof line, "%-8s %9" PRIu64 " %7" PRIu64 " %8" PRIu64 " %10s %10s %10s\n",
                  StoreVerbName(static_cast<StoreVerb>(v)), s.store.requests[v], s.store.errors[v],
                  s.store.retries[v], Millis(h.QuantileUs(0.5)).c_str(),
                  Millis(h.QuantileUs(0.99)).c_str(), Millis(h.max_us).c_str());
    out += line;
  }
  uint64_t throttled = 0, give_ups = 0;
  for (int v = 0; v < S::kVerbs; v++) {
    throttled += s.store.throttle_retries[v];
    give_ups += s.store.give_ups[v];
  }
  double secs = s.elapsed_s > 0 ? s.elapsed_s : 0;
  auto rate = [&](uint64_t bytes) {
    return secs > 0 ? HumanBytes(static_cast<double>(bytes) / secs) + "/s" : std::string("-");
  };
  std::snprintf(line, sizeof line, "bytes in  %s (%s), out %s (%s) in %.2f s\n",
                HumanBytes(static_cast<double>(s.store.bytes_in)).c_str(),
                rate(s.store.bytes_in).c_str(),
                HumanBytes(static_cast<double>(s.store.bytes_out)).c_str(),
                rate(s.store.bytes_out).c_str(), secs);
  out += line;
  if (throttled || give_ups) {
    std::snprintf(line, sizeof line, "throttled retries %" PRIu64 ", gave up %" PRIu64 "\n",
                  throttled, give_ups);
    out += line;
  }
  if (s.store.commit_latency.count) {
    std::snprintf(line, sizeof line, "commits   %" PRIu64 " (p50 %s, max %s)\n",
                  s.store.commit_latency.count,
                  Millis(s.store.commit_latency.QuantileUs(0.5)).c_str(),
                  Millis(s.store.commit_latency.max_us).c_str());
    out += line;
  }
  if (s.file) {
    const FileStat& f = *s.file;
    std::snprintf(line, sizeof line,
                  "cache     block hits %" PRIu64 " misses %" PRIu64 " (%s), index hits %" PRIu64
                  " misses %" PRIu64 " (%s)\n",
                  f.block_cache_hits, f.block_cache_misses,
                  Percent(f.block_cache_hits, f.block_cache_misses).c_str(), f.index_cache_hits,
                  f.index_cache_misses, Percent(f.index_cache_hits, f.index_cache_misses).c_str());
    out += line;
    std::snprintf(line, sizeof line, "file      checkpoint %" PRIu64 ", dirty %s\n", f.checkpoint,
                  HumanBytes(static_cast<double>(f.dirty_bytes)).c_str());
    out += line;
  }
  return out;
}

nlohmann::json StatsJson(const CommandStats& s) {
  nlohmann::json requests = nlohmann::json::object();
  for (int v = 0; v < S::kVerbs; v++) {
    nlohmann::json outcomes = nlohmann::json::object();
    for (int c = 0; c < S::kCodes; c++) {
      if (s.store.outcomes[v][c] != 0) outcomes[StoreOutcomeName(c)] = s.store.outcomes[v][c];
    }
    requests[StoreVerbName(static_cast<StoreVerb>(v))] = {
        {"count", s.store.requests[v]},
        {"errors", s.store.errors[v]},
        {"retries", s.store.retries[v]},
        {"throttle_retries", s.store.throttle_retries[v]},
        {"give_ups", s.store.give_ups[v]},
        {"latency_us", LatencyJson(s.store.latency[v])},
        {"outcomes", outcomes}};
  }
  nlohmann::json j = {{"elapsed_s", s.elapsed_s},
                      {"requests", requests},
                      {"bytes_in", s.store.bytes_in},
                      {"bytes_out", s.store.bytes_out},
                      {"commits",
                       {{"count", s.store.commit_latency.count},
                        {"latency_us", LatencyJson(s.store.commit_latency)}}}};
  if (s.file) {
    const FileStat& f = *s.file;
    j["file"] = {{"block_cache_hits", f.block_cache_hits},
                 {"block_cache_misses", f.block_cache_misses},
                 {"index_cache_hits", f.index_cache_hits},
                 {"index_cache_misses", f.index_cache_misses},
                 {"dirty_bytes", f.dirty_bytes},
                 {"checkpoint", f.checkpoint},
                 {"size", f.size}};
  }
  return j;
}

CommandStats StatsRecorder::Collect(const StoreMetricsSnapshot& store,
                                    const std::optional<FileStat>& file) const {
  CommandStats s;
  s.store = store;
  s.file = file;
  s.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return s;
}

void StatsRecorder::Print(std::FILE* out, const StoreMetricsSnapshot& store,
                          const std::optional<FileStat>& file, bool json) const {
  CommandStats s = Collect(store, file);
  std::string text = json ? StatsJson(s).dump() + "\n" : FormatStatsTable(s);
  std::fputs(text.c_str(), out);
}

}  // namespace hyperfile::cli
