// SPDX-License-Identifier: Apache-2.0
// Running s3backer (FUSE) against the same S3 gateway as hyperfile, for the
// benchmarks that compare with it (hyperfile_bench's random I/O,
// compression_bench's --compress/--encrypt rows).
//
// s3backer is mounted as a daemon (it forks into the background) with
// --baseURL from AWS_ENDPOINT_URL, an --accessFile holding
// AWS_ACCESS_KEY_ID:AWS_SECRET_ACCESS_KEY, and --prefix under the bench's
// s3:// root. No --region: with it s3backer 1.5 switches to virtual-host
// URLs (bucket.127.0.0.1), which a local gateway cannot resolve; it signs
// with us-east-1, the local gateway's region. A mount is undone with
// fusermount -u (umount, umount -l as fallbacks), and the daemon is waited
// for so that the next mount on the prefix finds the "mounted" flag cleared.
// Commands run through bench_util.h's RunCommand. Errors are thrown as
// std::runtime_error.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"

namespace s3backer_util {

using bench_util::RunCommand;

// Polls `done` every 20 ms for up to `seconds`; whether it became true.
template <typename F>
bool WaitFor(F done, double seconds) {
  auto t0 = std::chrono::steady_clock::now();
  while (!done()) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > seconds) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// s3backer's "stats" file: one "name value" per line.
inline std::map<std::string, double> ReadStats(const std::string& path) {
  std::map<std::string, double> m;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string name;
    double v;
    if (ls >> name >> v) m[name] = v;
  }
  return m;
}

// HTTP GETs + PUTs + DELETEs in a stats snapshot.
inline uint64_t Requests(const std::map<std::string, double>& s) {
  auto get = [&](const char* k) {
    auto it = s.find(k);
    return it == s.end() ? 0.0 : it->second;
  };
  return static_cast<uint64_t>(get("http_gets") + get("http_puts") + get("http_deletes"));
}

// The s3backer daemon serving `mount` (it forks into the background); 0 if none.
inline pid_t FindDaemon(const std::string& mount) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
    std::ifstream in(entry.path() / "cmdline");
    std::string cmd((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> args;
    for (size_t s = 0, e; s < cmd.size(); s = e + 1) {
      e = cmd.find('\0', s);
      if (e == std::string::npos) e = cmd.size();
      args.push_back(cmd.substr(s, e - s));
    }
    if (args.empty() || std::filesystem::path(args[0]).filename() != "s3backer") continue;
    if (std::find(args.begin(), args.end(), mount) != args.end()) return std::stoi(name);
  }
  return 0;
}

inline bool Mounted(const std::string& mount) {
  std::ifstream in("/proc/mounts");
  std::string dev, dir, rest;
  while (in >> dev >> dir && std::getline(in, rest)) {
    if (dir == mount) return true;
  }
  return false;
}

// One mount of s3backer for the lifetime of the object.
class Mount {
 public:
  Mount(std::vector<std::string> args, std::string mount, std::string log)
      : mount_(std::move(mount)) {
    // Mount; retry while the previous daemon on this prefix still holds
    // the "mounted" flag.
    for (int attempt = 0; attempt < 5; attempt++) {
      int rc = RunCommand(args, log);
      if (rc == 0 &&
          WaitFor([&] { return Mounted(mount_) && access(Stats().c_str(), R_OK) == 0; }, 10)) {
        pid_ = FindDaemon(mount_);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    throw std::runtime_error("s3backer did not mount " + mount_ + " (log: " + log + ")");
  }
  ~Mount() { Unmount(); }
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;
  void Unmount() {
    if (!Mounted(mount_)) return;
    if (RunCommand({"fusermount", "-u", mount_}, "") != 0 &&
        RunCommand({"umount", mount_}, "") != 0) {
      RunCommand({"umount", "-l", mount_}, "");
    }
    if (pid_ > 0) WaitFor([&] { return kill(pid_, 0) != 0; }, 60);
  }
  std::string File() const { return mount_ + "/file"; }
  std::string Stats() const { return mount_ + "/stats"; }
  // The daemon's process id (0 if it was not found).
  pid_t pid() const { return pid_; }

 private:
  std::string mount_;
  pid_t pid_ = 0;
};

// Waits until s3backer has written back everything: no dirty block and the
// PUT + DELETE count unchanged for a second. Returns the seconds from `t0`
// to the last change of that count (the write-back's end).
inline double WaitWrittenBack(const Mount& m, std::chrono::steady_clock::time_point t0) {
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  double last_change = since(t0);
  double last_puts = -1;
  auto idle_since = Clock::now();
  while (true) {
    auto s = ReadStats(m.Stats());
    double puts = s["http_puts"] + s["http_deletes"];
    if (puts != last_puts || s["block_cache_dirty_ratio"] > 0) {
      if (puts != last_puts) last_change = since(t0);
      last_puts = puts;
      idle_since = Clock::now();
    } else if (since(idle_since) > 1.0) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return last_change;
}

// Where and how to mount s3backer for an s3:// root.
struct Target {
  std::string bucket;
  std::string prefix;       // the root's key prefix, "" or ending in '/'
  std::string base_url;     // the endpoint, ending in '/'
  std::string dir;          // a private temporary directory (mount points, logs)
  std::string access_file;  // dir/passwd: "id:secret"
  // s3backer's arguments before the per-run ones (--prefix, --blockSize,
  // --size, ...): --baseURL, --accessFile.
  std::vector<std::string> BaseArgs() const {
    return {"s3backer", "--baseURL=" + base_url, "--accessFile=" + access_file};
  }
};

// Why s3backer cannot run against `root` here ("" if it can): the root is
// not s3://, the AWS_* variables are missing, s3backer is not installed or
// /dev/fuse is not usable.
inline std::string Unavailable(const std::string& root) {
  const char* endpoint = std::getenv("AWS_ENDPOINT_URL");
  if (!endpoint) endpoint = std::getenv("AWS_ENDPOINT_URL_S3");
  const char* id = std::getenv("AWS_ACCESS_KEY_ID");
  const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
  if (!root.starts_with("s3://")) return "skipped: the root is not an s3:// URI";
  if (!endpoint || !id || !secret) {
    return "skipped: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are needed";
  }
  if (RunCommand({"s3backer", "--version"}, "") != 0) {
    return "skipped: s3backer is not installed (scripts/setup.sh --bench)";
  }
  if (access("/dev/fuse", R_OK | W_OK) != 0) {
    return "skipped: /dev/fuse is not usable here (no FUSE in this environment)";
  }
  return "";
}

// Makes a Target for `root` (Unavailable(root) must be ""): a new directory
// under $TMPDIR (or /tmp) named `tag`-<random> with the access file (0600).
// Remove target.dir when done.
inline Target MakeTarget(const std::string& root, const std::string& tag) {
  const char* endpoint = std::getenv("AWS_ENDPOINT_URL");
  if (!endpoint) endpoint = std::getenv("AWS_ENDPOINT_URL_S3");
  const char* id = std::getenv("AWS_ACCESS_KEY_ID");
  const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
  if (!root.starts_with("s3://") || !endpoint || !id || !secret) {
    throw std::runtime_error("s3backer: no s3:// root or no AWS_* credentials");
  }
  Target t;
  std::string rest = root.substr(5);
  t.bucket = rest.substr(0, rest.find('/'));
  t.prefix = rest.find('/') == std::string::npos ? "" : rest.substr(rest.find('/') + 1);
  if (!t.prefix.empty() && t.prefix.back() != '/') t.prefix += "/";
  const char* tmp = std::getenv("TMPDIR");
  char rnd[16];
  std::snprintf(rnd, sizeof rnd, "%012llx",
                static_cast<unsigned long long>(std::mt19937_64(std::random_device{}())() &
                                                0xffffffffffffull));
  t.dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + tag + "-" + rnd;
  std::filesystem::create_directories(t.dir);
  t.access_file = t.dir + "/passwd";
  int fd = open(t.access_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::string line = std::string(id) + ":" + secret + "\n";
  bool ok = fd >= 0 && write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  if (fd >= 0) close(fd);
  if (!ok) throw std::runtime_error("cannot write " + t.access_file);
  t.base_url = endpoint;
  if (t.base_url.back() != '/') t.base_url += "/";
  return t;
}

}  // namespace s3backer_util
