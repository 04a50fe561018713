// SPDX-License-Identifier: Apache-2.0
// Metrics of the nbdkit plugin: per-export NBD counters (lock-free), their
// rendering in the Prometheus text exposition format (version 0.0.4), an
// HTTP responder for `metrics=ADDR:PORT` (libmicrohttpd) and the periodic,
// atomic textfile for node_exporter (`metrics-file=PATH`).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"

struct MHD_Daemon;  // libmicrohttpd

namespace hyperfile_nbd {

// The NBD requests the plugin serves.
enum Op : int { kRead, kWrite, kFlush, kTrim, kZero, kExtents, kOps };
const char* OpName(int op);  // "read", "write", ...

// A latency histogram of relaxed atomics (buckets as hyperfile::
// LatencyHistogram).
struct AtomicHistogram {
  std::atomic<uint64_t> buckets[hyperfile::kLatencyBuckets] = {};
  std::atomic<uint64_t> total_us{0};
  std::atomic<uint64_t> max_us{0};
  void Observe(uint64_t us);
  hyperfile::LatencyHistogram Load() const;
};

// Counters of one export, updated by the request callbacks without a lock.
struct ExportCounters {
  std::atomic<uint64_t> ok[kOps] = {};
  std::atomic<uint64_t> errors[kOps] = {};
  std::atomic<uint64_t> bytes_read{0}, bytes_written{0};
  AtomicHistogram latency[kOps];
  // Every File::Flush (an NBD flush, a FUA write, a disconnect, the close):
  // the time to commit what was dirty.
  AtomicHistogram flush;
  std::atomic<uint64_t> connections_total{0};
};

// One export at one instant, as rendered.
struct ExportSample {
  std::string name;  // the NBD export name
  bool open = false;
  int connections = 0;
  uint64_t ok[kOps] = {}, errors[kOps] = {};
  uint64_t bytes_read = 0, bytes_written = 0;
  hyperfile::LatencyHistogram latency[kOps];
  hyperfile::LatencyHistogram flush;
  uint64_t connections_total = 0;
  hyperfile::StoreMetricsSnapshot store;  // every open so far, and clones' origins
  // Of the open handle (0 when closed); cache lookups summed over opens.
  uint64_t dirty_bytes = 0, checkpoint = 0, size = 0;
  uint64_t block_cache_bytes = 0, index_cache_bytes = 0;
  uint64_t block_cache_hits = 0, block_cache_misses = 0;
  uint64_t index_cache_hits = 0, index_cache_misses = 0;
};

ExportSample SampleCounters(const ExportCounters& c);  // the NBD part only

// The Prometheus text format of the exports (one series per export, label
// export="NAME", escaped as the format requires).
std::string RenderPrometheus(const std::vector<ExportSample>& exports);

using Renderer = std::function<std::string()>;

// `metrics=ADDR:PORT`: a listening TCP socket bound before nbdkit forks (so a
// bad address fails the start), served after the fork by libmicrohttpd's
// own thread. Answers GET (and HEAD) of /metrics with the rendering, 404 for
// any other path, 405 for any other method; at most 8 connections at once,
// 10 s idle timeout, 32 KiB of memory per connection, no request bodies.
class MetricsHttp {
 public:
  // Parses "HOST:PORT" or "[V6]:PORT" (PORT 0 = any free port) and binds.
  // Returns null and sets *error on failure.
  static std::unique_ptr<MetricsHttp> Listen(const std::string& address, std::string* error);
  ~MetricsHttp();
  // "127.0.0.1:9135": where it listens (the port chosen, for PORT 0).
  std::string bound() const { return bound_; }
  // Starts serving (call in the serving process). False and *error on failure.
  bool Start(Renderer render, std::string* error);
  void Stop();

 private:
  MetricsHttp() = default;
  int fd_ = -1;
  std::string bound_;
  Renderer render_;
  ::MHD_Daemon* daemon_ = nullptr;
  friend struct MetricsHttpAccess;
};

// `metrics-file=PATH`: writes the rendering to PATH every interval and once
// more at Stop, each time to a temporary file beside it (PATH.tmp.PID) that
// is then renamed over PATH, so a reader (node_exporter's textfile
// collector) never sees a partial file.
class MetricsFile {
 public:
  MetricsFile(std::string path, std::chrono::milliseconds interval)
      : path_(std::move(path)), interval_(interval) {}
  ~MetricsFile() { Stop(); }
  void Start(Renderer render);
  // Writes a final rendering (after the exports were closed) and stops.
  void Stop();
  // Writes now; false and *error on failure.
  bool WriteOnce(std::string* error);

 private:
  std::string path_;
  std::chrono::milliseconds interval_;
  Renderer render_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace hyperfile_nbd
