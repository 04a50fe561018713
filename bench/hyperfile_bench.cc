// SPDX-License-Identifier: Apache-2.0
// The File-level benchmark (issue 5): hyperfile against the raw object store
// it runs on and against s3backer on the same S3 server.
//
// One run measures, each phase on its own prefix under the run's root:
//   1. raw store baseline: 8 MiB PUT and ranged GET (1 and io_parallelism in
//      flight), 64 MiB PUT, 1 MiB create-only PUT latency, 4 KiB ranged GET
//      latency;
//   2. sequential write of 1 GiB through File (1 MiB PWrites, then Flush) and
//      a cold sequential read of it from a fresh handle;
//   3. 100k random 4 KiB writes over a 1 GiB file (4 KiB blocks) then Flush,
//      the same while another thread flushes periodically, Flush latency
//      with <= 1 MiB dirty, then 100k random 4 KiB reads cold and warm;
//   4. the random workloads through s3backer (FUSE) with 4 KiB and 64 KiB
//      blocks;
//   5. open cost of a file with many checkpoints;
//   6. peak RSS of a child process doing random 4 KiB I/O on a 1 TiB sparse
//      file with the default memory budgets.
// Prints a table with ratios and PASS/MISS target checks; --json FILE also
// writes every raw figure. Every object it writes is deleted at the end.
//
//   hyperfile_bench [--uri s3://bucket/prefix] [--quick] [--skip-s3backer] [--json FILE]
//
// Without --uri the root is $HYPERFILE_TEST_S3_URI/hyperfile-bench-<random>.
// S3 credentials and endpoint come from the AWS_* variables (also what
// s3backer is given).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/object_store.h"
#include "hyperfile/options.h"
#include "hyperfile/store_layers.h"
#include "s3backer_util.h"

namespace hf = hyperfile;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
namespace s3b = s3backer_util;

namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kGiB = 1024 * kMiB;
constexpr uint64_t kTiB = 1024 * kGiB;
constexpr uint64_t k4K = 4 * kKiB;

struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void Check(const hf::Status& st, const std::string& what) {
  if (!st.ok()) throw BenchError(what + ": " + st.ToString());
}

template <typename T>
T Take(hf::Result<T> r, const std::string& what) {
  if (!r.ok()) throw BenchError(what + ": " + r.status().ToString());
  return std::move(r).value();
}

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string Fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* format, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, format);
  std::vsnprintf(buf, sizeof buf, format, ap);
  va_end(ap);
  return buf;
}

std::string Bytes(uint64_t n) {
  if (n >= kTiB && n % kTiB == 0) return Fmt("%llu TiB", (unsigned long long)(n / kTiB));
  if (n >= kGiB && n % kGiB == 0) return Fmt("%llu GiB", (unsigned long long)(n / kGiB));
  if (n >= kMiB && n % kMiB == 0) return Fmt("%llu MiB", (unsigned long long)(n / kMiB));
  if (n >= kKiB && n % kKiB == 0) return Fmt("%llu KiB", (unsigned long long)(n / kKiB));
  return Fmt("%llu B", (unsigned long long)n);
}

std::string RandomTag() {
  return Fmt("%012llx", static_cast<unsigned long long>(std::mt19937_64(std::random_device{}())() &
                                                        0xffffffffffffull));
}

Clock::time_point g_start;
void Progress(const std::string& what) {
  std::fprintf(stderr, "[%6.1fs] %s\n", Since(g_start), what.c_str());
}

// ------------------------------------------------------------ latencies ---
struct Summary {
  size_t n = 0;
  double p50 = 0, p99 = 0, p999 = 0, max = 0, mean = 0;  // microseconds
  json Json() const {
    return {{"n", n},          {"p50_us", p50}, {"p99_us", p99},
            {"p999_us", p999}, {"max_us", max}, {"mean_us", mean}};
  }
  std::string Text() const {
    return Fmt("p50 %s  p99 %s  p99.9 %s  max %s", Us(p50).c_str(), Us(p99).c_str(),
               Us(p999).c_str(), Us(max).c_str());
  }
  static std::string Us(double us) {
    if (us >= 10000) return Fmt("%.0f ms", us / 1000);
    if (us >= 1000) return Fmt("%.1f ms", us / 1000);
    return Fmt("%.1f us", us);
  }
};

Summary Summarize(std::vector<float> us) {
  Summary s;
  s.n = us.size();
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(us.size()))) - 1;
    return static_cast<double>(us[std::min(i, us.size() - 1)]);
  };
  s.p50 = at(0.50);
  s.p99 = at(0.99);
  s.p999 = at(0.999);
  s.max = us.back();
  double sum = 0;
  for (float v : us) sum += v;
  s.mean = sum / static_cast<double>(us.size());
  return s;
}

using bench_util::CpuSeconds;

float Micros(Clock::time_point t0, Clock::time_point t1) {
  return std::chrono::duration<float, std::micro>(t1 - t0).count();
}

// ---------------------------------------------------------- random data ---
// Incompressible bytes to write from: piece i of size len starts at a
// different place of the pool.
class DataPool {
 public:
  explicit DataPool(size_t bytes, uint64_t seed) : data_(bytes, '\0') {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i + 8 <= data_.size(); i += 8) {
      x += 0x9E3779B97F4A7C15ull;  // splitmix64
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      std::memcpy(&data_[i], &z, 8);
    }
  }
  const char* Piece(uint64_t i, size_t len) const {
    size_t n = data_.size() / len;
    return data_.data() + (i % n) * len;
  }
  std::string_view View(size_t offset, size_t len) const {
    return std::string_view(data_).substr(offset, len);
  }
  size_t size() const { return data_.size(); }

 private:
  std::string data_;
};

// ------------------------------------------------------------- stores ---
// Sits under MetricsStore and counts what MetricsStore cannot see: the HTTP
// requests of a multipart upload (the S3 backend uploads unconditional
// objects above the multipart threshold as start + parts + complete, one
// logical Put; a create-only put is always one request).
class PutRecorder : public hf::ObjectStore {
 public:
  PutRecorder(std::shared_ptr<hf::ObjectStore> base, bool s3, uint64_t threshold, uint64_t part)
      : base_(std::move(base)), s3_(s3), threshold_(threshold), part_(std::max(part, 5 * kMiB)) {}

  hf::Status Put(std::string_view key, const hf::Payload& data, const hf::PutOptions& options,
                 hf::ObjectInfo* info) override {
    uint64_t total = 0;
    for (auto piece : data) total += piece.size();
    if (key.starts_with("seg/")) commits_++;
    if (key.starts_with("dat/")) data_objects_++;
    if (s3_ && total > threshold_ && options.if_match.empty() && !options.if_absent) {
      multipart_++;
      http_puts_ += 2 + (total + part_ - 1) / part_;
    } else {
      http_puts_++;
    }
    uint64_t seen = largest_put_.load();
    while (total > seen && !largest_put_.compare_exchange_weak(seen, total)) {
    }
    return base_->Put(key, data, options, info);
  }
  hf::Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
                 hf::ObjectInfo* info) override {
    return base_->Get(key, offset, length, out, info);
  }
  hf::Status Head(std::string_view key, hf::ObjectInfo* info) override {
    return base_->Head(key, info);
  }
  hf::Status List(std::string_view prefix, std::string_view start_after, size_t limit,
                  std::vector<hf::ObjectInfo>* out) override {
    return base_->List(prefix, start_after, limit, out);
  }
  hf::Status Delete(std::string_view key) override { return base_->Delete(key); }
  hf::Status DeleteMany(const std::vector<std::string>& keys) override {
    return base_->DeleteMany(keys);
  }
  std::string Name() const override { return base_->Name(); }
  using ObjectStore::Get;
  using ObjectStore::Put;

  uint64_t http_puts() const { return http_puts_; }
  uint64_t commits() const { return commits_; }
  uint64_t data_objects() const { return data_objects_; }
  uint64_t multipart() const { return multipart_; }
  uint64_t largest_put() const { return largest_put_; }

 private:
  std::shared_ptr<hf::ObjectStore> base_;
  bool s3_;
  uint64_t threshold_, part_;
  std::atomic<uint64_t> http_puts_{0}, multipart_{0}, largest_put_{0};
  std::atomic<uint64_t> commits_{0}, data_objects_{0};
};

struct Counts {
  uint64_t puts = 0, gets = 0, heads = 0, lists = 0, deletes = 0;
  uint64_t bytes_out = 0, bytes_in = 0;
  uint64_t http_puts = 0, multipart = 0;
  uint64_t commits = 0, data_objects = 0;  // seg/ and dat/ puts
  uint64_t requests() const { return puts + gets + heads + lists + deletes; }
  Counts operator-(const Counts& o) const {
    Counts c;
    c.puts = puts - o.puts;
    c.gets = gets - o.gets;
    c.heads = heads - o.heads;
    c.lists = lists - o.lists;
    c.deletes = deletes - o.deletes;
    c.bytes_out = bytes_out - o.bytes_out;
    c.bytes_in = bytes_in - o.bytes_in;
    c.http_puts = http_puts - o.http_puts;
    c.multipart = multipart - o.multipart;
    c.commits = commits - o.commits;
    c.data_objects = data_objects - o.data_objects;
    return c;
  }
  json Json() const {
    return {{"puts", puts},          {"gets", gets},           {"heads", heads},
            {"lists", lists},        {"deletes", deletes},     {"bytes_put", bytes_out},
            {"bytes_got", bytes_in}, {"http_puts", http_puts}, {"multipart_puts", multipart},
            {"requests", requests()}};
  }
  std::string Text() const {
    std::string s = Fmt("%llu PUT, %llu GET", (unsigned long long)puts, (unsigned long long)gets);
    if (heads) s += Fmt(", %llu HEAD", (unsigned long long)heads);
    if (lists) s += Fmt(", %llu LIST", (unsigned long long)lists);
    if (multipart) {
      s += Fmt(" (%llu multipart: %llu HTTP PUT requests)", (unsigned long long)multipart,
               (unsigned long long)http_puts);
    }
    return s;
  }
};

// A store stack with counters: retry(metrics(recorder(backend))), so the
// metrics see every attempt.
struct Metered {
  std::string uri;
  std::shared_ptr<PutRecorder> recorder;
  std::shared_ptr<hf::MetricsStore> metrics;
  std::shared_ptr<hf::ObjectStore> store;

  Counts Now() const {
    hf::StoreMetricsSnapshot s = metrics->Snapshot();
    Counts c;
    c.puts = s.count(hf::StoreVerb::kPut);
    c.gets = s.count(hf::StoreVerb::kGet);
    c.heads = s.count(hf::StoreVerb::kHead);
    c.lists = s.count(hf::StoreVerb::kList);
    c.deletes = s.count(hf::StoreVerb::kDelete);
    c.bytes_out = s.bytes_out;
    c.bytes_in = s.bytes_in;
    c.http_puts = recorder->http_puts();
    c.multipart = recorder->multipart();
    c.commits = recorder->commits();
    c.data_objects = recorder->data_objects();
    return c;
  }
};

uint64_t g_part_size = 0;  // --part-size: overrides StoreOptions::multipart_part_size

Metered OpenMetered(const std::string& uri) {
  hf::StoreOptions options;
  options.retry = false;
  if (g_part_size) options.multipart_part_size = g_part_size;
  Metered m;
  m.uri = uri;
  auto base = Take(hf::OpenStore(uri, options), "open store " + uri);
  m.recorder = std::make_shared<PutRecorder>(
      base, uri.starts_with("s3://"), options.multipart_threshold, options.multipart_part_size);
  m.metrics = std::make_shared<hf::MetricsStore>(m.recorder);
  hf::RetryOptions retry;
  retry.max_attempts = options.retry_max_attempts;
  m.store = hf::NewRetryStore(m.metrics, retry);
  return m;
}

// Deletes every object under the store's root (also after a failed phase).
void RemoveAll(const std::string& uri) {
  hf::Status st = bench_util::RemoveAll(uri);
  if (!st.ok()) Progress("cleanup of " + uri + " failed: " + st.ToString());
}

// Runs op(i) for i in [0, total) on `threads` threads; returns seconds.
double RunParallel(int total, int threads, const std::function<void(int)>& op) {
  std::atomic<int> next{0};
  std::mutex mu;
  std::string error;
  auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) {
    pool.emplace_back([&] {
      for (int i; (i = next++) < total;) {
        try {
          op(i);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(mu);
          if (error.empty()) error = e.what();
          next = total;
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  if (!error.empty()) throw BenchError(error);
  return Since(start);
}

// ------------------------------------------------------------- report ---
struct Target {
  std::string name;
  std::string measured;
  std::string goal;
  enum { kPass, kMiss, kSkip } result = kSkip;
};

class Report {
 public:
  void Section(const std::string& title) { lines_.push_back("\n" + title); }
  void Row(const std::string& label, const std::string& value, const std::string& note = "") {
    std::string line = Fmt("  %-44s %-30s", label.c_str(), value.c_str());
    if (!note.empty()) line += " " + note;
    while (!line.empty() && line.back() == ' ') line.pop_back();
    lines_.push_back(line);
  }
  void Note(const std::string& text) { lines_.push_back("  (" + text + ")"); }
  void AddTarget(const std::string& name, bool measured, bool pass, const std::string& value,
                 const std::string& goal) {
    Target t{name, measured ? value : "not measured", goal, Target::kSkip};
    if (measured) t.result = pass ? Target::kPass : Target::kMiss;
    targets_.push_back(t);
  }
  void Print(FILE* out) const {
    for (const auto& l : lines_) std::fprintf(out, "%s\n", l.c_str());
    std::fprintf(out, "\nTargets\n");
    int pass = 0, miss = 0;
    for (const auto& t : targets_) {
      const char* r = t.result == Target::kPass   ? "PASS"
                      : t.result == Target::kMiss ? "MISS"
                                                  : "SKIP";
      pass += t.result == Target::kPass;
      miss += t.result == Target::kMiss;
      std::fprintf(out, "  %-4s  %-50s %-26s (target %s)\n", r, t.name.c_str(), t.measured.c_str(),
                   t.goal.c_str());
    }
    std::fprintf(out, "  %d PASS, %d MISS, %zu not measured\n", pass, miss,
                 targets_.size() - static_cast<size_t>(pass + miss));
  }
  json TargetsJson() const {
    json j = json::array();
    for (const auto& t : targets_) {
      j.push_back({{"name", t.name},
                   {"measured", t.measured},
                   {"target", t.goal},
                   {"result", t.result == Target::kPass   ? "PASS"
                              : t.result == Target::kMiss ? "MISS"
                                                          : "SKIP"}});
    }
    return j;
  }

 private:
  std::vector<std::string> lines_;
  std::vector<Target> targets_;
};

double MBps(uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e6 : 0;
}
double MiBps(uint64_t bytes, double seconds) {
  return seconds > 0 ? static_cast<double>(bytes) / seconds / static_cast<double>(kMiB) : 0;
}
double Ratio(double a, double b) { return b > 0 ? a / b : 0; }

// ------------------------------------------------------------ settings ---
struct Config {
  std::set<std::string> phases;  // empty: all
  std::string root;              // the run's root URI; each phase uses root/<phase>
  bool quick = false;
  bool skip_s3backer = false;
  int io_parallelism = hf::OpenOptions{}.io_parallelism;
  uint64_t seq_bytes = kGiB;
  uint64_t rand_file_bytes = kGiB;
  int rand_ops = 100000;
  int s3backer_ops = 10000;
  int checkpoints = 10000;
  int rss_writes = 200000;
  int rss_reads = 50000;
  int fsync_rounds = 20;
  int flush_period_ms = 200;
  double paced_seconds = 5;      // the writer of the flush-interference run is paced over this
  double read_seconds = 120;     // cap on each cold random read pass (hyperfile, s3backer)
  double history_seconds = 120;  // cap on building the many-checkpoint file
  double rss_read_seconds = 60;  // cap on the reads of the RSS child
  int raw_count = 32;
};

// --------------------------------------------------------- the phases ---
struct Raw {
  double put8_1 = 0, put8_p = 0, get8_1 = 0, get8_p = 0, put64_1 = 0, put64_p = 0;  // MB/s
  double put8_p_cpu_per_gib = 0, get8_p_cpu_per_gib = 0;  // client CPU seconds per GiB moved
  Summary put1m, get4k;
  bool measured = false;
};

class Bench {
 public:
  Bench(Config config) : c_(std::move(config)), pool_(64 * kMiB, 1) {}

  void Run() {
    hf::OpenOptions defaults;
    json& cfg = j_["config"];
    cfg = {{"root", c_.root},
           {"quick", c_.quick},
           {"io_parallelism", c_.io_parallelism},
           {"block_cache_bytes", defaults.block_cache_bytes},
           {"index_cache_bytes", defaults.index_cache_bytes},
           {"dirty_budget_bytes", defaults.dirty_budget_bytes},
           {"seq_bytes", c_.seq_bytes},
           {"rand_file_bytes", c_.rand_file_bytes},
           {"rand_ops", c_.rand_ops},
           {"s3backer_ops", c_.s3backer_ops},
           {"checkpoints", c_.checkpoints},
           {"rss_writes", c_.rss_writes},
           {"rss_reads", c_.rss_reads}};
    auto want = [&](const char* phase) { return c_.phases.empty() || c_.phases.count(phase); };
    // seq and s3backer compare against raw and rand: they need them.
    if (want("raw") || want("seq")) RawPhase();
    if (want("seq")) SequentialPhase();
    if (want("rand") || want("s3backer")) RandomPhase();
    if (want("s3backer")) S3backerPhase();
    if (want("hist")) HistoryPhase();
    if (want("rss")) RssPhase();
    Targets();
  }

  void Cleanup() {
    for (const char* phase :
         {"raw", "seq", "rand", "raw1m", "hist", "rss", "s3backer-4k", "s3backer-64k"}) {
      RemoveAll(c_.root + "/" + phase);
    }
  }

  const Report& report() const { return report_; }
  json Json() {
    j_["targets"] = report_.TargetsJson();
    return j_;
  }

 private:
  // ---------------------------------------------------------------- 1 ---
  void RawPhase() {
    Progress("raw store baseline");
    const int p = c_.io_parallelism;
    Metered m = OpenMetered(c_.root + "/raw");
    hf::ObjectStore* s = m.store.get();
    const int n8 = c_.raw_count, n64 = std::max(2, c_.raw_count / 8);
    auto put = [&](const std::string& key, size_t size, bool if_absent = false) {
      hf::PutOptions o;
      o.if_absent = if_absent;
      Check(s->Put(key, hf::Payload{pool_.View(0, size)}, o, nullptr), "put " + key);
    };
    auto timed = [&](int total, int threads, size_t size, const std::function<void(int)>& op) {
      return MBps(static_cast<uint64_t>(total) * size, RunParallel(total, threads, op));
    };
    raw_.put64_1 = timed(n64, 1, 64 * kMiB, [&](int i) { put(Fmt("b64/%d", i), 64 * kMiB); });
    raw_.put64_p = timed(p, p, 64 * kMiB, [&](int i) { put(Fmt("b64p/%d", i), 64 * kMiB); });
    // 8 MiB ranged GETs out of the 64 MiB objects, the way File reads segments.
    auto get8 = [&](int i) {
      std::string out;
      std::string key = Fmt("b64/%d", i % n64);
      Check(s->Get(key, static_cast<uint64_t>((i / n64) % 8) * 8 * kMiB, 8 * kMiB, &out, nullptr),
            "get " + key);
      if (out.size() != 8 * kMiB) throw BenchError("get " + key + ": short read");
    };
    raw_.get8_1 = timed(n8, 1, 8 * kMiB, get8);
    double cpu0 = CpuSeconds();
    raw_.get8_p = timed(n8 * 2, p, 8 * kMiB, get8);
    raw_.get8_p_cpu_per_gib = (CpuSeconds() - cpu0) / (n8 * 2 * 8.0 * kMiB / kGiB);
    raw_.put8_1 = timed(n8, 1, 8 * kMiB, [&](int i) { put(Fmt("b8/%d", i), 8 * kMiB); });
    cpu0 = CpuSeconds();
    raw_.put8_p = timed(n8 * 2, p, 8 * kMiB, [&](int i) { put(Fmt("b8p/%d", i), 8 * kMiB); });
    raw_.put8_p_cpu_per_gib = (CpuSeconds() - cpu0) / (n8 * 2 * 8.0 * kMiB / kGiB);
    // Latency, one in flight: 1 MiB create-only PUT (what a small flush is)
    // and 4 KiB ranged GET (what a cold random read is).
    std::vector<float> lat;
    for (int i = 0; i < std::max(10, c_.raw_count); i++) {
      auto t0 = Clock::now();
      put(Fmt("b1m/%d", i), kMiB, true);
      lat.push_back(Micros(t0, Clock::now()));
    }
    raw_.put1m = Summarize(lat);
    lat.clear();
    std::mt19937_64 rng(7);
    for (int i = 0; i < std::max(50, c_.raw_count * 8); i++) {
      std::string out;
      auto t0 = Clock::now();
      Check(s->Get(Fmt("b64/%d", i % n64), (rng() % (64 * kMiB / k4K)) * k4K, k4K, &out, nullptr),
            "get 4 KiB");
      lat.push_back(Micros(t0, Clock::now()));
    }
    raw_.get4k = Summarize(lat);
    raw_.measured = true;
    RemoveAll(m.uri);

    const char* latency = std::getenv("HYPERFILE_STORE_LATENCY");
    report_.Section(
        "1. Raw store baseline (" + s->Name() + ")" +
        (latency && *latency ? std::string(", store latency added: ") + latency : std::string()));
    report_.Row("8 MiB PUT, 1 in flight", Fmt("%.1f MB/s", raw_.put8_1));
    report_.Row(Fmt("8 MiB PUT, %d in flight", p), Fmt("%.1f MB/s", raw_.put8_p));
    report_.Row("8 MiB ranged GET, 1 in flight", Fmt("%.1f MB/s", raw_.get8_1));
    report_.Row(Fmt("8 MiB ranged GET, %d in flight", p), Fmt("%.1f MB/s", raw_.get8_p));
    report_.Row("64 MiB PUT, 1 in flight", Fmt("%.1f MB/s", raw_.put64_1),
                Fmt("= %.1f MiB/s", raw_.put64_1 * 1e6 / kMiB));
    report_.Row(Fmt("64 MiB PUT, %d in flight", p), Fmt("%.1f MB/s", raw_.put64_p));
    report_.Row("1 MiB create-only PUT latency", raw_.put1m.Text());
    report_.Row("4 KiB ranged GET latency", raw_.get4k.Text());
    if (raw_.get4k.p50 > 30000) {
      report_.Note(
          "small responses take ~40 ms: the gateway sends headers and body as separate TCP "
          "segments with Nagle on, and the client delays its ACK on a reused connection; Ceph's "
          "'rgw frontends = beast ... tcp_nodelay=1' removes it. Every small GET below pays it");
    }
    j_["raw"] = {{"put_8mib_1_mb_s", raw_.put8_1},
                 {"put_8mib_p_mb_s", raw_.put8_p},
                 {"get_8mib_1_mb_s", raw_.get8_1},
                 {"get_8mib_p_mb_s", raw_.get8_p},
                 {"put_64mib_1_mb_s", raw_.put64_1},
                 {"put_64mib_p_mb_s", raw_.put64_p},
                 {"put_8mib_p_cpu_seconds_per_gib", raw_.put8_p_cpu_per_gib},
                 {"get_8mib_p_cpu_seconds_per_gib", raw_.get8_p_cpu_per_gib},
                 {"put_1mib_latency", raw_.put1m.Json()},
                 {"get_4kib_latency", raw_.get4k.Json()},
                 {"in_flight", p}};
  }

  // ---------------------------------------------------------------- 2 ---
  void SequentialPhase() {
    Progress("sequential write of " + Bytes(c_.seq_bytes));
    Metered m = OpenMetered(c_.root + "/seq");
    hf::CreateOptions co;  // default block size
    const uint64_t piece = kMiB;
    Counts c0 = m.Now();
    double cpu0 = CpuSeconds();
    auto t0 = Clock::now();
    auto file = Take(hf::File::Create(m.store, co), "create " + m.uri);
    for (uint64_t off = 0; off < c_.seq_bytes; off += piece) {
      Check(file->PWrite(off, pool_.Piece(off / piece, piece), piece), "seq pwrite");
    }
    Take(file->Flush(), "seq flush");
    double write_s = Since(t0);
    const double gib = static_cast<double>(c_.seq_bytes) / kGiB;
    seq_.write_cpu_per_gib = (CpuSeconds() - cpu0) / gib;
    Counts w = m.Now() - c0;
    Check(file->Close(), "seq close");
    file.reset();

    Progress("cold sequential read of " + Bytes(c_.seq_bytes));
    c0 = m.Now();
    cpu0 = CpuSeconds();
    t0 = Clock::now();
    hf::OpenOptions ro;
    ro.read_only = true;
    auto reader = Take(hf::File::Open(m.store, ro), "open " + m.uri);
    std::string buf(piece, '\0');
    for (uint64_t off = 0; off < c_.seq_bytes; off += piece) {
      size_t n = Take(reader->PRead(off, buf.data(), piece), "seq pread");
      if (n != piece || std::memcmp(buf.data(), pool_.Piece(off / piece, piece), piece) != 0) {
        throw BenchError(Fmt("seq read: wrong data at %llu", (unsigned long long)off));
      }
    }
    double read_s = Since(t0);
    seq_.read_cpu_per_gib = (CpuSeconds() - cpu0) / gib;
    Counts r = m.Now() - c0;
    Check(reader->Close(), "seq close reader");
    reader.reset();
    RemoveAll(m.uri);

    seq_.write_mbps = MBps(c_.seq_bytes, write_s);
    seq_.read_mbps = MBps(c_.seq_bytes, read_s);
    seq_.puts_per_gib = static_cast<double>(w.puts) / gib;
    seq_.http_puts_per_gib = static_cast<double>(w.http_puts) / gib;
    seq_.gets = r.gets;
    seq_.gets_bound = (c_.seq_bytes + 8 * kMiB - 1) / (8 * kMiB) + 2;
    seq_.put_ratio = Ratio(static_cast<double>(w.bytes_out), static_cast<double>(c_.seq_bytes));
    seq_.measured = true;

    report_.Section(Fmt("2. Sequential %s through File (block %s, 1 MiB PWrites, then Flush)",
                        Bytes(c_.seq_bytes).c_str(), Bytes(co.block_size).c_str()));
    report_.Row(
        "write + flush", Fmt("%.1f MB/s (%.2f s)", seq_.write_mbps, write_s),
        Fmt("%.2fx raw 8 MiB PUT@%d", Ratio(seq_.write_mbps, raw_.put8_p), c_.io_parallelism));
    report_.Row("  requests", w.Text(), Fmt("= %.1f PUTs/GiB", seq_.puts_per_gib));
    report_.Row("  objects",
                Fmt("%llu commits (one create-only request each), %llu data objects",
                    (unsigned long long)w.commits, (unsigned long long)w.data_objects),
                "data objects only for flushes > 2 MiB");
    seq_.commits = w.commits;
    seq_.data_objects = w.data_objects;
    seq_.write_gets = w.gets;
    report_.Row("  bytes PUT / bytes written", Fmt("%.4f", seq_.put_ratio));
    report_.Row("  client CPU per GiB", Fmt("%.2f s", seq_.write_cpu_per_gib),
                Fmt("raw 8 MiB PUT@%d: %.2f s", c_.io_parallelism, raw_.put8_p_cpu_per_gib));
    report_.Row(
        "cold read (fresh open, 1 MiB PReads)", Fmt("%.1f MB/s (%.2f s)", seq_.read_mbps, read_s),
        Fmt("%.2fx raw 8 MiB GET@%d", Ratio(seq_.read_mbps, raw_.get8_p), c_.io_parallelism));
    report_.Row("  requests", r.Text(),
                Fmt("bound ceil(bytes/8MiB)+2 = %llu", (unsigned long long)seq_.gets_bound));
    report_.Row("  client CPU per GiB", Fmt("%.2f s", seq_.read_cpu_per_gib),
                Fmt("raw 8 MiB GET@%d: %.2f s", c_.io_parallelism, raw_.get8_p_cpu_per_gib));
    j_["sequential"] = {{"bytes", c_.seq_bytes},
                        {"block_size", co.block_size},
                        {"write_seconds", write_s},
                        {"write_mb_s", seq_.write_mbps},
                        {"write_requests", w.Json()},
                        {"puts_per_gib", seq_.puts_per_gib},
                        {"http_puts_per_gib", seq_.http_puts_per_gib},
                        {"bytes_put_per_byte_written", seq_.put_ratio},
                        {"read_seconds", read_s},
                        {"read_mb_s", seq_.read_mbps},
                        {"read_requests", r.Json()},
                        {"read_get_bound", seq_.gets_bound},
                        {"write_cpu_seconds_per_gib", seq_.write_cpu_per_gib},
                        {"read_cpu_seconds_per_gib", seq_.read_cpu_per_gib}};
  }

  // ---------------------------------------------------------------- 3 ---
  struct Expect {
    std::vector<uint32_t> last;  // per block: index of the pool piece written last, or ~0
    void Wrote(uint64_t block, uint64_t piece) { last[block] = static_cast<uint32_t>(piece); }
  };

  void RandomPhase() {
    Metered m = OpenMetered(c_.root + "/rand");
    const uint64_t blocks = c_.rand_file_bytes / k4K;
    const int n = c_.rand_ops;
    std::mt19937_64 rng(42);
    offsets_.resize(n);
    for (auto& b : offsets_) b = rng() % blocks;
    expect_.last.assign(blocks, ~uint32_t{0});
    uint64_t piece = 0;  // pool piece counter, never repeats within the pool's 16k pieces window
    hf::CreateOptions co;
    co.block_size = static_cast<uint32_t>(k4K);
    co.initial_size = c_.rand_file_bytes;
    auto file = Take(hf::File::Create(m.store, co), "create " + m.uri);

    // (a) n random writes, then Flush.
    Progress(Fmt("%d random 4 KiB writes + flush", n));
    std::vector<float> lat;
    lat.reserve(n);
    Counts c0 = m.Now();
    auto t0 = Clock::now();
    for (int i = 0; i < n; i++) {
      uint64_t b = offsets_[i];
      auto w0 = Clock::now();
      Check(file->PWrite(b * k4K, pool_.Piece(piece, k4K), k4K), "random pwrite");
      lat.push_back(Micros(w0, Clock::now()));
      expect_.Wrote(b, piece++);
    }
    double writes_s = Since(t0);
    auto f0 = Clock::now();
    Take(file->Flush(), "random flush");
    double flush_s = Since(f0);
    rw_.seconds = Since(t0);
    Counts w = m.Now() - c0;
    rw_.counts = w;
    rw_.lat = Summarize(lat);
    rw_.mibps = MiBps(static_cast<uint64_t>(n) * k4K, rw_.seconds);
    rw_.put_ratio = Ratio(static_cast<double>(w.bytes_out), static_cast<double>(n) * k4K);
    rw_.unique_blocks = static_cast<uint64_t>(std::count_if(
        expect_.last.begin(), expect_.last.end(), [](uint32_t v) { return v != ~0u; }));
    rw_.unique_ratio =
        Ratio(static_cast<double>(w.bytes_out), static_cast<double>(rw_.unique_blocks) * k4K);
    rw_.measured = true;

    // (b) the same with a thread that flushes every flush_period_ms.
    // The writer is paced (n writes spread over paced_seconds) so that many
    // flushes overlap it; unpaced it would finish in a fraction of a second.
    const double rate = n / c_.paced_seconds;
    Progress(Fmt("%d random 4 KiB writes at %.0f/s with a flush every %d ms", n, rate,
                 c_.flush_period_ms));
    std::atomic<bool> stop{false};
    std::atomic<int> flushing{0};
    std::atomic<int> flushes{0};
    std::string flusher_error;
    std::vector<float> lat_all, lat_during;
    lat_all.reserve(n);
    std::thread flusher([&] {
      while (!stop) {
        std::this_thread::sleep_for(std::chrono::milliseconds(c_.flush_period_ms));
        if (stop) break;
        flushing = 1;
        auto r = file->Flush();
        flushing = 0;
        flushes++;
        if (!r.ok()) {
          flusher_error = r.status().ToString();
          break;
        }
      }
    });
    t0 = Clock::now();
    for (int i = 0; i < n; i++) {
      uint64_t b = offsets_[(static_cast<uint64_t>(i) * 7919 + 13) % n];
      std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(i / rate)));
      bool during = flushing.load();
      auto w0 = Clock::now();
      hf::Status st = file->PWrite(b * k4K, pool_.Piece(piece, k4K), k4K);
      float us = Micros(w0, Clock::now());
      during = during || flushing.load();
      if (!st.ok()) {
        stop = true;
        flusher.join();
        Check(st, "random pwrite during flush");
      }
      lat_all.push_back(us);
      if (during) lat_during.push_back(us);
      expect_.Wrote(b, piece++);
    }
    stop = true;
    flusher.join();
    if (!flusher_error.empty()) throw BenchError("periodic flush: " + flusher_error);
    Take(file->Flush(), "random flush");
    double during_s = Since(t0);
    rw_.lat_bg = Summarize(lat_all);
    rw_.lat_during = Summarize(lat_during);
    rw_.bg_flushes = flushes.load();

    // (c) Flush latency with <= 1 MiB dirty.
    Progress(Fmt("%d flushes of 1 MiB of random 4 KiB writes", c_.fsync_rounds));
    // The baseline is measured in the same loop, a raw create-only 1 MiB PUT
    // right after each flush, so gateway drift over the run cancels out.
    std::vector<float> flush_lat, raw_lat;
    Metered raw1m = OpenMetered(c_.root + "/raw1m");
    for (int round = 0; round < c_.fsync_rounds; round++) {
      for (uint64_t k = 0; k < kMiB / k4K; k++) {
        uint64_t b = rng() % blocks;
        Check(file->PWrite(b * k4K, pool_.Piece(piece, k4K), k4K), "pwrite");
        expect_.Wrote(b, piece++);
      }
      Counts before = m.Now();
      auto s0 = Clock::now();
      Take(file->Flush(), "flush");
      flush_lat.push_back(Micros(s0, Clock::now()));
      Counts d = m.Now() - before;
      fs_.max_puts = std::max(fs_.max_puts, d.puts);
      fs_.max_gets = std::max(fs_.max_gets, d.gets);
      fs_.max_other = std::max(fs_.max_other, d.heads + d.lists + d.deletes);
      fs_.bytes_put += d.bytes_out;
      hf::PutOptions create;
      create.if_absent = true;
      auto r0 = Clock::now();
      Check(raw1m.store->Put(Fmt("p%d", round), hf::Payload{pool_.View(0, kMiB)}, create, nullptr),
            "raw 1 MiB put");
      raw_lat.push_back(Micros(r0, Clock::now()));
    }
    RemoveAll(raw1m.uri);
    fs_.lat = Summarize(flush_lat);
    fs_.raw_lat = Summarize(raw_lat);
    fs_.rounds = c_.fsync_rounds;
    fs_.measured = true;
    Check(file->Close(), "close");
    file.reset();

    // (d) n random reads of written blocks: cold (fresh handle), then the
    // same offsets again on the same handle (warm). The block cache is sized
    // to hold the working set so the warm pass measures the cached path.
    std::vector<uint64_t> reads(offsets_);
    std::shuffle(reads.begin(), reads.end(), rng);
    hf::OpenOptions ro;
    ro.read_only = true;
    ro.block_cache_bytes =
        std::max<uint64_t>(ro.block_cache_bytes, static_cast<uint64_t>(n) * (k4K + 512));
    rr_.cache_bytes = ro.block_cache_bytes;
    Progress(Fmt("%d cold random 4 KiB reads", n));
    c0 = m.Now();
    auto open0 = Clock::now();
    auto reader = Take(hf::File::Open(m.store, ro), "open " + m.uri);
    rr_.open_s = Since(open0);
    Counts open_counts = m.Now() - c0;
    std::string buf(k4K, '\0');
    auto read_block = [&](uint64_t b) {
      size_t got = Take(reader->PRead(b * k4K, buf.data(), k4K), "random pread");
      uint32_t p = expect_.last[b];
      if (got != k4K || (p != ~uint32_t{0} && std::memcmp(buf.data(), pool_.Piece(p, k4K), k4K))) {
        throw BenchError(Fmt("random read: wrong data in block %llu", (unsigned long long)b));
      }
    };
    lat.clear();
    uint64_t max_gets = 0, multi_get_reads = 0;
    c0 = m.Now();
    t0 = Clock::now();
    for (uint64_t b : reads) {
      if (Since(t0) > c_.read_seconds) break;  // time cap (slow gateways)
      rr_.done++;
      uint64_t g0 = m.metrics->Snapshot().count(hf::StoreVerb::kGet);
      auto r0 = Clock::now();
      read_block(b);
      lat.push_back(Micros(r0, Clock::now()));
      uint64_t g = m.metrics->Snapshot().count(hf::StoreVerb::kGet) - g0;
      max_gets = std::max(max_gets, g);
      multi_get_reads += g > 1;
    }
    rr_.cold_s = Since(t0);
    reads.resize(rr_.done);
    rr_.cold = m.Now() - c0;
    rr_.cold_lat = Summarize(lat);
    rr_.max_gets = max_gets;
    rr_.multi_get_reads = multi_get_reads;
    Progress(Fmt("%d warm random 4 KiB reads", n));
    lat.clear();
    c0 = m.Now();
    t0 = Clock::now();
    for (uint64_t b : reads) {
      auto r0 = Clock::now();
      read_block(b);
      lat.push_back(Micros(r0, Clock::now()));
    }
    rr_.warm_s = Since(t0);
    rr_.warm = m.Now() - c0;
    rr_.warm_lat = Summarize(lat);
    rr_.measured = true;
    Check(reader->Close(), "close reader");
    reader.reset();
    RemoveAll(m.uri);

    const double nr = static_cast<double>(rr_.done);
    const double bytes = nr * k4K;
    report_.Section(Fmt("3. Random 4 KiB I/O through File (%s file, 4 KiB blocks, %d ops)",
                        Bytes(c_.rand_file_bytes).c_str(), n));
    report_.Row("writes + flush",
                Fmt("%.1f MiB/s (%.2f s: writes %.2f s, flush %.2f s)", rw_.mibps, rw_.seconds,
                    writes_s, flush_s),
                Fmt("%.2fx raw 64 MiB PUT", Ratio(rw_.mibps, raw_.put64_1 * 1e6 / kMiB)));
    report_.Row("  requests", w.Text());
    report_.Row("  bytes PUT / bytes written", Fmt("%.4f", rw_.put_ratio),
                Fmt("%.4f per distinct block written (%llu blocks)", rw_.unique_ratio,
                    (unsigned long long)rw_.unique_blocks));
    report_.Row("  write latency", rw_.lat.Text());
    report_.Row(Fmt("paced writes, a Flush every %d ms", c_.flush_period_ms),
                Fmt("%.2f s, %.0f writes/s, %d flushes", during_s, rate, rw_.bg_flushes));
    report_.Row("  write latency, all", rw_.lat_bg.Text());
    report_.Row(Fmt("  write latency, during a flush (%zu)", rw_.lat_during.n),
                rw_.lat_during.Text());
    report_.Row(Fmt("Flush of 1 MiB dirty (%d rounds)", fs_.rounds), fs_.lat.Text(),
                Fmt("p50 %.2fx raw 1 MiB PUT p50", Ratio(fs_.lat.p50, fs_.raw_lat.p50)));
    report_.Row("  raw 1 MiB create-only PUT, same rounds", fs_.raw_lat.Text());
    report_.Row(
        "  requests per flush (max)",
        Fmt("%llu PUT, %llu GET, %llu other", (unsigned long long)fs_.max_puts,
            (unsigned long long)fs_.max_gets, (unsigned long long)fs_.max_other),
        Fmt("%.2f MiB PUT per flush", static_cast<double>(fs_.bytes_put) / fs_.rounds / kMiB));
    report_.Row("open for reading", Fmt("%.1f ms", rr_.open_s * 1000), open_counts.Text());
    report_.Row(Fmt("%llu cold reads (fresh handle, 1 thread)", (unsigned long long)rr_.done),
                Fmt("%.0f reads/s (%.2f s)", nr / rr_.cold_s, rr_.cold_s));
    report_.Row("  latency", rr_.cold_lat.Text(),
                Fmt("raw 4 KiB GET p50 %s", Summary::Us(raw_.get4k.p50).c_str()));
    report_.Row("  requests", rr_.cold.Text(),
                Fmt("%.2f GET/read, max %llu in one read, %.1f GET/MiB", Ratio(rr_.cold.gets, nr),
                    (unsigned long long)rr_.max_gets, Ratio(rr_.cold.gets, bytes / kMiB)));
    report_.Row("warm reads (same handle, 2nd pass)",
                Fmt("%.0f reads/s (%.3f s)", nr / rr_.warm_s, rr_.warm_s),
                Fmt("%llu GET", (unsigned long long)rr_.warm.gets));
    report_.Row("  latency", rr_.warm_lat.Text());
    report_.Note(
        Fmt("reads hit written blocks in random order; the reader's block cache is %s "
            "so that the second pass can be served from memory",
            Bytes(rr_.cache_bytes).c_str()));
    if (rr_.done < static_cast<uint64_t>(n)) {
      report_.Note(
          Fmt("the cold pass stopped after %llu of %d reads at its %.0f s time cap "
              "(--read-seconds)",
              (unsigned long long)rr_.done, n, c_.read_seconds));
    }
    j_["random"] = {{"file_bytes", c_.rand_file_bytes},
                    {"ops", n},
                    {"write",
                     {{"seconds", rw_.seconds},
                      {"writes_seconds", writes_s},
                      {"flush_seconds", flush_s},
                      {"mib_s", rw_.mibps},
                      {"requests", w.Json()},
                      {"bytes_put_per_byte_written", rw_.put_ratio},
                      {"distinct_blocks_written", rw_.unique_blocks},
                      {"bytes_put_per_distinct_byte_written", rw_.unique_ratio},
                      {"latency", rw_.lat.Json()}}},
                    {"write_with_periodic_flush",
                     {{"seconds", during_s},
                      {"writes_per_s", rate},
                      {"flush_period_ms", c_.flush_period_ms},
                      {"flushes", rw_.bg_flushes},
                      {"latency_all", rw_.lat_bg.Json()},
                      {"latency_during_flush", rw_.lat_during.Json()}}},
                    {"flush_1mib",
                     {{"rounds", fs_.rounds},
                      {"latency", fs_.lat.Json()},
                      {"max_puts", fs_.max_puts},
                      {"max_gets", fs_.max_gets},
                      {"max_other_requests", fs_.max_other},
                      {"raw_1mib_put_latency_same_rounds", fs_.raw_lat.Json()},
                      {"bytes_put_total", fs_.bytes_put}}},
                    {"read",
                     {{"block_cache_bytes", rr_.cache_bytes},
                      {"open_seconds", rr_.open_s},
                      {"open_requests", open_counts.Json()},
                      {"cold_seconds", rr_.cold_s},
                      {"reads", rr_.done},
                      {"cold_reads_s", nr / rr_.cold_s},
                      {"cold_requests", rr_.cold.Json()},
                      {"cold_latency", rr_.cold_lat.Json()},
                      {"cold_max_gets_one_read", rr_.max_gets},
                      {"cold_reads_with_more_than_one_get", rr_.multi_get_reads},
                      {"warm_seconds", rr_.warm_s},
                      {"warm_reads_s", nr / rr_.warm_s},
                      {"warm_requests", rr_.warm.Json()},
                      {"warm_latency", rr_.warm_lat.Json()}}}};
  }

  // ---------------------------------------------------------------- 4 ---
  struct S3backerRun {
    uint32_t block_size = 0;
    int ops = 0, read_ops = 0;
    double write_s = 0, read_s = 0;
    uint64_t write_puts = 0, write_gets = 0, write_requests = 0;
    uint64_t read_gets = 0, read_requests = 0;
    bool measured = false;
  };

  void S3backerPhase() {
    report_.Section("4. s3backer on the same gateway (FUSE, O_DIRECT, --directIO)");
    std::string why;
    if (c_.skip_s3backer) {
      why = "skipped (--skip-s3backer)";
    } else {
      why = s3b::Unavailable(c_.root);
    }
    if (!why.empty()) {
      report_.Note(why);
      j_["s3backer"] = {{"skipped", why}};
      return;
    }
    const s3b::Target target = s3b::MakeTarget(c_.root, "hyperfile-bench");
    const std::string& dir = target.dir;
    int ops = std::min(c_.s3backer_ops, c_.rand_ops);
    json runs = json::array();
    try {
      for (uint32_t bs : {static_cast<uint32_t>(k4K), static_cast<uint32_t>(64 * kKiB)}) {
        std::string name = bs == k4K ? "s3backer-4k" : "s3backer-64k";
        std::string mount = dir + "/" + name;
        std::filesystem::create_directories(mount);
        std::vector<std::string> args = target.BaseArgs();
        for (std::string a : {"--prefix=" + target.prefix + name + "/",
                              "--blockSize=" + std::to_string(bs / kKiB) + "k",
                              "--size=" + std::to_string(c_.rand_file_bytes / kMiB) + "m",
                              std::string("--directIO"), std::string("--quiet")}) {
          args.push_back(a);
        }
        args.push_back(target.bucket);
        args.push_back(mount);
        std::string log = dir + "/" + name + ".log";
        Progress(Fmt("s3backer %s: %d random 4 KiB writes", Bytes(bs).c_str(), ops));
        S3backerRun run;
        run.block_size = bs;
        run.ops = ops;
        void* mem = nullptr;
        if (posix_memalign(&mem, k4K, k4K) != 0) throw BenchError("posix_memalign");
        std::unique_ptr<char, decltype(&std::free)> buf(static_cast<char*>(mem), &std::free);
        {
          s3b::Mount m(args, mount, log);
          auto s0 = s3b::ReadStats(m.Stats());
          int fd = open(m.File().c_str(), O_RDWR | O_DIRECT);
          if (fd < 0) fd = open(m.File().c_str(), O_RDWR);
          if (fd < 0) throw BenchError("open " + m.File() + ": " + std::strerror(errno));
          auto t0 = Clock::now();
          for (int i = 0; i < ops; i++) {
            uint64_t b = offsets_[i];
            std::memcpy(buf.get(), pool_.Piece(1000003 + i, k4K), k4K);
            if (pwrite(fd, buf.get(), k4K, static_cast<off_t>(b * k4K)) !=
                static_cast<ssize_t>(k4K)) {
              int e = errno;
              close(fd);
              throw BenchError(std::string("s3backer pwrite: ") + std::strerror(e));
            }
          }
          fsync(fd);
          close(fd);
          // Written back when no block is dirty and the PUT count stays put.
          run.write_s = s3b::WaitWrittenBack(m, t0);
          auto s1 = s3b::ReadStats(m.Stats());
          run.write_puts = static_cast<uint64_t>(s1["http_puts"] - s0["http_puts"]);
          run.write_gets = static_cast<uint64_t>(s1["http_gets"] - s0["http_gets"]);
          run.write_requests = s3b::Requests(s1) - s3b::Requests(s0);
        }
        Progress(Fmt("s3backer %s: %d cold random 4 KiB reads", Bytes(bs).c_str(), ops));
        {
          s3b::Mount m(args, mount, log);  // fresh mount: empty block cache
          auto s0 = s3b::ReadStats(m.Stats());
          int fd = open(m.File().c_str(), O_RDONLY | O_DIRECT);
          if (fd < 0) fd = open(m.File().c_str(), O_RDONLY);
          if (fd < 0) throw BenchError("open " + m.File() + ": " + std::strerror(errno));
          std::vector<uint64_t> reads(offsets_.begin(), offsets_.begin() + ops);
          std::shuffle(reads.begin(), reads.end(), std::mt19937_64(5));
          auto t0 = Clock::now();
          for (uint64_t b : reads) {
            if (Since(t0) > c_.read_seconds) break;  // time cap, as for hyperfile
            run.read_ops++;
            if (pread(fd, buf.get(), k4K, static_cast<off_t>(b * k4K)) !=
                static_cast<ssize_t>(k4K)) {
              int e = errno;
              close(fd);
              throw BenchError(std::string("s3backer pread: ") + std::strerror(e));
            }
          }
          run.read_s = Since(t0);
          close(fd);
          auto s1 = s3b::ReadStats(m.Stats());
          run.read_gets = static_cast<uint64_t>(s1["http_gets"] - s0["http_gets"]);
          run.read_requests = s3b::Requests(s1) - s3b::Requests(s0);
        }
        run.measured = true;
        RemoveAll(c_.root + "/" + name);
        s3b_.push_back(run);
      }
    } catch (const std::exception& e) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
      throw;
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);

    const double hn = c_.rand_ops, hr = static_cast<double>(std::max<uint64_t>(rr_.done, 1));
    const double h_write_per_op = rw_.seconds / hn, h_read_per_op = rr_.cold_s / hr;
    const double h_puts_per_op = rw_.counts.puts / hn, h_gets_per_op = rr_.cold.gets / hr;
    const double h_http_per_op = rw_.counts.http_puts / hn;
    for (const S3backerRun& r : s3b_) {
      const double n = r.ops, nr = std::max(1, r.read_ops);
      std::string bs = Bytes(r.block_size);
      report_.Row(Fmt("%s blocks: %d writes + write-back", bs.c_str(), r.ops),
                  Fmt("%.2f s, %.0f writes/s", r.write_s, n / r.write_s),
                  Fmt("hyperfile %.0fx less time per op", Ratio(r.write_s / n, h_write_per_op)));
      report_.Row(
          "  requests",
          Fmt("%llu PUT, %llu GET (%llu total)", (unsigned long long)r.write_puts,
              (unsigned long long)r.write_gets, (unsigned long long)r.write_requests),
          Fmt("hyperfile %.0fx fewer PUTs per op (%.0fx counting HTTP parts)",
              Ratio(r.write_puts / n, h_puts_per_op), Ratio(r.write_puts / n, h_http_per_op)));
      report_.Row(Fmt("%s blocks: %d cold reads", bs.c_str(), r.read_ops),
                  Fmt("%.2f s, %.0f reads/s", r.read_s, nr / r.read_s),
                  Fmt("hyperfile %.2fx less time per op", Ratio(r.read_s / nr, h_read_per_op)));
      report_.Row("  requests",
                  Fmt("%llu GET (%llu total)", (unsigned long long)r.read_gets,
                      (unsigned long long)r.read_requests),
                  Fmt("hyperfile %.2fx fewer GETs per op", Ratio(r.read_gets / nr, h_gets_per_op)));
      runs.push_back({{"block_size", r.block_size},
                      {"ops", r.ops},
                      {"write_seconds", r.write_s},
                      {"write_puts", r.write_puts},
                      {"write_gets", r.write_gets},
                      {"write_requests", r.write_requests},
                      {"read_ops", r.read_ops},
                      {"read_seconds", r.read_s},
                      {"read_gets", r.read_gets},
                      {"read_requests", r.read_requests},
                      {"hyperfile_time_ratio_write", Ratio(r.write_s / n, h_write_per_op)},
                      {"hyperfile_put_ratio_write", Ratio(r.write_puts / n, h_puts_per_op)},
                      {"hyperfile_time_ratio_read", Ratio(r.read_s / nr, h_read_per_op)},
                      {"hyperfile_get_ratio_read", Ratio(r.read_gets / nr, h_gets_per_op)}});
    }
    report_.Note(
        Fmt("s3backer defaults otherwise (block cache 1000 blocks, 20 write-back threads); "
            "it ran %d ops, hyperfile %d: ratios are per op; write time runs until "
            "s3backer has no dirty block left",
            ops, c_.rand_ops));
    j_["s3backer"] = {{"ops", ops}, {"runs", runs}};
  }

  // ---------------------------------------------------------------- 5 ---
  void HistoryPhase() {
    const int n = c_.checkpoints;
    Progress(Fmt("building a file with %d checkpoints", n));
    Metered m = OpenMetered(c_.root + "/hist");
    hf::CreateOptions co;
    co.block_size = static_cast<uint32_t>(k4K);
    auto file = Take(hf::File::Create(m.store, co), "create " + m.uri);
    std::vector<int64_t> times{0};
    auto t0 = Clock::now();
    int built = 0;
    for (int i = 0; i < n && Since(t0) < c_.history_seconds; i++, built++) {
      Check(file->PWrite(static_cast<uint64_t>(i % 64) * k4K, &i, sizeof i), "pwrite");
      Take(file->Flush(), "flush");
      times.push_back(Take(file->Stat(), "stat").checkpoint_time_ms);
    }
    double build_s = Since(t0);
    const uint64_t head = Take(file->Stat(), "stat").checkpoint;
    Check(file->Close(), "close");
    file.reset();
    Progress("opening it");
    struct Cost {
      std::string what;
      double ms;
      Counts c;
    };
    std::vector<Cost> costs;
    auto cost = [&](const std::string& what, const hf::At& at) {
      Counts c0 = m.Now();
      auto o0 = Clock::now();
      hf::OpenOptions ro;
      ro.read_only = true;
      auto f = at.kind == hf::At::Kind::kLatest ? hf::File::Open(m.store, ro)
                                                : hf::File::OpenAt(m.store, at, ro);
      double ms = Since(o0) * 1000;
      if (!f.ok()) throw BenchError("open " + what + ": " + f.status().ToString());
      costs.push_back({what, ms, m.Now() - c0});
    };
    cost("latest", hf::At::Latest());
    cost("oldest by id", hf::At::Checkpoint(1));
    cost("middle by id", hf::At::Checkpoint(head / 2));
    cost("oldest by time", hf::At::Time(times[1]));
    cost("middle by time", hf::At::Time(times[times.size() / 2]));
    RemoveAll(m.uri);
    hist_.latest_requests = costs[0].c.requests();
    hist_.latest_ms = costs[0].ms;
    hist_.measured = true;

    report_.Section(Fmt("5. Open cost of a file with %llu checkpoints", (unsigned long long)head));
    report_.Row("building it (1 small write + Flush each)",
                Fmt("%.1f s, %.0f flushes/s", build_s, built / build_s),
                Fmt("10,000 would take %.0f s", 10000 / (built / build_s)));
    json opens = json::array();
    for (const Cost& c : costs) {
      report_.Row("open " + c.what, Fmt("%.1f ms", c.ms),
                  Fmt("%llu requests: %s", (unsigned long long)c.c.requests(), c.c.Text().c_str()));
      opens.push_back({{"at", c.what}, {"ms", c.ms}, {"requests", c.c.Json()}});
    }
    if (built < 10000) {
      report_.Note(
          Fmt("%d flushes, not 10,000: %s", built,
              built < n
                  ? Fmt("stopped at the %.0f s cap (--history-seconds)", c_.history_seconds).c_str()
                  : "see --checkpoints"));
    }
    j_["history"] = {{"checkpoints", head},
                     {"flushes", built},
                     {"build_seconds", build_s},
                     {"flushes_per_s", built / build_s},
                     {"opens", opens}};
  }

  // ---------------------------------------------------------------- 6 ---
  void RssPhase() {
    Progress(Fmt("peak RSS child: %d writes + %d reads over a 1 TiB sparse file", c_.rss_writes,
                 c_.rss_reads));
    std::string uri = c_.root + "/rss";
    // The child is this program (argv[1] __rss_child, see main): its own
    // peak RSS, untouched by this process's.
    bench_util::Captured child = bench_util::CaptureCommand(
        {"/proc/self/exe", "__rss_child", uri, std::to_string(c_.rss_writes),
         std::to_string(c_.rss_reads), std::to_string(c_.rss_read_seconds)});
    RemoveAll(uri);
    if (child.exit_code != 0) {
      throw BenchError("rss child failed (exit code " + std::to_string(child.exit_code) +
                       "): " + child.out);
    }
    json r = json::parse(child.out);
    hf::OpenOptions d;
    const uint64_t budgets = d.block_cache_bytes + d.index_cache_bytes + d.dirty_budget_bytes;
    rss_.peak = r["vm_hwm_bytes"];
    rss_.budgets = budgets;
    rss_.measured = true;
    const int64_t over = static_cast<int64_t>(rss_.peak) - static_cast<int64_t>(budgets);
    const double mib = static_cast<double>(kMiB);
    report_.Section("6. Peak RSS, 1 TiB sparse file, random 4 KiB I/O, default budgets");
    report_.Row(
        "workload",
        Fmt("%d writes (Flush every %d), %d reads (%d threads)", c_.rss_writes,
            r["flush_every"].get<int>(), r["reads_done"].get<int>(), r["read_threads"].get<int>()),
        Fmt("%.1f s", r["seconds"].get<double>()));
    report_.Row("peak RSS (VmHWM)", Fmt("%.1f MiB", static_cast<double>(rss_.peak) / mib),
                Fmt("budgets %s (block %s + index %s + dirty %s)", Bytes(budgets).c_str(),
                    Bytes(d.block_cache_bytes).c_str(), Bytes(d.index_cache_bytes).c_str(),
                    Bytes(d.dirty_budget_bytes).c_str()));
    report_.Row(
        "peak RSS - budgets", Fmt("%+.1f MiB", static_cast<double>(over) / mib),
        Fmt("RSS before the file was opened: %.1f MiB", r["rss_before_bytes"].get<double>() / mib));
    r["budgets_bytes"] = budgets;
    r["peak_minus_budgets_bytes"] = over;
    j_["rss"] = r;
  }

  // ----------------------------------------------------------- targets ---
  void Targets() {
    const int p = c_.io_parallelism;
    report_.AddTarget(Fmt("seq write >= 90%% of raw 8 MiB PUT@%d", p),
                      seq_.measured && raw_.measured, seq_.write_mbps >= 0.9 * raw_.put8_p,
                      Fmt("%.0f%%", 100 * Ratio(seq_.write_mbps, raw_.put8_p)), ">= 90%");
    report_.AddTarget(Fmt("seq read >= 90%% of raw 8 MiB GET@%d", p),
                      seq_.measured && raw_.measured, seq_.read_mbps >= 0.9 * raw_.get8_p,
                      Fmt("%.0f%%", 100 * Ratio(seq_.read_mbps, raw_.get8_p)), ">= 90%");
    report_.AddTarget("PUTs per GiB, sequential (objects, metrics layer)", seq_.measured,
                      seq_.puts_per_gib <= 16, Fmt("%.1f", seq_.puts_per_gib), "<= 16");
    // The same counted on the wire: a multipart upload is start + parts + complete.
    report_.AddTarget("PUT requests per GiB, sequential (on the wire)", seq_.measured,
                      seq_.http_puts_per_gib <= 16, Fmt("%.1f", seq_.http_puts_per_gib), "<= 16");
    // Write path v2: every flush is one create-only commit request; a large
    // flush adds exactly one data object (the file's create is one more commit).
    report_.AddTarget(
        "seq write: 1 commit + 1 data object per flush, 0 GET", seq_.measured,
        seq_.write_gets == 0 && seq_.commits >= 1 && seq_.data_objects == seq_.commits - 1,
        Fmt("%llu commits, %llu data objects, %llu GET", (unsigned long long)seq_.commits,
            (unsigned long long)seq_.data_objects, (unsigned long long)seq_.write_gets),
        "commits = data objects + 1, 0 GET");
    report_.AddTarget("GETs, cold sequential read", seq_.measured, seq_.gets <= seq_.gets_bound,
                      Fmt("%llu", (unsigned long long)seq_.gets),
                      Fmt("<= %llu", (unsigned long long)seq_.gets_bound));
    report_.AddTarget("requests per flush below multipart threshold", fs_.measured,
                      fs_.max_puts == 1 && fs_.max_gets == 0,
                      Fmt("%llu PUT, %llu GET", (unsigned long long)fs_.max_puts,
                          (unsigned long long)fs_.max_gets),
                      "1 PUT, 0 GET");
    // The measure: bytes PUT over bytes written (100k x 4 KiB). The
    // table also shows it per distinct block, which background flushes raise
    // (a block rewritten after its segment went out is uploaded again).
    report_.AddTarget("bytes PUT / bytes written, random", rw_.measured, rw_.put_ratio <= 1.10,
                      Fmt("%.3f", rw_.put_ratio), "<= 1.10");
    report_.AddTarget("bytes PUT / bytes written, sequential", seq_.measured,
                      seq_.put_ratio <= 1.01, Fmt("%.4f", seq_.put_ratio), "<= 1.01");
    const double raw64 = raw_.put64_1 * 1e6 / kMiB;
    report_.AddTarget("random 4K write vs raw 64 MiB PUT MiB/s", rw_.measured && raw_.measured,
                      rw_.mibps >= 0.6 * raw64, Fmt("%.0f%%", 100 * Ratio(rw_.mibps, raw64)),
                      ">= 60%");
    const S3backerRun* s4 = nullptr;
    for (const auto& r : s3b_) {
      if (r.block_size == k4K && r.measured) s4 = &r;
    }
    double put_x = 0, time_x = 0;
    if (s4 && rw_.measured) {
      put_x = Ratio(s4->write_puts / static_cast<double>(s4->ops),
                    rw_.counts.puts / static_cast<double>(c_.rand_ops));
      time_x = Ratio(s4->write_s / s4->ops, rw_.seconds / c_.rand_ops);
    }
    report_.AddTarget("fewer PUTs than s3backer 4K (per op)", s4 != nullptr, put_x >= 100,
                      Fmt("%.0fx", put_x), ">= 100x");
    report_.AddTarget("less wall time than s3backer 4K (per op)", s4 != nullptr, time_x >= 20,
                      Fmt("%.0fx", time_x), ">= 20x");
    report_.AddTarget("GETs per cold random 4K read (max in one read)", rr_.measured,
                      rr_.max_gets <= 2,
                      Fmt("%.3f avg, %llu max", Ratio(rr_.cold.gets, static_cast<double>(rr_.done)),
                          (unsigned long long)rr_.max_gets),
                      "1 data + <= 1 index");
    const double warm = rr_.measured ? static_cast<double>(rr_.done) / rr_.warm_s : 0;
    report_.AddTarget("warm random 4K reads/s", rr_.measured, warm >= 200000, Fmt("%.0f", warm),
                      ">= 200000");
    report_.AddTarget("p99 write latency during flush", rw_.measured && rw_.lat_during.n > 0,
                      rw_.lat_during.p99 <= 5000, Summary::Us(rw_.lat_during.p99), "<= 5 ms");
    report_.AddTarget(
        "Flush <= 1 MiB p50 vs raw 1 MiB PUT p50", fs_.measured,
        fs_.lat.p50 <= 1.2 * fs_.raw_lat.p50,
        Fmt("%.2fx (%s)", Ratio(fs_.lat.p50, fs_.raw_lat.p50), Summary::Us(fs_.lat.p50).c_str()),
        "<= 1.2x");
    report_.AddTarget("peak RSS vs budgets + 32 MiB", rss_.measured,
                      rss_.peak <= rss_.budgets + 32 * kMiB,
                      Fmt("%.0f MiB", static_cast<double>(rss_.peak) / kMiB),
                      Fmt("<= %.0f MiB", static_cast<double>(rss_.budgets + 32 * kMiB) / kMiB));
  }

  Config c_;
  DataPool pool_;
  Report report_;
  json j_;
  Raw raw_;
  struct {
    double write_mbps = 0, read_mbps = 0, puts_per_gib = 0, put_ratio = 0;
    double write_cpu_per_gib = 0, read_cpu_per_gib = 0, http_puts_per_gib = 0;
    uint64_t commits = 0, data_objects = 0, write_gets = 0;
    uint64_t gets = 0, gets_bound = 0;
    bool measured = false;
  } seq_;
  struct {
    double seconds = 0, mibps = 0, put_ratio = 0, unique_ratio = 0;
    uint64_t unique_blocks = 0;
    Counts counts;
    Summary lat, lat_bg, lat_during;
    int bg_flushes = 0;
    bool measured = false;
  } rw_;
  struct {
    Summary lat, raw_lat;
    int rounds = 0;
    uint64_t max_puts = 0, max_gets = 0, max_other = 0, bytes_put = 0;
    bool measured = false;
  } fs_;
  struct {
    uint64_t cache_bytes = 0, max_gets = 0, multi_get_reads = 0, done = 0;
    double open_s = 0, cold_s = 0, warm_s = 0;
    Counts cold, warm;
    Summary cold_lat, warm_lat;
    bool measured = false;
  } rr_;
  std::vector<S3backerRun> s3b_;
  struct {
    uint64_t latest_requests = 0;
    double latest_ms = 0;
    bool measured = false;
  } hist_;
  struct {
    uint64_t peak = 0, budgets = 0;
    bool measured = false;
  } rss_;
  std::vector<uint64_t> offsets_;
  Expect expect_;
};

// ----------------------------------------------------------- rss child ---
uint64_t StatusBytes(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field))
      return std::strtoull(line.c_str() + std::strlen(field), nullptr, 10) * kKiB;
  }
  return 0;
}

// hyperfile_bench __rss_child URI WRITES READS CAP: random 4 KiB writes over a
// 1 TiB sparse file with default OpenOptions and a Flush every 25,000 writes,
// then random reads (half of written blocks, half anywhere) on io_parallelism
// threads for at most CAP seconds. Prints one JSON object with VmHWM.
int RssChild(const std::string& uri, int writes, int reads, double cap) {
  const int flush_every = 25000, threads = hf::OpenOptions{}.io_parallelism;
  try {
    auto store = Take(hf::OpenStore(uri), "open store " + uri);
    uint64_t before = StatusBytes("VmRSS:");
    auto t0 = Clock::now();
    hf::CreateOptions co;
    co.block_size = static_cast<uint32_t>(k4K);
    co.initial_size = kTiB;
    auto file = Take(hf::File::Create(store, co), "create " + uri);
    DataPool pool(16 * kMiB, 3);
    std::mt19937_64 rng(9);
    const uint64_t blocks = kTiB / k4K;
    std::vector<uint64_t> written;
    written.reserve(writes);
    for (int i = 0; i < writes; i++) {
      uint64_t b = rng() % blocks;
      Check(file->PWrite(b * k4K, pool.Piece(i, k4K), k4K), "pwrite");
      written.push_back(b);
      if ((i + 1) % flush_every == 0) Take(file->Flush(), "flush");
    }
    Take(file->Flush(), "flush");
    uint64_t after_writes = StatusBytes("VmHWM:");
    std::atomic<int> reads_done{0};
    auto r0 = Clock::now();
    RunParallel(reads, threads, [&](int i) {
      if (Since(r0) > cap) return;
      reads_done++;
      thread_local std::string buf(k4K, '\0');
      uint64_t b = (i % 2) ? written[(static_cast<uint64_t>(i) * 2654435761u) % written.size()]
                           : (static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull) % blocks;
      size_t n = Take(file->PRead(b * k4K, buf.data(), k4K), "pread");
      if (n != k4K) throw BenchError("short read");
    });
    Check(file->Close(), "close");
    double seconds = Since(t0);
    json out = {{"writes", writes},
                {"reads", reads},
                {"reads_done", reads_done.load()},
                {"flush_every", flush_every},
                {"read_threads", threads},
                {"file_bytes", kTiB},
                {"block_size", k4K},
                {"seconds", seconds},
                {"rss_before_bytes", before},
                {"vm_hwm_after_writes_bytes", after_writes},
                {"vm_hwm_bytes", StatusBytes("VmHWM:")},
                {"vm_rss_end_bytes", StatusBytes("VmRSS:")}};
    std::printf("%s\n", out.dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::printf("%s\n", e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::string(argv[1]) == "__rss_child") {
    return RssChild(argv[2], std::atoi(argv[3]), std::atoi(argv[4]), std::atof(argv[5]));
  }
  g_start = Clock::now();
  CLI::App app{"hyperfile File benchmark: vs the raw store and vs s3backer (issue 5)"};
  Config c;
  std::string uri, json_path;
  int ops = 0, s3backer_ops = 0, checkpoints = 0, rss_writes = 0, rss_reads = 0;
  app.add_option(
      "--uri", uri,
      "root for the run's objects (default $HYPERFILE_TEST_S3_URI/hyperfile-bench-<random>)");
  app.add_flag("--quick", c.quick, "small sizes for a smoke run (64 MiB, 5k ops)");
  app.add_flag("--skip-s3backer", c.skip_s3backer, "do not run the s3backer comparison");
  app.add_option("--json", json_path, "write every figure to this JSON file");
  app.add_option("--ops", ops, "random 4 KiB ops (default 100000, quick 5000)");
  app.add_option("--s3backer-ops", s3backer_ops,
                 "ops through s3backer (default 10000, quick 2000)");
  app.add_option("--checkpoints", checkpoints,
                 "checkpoints of the open-cost file (default 10000, quick 300)");
  app.add_option("--rss-writes", rss_writes, "writes of the RSS run (default 200000, quick 20000)");
  app.add_option("--rss-reads", rss_reads, "reads of the RSS run (default 50000, quick 5000)");
  double read_seconds = 0, history_seconds = 0;
  app.add_option("--read-seconds", read_seconds,
                 "time cap of each cold random read pass (default 120, quick 20)");
  app.add_option("--history-seconds", history_seconds,
                 "time cap on building the many-checkpoint file (default 120, quick 15)");
  std::vector<std::string> phases;
  app.add_option("--phases", phases, "run only these phases (default all)")
      ->delimiter(',')
      ->check(CLI::IsMember({"raw", "seq", "rand", "s3backer", "hist", "rss"}));
  uint64_t part_size = 0;
  app.add_option("--part-size", part_size, "S3 multipart part size in bytes (default the store's)");
  CLI11_PARSE(app, argc, argv);
  c.phases.insert(phases.begin(), phases.end());
  g_part_size = part_size;

  if (c.quick) {
    c.seq_bytes = c.rand_file_bytes = 64 * kMiB;
    c.rand_ops = 5000;
    c.s3backer_ops = 2000;
    c.checkpoints = 300;
    c.rss_writes = 20000;
    c.rss_reads = 5000;
    c.fsync_rounds = 10;
    c.paced_seconds = 2;
    c.read_seconds = 20;
    c.history_seconds = 15;
    c.rss_read_seconds = 15;
    c.raw_count = 8;
  }
  if (ops > 0) c.rand_ops = ops;
  if (s3backer_ops > 0) c.s3backer_ops = s3backer_ops;
  if (checkpoints > 0) c.checkpoints = checkpoints;
  if (rss_writes > 0) c.rss_writes = rss_writes;
  if (rss_reads > 0) c.rss_reads = rss_reads;
  if (read_seconds > 0) c.read_seconds = read_seconds;
  if (history_seconds > 0) c.history_seconds = history_seconds;
  if (uri.empty()) {
    const char* base = std::getenv("HYPERFILE_TEST_S3_URI");
    if (!base || !*base) {
      std::fprintf(stderr, "hyperfile_bench: --uri or HYPERFILE_TEST_S3_URI is needed\n");
      return 2;
    }
    uri = base;
    while (uri.size() > 5 && uri.back() == '/') uri.pop_back();
    uri += "/hyperfile-bench-" + RandomTag();
  }
  c.root = uri;
  {  // refuse a root that holds objects: the cleanup deletes under it
    auto store = hf::OpenStore(uri);
    std::vector<hf::ObjectInfo> some;
    if (!store.ok() || !(*store)->List("", "", 1, &some).ok()) {
      std::fprintf(stderr, "hyperfile_bench: cannot list %s: %s\n", uri.c_str(),
                   store.ok() ? "list failed" : store.status().ToString().c_str());
      return 1;
    }
    if (!some.empty()) {
      std::fprintf(stderr, "hyperfile_bench: %s is not empty; give an empty prefix\n", uri.c_str());
      return 1;
    }
  }

  Bench bench(c);
  int rc = 0;
  try {
    Progress("root " + uri);
    bench.Run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hyperfile_bench: %s\n", e.what());
    rc = 1;
  }
  Progress("cleaning up");
  bench.Cleanup();
  std::printf("hyperfile_bench  root %s%s\n", uri.c_str(), c.quick ? "  (--quick)" : "");
  bench.report().Print(stdout);
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    json j = bench.Json();
    j["ok"] = rc == 0;
    j["total_seconds"] = Since(g_start);
    out << j.dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "hyperfile_bench: cannot write %s\n", json_path.c_str());
      return 1;
    }
  }
  return rc;
}
