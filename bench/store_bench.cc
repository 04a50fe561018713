// Raw object-store throughput: the baseline later benchmarks compare to.
//   store_bench --uri s3://bucket/prefix [--count N] [--json out.json]
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "hyperfile/object_store.h"

using namespace hyperfile;
using Clock = std::chrono::steady_clock;

namespace {

// Runs `total` operations on `threads` threads; returns seconds.
template <typename Op>
double Run(int total, int threads, Op op) {
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) {
    pool.emplace_back([&] {
      for (int i; (i = next++) < total;) {
        Status st = op(i);
        if (!st.ok()) {
          std::fprintf(stderr, "store_bench: %s\n", st.ToString().c_str());
          failed = true;
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  if (failed) std::exit(1);
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"raw object store throughput"};
  std::string uri, json_path;
  int count = 32;
  app.add_option("--uri", uri, "store URI")->required();
  app.add_option("--count", count, "8 MiB objects per phase (4 KiB phases use 32x)");
  app.add_option("--json", json_path, "write the figures as JSON");
  CLI11_PARSE(app, argc, argv);
  auto opened = OpenStore(uri);
  if (!opened.ok()) {
    std::fprintf(stderr, "store_bench: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  auto store = *opened;
  std::string big(8 << 20, 'x'), small(4096, 's');
  for (size_t i = 0; i < big.size(); i += 512) big[i] = static_cast<char>(i >> 9);
  auto key = [](const char* kind, int i) {
    return std::string("bench/") + kind + "/" + std::to_string(i);
  };
  nlohmann::json j;
  auto mbps = [&](double secs, int n, size_t size) {
    return n * static_cast<double>(size) / secs / 1e6;
  };
  for (int par : {1, 8}) {
    double put = Run(count, par, [&](int i) { return store->Put(key("big", i), big); });
    double get = Run(count, par, [&](int i) {
      std::string out;
      return store->Get(key("big", i), &out);
    });
    j["put_8mib_mbps_" + std::to_string(par)] = mbps(put, count, big.size());
    j["get_8mib_mbps_" + std::to_string(par)] = mbps(get, count, big.size());
  }
  int smalls = count * 32;
  double sput = Run(smalls, 16, [&](int i) { return store->Put(key("small", i), small); });
  double sget = Run(smalls, 16, [&](int i) {
    std::string out;
    return store->Get(key("small", i), &out);
  });
  j["put_4kib_per_s_16"] = smalls / sput;
  j["get_4kib_per_s_16"] = smalls / sget;
  std::vector<std::string> keys;
  for (int i = 0; i < count; i++) keys.push_back(key("big", i));
  for (int i = 0; i < smalls; i++) keys.push_back(key("small", i));
  (void)store->DeleteMany(keys);
  std::printf("store %s\n", store->Name().c_str());
  std::printf("  8 MiB PUT   1 in flight: %8.1f MB/s   8 in flight: %8.1f MB/s\n",
              j["put_8mib_mbps_1"].get<double>(), j["put_8mib_mbps_8"].get<double>());
  std::printf("  8 MiB GET   1 in flight: %8.1f MB/s   8 in flight: %8.1f MB/s\n",
              j["get_8mib_mbps_1"].get<double>(), j["get_8mib_mbps_8"].get<double>());
  std::printf("  4 KiB PUT  16 in flight: %8.0f req/s\n", j["put_4kib_per_s_16"].get<double>());
  std::printf("  4 KiB GET  16 in flight: %8.0f req/s\n", j["get_4kib_per_s_16"].get<double>());
  if (!json_path.empty()) std::ofstream(json_path) << j.dump(2) << "\n";
  return 0;
}
