// SPDX-License-Identifier: Apache-2.0
// Compression and encryption benchmark (issue 12's targets) on a data file
// given with --input (scripts/bench.sh makes a tar of /usr/share and
// /usr/lib of the machine, capped): for each codec, plain and encrypted
// (--encrypt both|no|only; a random 32-byte key through KeySource), a new
// file under --uri is written sequentially (8 MiB writes, then close), read
// back sequentially by a fresh handle and compared byte for byte with the
// input, and read at random 4 KiB offsets by fresh handles (cold, counting
// GETs through the metrics layer). Prints stored bytes (every object of the
// file), throughputs, CPU and request counts, encrypted / plain throughput,
// and the targets against --reference (bytes the `zstd` command produced at
// the same level for the same input).
//
// Then, on an s3:// --uri, the same input through s3backer (FUSE, the same
// gateway; bench/s3backer_util.h): plain, --compress and --encrypt, each
// written sequentially through the mounted file (O_DIRECT, 1 MiB writes,
// until write-back ends), read back by a fresh mount and compared byte for
// byte, stored bytes summed over a LIST of its prefix. s3backer compresses
// with zlib (deflate) at zlib's default level unless --s3backer-level is
// given, and encrypts with --s3backer-cipher (AES-256-CBC, the key length
// hyperfile uses) plus its HMAC-SHA1; --encrypt implies --compress there.
// Without s3backer or FUSE it prints "s3backer: skipped (why)" and the
// other rows stand. Every object the bench writes is deleted at the end.
// A read that differs from the input exits 1.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "hyperfile/encryption.h"
#include "hyperfile/file.h"
#include "hyperfile/object_store.h"
#include "hyperfile/store_layers.h"
#include "s3backer_util.h"

namespace hf = hyperfile;
namespace s3b = s3backer_util;
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
[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "compression_bench: FAILED: %s\n", what.c_str());
  std::exit(1);
}

// Bytes and count of every object under the store's root.
std::pair<uint64_t, size_t> Stored(hf::ObjectStore* store) {
  std::vector<hf::ObjectInfo> objects;
  Must(store->List("", "", 0, &objects), "list");
  uint64_t total = 0;
  for (const auto& o : objects) total += o.size;
  return {total, objects.size()};
}

// Deletes every object under `uri`; a failure is reported, not fatal.
void RemoveAll(const std::string& uri) {
  hf::Status st = bench_util::RemoveAll(uri);
  if (!st.ok())
    std::fprintf(stderr, "cleanup of %s failed: %s\n", uri.c_str(), st.ToString().c_str());
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

using bench_util::CpuSeconds;

// CPU seconds (user + system) of another process (the s3backer daemon), 0
// if unknown.
double ProcessCpuSeconds(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 2));
  std::string f;
  double utime = 0, stime = 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  for (int i = 3; i <= 15 && fields >> f; i++) {
    if (i == 14) utime = std::stod(f);
    if (i == 15) stime = std::stod(f);
  }
  return (utime + stime) / double(sysconf(_SC_CLK_TCK));
}

constexpr size_t kChunk = 8 << 20;

struct Row {
  std::string name;
  bool encrypted = false;
  uint64_t stored = 0;
  double write_mib_s = 0, read_mib_s = 0, write_cpu = 0, read_cpu = 0;
  uint64_t max_gets = 0, max_open = 0;
};

Row RunHyperfile(const std::string& uri, const std::string& codec_name,
                 const std::shared_ptr<const hf::KeySource>& key, const std::string& data,
                 int random_reads) {
  Row row;
  row.name = codec_name + (key ? "+enc" : "");
  row.encrypted = key != nullptr;
  hf::Compression codec = Must(hf::ParseCompression(codec_name), "codec");
  auto store = Must(hf::OpenStore(uri), "open store");
  hf::CreateOptions co;
  co.compression = codec;
  co.encryption_key = key;
  auto t0 = Clock::now();
  double cpu0 = CpuSeconds();
  {
    auto f = Must(hf::File::Create(store, co), "create");
    for (uint64_t off = 0; off < data.size(); off += kChunk) {
      size_t n = std::min<size_t>(kChunk, data.size() - off);
      Must(f->PWrite(off, data.data() + off, n), "write");
    }
    Must(f->Close(), "close");
  }
  const double write_s = Seconds(t0);
  row.write_cpu = CpuSeconds() - cpu0;
  std::string back(data.size(), '\0');
  t0 = Clock::now();
  cpu0 = CpuSeconds();
  {
    hf::OpenOptions oo;
    oo.key = key;
    auto f = Must(hf::File::Open(store, oo), "open");
    for (uint64_t off = 0; off < data.size(); off += kChunk) {
      size_t n = std::min<size_t>(kChunk, data.size() - off);
      Must(f->PRead(off, back.data() + off, n), "read");
    }
  }
  const double read_s = Seconds(t0);
  row.read_cpu = CpuSeconds() - cpu0;
  if (back != data) Fail(row.name + ": the sequential read differs from the input");
  row.stored = Stored(store.get()).first;
  auto metrics = std::make_shared<hf::MetricsStore>(store);
  std::mt19937_64 rng(7);
  for (int i = 0; i < random_reads; i++) {
    metrics->Reset();
    hf::OpenOptions ro;
    ro.read_only = true;
    ro.key = key;
    auto f = Must(hf::File::Open(metrics, ro), "open");
    row.max_open = std::max(row.max_open, metrics->Snapshot().total_requests());
    metrics->Reset();
    uint64_t off = (rng() % (data.size() / 4096)) * 4096;
    char buf[4096];
    Must(f->PRead(off, buf, sizeof buf), "random read");
    if (std::memcmp(buf, data.data() + off, sizeof buf) != 0) {
      Fail(row.name + ": the random read at " + std::to_string(off) + " differs from the input");
    }
    row.max_gets = std::max(row.max_gets, metrics->Snapshot().count(hf::StoreVerb::kGet));
  }
  const double mib = data.size() / 1048576.0;
  row.write_mib_s = mib / write_s;
  row.read_mib_s = mib / read_s;
  return row;
}

struct S3backerRow {
  std::string mode;  // plain, compress, encrypt
  uint64_t stored = 0;
  size_t objects = 0;
  double write_s = 0, read_s = 0, write_cpu = 0, read_cpu = 0;
  uint64_t write_puts = 0, read_gets = 0;
};

struct S3backerConfig {
  uint64_t block_size = 64 << 10;
  int level = 0;  // 0: --compress without a level (zlib's default)
  std::string cipher = "AES-256-CBC";
};

struct AlignedBuffer {
  explicit AlignedBuffer(size_t n) {
    void* p = nullptr;
    if (posix_memalign(&p, 4096, n) != 0) Fail("posix_memalign");
    ptr.reset(static_cast<char*>(p));
  }
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, Free> ptr;
};

// One s3backer run: write `data` through a mount of `prefix`, then read it
// back through a fresh mount, comparing. Throws std::runtime_error on a
// failure of s3backer; exits on a mismatch.
S3backerRow RunS3backer(const s3b::Target& target, const std::string& prefix,
                        const std::string& mode, const S3backerConfig& cfg,
                        const std::string& data) {
  S3backerRow row;
  row.mode = mode;
  const std::string mount = target.dir + "/" + mode;
  const std::string log = target.dir + "/" + mode + ".log";
  std::filesystem::create_directories(mount);
  const uint64_t size = (data.size() + cfg.block_size - 1) / cfg.block_size * cfg.block_size;
  std::vector<std::string> args = target.BaseArgs();
  args.push_back("--prefix=" + target.prefix + prefix);
  args.push_back("--blockSize=" + std::to_string(cfg.block_size / 1024) + "k");
  args.push_back("--size=" + std::to_string(size / 1024) + "k");
  args.push_back("--directIO");
  args.push_back("--quiet");
  if (mode == "compress") {
    args.push_back(cfg.level > 0 ? "--compress=" + std::to_string(cfg.level) : "--compress");
  } else if (mode == "encrypt") {
    // --encrypt implies --compress (at the same level as above).
    if (cfg.level > 0) args.push_back("--compress=" + std::to_string(cfg.level));
    args.push_back("--encrypt=" + cfg.cipher);
    const std::string pw = target.dir + "/password";
    std::mt19937_64 rng(std::random_device{}());
    char text[40];
    std::snprintf(text, sizeof text, "%016llx%016llx\n", (unsigned long long)rng(),
                  (unsigned long long)rng());
    int fd = open(pw.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    bool ok = fd >= 0 && write(fd, text, std::strlen(text)) == ssize_t(std::strlen(text));
    if (fd >= 0) close(fd);
    if (!ok) throw std::runtime_error("cannot write " + pw);
    args.push_back("--passwordFile=" + pw);
  }
  args.push_back(target.bucket);
  args.push_back(mount);
  constexpr size_t kIo = 1 << 20;
  AlignedBuffer buf(kIo);
  {
    s3b::Mount m(args, mount, log);
    auto s0 = s3b::ReadStats(m.Stats());
    const double cpu0 = ProcessCpuSeconds(m.pid());
    int fd = open(m.File().c_str(), O_WRONLY | O_DIRECT);
    if (fd < 0) fd = open(m.File().c_str(), O_WRONLY);
    if (fd < 0) throw std::runtime_error("open " + m.File() + ": " + std::strerror(errno));
    auto t0 = Clock::now();
    for (uint64_t off = 0; off < data.size(); off += kIo) {
      size_t n = std::min<size_t>(kIo, data.size() - off);
      std::memcpy(buf.ptr.get(), data.data() + off, n);
      size_t padded = (n + 4095) / 4096 * 4096;  // O_DIRECT; the file is a block multiple
      std::memset(buf.ptr.get() + n, 0, padded - n);
      if (pwrite(fd, buf.ptr.get(), padded, off_t(off)) != ssize_t(padded)) {
        int e = errno;
        close(fd);
        throw std::runtime_error("s3backer pwrite at " + std::to_string(off) + ": " +
                                 std::strerror(e));
      }
    }
    if (fsync(fd) != 0) {
      int e = errno;
      close(fd);
      throw std::runtime_error(std::string("s3backer fsync: ") + std::strerror(e));
    }
    close(fd);
    row.write_s = s3b::WaitWrittenBack(m, t0);
    row.write_cpu = ProcessCpuSeconds(m.pid()) - cpu0;
    auto s1 = s3b::ReadStats(m.Stats());
    row.write_puts = uint64_t(s1["http_puts"] - s0["http_puts"]);
  }
  {
    auto store = Must(hf::OpenStore("s3://" + target.bucket + "/" + target.prefix + prefix),
                      "open s3backer's prefix");
    std::tie(row.stored, row.objects) = Stored(store.get());
  }
  {
    s3b::Mount m(args, mount, log);  // fresh mount: empty block cache
    auto s0 = s3b::ReadStats(m.Stats());
    const double cpu0 = ProcessCpuSeconds(m.pid());
    int fd = open(m.File().c_str(), O_RDONLY | O_DIRECT);
    if (fd < 0) fd = open(m.File().c_str(), O_RDONLY);
    if (fd < 0) throw std::runtime_error("open " + m.File() + ": " + std::strerror(errno));
    auto t0 = Clock::now();
    for (uint64_t off = 0; off < data.size(); off += kIo) {
      size_t n = std::min<size_t>(kIo, data.size() - off);
      size_t padded = (n + 4095) / 4096 * 4096;
      if (pread(fd, buf.ptr.get(), padded, off_t(off)) != ssize_t(padded)) {
        int e = errno;
        close(fd);
        throw std::runtime_error("s3backer pread at " + std::to_string(off) + ": " +
                                 std::strerror(e));
      }
      if (std::memcmp(buf.ptr.get(), data.data() + off, n) != 0) {
        close(fd);
        Fail("s3backer " + mode + ": the read at " + std::to_string(off) +
             " differs from the input");
      }
    }
    row.read_s = Seconds(t0);
    close(fd);
    row.read_cpu = ProcessCpuSeconds(m.pid()) - cpu0;
    auto s1 = s3b::ReadStats(m.Stats());
    row.read_gets = uint64_t(s1["http_gets"] - s0["http_gets"]);
  }
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hyperfile compression and encryption benchmark, and s3backer side by side"};
  std::string input, uri = "memory://compression-bench", json_path, encrypt = "both";
  std::vector<std::string> codecs{"none", "lz4", "zstd:1", "zstd:3"};
  std::vector<std::string> references;  // codec=bytes
  std::vector<std::string> s3backer_modes{"plain", "compress", "encrypt"};
  S3backerConfig s3cfg;
  std::string s3backer_block = "64k";
  bool skip_s3backer = false;
  int random_reads = 50;
  app.add_option("--input", input, "the data file")->required();
  app.add_option("--uri", uri, "base URI; one file per codec below it");
  app.add_option("--codecs", codecs, "codecs to run");
  app.add_option("--encrypt", encrypt, "run each codec plain, encrypted or both")
      ->check(CLI::IsMember({"both", "no", "only"}));
  app.add_option("--reference", references,
                 "zstd:L=BYTES: what the `zstd -L` command made of the input");
  app.add_option("--random-reads", random_reads, "cold random 4 KiB reads per codec");
  app.add_flag("--skip-s3backer", skip_s3backer, "do not run the s3backer comparison");
  app.add_option("--s3backer-modes", s3backer_modes, "s3backer runs")
      ->check(CLI::IsMember({"plain", "compress", "encrypt"}));
  app.add_option("--s3backer-block-size", s3backer_block, "s3backer --blockSize (KiB, with k)")
      ->check(CLI::IsMember({"4k", "16k", "64k", "256k", "1024k"}));
  app.add_option("--s3backer-level", s3cfg.level,
                 "s3backer --compress=LEVEL (1..9; 0 = zlib's default)")
      ->check(CLI::Range(0, 9));
  app.add_option("--s3backer-cipher", s3cfg.cipher, "s3backer --encrypt=CIPHER (OpenSSL name)");
  app.add_option("--json", json_path, "write the figures here");
  CLI11_PARSE(app, argc, argv);
  s3cfg.block_size = std::stoull(s3backer_block) << 10;

  std::string data;
  {
    std::ifstream in(input, std::ios::binary);
    data.assign(std::istreambuf_iterator<char>(in), {});
  }
  if (data.size() < 4096)
    Must(hf::Status::InvalidArgument("input under 4 KiB: " + input), "read input");
  const std::string run = std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count());
  std::shared_ptr<const hf::KeySource> key;
  if (encrypt != "no") {
    std::random_device rd;
    std::string hex;
    for (int i = 0; i < 32; i++) {
      char b[3];
      std::snprintf(b, sizeof b, "%02x", unsigned(rd() & 0xff));
      hex += b;
    }
    key = Must(hf::KeySource::FromKeyText(hex), "key");
  }
  nlohmann::json out = nlohmann::json::object();
  out["input_bytes"] = data.size();
  const double mib = data.size() / 1048576.0;
  const double gib = data.size() / 1073741824.0;
  std::printf("input: %s, %.1f MiB\n", input.c_str(), mib);
  std::printf("%-11s %14s %7s %12s %12s %10s %10s %10s %10s\n", "codec", "stored bytes", "ratio",
              "write MiB/s", "read MiB/s", "max GETs", "open reqs", "wCPUs/GiB", "rCPUs/GiB");
  std::vector<Row> rows;
  auto find = [&](const std::string& name) -> const Row* {
    for (const Row& r : rows) {
      if (r.name == name) return &r;
    }
    return nullptr;
  };
  for (const std::string& name : codecs) {
    std::vector<std::shared_ptr<const hf::KeySource>> keys;
    if (encrypt != "only") keys.push_back(nullptr);
    if (encrypt != "no") keys.push_back(key);
    for (const auto& k : keys) {
      const std::string file_uri = uri + "/" + run + "-" + name + (k ? "-enc" : "");
      Row r = RunHyperfile(file_uri, name, k, data, random_reads);
      RemoveAll(file_uri);
      rows.push_back(r);
      std::printf("%-11s %14llu %7.2f %12.1f %12.1f %10llu %10llu %10.2f %10.2f\n", r.name.c_str(),
                  (unsigned long long)r.stored, double(data.size()) / r.stored, r.write_mib_s,
                  r.read_mib_s, (unsigned long long)r.max_gets, (unsigned long long)r.max_open,
                  r.write_cpu / gib, r.read_cpu / gib);
      nlohmann::json& j = out[r.name];
      j = {{"encrypted", r.encrypted},
           {"stored_bytes", r.stored},
           {"ratio", double(data.size()) / double(r.stored)},
           {"write_mib_s", r.write_mib_s},
           {"read_mib_s", r.read_mib_s},
           {"write_cpu_s_per_gib", r.write_cpu / gib},
           {"read_cpu_s_per_gib", r.read_cpu / gib},
           {"random_4k_max_gets", r.max_gets},
           {"open_max_requests", r.max_open}};
      if (!k) {
        for (const std::string& ref : references) {
          if (ref.rfind(name + "=", 0) != 0) continue;
          const double reference = std::stod(ref.substr(name.size() + 1));
          j["vs_zstd_command"] = double(r.stored) / reference;
          std::printf(
              "  %s stored / `zstd` command at that level (%.0f bytes): %.3f (target <= 1.15)\n",
              name.c_str(), reference, double(r.stored) / reference);
        }
      }
      const Row* none = find(k ? "none+enc" : "none");
      if (name != "none" && none) {
        // The 80 % target is for the default codec against
        // uncompressed, both plain.
        std::printf("  %s vs %s: write %.0f %%, read %.0f %%%s\n", r.name.c_str(),
                    none->name.c_str(), 100 * r.write_mib_s / none->write_mib_s,
                    100 * r.read_mib_s / none->read_mib_s, k ? "" : " (target >= 80 %)");
      }
      const Row* plain = k ? find(name) : nullptr;
      if (plain) {
        const double w = r.write_mib_s / plain->write_mib_s, rd = r.read_mib_s / plain->read_mib_s;
        j["vs_plain_write"] = w;
        j["vs_plain_read"] = rd;
        std::printf("  %s vs %s: write %.0f %%, read %.0f %%%s\n", r.name.c_str(), name.c_str(),
                    100 * w, 100 * rd, name == "none" ? " (target >= 90 %)" : "");
      }
      if (k && name != "none" && find("none")) {
        const Row* n = find("none");
        std::printf("  %s vs none: write %.0f %%, read %.0f %%\n", r.name.c_str(),
                    100 * r.write_mib_s / n->write_mib_s, 100 * r.read_mib_s / n->read_mib_s);
      }
      std::fflush(stdout);
    }
  }

  // s3backer side by side.
  int status = 0;
  std::string why = skip_s3backer ? "skipped (--skip-s3backer)" : s3b::Unavailable(uri);
  if (!why.empty()) {
    // "skipped (why)".
    if (why.rfind("skipped: ", 0) == 0) why = "skipped (" + why.substr(9) + ")";
    std::printf("s3backer: %s\n", why.c_str());
    out["s3backer"] = {{"skipped", why}};
  } else {
    // The first line s3backer --version prints (on stdout or stderr).
    std::string version = bench_util::CaptureCommand({"s3backer", "--version"}, true).out;
    version = version.substr(0, version.find('\n'));
    while (!version.empty() && std::isspace(static_cast<unsigned char>(version.back()))) {
      version.pop_back();
    }
    const std::string level = s3cfg.level > 0 ? "level " + std::to_string(s3cfg.level)
                                              : "default level (Z_DEFAULT_COMPRESSION = 6)";
    std::printf(
        "%s on the same gateway: --blockSize=%s --directIO; compress: zlib at %s; encrypt: "
        "--encrypt=%s (+ HMAC-SHA1, implies compress); write = until write-back ends, read = "
        "fresh mount; CPU = the s3backer process\n",
        version.c_str(), s3backer_block.c_str(), level.c_str(), s3cfg.cipher.c_str());
    std::printf("%-11s %14s %7s %9s %12s %9s %12s %10s %10s %8s %8s\n", "s3backer", "stored bytes",
                "ratio", "write s", "write MiB/s", "read s", "read MiB/s", "wCPUs/GiB", "rCPUs/GiB",
                "PUTs", "GETs");
    nlohmann::json runs = nlohmann::json::array();
    std::optional<s3b::Target> target;
    try {
      target = s3b::MakeTarget(uri, "compression-bench");
      for (const std::string& mode : s3backer_modes) {
        const std::string prefix = run + "-s3backer-" + mode + "/";
        S3backerRow r;
        try {
          r = RunS3backer(*target, prefix, mode, s3cfg, data);
        } catch (...) {
          RemoveAll(uri + "/" + prefix);
          throw;
        }
        RemoveAll(uri + "/" + prefix);
        std::printf("%-11s %14llu %7.2f %9.2f %12.1f %9.2f %12.1f %10.2f %10.2f %8llu %8llu\n",
                    mode.c_str(), (unsigned long long)r.stored, double(data.size()) / r.stored,
                    r.write_s, mib / r.write_s, r.read_s, mib / r.read_s, r.write_cpu / gib,
                    r.read_cpu / gib, (unsigned long long)r.write_puts,
                    (unsigned long long)r.read_gets);
        std::fflush(stdout);
        runs.push_back({{"mode", mode},
                        {"stored_bytes", r.stored},
                        {"objects", r.objects},
                        {"ratio", double(data.size()) / double(r.stored)},
                        {"write_seconds", r.write_s},
                        {"read_seconds", r.read_s},
                        {"write_mib_s", mib / r.write_s},
                        {"read_mib_s", mib / r.read_s},
                        {"write_cpu_s_per_gib", r.write_cpu / gib},
                        {"read_cpu_s_per_gib", r.read_cpu / gib},
                        {"write_puts", r.write_puts},
                        {"read_gets", r.read_gets}});
        // Side by side with hyperfile's default codec, plain and encrypted.
        const Row* h = find(mode == "plain"      ? "none"
                            : mode == "compress" ? "zstd:1"
                                                 : "zstd:1+enc");
        if (h) {
          const double hw = mib / h->write_mib_s, hr = mib / h->read_mib_s;
          std::printf(
              "  vs hyperfile %s: stored %.2fx hyperfile's, write %.2f s vs %.2f s (%.2fx), read "
              "%.2f s vs %.2f s (%.2fx)\n",
              h->name.c_str(), double(r.stored) / h->stored, r.write_s, hw, r.write_s / hw,
              r.read_s, hr, r.read_s / hr);
          runs.back()["vs_hyperfile"] = {{"codec", h->name},
                                         {"stored", double(r.stored) / h->stored},
                                         {"write_time", r.write_s / hw},
                                         {"read_time", r.read_s / hr}};
        }
      }
    } catch (const std::exception& e) {
      std::printf("s3backer: FAILED: %s\n", e.what());
      out["s3backer_error"] = e.what();
      status = 1;
    }
    if (target) {
      std::error_code ec;
      std::filesystem::remove_all(target->dir, ec);
    }
    out["s3backer"] = {{"version", version},
                       {"block_size", s3backer_block},
                       {"compress_level", s3cfg.level},
                       {"cipher", s3cfg.cipher},
                       {"runs", runs}};
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return status;
}
