// SPDX-License-Identifier: Apache-2.0
// The log-collection benchmark (issue 13), with the `hyperfile` command as
// users run it, on an S3 server (scripts/bench.sh starts the local gateway):
//
//   1. raw PUT latency: small create-only PUTs (the commit's shape), p50/p99;
//   2. line-to-follower latency: `hyperfile append URI --flush-every 1s` fed
//      one timestamped line every 50..350 ms, `hyperfile read URI --follow
//      --poll 250ms` in another process; the latency of each line is the
//      time from its write into the writer's stdin to its arrival on the
//      follower's stdout. Target: p99 <= flush + poll + 2 x raw PUT p50;
//   3. requests per hour, from counted requests (--stats) over a short run:
//      an idle follower (250 ms poll), and a writer appending one line a
//      second with --flush-every 1s and 5s;
//   4. stored bytes / log bytes for a day-like stream with --flush-every 5s:
//      17,280 flushes of 50 lines (10 lines/s x 5 s, 100..200 bytes each),
//      run in-process back to back (library, same flush path as the CLI; a
//      memory store: the bytes do not depend on the backend or the clock)
//      with 4 KiB blocks; with 64 KiB blocks a tenth of it, extrapolated
//      (the per-flush cost is constant once a header carries its 64 recent
//      descriptors, so the ratio is too).
//
//   log_bench [--uri s3://bucket/prefix] [--seconds N] [--flushes N] [--json FILE]
//
// Without --uri the root is $HYPERFILE_TEST_S3_URI/log-bench-<random>. Every
// object it writes is deleted at the end.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/object_store.h"
#include "hyperfile/store_layers.h"

namespace hf = hyperfile;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "log_bench: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T Must(hf::Result<T> r, const std::string& what) {
  if (!r.ok()) Die(what + ": " + r.status().ToString());
  return std::move(r).value();
}
void Must(const hf::Status& st, const std::string& what) {
  if (!st.ok()) Die(what + ": " + st.ToString());
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::string HyperfileBinary() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) Die("cannot find /proc/self/exe");
  return (self.parent_path() / "hyperfile").string();
}

// `hyperfile <args>` with pipes for stdin and stdout (stderr to a file).
struct Proc {
  pid_t pid = -1;
  int in = -1, out = -1;
  std::string err_path;

  Proc(const std::vector<std::string>& args, const std::string& err) : err_path(err) {
    int i[2], o[2];
    if (::pipe2(i, O_CLOEXEC) != 0 || ::pipe2(o, O_CLOEXEC) != 0) Die("pipe");
    pid = ::fork();
    if (pid == 0) {
      ::dup2(i[0], 0);
      ::dup2(o[1], 1);
      int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(e, 2);
      std::vector<std::string> argv = {HyperfileBinary()};
      argv.insert(argv.end(), args.begin(), args.end());
      std::vector<char*> c;
      for (auto& a : argv) c.push_back(a.data());
      c.push_back(nullptr);
      ::execv(c[0], c.data());
      ::_exit(127);
    }
    ::close(i[0]);
    ::close(o[1]);
    in = i[1];
    out = o[0];
  }
  void Write(const std::string& s) {
    size_t done = 0;
    while (done < s.size()) {
      ssize_t n = ::write(in, s.data() + done, s.size() - done);
      if (n <= 0) Die("write to hyperfile's stdin failed");
      done += static_cast<size_t>(n);
    }
  }
  void CloseIn() {
    if (in >= 0) ::close(in);
    in = -1;
  }
  int Wait() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (out >= 0) ::close(out);
    out = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  std::string Err() const {
    std::ifstream f(err_path);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
};

// "hyperfile: stats: put=3 get=10 head=0 list=5 ..." -> verb counts.
std::map<std::string, uint64_t> ParseStats(const std::string& err) {
  std::map<std::string, uint64_t> out;
  size_t at = err.find("hyperfile: stats: ");
  if (at == std::string::npos) return out;
  std::string line = err.substr(at + 18, err.find('\n', at) - at - 18);
  size_t pos = 0;
  while (pos < line.size()) {
    size_t sp = line.find(' ', pos);
    std::string item = line.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos);
    size_t eq = item.find('=');
    if (eq != std::string::npos) {
      char* end = nullptr;
      uint64_t v = std::strtoull(item.c_str() + eq + 1, &end, 10);
      if (end && *end == '\0') out[item.substr(0, eq)] = v;
    }
    if (sp == std::string::npos) break;
    pos = sp + 1;
  }
  return out;
}

uint64_t Requests(const std::map<std::string, uint64_t>& m) {
  uint64_t n = 0;
  for (const char* verb : {"put", "get", "head", "list", "delete"}) {
    auto it = m.find(verb);
    if (it != m.end()) n += it->second;
  }
  return n;
}

// Requests per hour in the steady state: the open (one LIST, one GET) is
// paid once, not every hour, so it is taken out before scaling.
double SteadyPerHour(const std::map<std::string, uint64_t>& stats, double elapsed_s) {
  uint64_t n = Requests(stats);
  n -= std::min<uint64_t>(n, 2);
  return static_cast<double>(n) / elapsed_s * 3600;
}

void CreateFile(const std::string& uri, uint32_t block_size) {
  auto store = Must(hf::OpenStore(uri), "open " + uri);
  hf::CreateOptions co;
  co.block_size = block_size;
  auto f = Must(hf::File::Create(store, co), "create " + uri);
  Must(f->Close(), "close");
}

void Remove(const std::string& uri) {
  auto store = hf::OpenStore(uri);
  if (store.ok()) (void)hf::RemoveFile(*store);
}

struct Figures {
  nlohmann::json j;
};

// 1. Raw latencies: create-only PUT of 16 KiB (what a commit of a few lines
// is), LIST of one key after a start key (the head lookup), ranged GET of
// 64 KiB (the header read).
struct Raw {
  std::vector<double> put, list, get;
};
Raw RawLatencies(const std::string& root, int n) {
  auto store = Must(hf::OpenStore(root + "/raw"), "open raw");
  Raw raw;
  std::string body(16384, 'p');
  for (int i = 0; i < n; i++) {
    hf::PutOptions po;
    po.if_absent = true;
    auto t0 = Clock::now();
    Must(store->Put("k" + std::to_string(1000 + i), body, po, nullptr), "raw put");
    raw.put.push_back(Ms(Clock::now() - t0));
  }
  for (int i = 0; i < n; i++) {
    std::vector<hf::ObjectInfo> out;
    auto t0 = Clock::now();
    Must(store->List("k", "k1", 1, &out), "raw list");
    raw.list.push_back(Ms(Clock::now() - t0));
    std::string got;
    t0 = Clock::now();
    Must(store->Get("k" + std::to_string(1000 + i), 0, 65536, &got, nullptr), "raw get");
    raw.get.push_back(Ms(Clock::now() - t0));
  }
  for (int i = 0; i < n; i++) (void)store->Delete("k" + std::to_string(1000 + i));
  return raw;
}

// 2. Line-to-follower latency.
std::vector<double> LineLatency(const std::string& uri, int seconds, std::string* problems) {
  CreateFile(uri, 4096);
  Proc follower({"read", uri, "--follow", "--poll", "250ms"}, "/tmp/log_bench.follower.err");
  Proc writer({"append", uri, "--flush-every", "1s"}, "/tmp/log_bench.writer.err");
  std::mutex mu;
  std::map<int, Clock::time_point> sent;
  std::vector<double> latencies;
  std::atomic<bool> done{false};
  int total = 0;
  std::thread reader([&] {
    std::string pending;
    char buf[65536];
    while (true) {
      struct pollfd p = {follower.out, POLLIN, 0};
      int r = ::poll(&p, 1, 200);
      if (r == 0) {
        if (done) {
          std::lock_guard<std::mutex> l(mu);
          if (static_cast<int>(latencies.size()) >= total) break;
        }
        continue;
      }
      ssize_t n = ::read(follower.out, buf, sizeof buf);
      if (n <= 0) break;
      auto now = Clock::now();
      pending.append(buf, static_cast<size_t>(n));
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        int seq = std::atoi(pending.c_str() + 5);  // "line <seq> ..."
        std::lock_guard<std::mutex> l(mu);
        auto it = sent.find(seq);
        if (it != sent.end()) latencies.push_back(Ms(now - it->second));
        pending.erase(0, nl + 1);
      }
    }
  });
  std::mt19937_64 rng(1);
  auto end = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < end) {
    std::string line = "line " + std::to_string(total) + " ";
    line += std::string(60 + rng() % 200, 'x') + "\n";
    {
      std::lock_guard<std::mutex> l(mu);
      sent[total] = Clock::now();
      total++;
    }
    writer.Write(line);
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 300));
  }
  writer.CloseIn();
  if (writer.Wait() != 0) *problems += "writer: " + writer.Err();
  // Wait (bounded) for the follower to show the last line.
  auto give_up = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < give_up) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (static_cast<int>(latencies.size()) >= total) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  done = true;
  ::kill(follower.pid, SIGTERM);
  reader.join();
  if (follower.Wait() != 0) *problems += "follower: " + follower.Err();
  if (static_cast<int>(latencies.size()) != total) {
    *problems += "follower showed " + std::to_string(latencies.size()) + " of " +
                 std::to_string(total) + " lines; ";
  }
  Remove(uri);
  return latencies;
}

// 3a. An idle follower's requests over `seconds`, per hour.
double IdleFollowerPerHour(const std::string& uri, int seconds, nlohmann::json* j) {
  CreateFile(uri, 4096);
  Proc follower({"read", uri, "--follow", "--poll", "250ms", "--stats"}, "/tmp/log_bench.idle.err");
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  ::kill(follower.pid, SIGTERM);
  follower.Wait();
  double elapsed_s = Ms(Clock::now() - t0) / 1000;
  auto stats = ParseStats(follower.Err());
  if (stats.empty()) Die("idle follower printed no stats: " + follower.Err());
  (*j)["idle_follower_counts"] = stats;
  (*j)["idle_follower_seconds"] = elapsed_s;
  Remove(uri);
  return SteadyPerHour(stats, elapsed_s);
}

// 3b. A writer appending one line a second.
double WriterPerHour(const std::string& uri, const std::string& flush_every, int seconds,
                     nlohmann::json* j) {
  CreateFile(uri, 4096);
  Proc writer({"append", uri, "--flush-every", flush_every, "--stats"},
              "/tmp/log_bench.writer1.err");
  auto t0 = Clock::now();
  for (int i = 0; i < seconds; i++) {
    writer.Write("line " + std::to_string(i) + " " + std::string(120, 'w') + "\n");
    std::this_thread::sleep_until(t0 + std::chrono::seconds(i + 1));
  }
  writer.CloseIn();
  if (writer.Wait() != 0) Die("writer failed: " + writer.Err());
  double elapsed_s = Ms(Clock::now() - t0) / 1000;
  auto stats = ParseStats(writer.Err());
  (*j)["writer_" + flush_every + "_counts"] = stats;
  Remove(uri);
  return SteadyPerHour(stats, elapsed_s);
}

// 4. Stored bytes / log bytes, in-process on a memory store (the same flush
// path as the CLI's; bytes do not depend on the backend).
nlohmann::json StoredRatio(uint32_t block_size, int flushes) {
  auto store = hf::NewMemoryStore("ratio");
  hf::CreateOptions co;
  co.block_size = block_size;
  auto f = Must(hf::File::Create(store, co), "create");
  std::mt19937_64 rng(9);
  uint64_t log_bytes = 0;
  auto t0 = Clock::now();
  for (int i = 0; i < flushes; i++) {
    std::string chunk;
    for (int l = 0; l < 50; l++) {  // 5 s x 10 lines/s
      std::string line(100 + rng() % 101, static_cast<char>('a' + rng() % 26));
      line.back() = '\n';
      chunk += line;
    }
    Must(f->Append(chunk.data(), chunk.size()).status(), "append");
    Must(f->Flush().status(), "flush");
    log_bytes += chunk.size();
  }
  double secs = Ms(Clock::now() - t0) / 1000;
  Must(f->Close(), "close");
  std::vector<hf::ObjectInfo> all;
  Must(store->List("", "", 0, &all), "list");
  uint64_t stored = 0;
  for (const auto& o : all) stored += o.size;
  nlohmann::json j;
  j["block_size"] = block_size;
  j["flushes"] = flushes;
  j["log_bytes"] = log_bytes;
  j["stored_bytes"] = stored;
  j["ratio"] = static_cast<double>(stored) / static_cast<double>(log_bytes);
  j["stored_per_flush"] = static_cast<double>(stored) / flushes;
  j["seconds"] = secs;
  // Extrapolated to a day (17,280 flushes): stored and log bytes both grow
  // linearly with the flushes.
  j["day_log_bytes"] = static_cast<double>(log_bytes) / flushes * 17280;
  j["day_stored_bytes"] = static_cast<double>(stored) / flushes * 17280;
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hyperfile log-collection benchmark (issue 13)"};
  std::string root, json_path;
  int seconds = 30, flushes = 17280;
  app.add_option("--uri", root, "root for the run's objects");
  app.add_option("--seconds", seconds, "length of the latency and request-count runs (30)");
  app.add_option("--flushes", flushes,
                 "flushes of the stored-bytes run (17280 = a day at 5 s; 64 KiB blocks: a tenth)");
  app.add_option("--json", json_path, "write every figure to this JSON file");
  CLI11_PARSE(app, argc, argv);
  if (root.empty()) {
    const char* base = std::getenv("HYPERFILE_TEST_S3_URI");
    if (!base) Die("no --uri and no HYPERFILE_TEST_S3_URI (source the local-s3 env)");
    std::random_device rd;
    root = std::string(base) + "/log-bench-" + std::to_string(rd());
  }
  nlohmann::json j;
  std::printf("log_bench on %s\n", root.c_str());

  Raw raw = RawLatencies(root, 50);
  double put_p50 = Percentile(raw.put, 50), put_p99 = Percentile(raw.put, 99);
  std::printf("raw create-only PUT (16 KiB):  p50 %7.1f ms   p99 %7.1f ms\n", put_p50, put_p99);
  std::printf("raw LIST (1 key):              p50 %7.1f ms   p99 %7.1f ms\n",
              Percentile(raw.list, 50), Percentile(raw.list, 99));
  std::printf("raw ranged GET (64 KiB):       p50 %7.1f ms   p99 %7.1f ms\n",
              Percentile(raw.get, 50), Percentile(raw.get, 99));
  j["raw_put_ms"] = {{"p50", put_p50}, {"p99", put_p99}};
  j["raw_list_ms"] = {{"p50", Percentile(raw.list, 50)}, {"p99", Percentile(raw.list, 99)}};
  j["raw_get_ms"] = {{"p50", Percentile(raw.get, 50)}, {"p99", Percentile(raw.get, 99)}};

  std::string problems;
  std::vector<double> lat = LineLatency(root + "/latency", seconds, &problems);
  double p50 = Percentile(lat, 50), p99 = Percentile(lat, 99),
         mx = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end());
  const double target = 1000 + 250 + 2 * put_p50;
  std::printf(
      "line -> follower (flush 1s, poll 250ms, %zu lines): p50 %7.1f ms   p99 %7.1f ms   "
      "max %7.1f ms   target p99 <= %.0f ms: %s\n",
      lat.size(), p50, p99, mx, target, p99 <= target ? "PASS" : "MISS");
  if (!problems.empty()) std::printf("  problems: %s\n", problems.c_str());
  j["line_latency_ms"] = {
      {"p50", p50}, {"p99", p99}, {"max", mx}, {"lines", lat.size()}, {"target_p99", target}};

  const int count_seconds = std::max(5, seconds / 2);
  double idle = IdleFollowerPerHour(root + "/idle", count_seconds, &j);
  std::printf(
      "idle follower (poll 250ms):    %8.0f requests/hour (steady state, measured over %d s)\n",
      idle, count_seconds);
  double w1 = WriterPerHour(root + "/w1", "1s", count_seconds, &j);
  double w5 = WriterPerHour(root + "/w5", "5s", count_seconds, &j);
  std::printf(
      "writer, 1 line/s, flush 1s:    %8.0f requests/hour (steady state, measured over %d s)\n", w1,
      count_seconds);
  std::printf(
      "writer, 1 line/s, flush 5s:    %8.0f requests/hour (steady state, measured over %d s)\n", w5,
      count_seconds);
  j["requests_per_hour"] = {{"idle_follower_poll_250ms", idle},
                            {"writer_1_line_per_s_flush_1s", w1},
                            {"writer_1_line_per_s_flush_5s", w5}};

  for (uint32_t bs : {4096u, 65536u}) {
    const int n = bs == 4096 ? flushes : std::max(1, flushes / 10);
    nlohmann::json r = StoredRatio(bs, n);
    std::printf(
        "stored / log bytes, flush 5s, 10 lines/s x ~150 B, %2u KiB blocks: %.2f "
        "(%d flushes, %.0f stored bytes per flush; a day: %.1f MiB of log -> %.1f MiB "
        "stored%s)\n",
        bs / 1024, r["ratio"].get<double>(), n, r["stored_per_flush"].get<double>(),
        r["day_log_bytes"].get<double>() / (1 << 20),
        r["day_stored_bytes"].get<double>() / (1 << 20), n >= 17280 ? "" : ", extrapolated");
    j["stored_ratio_" + std::to_string(bs / 1024) + "k"] = r;
  }
  if (!json_path.empty()) std::ofstream(json_path) << j.dump(2) << "\n";
  return problems.empty() ? 0 : 1;
}
