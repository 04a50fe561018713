// SPDX-License-Identifier: Apache-2.0
// Raw object-store throughput: the baseline the file-level benchmarks are
// compared to. Measures, through OpenStore (retry layer included):
//   8 MiB PUT and GET, one at a time and with 8 in flight   -> MB/s
//   4 MiB ranged GETs (two per 8 MiB object), 8 in flight   -> MB/s
//   4 KiB PUT and GET with 16 in flight                     -> requests/s
// and for every phase the client's CPU time (getrusage of this process, user
// + system, all threads) per GiB moved: with a server on the same machine
// wall time says little about the client's own cost. --count 128 moves
// 1 GiB in each 8 MiB phase.
// Objects go under "store-bench-<random>/" and are deleted at the end (also
// after a failure).
//
//   store_bench --uri file:///tmp/x [--count 32] [--small-count 1024] [--json out.json]
//   store_bench --uri s3://bucket/prefix      (credentials from AWS_* variables)
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <vector>

#include "hyperfile/object_store.h"

using hyperfile::ObjectStore;
using hyperfile::Status;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kBigSize = 8 << 20;
constexpr size_t kSmallSize = 4 << 10;

struct Phase {
  std::string name;  // JSON key
  std::string label;
  int ops;
  int in_flight;
  size_t size;
  bool ranged = false;  // Get(key, offset, size): half an object per op
  double seconds = 0;
  double cpu_seconds = 0;  // user + system of the whole process
  double CpuPerGiB() const { return cpu_seconds / (ops * static_cast<double>(size) / (1 << 30)); }
  double MBps() const { return ops * static_cast<double>(size) / seconds / 1e6; }
  double OpsPerSecond() const { return ops / seconds; }
};

// User + system CPU seconds of this process so far (every thread).
double ProcessCpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto sec = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

// Runs op(0..total-1) with `in_flight` threads; returns the first error.
Status Run(int total, int in_flight, const std::function<Status(int)>& op, double* seconds,
           double* cpu_seconds) {
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  Status first_error;
  std::mutex mu;
  auto start = Clock::now();
  double cpu_start = ProcessCpuSeconds();
  std::vector<std::thread> pool;
  for (int t = 0; t < in_flight; t++) {
    pool.emplace_back([&] {
      for (int i; !failed && (i = next++) < total;) {
        Status st = op(i);
        if (st.ok()) continue;
        std::lock_guard<std::mutex> lock(mu);
        if (!failed.exchange(true)) first_error = st;
      }
    });
  }
  for (auto& t : pool) t.join();
  *seconds = std::chrono::duration<double>(Clock::now() - start).count();
  *cpu_seconds = ProcessCpuSeconds() - cpu_start;
  return first_error;
}

std::string RandomTag() {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(std::mt19937_64(std::random_device{}())()));
  return buf;
}

class Bench {
 public:
  Bench(std::shared_ptr<ObjectStore> store, int count, int small_count)
      : store_(std::move(store)), dir_("store-bench-" + RandomTag() + "/") {
    big_.resize(kBigSize);
    std::mt19937_64 rng(1);
    for (size_t i = 0; i + 8 <= big_.size(); i += 8) {
      uint64_t v = rng();
      std::memcpy(&big_[i], &v, 8);
    }
    small_.assign(kSmallSize, 's');
    phases_ = {{"put_8mib_1", "8 MiB PUT", count, 1, kBigSize},
               {"get_8mib_1", "8 MiB GET", count, 1, kBigSize},
               {"put_8mib_8", "8 MiB PUT", count, 8, kBigSize},
               {"get_8mib_8", "8 MiB GET", count, 8, kBigSize},
               {"get_4mib_8_ranged", "4 MiB rGET", 2 * count, 8, kBigSize / 2, true},
               {"put_4kib_16", "4 KiB PUT", small_count, 16, kSmallSize},
               {"get_4kib_16", "4 KiB GET", small_count, 16, kSmallSize}};
  }

  Status RunAll() {
    for (Phase& p : phases_) {
      bool put = p.name.starts_with("put");
      bool big = p.size >= kBigSize / 2;
      const std::string& data = big ? big_ : small_;
      std::string kind = big ? "big" : "small";
      auto op = [&](int i) -> Status {
        if (p.ranged) {  // the first or second half of object i / 2
          std::string key = dir_ + kind + "/" + std::to_string(i / 2);
          uint64_t offset = (i % 2) * p.size;
          std::string out;
          HF_RETURN_IF_ERROR(store_->Get(key, offset, p.size, &out, nullptr));
          // Size and the first bytes only: a full compare would be counted
          // as the client's CPU.
          if (out.size() != p.size ||
              std::string_view(out).substr(0, 64) != std::string_view(data).substr(offset, 64)) {
            return Status::Corrupt("get " + key + ": wrong bytes");
          }
          return Status::OK();
        }
        std::string key = dir_ + kind + "/" + std::to_string(i);
        if (put) return store_->Put(key, data);
        std::string out;
        HF_RETURN_IF_ERROR(store_->Get(key, &out));
        if (out.size() != data.size()) return Status::Corrupt("get " + key + ": wrong size");
        return Status::OK();
      };
      HF_RETURN_IF_ERROR(
          Run(p.ops, p.in_flight, op, &p.seconds, &p.cpu_seconds).WithContext(p.label));
    }
    return Status::OK();
  }

  // Deletes everything the run may have written, even after a failure.
  Status Cleanup() {
    std::vector<hyperfile::ObjectInfo> objects;
    HF_RETURN_IF_ERROR(store_->List(dir_, "", 0, &objects));
    std::vector<std::string> keys;
    for (auto& o : objects) keys.push_back(o.key);
    return store_->DeleteMany(keys);
  }

  void Print() const {
    std::printf("store %s\n", store_->Name().c_str());
    std::printf("  %-10s %9s %7s %12s %12s %13s\n", "phase", "in flight", "ops", "MB/s", "req/s",
                "CPU s/GiB");
    for (const Phase& p : phases_) {
      std::printf("  %-10s %9d %7d %12.1f %12.0f %13.3f\n", p.label.c_str(), p.in_flight, p.ops,
                  p.MBps(), p.OpsPerSecond(), p.CpuPerGiB());
    }
  }

  nlohmann::json Json() const {
    nlohmann::json j;
    j["store"] = store_->Name();
    for (const Phase& p : phases_) {
      j[p.name] = {{"in_flight", p.in_flight},
                   {"ops", p.ops},
                   {"bytes", p.size},
                   {"seconds", p.seconds},
                   {"mb_per_s", p.MBps()},
                   {"ops_per_s", p.OpsPerSecond()},
                   {"cpu_seconds", p.cpu_seconds},
                   {"cpu_s_per_gib", p.CpuPerGiB()}};
    }
    return j;
  }

 private:
  std::shared_ptr<ObjectStore> store_;
  std::string dir_;
  std::string big_, small_;
  std::vector<Phase> phases_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"raw object store throughput (MB/s for 8 MiB objects, req/s for 4 KiB)"};
  std::string uri, json_path;
  int count = 32, small_count = 1024;
  app.add_option("--uri", uri, "store URI: s3://bucket/prefix, file:///dir, memory://x")
      ->required();
  app.add_option("--count", count, "8 MiB objects per phase")->check(CLI::PositiveNumber);
  app.add_option("--small-count", small_count, "4 KiB objects per phase")
      ->check(CLI::PositiveNumber);
  app.add_option("--json", json_path, "also write the figures to this JSON file");
  CLI11_PARSE(app, argc, argv);

  auto opened = hyperfile::OpenStore(uri);
  if (!opened.ok()) {
    std::fprintf(stderr, "store_bench: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  Bench bench(*opened, count, small_count);
  Status run = bench.RunAll();
  Status cleanup = bench.Cleanup();
  if (!run.ok()) {
    std::fprintf(stderr, "store_bench: %s\n", run.ToString().c_str());
    return 1;
  }
  if (!cleanup.ok()) std::fprintf(stderr, "store_bench: cleanup: %s\n", cleanup.ToString().c_str());
  bench.Print();
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << bench.Json().dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "store_bench: cannot write %s\n", json_path.c_str());
      return 1;
    }
  }
  return 0;
}
