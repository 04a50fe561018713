// SPDX-License-Identifier: Apache-2.0
// Compression benchmark (issue 12's targets) on a data file given with
// --input (scripts/bench.sh makes a tar of /usr/share and /usr/lib of the
// machine, capped): for each codec, a new file under --uri is written
// sequentially (8 MiB writes, then close), read back sequentially by a
// fresh handle, and read at random 4 KiB offsets by fresh handles (cold,
// counting GETs through the metrics layer). Prints stored bytes (every
// seg/ and dat/ object), throughputs and request counts, and the targets
// against --zstd-reference (bytes the `zstd` command produced at the same
// level for the same input).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "hyperfile/file.h"
#include "hyperfile/object_store.h"
#include "hyperfile/store_layers.h"

namespace hf = hyperfile;
using Clock = std::chrono::steady_clock;

namespace {

template <typename T>
T Must(hf::Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "compression_bench: %s: %s\n", what, r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}
void Must(const hf::Status& st, const char* what) {
  if (!st.ok()) {
    std::fprintf(stderr, "compression_bench: %s: %s\n", what, st.ToString().c_str());
    std::exit(1);
  }
}

uint64_t Stored(hf::ObjectStore* store) {
  uint64_t total = 0;
  for (const char* prefix : {"seg/", "dat/"}) {
    std::vector<hf::ObjectInfo> objects;
    Must(store->List(prefix, "", 0, &objects), "list");
    for (const auto& o : objects) total += o.size;
  }
  return total;
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// CPU seconds (user + system) this process has used so far: on a machine
// whose cores are shared (with the S3 gateway, with other builds),
// throughput follows the CPU a phase needs, so the bench prints both.
double CpuSeconds() {
  struct rusage u {};
  ::getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hyperfile compression benchmark"};
  std::string input, uri = "memory://compression-bench", json_path;
  std::vector<std::string> codecs{"none", "lz4", "zstd:1", "zstd:3"};
  std::vector<std::string> references;  // codec=bytes
  int random_reads = 50;
  app.add_option("--input", input, "the data file")->required();
  app.add_option("--uri", uri, "base URI; one file per codec below it");
  app.add_option("--codecs", codecs, "codecs to run");
  app.add_option("--reference", references,
                 "zstd:L=BYTES: what the `zstd -L` command made of the input");
  app.add_option("--random-reads", random_reads, "cold random 4 KiB reads per codec");
  app.add_option("--json", json_path, "write the figures here");
  CLI11_PARSE(app, argc, argv);

  std::string data;
  {
    std::ifstream in(input, std::ios::binary);
    data.assign(std::istreambuf_iterator<char>(in), {});
  }
  if (data.empty()) Must(hf::Status::InvalidArgument("empty input " + input), "read input");
  const std::string run = std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count());
  nlohmann::json out = nlohmann::json::object();
  out["input_bytes"] = data.size();
  std::printf("input: %s, %.1f MiB\n", input.c_str(), data.size() / 1048576.0);
  std::printf("%-8s %14s %7s %12s %12s %10s %10s %10s %10s\n", "codec", "stored bytes", "ratio",
              "write MiB/s", "read MiB/s", "max GETs", "idx+data", "wCPUs/GiB", "rCPUs/GiB");
  double none_write = 0, none_read = 0;
  for (const std::string& name : codecs) {
    hf::Compression codec = Must(hf::ParseCompression(name), "codec");
    auto store = Must(hf::OpenStore(uri + "/" + run + "-" + name), "open store");
    hf::CreateOptions co;
    co.compression = codec;
    auto t0 = Clock::now();
    double cpu0 = CpuSeconds();
    {
      auto f = Must(hf::File::Create(store, co), "create");
      for (uint64_t off = 0; off < data.size(); off += 8 << 20) {
        size_t n = std::min<size_t>(8 << 20, data.size() - off);
        Must(f->PWrite(off, data.data() + off, n), "write");
      }
      Must(f->Close(), "close");
    }
    const double write_s = Seconds(t0);
    const double write_cpu = CpuSeconds() - cpu0;
    std::string back(data.size(), '\0');
    t0 = Clock::now();
    cpu0 = CpuSeconds();
    {
      auto f = Must(hf::File::Open(store), "open");
      for (uint64_t off = 0; off < data.size(); off += 8 << 20) {
        size_t n = std::min<size_t>(8 << 20, data.size() - off);
        Must(f->PRead(off, back.data() + off, n), "read");
      }
    }
    const double read_s = Seconds(t0);
    const double read_cpu = CpuSeconds() - cpu0;
    if (back != data) Must(hf::Status::Corrupt("read back differs"), name.c_str());
    const uint64_t stored = Stored(store.get());
    auto metrics = std::make_shared<hf::MetricsStore>(store);
    std::mt19937_64 rng(7);
    uint64_t max_gets = 0, max_open = 0;
    for (int i = 0; i < random_reads; i++) {
      metrics->Reset();
      hf::OpenOptions ro;
      ro.read_only = true;
      auto f = Must(hf::File::Open(metrics, ro), "open");
      max_open = std::max(max_open, metrics->Snapshot().total_requests());
      metrics->Reset();
      uint64_t off = (rng() % (data.size() / 4096)) * 4096;
      char buf[4096];
      Must(f->PRead(off, buf, sizeof buf), "random read");
      max_gets = std::max(max_gets, metrics->Snapshot().count(hf::StoreVerb::kGet));
    }
    const double mib = data.size() / 1048576.0;
    const double wr = mib / write_s, rd = mib / read_s;
    if (codec.codec == hf::Codec::kNone) {
      none_write = wr;
      none_read = rd;
    }
    const double gib = data.size() / 1073741824.0;
    std::printf("%-8s %14llu %7.2f %12.1f %12.1f %10llu %10s %10.2f %10.2f\n", name.c_str(),
                (unsigned long long)stored, double(data.size()) / double(stored), wr, rd,
                (unsigned long long)max_gets, max_open <= 2 ? "open<=2" : "open>2", write_cpu / gib,
                read_cpu / gib);
    out[name] = {{"stored_bytes", stored},
                 {"ratio", double(data.size()) / double(stored)},
                 {"write_mib_s", wr},
                 {"read_mib_s", rd},
                 {"write_cpu_s_per_gib", write_cpu / gib},
                 {"read_cpu_s_per_gib", read_cpu / gib},
                 {"random_4k_max_gets", max_gets},
                 {"open_max_requests", max_open}};
    for (const std::string& r : references) {
      if (r.rfind(name + "=", 0) != 0) continue;
      const double reference = std::stod(r.substr(name.size() + 1));
      out[name]["vs_zstd_command"] = double(stored) / reference;
      std::printf(
          "  %s stored / `zstd` command at that level (%.0f bytes): %.3f (target <= 1.15)\n",
          name.c_str(), reference, double(stored) / reference);
    }
    if (codec.codec != hf::Codec::kNone && none_write > 0) {
      std::printf("  %s vs none: write %.0f %%, read %.0f %% (target >= 80 %%)\n", name.c_str(),
                  100 * wr / none_write, 100 * rd / none_read);
    }
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return 0;
}
