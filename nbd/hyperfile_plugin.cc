// SPDX-License-Identifier: Apache-2.0
// nbdkit plugin: serves hyperfiles as network block devices.
//
//   nbdkit nbdkit-hyperfile-plugin.so uri=s3://bucket/disk1 [at=...] [readonly=true]
//          [create-size=10G block-size=64K] [cache=256M] ...
//   nbdkit nbdkit-hyperfile-plugin.so uri=s3://bucket/disks/      (many files)
//
// An export is one File handle. With a single-file uri= the file is opened
// once per nbdkit process (after nbdkit has forked into the background, so
// the library's threads survive) and shared by every connection. With a
// prefix uri= (ending in '/') the NBD export name selects the file under it
// ("vm1", or "vm1@SELECTOR" for an older state, read-only); each export is
// its own File (own writer state, caches, metrics), opened by its first
// connection and shared by every connection to the same name (so multi-conn
// holds per export), and closed when the last one goes. File is
// thread-safe, so the plugin runs in the PARALLEL thread model and
// advertises multi-conn (a flush on any connection commits the writes of all
// of them). Every NBD flush (or FUA write) is one hyperfile checkpoint. Trim
// and write-zeroes never store data: they become holes.
//
// See nbd/README.md for the user documentation and the errno mapping.
#define NBDKIT_API_VERSION 2
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#include <nbdkit-plugin.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "hyperfile/checkpoints.h"
#include "hyperfile/encryption.h"
#include "hyperfile/file.h"
#include "hyperfile/gc.h"
#include "hyperfile/log.h"
#include "hyperfile/object_store.h"
#include "hyperfile/options.h"
#include "hyperfile/status.h"
#include "hyperfile/store_layers.h"
#include "hyperfile/version.h"
#include "metrics.h"
#include "util/parse_number.h"

// Debug flags (nbdkit -D hyperfile.NAME=1; the messages appear with -v):
//   hyperfile.requests  every NBD request: export, operation, range, outcome, time
//   hyperfile.store     every store call (after retries): verb, key, bytes, outcome, time
//   hyperfile.retries   the retry layer's info lines too (retries, throttling and
//                       slow requests are logged without it; see nbd/README.md)
//   hyperfile.flushes   every flush: export, checkpoint, dirty bytes, time
//   hyperfile.exports   exports opened and closed, export listings
// Nothing logged contains a secret (the library never puts one in a
// message; the secret keys are shown as <redacted>).
extern "C" {
NBDKIT_DLL_PUBLIC int hyperfile_debug_requests = 0;
NBDKIT_DLL_PUBLIC int hyperfile_debug_store = 0;
NBDKIT_DLL_PUBLIC int hyperfile_debug_retries = 0;
NBDKIT_DLL_PUBLIC int hyperfile_debug_flushes = 0;
NBDKIT_DLL_PUBLIC int hyperfile_debug_exports = 0;
}

namespace {

namespace hm = hyperfile_nbd;

using hyperfile::At;
using hyperfile::File;
using hyperfile::ObjectStore;
using hyperfile::Status;

// ------------------------------------------------------------- config ---
struct Config {
  std::string uri;
  bool prefix_mode = false;  // uri= ends in '/': the export name selects the file
  std::string at_text;       // empty = latest, read-write
  std::optional<At> at;
  bool readonly = false;
  std::optional<uint64_t> create_size;
  std::optional<uint32_t> block_size;
  std::optional<hyperfile::Compression> compression;  // compression=: of a created file
  bool encrypt = false;  // encrypt=: a created file is encrypted under open.key
  bool flush_on_close = true;
  uint64_t follow_ms = 0;  // follow=: refresh a read-only latest export (0 = fixed state)
  hyperfile::OpenOptions open;
  hyperfile::StoreOptions store;
  // Space reclamation in the writer (gc-interval=, keep-*=, gc-grace=,
  // compact=) and reader leases for at= exports (lease=).
  std::string gc_rules;  // "keep-last=N ..." from the keys; empty = the stored policy
  int64_t gc_interval_ms = 0;
  int64_t gc_grace_ms = 20 * 60 * 1000;
  bool compact = true;
  bool lease = true;
  // Metrics (metrics=, metrics-file=, metrics-interval=).
  std::string metrics_address;
  std::string metrics_file;
  int64_t metrics_interval_ms = 10000;
};

Config g_config;

bool ReadOnlyExport() { return g_config.readonly || g_config.at.has_value(); }

// ------------------------------------------------------------ exports ---
// One export: one File handle and everything that belongs to it. Created on
// the first connection to its name and kept in the registry (with its
// metrics) for the life of the process; its File is opened by the first
// connection and, in prefix mode, closed again when the last one goes.
struct Export {
  // Fixed at creation.
  std::string name;  // the NBD export name ("" for the single-file export)
  std::string uri;   // the file's store URI
  std::optional<At> at;
  bool readonly = false;
  bool pinned = false;  // the single-file export: open for the life of the process

  // Held while the File is opened or closed, so that a new connection to a
  // name waits for a close in progress and two handles of one file never
  // coexist in this process.
  std::mutex mu;
  bool dead = false;  // removed from the registry (open failed): look it up again
  int refs = 0;       // open connections
  std::shared_ptr<File> file;
  std::unique_ptr<hyperfile::Lease> lease;
  std::string description;

  hm::ExportCounters counters;  // lock-free, updated by the request callbacks

  // For the metrics: never held across I/O.
  std::mutex stats_mu;
  std::shared_ptr<File> stats_file;                               // the open File
  std::vector<std::shared_ptr<hyperfile::MetricsStore>> metrics;  // its stack and its origins'
  hyperfile::StoreMetricsSnapshot closed_store;                   // of the opens before this one
  hyperfile::FileStat closed_cache;                               // cache lookups of those opens
};

std::mutex g_registry_mu;
std::map<std::string, std::shared_ptr<Export>> g_exports;  // by export name
constexpr size_t kMaxExports = 4096;
// The single-file export (not in prefix mode), set in after_fork.
std::shared_ptr<Export> g_single;

std::unique_ptr<hm::MetricsHttp> g_metrics_http;
std::unique_ptr<hm::MetricsFile> g_metrics_file;

// Writes hold their blocks' stripes shared; a compaction rewrite holds its
// range's stripes exclusively while it reads it and writes the same bytes
// back, so it can never put back bytes a client overwrote in between, and
// writes elsewhere go on (set in after_fork when a collector runs; the
// collector runs in the single-file mode only).
std::unique_ptr<hyperfile::RangeLocks> g_range_locks;

// The shared lock a client write holds, if a collector runs.
std::optional<hyperfile::RangeLocks::Guard> WriteLock(uint64_t offset, uint64_t length) {
  if (!g_range_locks) return std::nullopt;
  return g_range_locks->Shared(offset, length);
}

// The background collector of a writable export (gc-interval=).
struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread thread;
};
std::unique_ptr<Collector> g_collector;

uint64_t MicrosSince(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - start)
                                   .count());
}

// ----------------------------------------------------------- errors -----
// Status code -> errno. nbdkit folds errnos the NBD protocol cannot carry
// (ENOENT, EACCES, EEXIST) into EINVAL on the wire, and EROFS into EPERM;
// the full message always goes to nbdkit's log.
int ErrnoFor(const Status& st) {
  using C = Status::Code;
  switch (st.code()) {
    case C::kOk:
      return 0;
    case C::kNotFound:
      return ENOENT;
    case C::kAlreadyExists:
      return EEXIST;
    case C::kReadOnly:
      return EROFS;
    // Another writer committed to this file (or restored it): this export
    // can no longer commit, like a device that went read-only under us.
    case C::kConflict:
      return EROFS;
    case C::kInvalidArgument:
      return EINVAL;
    case C::kOutOfRange:
      return ENOSPC;
    case C::kAuth:
      return EACCES;
    case C::kNotSupported:
      return EOPNOTSUPP;
    case C::kThrottled:
    case C::kTransient:
    case C::kCorrupt:
    case C::kIOError:
    case C::kPreconditionFailed:
      return EIO;
  }
  return EIO;
}

// Reports a failed status to nbdkit and returns -1.
int Fail(const char* op, const Status& st) {
  nbdkit_error("%s: %s", op, st.ToString().c_str());
  nbdkit_set_error(ErrnoFor(st));
  return -1;
}

// Every callback runs inside this: nothing may unwind into nbdkit's C code.
template <typename Fn>
auto Guard(const char* op, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    nbdkit_error("%s: out of memory", op);
    nbdkit_set_error(ENOMEM);
  } catch (const std::exception& e) {
    nbdkit_error("%s: %s", op, e.what());
    nbdkit_set_error(EIO);
  } catch (...) {
    nbdkit_error("%s: unknown exception", op);
    nbdkit_set_error(EIO);
  }
  return static_cast<decltype(fn())>(-1);
}

std::shared_ptr<File> CurrentFile() {
  if (!g_single) return nullptr;
  std::lock_guard<std::mutex> lock(g_single->mu);
  return g_single->file;
}

// ------------------------------------------------------------ parsing ---
// Every value is checked here, so a bad configuration fails nbdkit's start
// on the terminal (non-zero exit) with a message naming the key and what it
// accepts, never later in the background.

// A size through the library's one strict parser (util::ParseNumber), in
// [min, max].
bool ParseSize(const char* key, const char* value, uint64_t min, uint64_t max, uint64_t* out) {
  auto v = hyperfile::util::ParseNumber(value);
  const char* why = !v.ok() ? v.status().message().c_str() : "out of range";
  if (v.ok() && *v >= min && *v <= max) {
    *out = *v;
    return true;
  }
  nbdkit_error("%s=%s: %s; expected a size from %" PRIu64 " to %" PRIu64
               " bytes (digits, optionally followed by K, M, G or T)",
               key, value, why, min, max);
  return false;
}

// Digits only, in [min, max].
bool ParseInt(const char* key, const char* value, int min, int max, int* out) {
  auto v = hyperfile::util::ParseNumber(value, /*allow_suffix=*/false);
  if (!v.ok() || *v < static_cast<uint64_t>(min) || *v > static_cast<uint64_t>(max)) {
    nbdkit_error("%s=%s: expected a whole number from %d to %d", key, value, min, max);
    return false;
  }
  *out = static_cast<int>(*v);
  return true;
}

// true/false (also yes/no, on/off, 1/0, as nbdkit spells booleans); anything
// else is refused.
bool ParseBool(const char* key, const char* value, bool* out) {
  std::string v = value;
  for (char& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (v == "true" || v == "yes" || v == "on" || v == "1") {
    *out = true;
  } else if (v == "false" || v == "no" || v == "off" || v == "0") {
    *out = false;
  } else {
    nbdkit_error("%s=%s: expected true or false", key, value);
    return false;
  }
  return true;
}

bool NonEmpty(const char* key, const char* value) {
  if (*value) return true;
  nbdkit_error("%s= must not be empty", key);
  return false;
}

// nbdkit changes to "/" when it daemonizes and the file is opened again in
// the background process: a relative local path must be made absolute now.
bool AbsolutePath(const char* key, const std::string& path, std::string* out) {
  char* abs = nbdkit_absolute_path(path.c_str());  // prints its own error
  if (abs == nullptr) {
    nbdkit_error("%s=%s: cannot make the path absolute", key, path.c_str());
    return false;
  }
  *out = abs;
  std::free(abs);
  return true;
}

// A local path (bare or file://) made absolute, keeping a trailing '/' (a
// prefix of many files); other schemes unchanged.
bool ResolveUri(const char* value, std::string* out) {
  std::string v = value;
  if (v.size() > 1 && v.back() == '/' && v.find("://") == std::string::npos) {
    if (!ResolveUri(v.substr(0, v.find_last_not_of('/') + 1).c_str(), out)) return false;
    *out += '/';
    return true;
  }
  if (v.starts_with("file://") && v.size() > 8 && v.back() == '/') {
    std::string inner = v.substr(0, v.find_last_not_of('/') + 1);
    if (inner.size() <= 7) {
      nbdkit_error("uri=%s: no directory after file://", value);
      return false;
    }
    if (!ResolveUri(inner.c_str(), out)) return false;
    *out += '/';
    return true;
  }
  constexpr std::string_view kFile = "file://";
  if (v.starts_with(kFile)) {
    std::string path = v.substr(kFile.size());
    if (path.empty()) {
      nbdkit_error("uri=%s: no directory after file://", value);
      return false;
    }
    if (path[0] == '/') {
      *out = v;
      return true;
    }
    if (!AbsolutePath("uri", path, &path)) return false;
    *out = std::string(kFile) + path;
    return true;
  }
  if (v.find("://") != std::string::npos) {
    *out = v;
    return true;
  }
  return AbsolutePath("uri", v, out);
}

constexpr uint64_t kMaxSize = uint64_t{1} << 60;  // the format's largest file

std::set<std::string> g_seen_keys;

int ConfigImpl(const char* key, const char* value) {
  Config& c = g_config;
  std::string k = key;
  uint64_t size = 0;
  int n = 0;
  if (!g_seen_keys.insert(k).second) {
    nbdkit_error("%s= given more than once (each key may be given once)", key);
    return -1;
  }
  if (k == "uri") {
    if (!NonEmpty(key, value) || !ResolveUri(value, &c.uri)) return -1;
  } else if (k == "at") {
    auto at = At::Parse(value);
    if (!at.ok()) {
      nbdkit_error("at=%s: %s", value, at.status().message().c_str());
      return -1;
    }
    c.at_text = value;
    c.at = *at;
  } else if (k == "readonly") {
    if (!ParseBool(key, value, &c.readonly)) return -1;
  } else if (k == "create-size") {
    if (!ParseSize(key, value, 1, kMaxSize, &size)) return -1;
    c.create_size = size;
  } else if (k == "block-size") {
    if (!ParseSize(key, value, 0, UINT64_MAX, &size)) return -1;
    if (size < 4096 || size > (4u << 20) || (size & (size - 1)) != 0) {
      nbdkit_error("block-size=%s: must be a power of two from 4K to 4M", value);
      return -1;
    }
    c.block_size = static_cast<uint32_t>(size);
  } else if (k == "compression") {
    auto parsed = hyperfile::ParseCompression(value);
    if (!parsed.ok()) {
      nbdkit_error("compression=%s: %s", value, parsed.status().message().c_str());
      return -1;
    }
    c.compression = *parsed;
  } else if (k == "cache") {
    if (!ParseSize(key, value, 1, kMaxSize, &c.open.block_cache_bytes)) return -1;
  } else if (k == "index-cache") {
    if (!ParseSize(key, value, 1, kMaxSize, &c.open.index_cache_bytes)) return -1;
  } else if (k == "dirty-limit") {
    // 0 would make the first write wait forever for room that never comes.
    if (!ParseSize(key, value, 1, kMaxSize, &c.open.dirty_budget_bytes)) return -1;
  } else if (k == "disk-cache") {
    if (!NonEmpty(key, value) || !AbsolutePath(key, value, &c.open.disk_cache_dir)) return -1;
  } else if (k == "disk-cache-size") {
    if (!ParseSize(key, value, 1, kMaxSize, &c.open.disk_cache_bytes)) return -1;
  } else if (k == "flush-interval-ms") {
    if (!ParseInt(key, value, 0, 1 << 30, &n)) return -1;
    c.open.flush_interval_ms = static_cast<uint32_t>(n);
  } else if (k == "flush-dirty") {
    if (!ParseSize(key, value, 0, kMaxSize, &c.open.flush_dirty_bytes)) return -1;
  } else if (k == "follow") {
    auto ms = hyperfile::util::ParseDurationMs(value);
    if (!ms.ok() || *ms < 10) {
      nbdkit_error("follow=%s: %s; expected an interval from 10ms to 24h (e.g. 1s, 500ms)", value,
                   ms.ok() ? "too short" : ms.status().message().c_str());
      return -1;
    }
    c.follow_ms = *ms;
  } else if (k == "flush-on-close") {
    if (!ParseBool(key, value, &c.flush_on_close)) return -1;
  } else if (k == "io-parallelism") {
    if (!ParseInt(key, value, 1, 1024, &c.open.io_parallelism)) return -1;
  } else if (k == "writer-name") {
    if (!NonEmpty(key, value)) return -1;
    c.open.writer_name = value;
  } else if (k == "endpoint") {
    if (!NonEmpty(key, value)) return -1;
    c.store.endpoint = value;
  } else if (k == "region") {
    if (!NonEmpty(key, value)) return -1;
    c.store.region = value;
  } else if (k == "profile") {
    if (!NonEmpty(key, value)) return -1;
    c.store.profile = value;
  } else if (k == "addressing") {
    std::string v = value;
    if (v == "auto") {
      c.store.addressing = hyperfile::StoreOptions::Addressing::kAuto;
    } else if (v == "path") {
      c.store.addressing = hyperfile::StoreOptions::Addressing::kPath;
    } else if (v == "virtual") {
      c.store.addressing = hyperfile::StoreOptions::Addressing::kVirtualHosted;
    } else {
      nbdkit_error("addressing=%s: expected auto, path or virtual", value);
      return -1;
    }
  } else if (k == "verify-tls") {
    if (!ParseBool(key, value, &c.store.verify_tls)) return -1;
  } else if (k == "max-in-flight") {
    if (!ParseInt(key, value, 1, 1024, &c.store.max_in_flight)) return -1;
  } else if (k == "retry-attempts") {
    if (!ParseInt(key, value, 1, 100, &c.store.retry_max_attempts)) return -1;
    c.store.retry = true;
  } else if (k == "latency") {
    // Simulated object-store latency, for benchmarks (ParseLatencyOptions).
    auto latency = hyperfile::ParseLatencyOptions(value);
    if (!latency.ok()) {
      nbdkit_error("latency=%s: %s", value, latency.status().message().c_str());
      return -1;
    }
    c.store.latency = *latency;
  } else if (k == "retry-max-ms") {
    if (!ParseInt(key, value, 0, 1 << 30, &c.store.retry_max_total_ms)) return -1;
  } else if (k == "keep-last" || k == "keep-within" || k == "keep-hourly" || k == "keep-daily" ||
             k == "keep-weekly" || k == "keep-monthly") {
    auto p = hyperfile::RetentionPolicy::Parse(k + "=" + value);
    if (!p.ok()) {
      nbdkit_error("%s=%s: %s", key, value, p.status().message().c_str());
      return -1;
    }
    c.gc_rules += k + "=" + value + " ";
  } else if (k == "gc-interval" || k == "gc-grace") {
    int64_t ms = 0;
    if (std::string(value) != "0") {
      auto d = hyperfile::RetentionPolicy::ParseDuration(value);
      if (!d.ok()) {
        nbdkit_error("%s=%s: %s", key, value, d.status().message().c_str());
        return -1;
      }
      ms = *d;
    }
    if (k == "gc-interval" && ms != 0 && ms < 1000) {
      nbdkit_error("gc-interval=%s: at least 1s", value);
      return -1;
    }
    (k == "gc-interval" ? c.gc_interval_ms : c.gc_grace_ms) = ms;
  } else if (k == "compact") {
    if (!ParseBool(key, value, &c.compact)) return -1;
  } else if (k == "lease") {
    if (!ParseBool(key, value, &c.lease)) return -1;
  } else if (k == "access-key-id") {
    // An identifier, not a secret (it is in every request's signature).
    if (!NonEmpty(key, value)) return -1;
    c.store.access_key_id = value;
  } else if (k == "key-file") {
    // The key of an encrypted file (hyperfile/encryption.h).
    if (!NonEmpty(key, value)) return -1;
    auto ks = hyperfile::KeySource::FromKeyFile(value);
    if (!ks.ok()) {
      nbdkit_error("key-file=%s: %s", value, ks.status().message().c_str());
      return -1;
    }
    c.open.key = *ks;
  } else if (k == "encrypt") {
    if (!ParseBool(key, value, &c.encrypt)) return -1;
  } else if (k == "key" || k == "passphrase" || k == "secret-key" || k == "secret-access-key" ||
             k == "session-token") {
    // nbdkit's password conventions: +FILE, -FD, - (asked on the terminal).
    // A literal value is refused: the command line is visible in ps.
    if (value[0] != '+' && value[0] != '-') {
      nbdkit_error(
          "%s: a secret is not accepted on the command line (visible in ps); give "
          "%s=+FILE, %s=-FD (an inherited file descriptor) or %s=- (asked on the terminal), "
          "or use the AWS environment or profile=",
          key, key, key, key);
      return -1;
    }
    char* secret = nullptr;
    if (nbdkit_read_password(value, &secret) == -1) return -1;  // nbdkit printed why
    std::string text = secret ? secret : "";
    if (secret) {
      std::memset(secret, 0, std::strlen(secret));
      std::free(secret);
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    if (text.empty()) {
      nbdkit_error("%s: the secret read from %s is empty", key, value);
      return -1;
    }
    if (k == "key" || k == "passphrase") {
      // key=: key text (64 hex digits or base64); passphrase=: Argon2id.
      auto ks = k == "key" ? hyperfile::KeySource::FromKeyText(text)
                           : hyperfile::KeySource::FromPassphrase(text);
      std::fill(text.begin(), text.end(), '\0');
      if (!ks.ok()) {
        nbdkit_error("%s: %s", key, ks.status().message().c_str());
        return -1;
      }
      c.open.key = *ks;
      return 0;
    }
    (k == "session-token" ? c.store.session_token : c.store.secret_access_key) = std::move(text);
  } else if (k == "metrics") {
    if (!NonEmpty(key, value)) return -1;
    c.metrics_address = value;
  } else if (k == "metrics-file") {
    if (!NonEmpty(key, value) || !AbsolutePath(key, value, &c.metrics_file)) return -1;
  } else if (k == "metrics-interval") {
    auto ms = hyperfile::util::ParseDurationMs(value);
    if (!ms.ok() || *ms < 100) {
      nbdkit_error("metrics-interval=%s: %s; expected an interval from 100ms to 24h (e.g. 10s)",
                   value, ms.ok() ? "too short" : ms.status().message().c_str());
      return -1;
    }
    c.metrics_interval_ms = static_cast<int64_t>(*ms);
  } else {
    nbdkit_error("unknown parameter '%s' (see nbdkit hyperfile --help)", key);
    return -1;
  }
  return 0;
}

int Config_(const char* key, const char* value) {
  std::string k = key;
  bool secret = k == "secret-key" || k == "secret-access-key" || k == "session-token" ||
                k == "key" || k == "passphrase";
  nbdkit_debug("hyperfile: config %s=%s", key,
               secret ? (value[0] == '+' ? value : "<redacted>") : value);
  return Guard("config", [&]() -> int { return ConfigImpl(key, value); });
}

int ConfigCompleteImpl() {
  Config& c = g_config;
  if (c.uri.empty()) {
    nbdkit_error("uri= is required (s3://bucket/prefix, file:///path or a path)");
    return -1;
  }
  c.prefix_mode = c.uri.back() == '/';
  if (c.block_size && !c.create_size) {
    nbdkit_error("block-size= only applies when creating a file: give create-size= too");
    return -1;
  }
  if (c.compression && !c.create_size) {
    nbdkit_error("compression= only applies when creating a file: give create-size= too");
    return -1;
  }
  if (c.create_size && ReadOnlyExport()) {
    nbdkit_error("create-size= cannot be combined with %s",
                 c.at ? "at= (old states are read-only)" : "readonly=true");
    return -1;
  }
  if (c.prefix_mode) {
    // Many files: each export is named by the client, states by NAME@SELECTOR.
    const char* refused = c.at            ? "at= (name a state as NAME@SELECTOR in the export name)"
                          : c.create_size ? "create-size= (create disks with hyperfile create)"
                          : c.gc_interval_ms ? "gc-interval= (run hyperfile gc on each file)"
                                             : nullptr;
    if (refused) {
      nbdkit_error("uri=%s serves the files under a prefix: %s is not supported there",
                   c.uri.c_str(), refused);
      return -1;
    }
  }
  if (c.store.access_key_id.empty() != c.store.secret_access_key.empty()) {
    nbdkit_error("access-key-id= and secret-key= go together (give both, or neither)");
    return -1;
  }
  if (!c.store.session_token.empty() && c.store.access_key_id.empty()) {
    nbdkit_error("session-token= needs access-key-id= and secret-key=");
    return -1;
  }
  if (g_seen_keys.count("metrics-interval") && c.metrics_file.empty()) {
    nbdkit_error("metrics-interval= applies to metrics-file=: give metrics-file=");
    return -1;
  }
  if (!c.metrics_address.empty() || !c.metrics_file.empty()) c.store.metrics = true;
  // The disk cache is on only with both a directory and a budget: one
  // without the other would silently be no cache at all.
  if (!c.open.disk_cache_dir.empty() && c.open.disk_cache_bytes == 0) {
    nbdkit_error("disk-cache= needs disk-cache-size= (the cache's byte budget)");
    return -1;
  }
  if (c.open.disk_cache_dir.empty() && c.open.disk_cache_bytes != 0) {
    nbdkit_error("disk-cache-size= needs disk-cache= (the cache's directory)");
    return -1;
  }
  if (c.at && c.at->kind == At::Kind::kLatest) {
    // "at=latest": the current state, read-only.
    c.readonly = true;
  }
  if (ReadOnlyExport()) c.open.read_only = true;
  if (c.gc_interval_ms > 0 && ReadOnlyExport()) {
    nbdkit_error("gc-interval= needs a writable export (the collector runs in the writer)");
    return -1;
  }
  if (c.gc_interval_ms == 0 &&
      (!c.gc_rules.empty() || g_seen_keys.count("gc-grace") || g_seen_keys.count("compact"))) {
    nbdkit_error(
        "keep-*=, gc-grace= and compact= apply to the background collector: give gc-interval=");
    return -1;
  }
  if (c.follow_ms) {
    // Following moves the one shared handle to each new head; an old state
    // never changes and a writer is the head itself.
    if (!c.readonly || (c.at && c.at->kind != At::Kind::kLatest)) {
      nbdkit_error("follow= needs a read-only export of the latest state (readonly=true, no at=%s)",
                   c.at ? c.at_text.c_str() : "");
      return -1;
    }
    c.open.refresh_interval_ms = static_cast<uint32_t>(c.follow_ms);
    c.open.on_refresh = [](const Status& st, const hyperfile::RefreshResult& r) {
      if (!st.ok()) {
        nbdkit_debug("hyperfile: follow: refresh failed: %s", st.ToString().c_str());
      } else if (r.changed) {
        nbdkit_debug("hyperfile: follow: checkpoint %" PRIu64 " -> %" PRIu64 ", size %" PRIu64
                     " -> %" PRIu64 " (new connections see the new size)",
                     r.old_checkpoint, r.new_checkpoint, r.old_size, r.new_size);
      } else {
        nbdkit_error("hyperfile: follow: %s %s; the export stays at checkpoint %" PRIu64,
                     g_config.uri.c_str(), r.removed ? "was removed" : "was replaced",
                     r.old_checkpoint);
      }
    };
  }
  return 0;
}

int ConfigComplete() {
  return Guard("config_complete", [&]() -> int { return ConfigCompleteImpl(); });
}

// ------------------------------------------------------------ stores ---
// hyperfile.store: logs every call that reaches the top of the stack (so a
// retried request is one line; hyperfile.retries shows the attempts).
class DebugStore : public hyperfile::StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  Status Put(std::string_view key, const hyperfile::Payload& data,
             const hyperfile::PutOptions& options, hyperfile::ObjectInfo* info) override {
    uint64_t bytes = 0;
    for (std::string_view p : data) bytes += p.size();
    return Log("put", key, bytes, [&] { return base()->Put(key, data, options, info); });
  }
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             hyperfile::ObjectInfo* info) override {
    return Log("get", key, 0, [&] {
      Status st = base()->Get(key, offset, length, out, info);
      last_bytes_ = st.ok() ? out->size() : 0;
      return st;
    });
  }
  Status Head(std::string_view key, hyperfile::ObjectInfo* info) override {
    return Log("head", key, 0, [&] { return base()->Head(key, info); });
  }
  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<hyperfile::ObjectInfo>* out) override {
    return Log("list", prefix, 0, [&] { return base()->List(prefix, start_after, limit, out); });
  }
  Status Delete(std::string_view key) override {
    return Log("delete", key, 0, [&] { return base()->Delete(key); });
  }
  Status DeleteMany(const std::vector<std::string>& keys) override {
    return Log("delete-many", keys.empty() ? std::string_view() : std::string_view(keys[0]),
               keys.size(), [&] { return base()->DeleteMany(keys); });
  }
  using ObjectStore::Get;
  using ObjectStore::Put;

 private:
  template <typename Fn>
  Status Log(const char* verb, std::string_view key, uint64_t n, Fn fn) {
    if (!hyperfile_debug_store) return fn();
    auto start = std::chrono::steady_clock::now();
    last_bytes_ = 0;
    Status st = fn();
    uint64_t us = MicrosSince(start);
    uint64_t bytes = n ? n : static_cast<uint64_t>(last_bytes_);
    nbdkit_debug("hyperfile: store %s %s %.*s (%" PRIu64 "): %s, %" PRIu64 " us", verb,
                 Name().c_str(), static_cast<int>(key.size()), key.data(), bytes,
                 st.ok() ? "ok" : st.ToString().c_str(), us);
    return st;
  }
  static thread_local size_t last_bytes_;
};
thread_local size_t DebugStore::last_bytes_ = 0;

// A store stack of the plugin's options, with the metrics layer when
// metrics are on (recorded in *metrics) and the debug layer on top.
hyperfile::Result<std::shared_ptr<ObjectStore>> OpenPluginStore(
    const std::string& uri, std::vector<std::shared_ptr<hyperfile::MetricsStore>>* metrics) {
  HF_ASSIGN_OR_RETURN(hyperfile::StoreStack stack, hyperfile::OpenStoreStack(uri, g_config.store));
  if (stack.metrics && metrics) metrics->push_back(stack.metrics);
  return std::shared_ptr<ObjectStore>(std::make_shared<DebugStore>(std::move(stack.store)));
}

// Where the stores of a clone's origins come from: the same options
// (endpoint, region, profile, credentials, layers) as the file itself, and
// their requests counted with the export's.
struct OriginMetrics {
  std::mutex mu;
  std::vector<std::shared_ptr<hyperfile::MetricsStore>> stores;
};

hyperfile::OpenOptions OpenOptionsFor(const std::shared_ptr<OriginMetrics>& origins,
                                      bool readonly) {
  hyperfile::OpenOptions o = g_config.open;
  o.read_only = readonly;
  if (!readonly) {
    o.refresh_interval_ms = 0;
    o.on_refresh = nullptr;
  }
  o.store_resolver =
      [origins](const std::string& uri) -> hyperfile::Result<std::shared_ptr<ObjectStore>> {
    std::vector<std::shared_ptr<hyperfile::MetricsStore>> m;
    auto store = OpenPluginStore(uri, &m);
    if (store.ok() && origins && !m.empty()) {
      std::lock_guard<std::mutex> lock(origins->mu);
      origins->stores.insert(origins->stores.end(), m.begin(), m.end());
    }
    return store;
  };
  return o;
}

// ------------------------------------------------------ opening files ---
// Opens the file of an export. In single-file mode this is called twice:
// in get_ready (to fail early, with the error on the terminal, and to
// create the file) and again in after_fork (the library's threads must be
// started in the process that serves).
struct Opened {
  std::shared_ptr<File> file;
  std::unique_ptr<hyperfile::Lease> lease;
  std::vector<std::shared_ptr<hyperfile::MetricsStore>> metrics;
};

hyperfile::Result<Opened> OpenExportFile(const std::string& uri, const std::optional<At>& at,
                                         bool readonly, bool create_if_missing) {
  const Config& c = g_config;
  Opened opened;
  auto origins = std::make_shared<OriginMetrics>();
  HF_ASSIGN_OR_RETURN(std::shared_ptr<ObjectStore> store, OpenPluginStore(uri, &opened.metrics));
  hyperfile::OpenOptions options = OpenOptionsFor(origins, readonly);
  if (at && at->kind != At::Kind::kLatest) options.refresh_interval_ms = 0, options.on_refresh = {};
  hyperfile::Result<std::unique_ptr<File>> file = Status::NotFound("unreachable");
  if (at && at->kind != At::Kind::kLatest) {
    if (c.lease) {
      // Lease first, then open exactly the leased checkpoint: a collection
      // on another machine keeps it for as long as this export runs.
      HF_ASSIGN_OR_RETURN(opened.lease,
                          hyperfile::Lease::Acquire(store, *at, 10 * 60 * 1000,
                                                    "nbdkit pid " + std::to_string(getpid())));
      file = File::OpenAt(store, At::Checkpoint(opened.lease->checkpoint()), options);
    } else {
      file = File::OpenAt(store, *at, options);
    }
  } else {
    file = File::Open(store, options);
    if (!file.ok() && file.status().IsNotFound() && create_if_missing && c.create_size) {
      hyperfile::CreateOptions create;
      create.initial_size = *c.create_size;
      if (c.block_size) create.block_size = *c.block_size;
      if (c.compression) create.compression = *c.compression;
      if (c.encrypt) create.encryption_key = c.open.key;
      nbdkit_debug("hyperfile: creating %s (size %" PRIu64 ", block size %u)", uri.c_str(),
                   create.initial_size, create.block_size);
      file = File::Create(store, create, options);
      if (!file.ok() && file.status().IsAlreadyExists()) {
        file = File::Open(store, options);  // lost a race with another creator
      }
    }
  }
  if (!file.ok()) {
    Status st = file.status();
    if (st.IsNotFound() && !at && !c.create_size) {
      st = st.WithContext("no hyperfile at " + uri +
                          (c.prefix_mode ? std::string(" (nbdinfo --list shows the exports)")
                                         : std::string(" (give create-size= to create one)")));
    }
    return st;
  }
  opened.file = std::shared_ptr<File>(std::move(file).value());
  {
    std::lock_guard<std::mutex> lock(origins->mu);
    opened.metrics.insert(opened.metrics.end(), origins->stores.begin(), origins->stores.end());
  }
  return opened;
}

// ------------------------------------------------------- export names ---
// In prefix mode the export name is "PATH" or "PATH@SELECTOR": PATH is the
// file's key prefix below uri= (segments separated by '/', none empty, '.'
// or '..', no control characters; at most 1024 bytes), SELECTOR anything
// At::Parse takes (a checkpoint id, a snapshot name, a time, latest). The
// first '@' splits them. Errors name the export and what is accepted.
Status ParseExportName(const std::string& name, std::string* path, std::optional<At>* at) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("export '" + name + "': " + why);
  };
  if (name.empty()) {
    return Status::InvalidArgument(
        "no export name: this server serves the files under " + g_config.uri +
        "; name one (e.g. nbd://host/vm1 or vm1@SNAPSHOT), or list them with nbdinfo --list");
  }
  if (name.size() > 1024) return bad("longer than 1024 bytes");
  size_t at_pos = name.find('@');
  *path = name.substr(0, at_pos);
  if (path->empty()) return bad("no file name before '@'");
  for (unsigned char ch : *path) {
    if (ch < 0x20 || ch == 0x7f) return bad("a control character in the name");
  }
  size_t start = 0;
  while (true) {
    size_t slash = path->find('/', start);
    std::string seg =
        path->substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (seg.empty() || seg == "." || seg == "..") {
      return bad("each '/'-separated part of the name must be non-empty and not '.' or '..'");
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  at->reset();
  if (at_pos != std::string::npos) {
    auto parsed = At::Parse(name.substr(at_pos + 1));
    if (!parsed.ok()) {
      return bad("selector '" + name.substr(at_pos + 1) + "': " + parsed.status().message());
    }
    *at = *parsed;
  }
  return Status::OK();
}

// ------------------------------------------------------------ registry ---
std::shared_ptr<Export> NewExport(const std::string& name) {
  auto ex = std::make_shared<Export>();
  ex->name = name;
  return ex;
}

// Opens ex's file if it is not open (ex->mu held).
Status OpenLocked(Export* ex, bool create_if_missing) {
  if (ex->file) return Status::OK();
  auto start = std::chrono::steady_clock::now();
  auto opened = OpenExportFile(ex->uri, ex->at, ex->readonly, create_if_missing);
  if (!opened.ok()) return opened.status();
  std::string desc = "hyperfile " + ex->uri;
  auto stat = opened->file->Stat();
  if (stat.ok()) {
    desc += " checkpoint " + std::to_string(stat->checkpoint);
    if (hyperfile_debug_exports || ex->pinned) {
      nbdkit_debug("hyperfile: opened export '%s' (%s) at checkpoint %" PRIu64 ", size %" PRIu64
                   ", block size %u%s in %" PRIu64 " us",
                   ex->name.c_str(), ex->uri.c_str(), stat->checkpoint, stat->size,
                   stat->block_size, ex->readonly ? ", read-only" : "", MicrosSince(start));
    }
  }
  if (ex->readonly) desc += " (read-only)";
  ex->file = opened->file;
  ex->lease = std::move(opened->lease);
  ex->description = std::move(desc);
  std::lock_guard<std::mutex> lock(ex->stats_mu);
  ex->stats_file = opened->file;
  for (auto& m : opened->metrics) ex->metrics.push_back(std::move(m));
  return Status::OK();
}

void ObserveFlush(Export* ex, std::chrono::steady_clock::time_point start, uint64_t dirty,
                  const hyperfile::Result<uint64_t>& r) {
  uint64_t us = MicrosSince(start);
  ex->counters.flush.Observe(us);
  if (hyperfile_debug_flushes) {
    nbdkit_debug(
        "hyperfile: flush of export '%s': %s, %" PRIu64 " dirty bytes, %" PRIu64 " us",
        ex->name.c_str(),
        r.ok() ? ("checkpoint " + std::to_string(*r)).c_str() : r.status().ToString().c_str(),
        dirty, us);
  }
}

// Flushes through ex's counters (the flush histogram, hyperfile.flushes).
hyperfile::Result<uint64_t> FlushExport(Export* ex, File* file) {
  uint64_t dirty = 0;
  if (hyperfile_debug_flushes) {
    auto st = file->Stat();
    if (st.ok()) dirty = st->dirty_bytes;
  }
  auto start = std::chrono::steady_clock::now();
  auto r = file->Flush();
  ObserveFlush(ex, start, dirty, r);
  return r;
}

// Closes ex's file (ex->mu held): the last writes become a checkpoint; the
// metrics of this open are kept in the totals.
void CloseLocked(Export* ex) {
  if (!ex->file) return;
  std::shared_ptr<File> file = std::move(ex->file);
  try {
    if (!ex->readonly) {
      auto r = FlushExport(ex, file.get());
      if (!r.ok()) nbdkit_error("flush %s: %s", ex->uri.c_str(), r.status().ToString().c_str());
    }
    auto stat = file->Stat();
    Status st = file->Close();
    if (!st.ok()) nbdkit_error("close %s: %s", ex->uri.c_str(), st.ToString().c_str());
    std::lock_guard<std::mutex> lock(ex->stats_mu);
    for (auto& m : ex->metrics) ex->closed_store += m->Snapshot();
    ex->metrics.clear();
    if (stat.ok()) {
      ex->closed_cache.block_cache_hits += stat->block_cache_hits;
      ex->closed_cache.block_cache_misses += stat->block_cache_misses;
      ex->closed_cache.index_cache_hits += stat->index_cache_hits;
      ex->closed_cache.index_cache_misses += stat->index_cache_misses;
    }
    ex->stats_file.reset();
  } catch (...) {
    nbdkit_error("close %s: unexpected exception", ex->uri.c_str());
  }
  ex->lease.reset();
  if (hyperfile_debug_exports) nbdkit_debug("hyperfile: closed export '%s'", ex->name.c_str());
}

// The export for a connection to `name`, its file open and a reference
// taken (Release gives it back). Errors name the export.
hyperfile::Result<std::shared_ptr<Export>> Acquire(const std::string& name) {
  for (;;) {
    std::shared_ptr<Export> ex;
    std::string key;
    std::string path;
    std::optional<At> at;
    if (!g_config.prefix_mode) {
      // One file; "@SELECTOR" names one of its states, any other name (as
      // clients send "" or a name of their own) is the file itself.
      if (name.empty() || name[0] != '@') {
        if (!g_single) return Status::IOError("hyperfile: " + g_config.uri + " is not open");
        ex = g_single;
      } else {
        auto parsed = At::Parse(name.substr(1));
        if (!parsed.ok()) {
          return Status::InvalidArgument("export '" + name + "': " + parsed.status().message());
        }
        at = *parsed;
        key = name;
        path = "";
      }
    } else {
      HF_RETURN_IF_ERROR(ParseExportName(name, &path, &at));
      key = name;
    }
    if (!ex) {
      std::lock_guard<std::mutex> lock(g_registry_mu);
      auto it = g_exports.find(key);
      if (it == g_exports.end()) {
        if (g_exports.size() >= kMaxExports) {
          return Status::OutOfRange("export '" + name + "': this server has " +
                                    std::to_string(kMaxExports) + " exports already");
        }
        auto created = NewExport(name);
        created->uri = g_config.prefix_mode ? g_config.uri + path : g_config.uri;
        created->at = at;
        created->readonly = g_config.readonly || (at.has_value());
        it = g_exports.emplace(key, std::move(created)).first;
      }
      ex = it->second;
    }
    std::unique_lock<std::mutex> lock(ex->mu);
    if (ex->dead) continue;  // removed while we waited: look it up again
    Status st = OpenLocked(ex.get(), /*create_if_missing=*/false);
    if (!st.ok()) {
      if (!ex->pinned && ex->refs == 0 && ex->counters.connections_total == 0) {
        // Never served: forget it (a mistyped name does not stay in the
        // registry and its metrics).
        ex->dead = true;
        std::lock_guard<std::mutex> rlock(g_registry_mu);
        auto it = g_exports.find(key);
        if (it != g_exports.end() && it->second == ex) g_exports.erase(it);
      }
      return st.WithContext("export '" + name + "'");
    }
    ex->refs++;
    ex->counters.connections_total.fetch_add(1, std::memory_order_relaxed);
    return ex;
  }
}

void Release(const std::shared_ptr<Export>& ex) {
  std::lock_guard<std::mutex> lock(ex->mu);
  ex->refs--;
  // A prefix export closes with its last connection (a new one opens it
  // again, waiting for this close); flush-on-close=false keeps it open, as
  // closing would commit what the client did not flush.
  if (ex->refs == 0 && !ex->pinned && g_config.flush_on_close) CloseLocked(ex.get());
}

// Every export, for the metrics.
std::vector<hm::ExportSample> SampleExports() {
  std::vector<std::shared_ptr<Export>> all;
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    if (g_single) all.push_back(g_single);
    for (auto& [k, ex] : g_exports) all.push_back(ex);
  }
  std::vector<hm::ExportSample> out;
  for (const auto& ex : all) {
    hm::ExportSample s = hm::SampleCounters(ex->counters);
    s.name = ex->name;
    std::shared_ptr<File> file;
    std::vector<std::shared_ptr<hyperfile::MetricsStore>> metrics;
    hyperfile::FileStat closed;
    {
      std::lock_guard<std::mutex> lock(ex->stats_mu);
      file = ex->stats_file;
      metrics = ex->metrics;
      s.store = ex->closed_store;
      closed = ex->closed_cache;
    }
    for (auto& m : metrics) s.store += m->Snapshot();
    s.block_cache_hits = closed.block_cache_hits;
    s.block_cache_misses = closed.block_cache_misses;
    s.index_cache_hits = closed.index_cache_hits;
    s.index_cache_misses = closed.index_cache_misses;
    if (file) {
      auto st = file->Stat();
      if (st.ok()) {
        s.open = true;
        s.dirty_bytes = st->dirty_bytes;
        s.checkpoint = st->checkpoint;
        s.size = st->size;
        s.block_cache_bytes = st->block_cache_bytes;
        s.index_cache_bytes = st->index_cache_bytes;
        s.block_cache_hits += st->block_cache_hits;
        s.block_cache_misses += st->block_cache_misses;
        s.index_cache_hits += st->index_cache_hits;
        s.index_cache_misses += st->index_cache_misses;
      }
    }
    out.push_back(std::move(s));
  }
  // Connections open now: refs, read without waiting for an open in
  // progress (try_lock; a busy export shows its last known count).
  for (size_t i = 0; i < all.size(); i++) {
    std::unique_lock<std::mutex> lock(all[i]->mu, std::try_to_lock);
    out[i].connections = lock.owns_lock() ? all[i]->refs : -1;
  }
  return out;
}

std::string RenderMetrics() { return hm::RenderPrometheus(SampleExports()); }

// --------------------------------------------------------- lifecycle ---
int GetReady() {
  return Guard("get_ready", [&]() -> int {
    const Config& c = g_config;
    // Retries, throttling and slow requests go to nbdkit's debug log (-v);
    // give-ups are errors; the library's info lines need -D hyperfile.retries=1.
    hyperfile::SetLogHandler([](hyperfile::LogLevel level, std::string_view message) {
      if (level < hyperfile::LogLevel::kWarning && !hyperfile_debug_retries) return;
      if (level == hyperfile::LogLevel::kError) {
        nbdkit_error("hyperfile: %.*s", static_cast<int>(message.size()), message.data());
      } else {
        nbdkit_debug("hyperfile: %s: %.*s", std::string(hyperfile::LogLevelName(level)).c_str(),
                     static_cast<int>(message.size()), message.data());
      }
    });
    if (!c.metrics_address.empty()) {
      // Bound now, so a bad or busy address fails the start on the terminal;
      // served after the fork.
      std::string error;
      g_metrics_http = hm::MetricsHttp::Listen(c.metrics_address, &error);
      if (!g_metrics_http) {
        nbdkit_error("metrics=%s: %s", c.metrics_address.c_str(), error.c_str());
        return -1;
      }
      nbdkit_debug("hyperfile: metrics on http://%s/metrics", g_metrics_http->bound().c_str());
    }
    if (c.prefix_mode) {
      // The prefix must be reachable (credentials, bucket): one small LIST.
      auto store = OpenPluginStore(c.uri, nullptr);
      if (!store.ok()) return Fail(("open " + c.uri).c_str(), store.status());
      std::vector<hyperfile::ObjectInfo> one;
      Status st = (*store)->List("", "", 1, &one);
      if (!st.ok()) return Fail(("list " + c.uri).c_str(), st);
      return 0;
    }
    auto opened = OpenExportFile(c.uri, c.at, ReadOnlyExport(), /*create_if_missing=*/true);
    if (!opened.ok()) return Fail(("open " + c.uri).c_str(), opened.status());
    if (c.create_size && opened->file->Size() != *c.create_size) {
      nbdkit_debug("hyperfile: %s exists; serving its size %" PRIu64 ", not create-size=%" PRIu64,
                   c.uri.c_str(), opened->file->Size(), *c.create_size);
    }
    Status st = opened->file->Close();
    opened->lease.reset();  // taken again in the serving process
    if (!st.ok()) return Fail(("close " + c.uri).c_str(), st);
    return 0;
  });
}

// One collection (and compaction first, through the export's own handle);
// `stop` (the plugin unloading) ends a compaction at its next rewrite call.
void CollectOnce(const std::shared_ptr<File>& file, const std::function<bool()>& stop) {
  const Config& c = g_config;
  auto store = hyperfile::OpenStore(c.uri, c.store);
  if (!store.ok()) {
    nbdkit_error("gc: %s", store.status().ToString().c_str());
    return;
  }
  if (c.compact) {
    std::string buf;
    auto rewrite = [&](uint64_t offset, uint64_t length) -> Status {
      auto lock = g_range_locks->Exclusive(offset, length);
      buf.resize(static_cast<size_t>(length));
      HF_ASSIGN_OR_RETURN(size_t got, file->PRead(offset, buf.data(), buf.size()));
      return file->PWrite(offset, buf.data(), got);
    };
    hyperfile::CompactOptions co;
    co.stop = stop;
    co.open_options.key = c.open.key;  // MakePlan reads the sealed index
    if (!c.gc_rules.empty()) co.policy = *hyperfile::RetentionPolicy::Parse(c.gc_rules);
    auto cr = hyperfile::CompactThrough(file.get(), *store, co, rewrite);
    if (!cr.ok()) {
      nbdkit_error("gc: compaction: %s", cr.status().ToString().c_str());
    } else if (cr->stopped) {
      nbdkit_debug("hyperfile gc: compaction stopped for unload after %" PRIu64 " bytes",
                   cr->bytes_rewritten);
      return;
    } else if (cr->victims > 0) {
      nbdkit_debug("hyperfile gc: compacted %" PRIu64 " objects, %" PRIu64
                   " bytes rewritten, checkpoint %" PRIu64,
                   cr->victims, cr->bytes_rewritten, cr->checkpoint);
    }
  }
  hyperfile::GcOptions o;
  if (!c.gc_rules.empty()) o.policy = *hyperfile::RetentionPolicy::Parse(c.gc_rules);
  o.grace_ms = c.gc_grace_ms;
  o.upload_grace_ms = std::max(o.upload_grace_ms, o.grace_ms);
  o.key = c.open.key;
  auto r = hyperfile::Collect(*store, o);
  if (!r.ok()) {
    nbdkit_error("gc: %s", r.status().ToString().c_str());
    return;
  }
  nbdkit_debug("hyperfile gc: %zu expired, %" PRIu64 " objects (%" PRIu64
               " bytes) deleted, %" PRIu64 " live (%" PRIu64 " bytes)%s%s",
               r->expired.size(), r->deleted_objects, r->deleted_bytes, r->live_objects,
               r->live_bytes, r->note.empty() ? "" : "; ", r->note.c_str());
}

void StartCollector(uint32_t block_size) {
  if (g_config.gc_interval_ms <= 0 || ReadOnlyExport()) return;
  g_range_locks = std::make_unique<hyperfile::RangeLocks>(block_size);
  auto col = std::make_unique<Collector>();
  Collector* cp = col.get();
  cp->thread = std::thread([cp] {
    std::unique_lock<std::mutex> lock(cp->mu);
    for (;;) {
      if (cp->cv.wait_for(lock, std::chrono::milliseconds(g_config.gc_interval_ms),
                          [cp] { return cp->stop; })) {
        return;
      }
      lock.unlock();
      std::shared_ptr<File> file = CurrentFile();
      if (file) {
        try {
          CollectOnce(file, [cp] {
            std::lock_guard<std::mutex> stop_lock(cp->mu);
            return cp->stop;
          });
        } catch (...) {
          nbdkit_error("gc: unexpected exception");
        }
      }
      lock.lock();
    }
  });
  g_collector = std::move(col);
}

void StopCollector() {
  if (!g_collector) return;
  {
    std::lock_guard<std::mutex> lock(g_collector->mu);
    g_collector->stop = true;
  }
  g_collector->cv.notify_all();
  if (g_collector->thread.joinable()) g_collector->thread.join();
  g_collector.reset();
}

int AfterFork() {
  return Guard("after_fork", [&]() -> int {
    const Config& c = g_config;
    if (g_metrics_http) {
      std::string error;
      if (!g_metrics_http->Start(RenderMetrics, &error)) {
        nbdkit_error("metrics=%s: %s", c.metrics_address.c_str(), error.c_str());
        return -1;
      }
    }
    if (!c.metrics_file.empty()) {
      g_metrics_file = std::make_unique<hm::MetricsFile>(
          c.metrics_file, std::chrono::milliseconds(c.metrics_interval_ms));
      g_metrics_file->Start(RenderMetrics);
    }
    if (c.prefix_mode) return 0;  // exports open on their first connection
    auto ex = NewExport("");
    ex->uri = c.uri;
    ex->at = c.at;
    ex->readonly = ReadOnlyExport();
    ex->pinned = true;
    std::unique_lock<std::mutex> lock(ex->mu);
    // A memory:// file lives in one process: after a fork it must be made
    // again (get_ready's was in the parent). Anything else exists by now.
    Status st = OpenLocked(ex.get(), /*create_if_missing=*/c.uri.starts_with("memory://"));
    if (!st.ok()) return Fail(("open " + c.uri).c_str(), st);
    auto stat = ex->file->Stat();
    lock.unlock();
    {
      std::lock_guard<std::mutex> rlock(g_registry_mu);
      g_single = ex;
    }
    StartCollector(stat.ok() ? stat->block_size : 4096);
    return 0;
  });
}

bool g_shut_down = false;

void Shutdown() {
  if (g_shut_down) return;
  g_shut_down = true;
  StopCollector();
  std::vector<std::shared_ptr<Export>> all;
  {
    std::lock_guard<std::mutex> lock(g_registry_mu);
    if (g_single) all.push_back(g_single);
    for (auto& [k, ex] : g_exports) all.push_back(ex);
  }
  for (auto& ex : all) {
    std::lock_guard<std::mutex> lock(ex->mu);
    CloseLocked(ex.get());
  }
  // The last rendering has every count, the final commits included.
  if (g_metrics_file) g_metrics_file->Stop();
  if (g_metrics_http) g_metrics_http->Stop();
  hyperfile::SetLogHandler(nullptr);
}

void Cleanup() {
  Guard("cleanup", [&]() -> int {
    Shutdown();
    return 0;
  });
}
void Unload() {
  Guard("unload", [&]() -> int {
    Shutdown();
    return 0;
  });
}

// ------------------------------------------------------ list_exports ---
// The files under the prefix: a root is named by its first "ROOT/seg/<id>"
// key (the format's own key recognition, hyperfile::IsHyperfileKey; other
// objects are never listed), and the listing then skips past ROOT's keys.
// Bounded: at most kMaxListPages LIST requests and kMaxExports names.
constexpr int kMaxListPages = 10000;

Status ListFiles(ObjectStore* store, std::vector<std::string>* names, bool* truncated) {
  std::string after;
  *truncated = false;
  for (int pages = 0;; pages++) {
    if (pages >= kMaxListPages || names->size() >= kMaxExports) {
      *truncated = true;
      return Status::OK();
    }
    std::vector<hyperfile::ObjectInfo> page;
    HF_RETURN_IF_ERROR(store->List("", after, 1000, &page));
    if (page.empty()) return Status::OK();
    std::string next = page.back().key;
    for (const hyperfile::ObjectInfo& o : page) {
      if (!after.empty() && o.key <= after) continue;  // skipped by a jump below
      std::string root;
      for (size_t p = o.key.find('/'); p != std::string::npos; p = o.key.find('/', p + 1)) {
        std::string_view tail = std::string_view(o.key).substr(p + 1);
        if (tail.starts_with("seg/") && hyperfile::IsHyperfileKey(tail)) {
          root = o.key.substr(0, p);
          break;
        }
      }
      if (root.empty()) continue;
      names->push_back(root);
      // "ROOT0" sorts after every "ROOT/..." key ('0' follows '/').
      after = root + "0";
      if (names->size() >= kMaxExports) break;
    }
    if (page.size() < 1000) return Status::OK();  // the end of the listing
    if (after < next) after = next;
  }
}

int ListExports(int, int, struct nbdkit_exports* exports) {
  return Guard("list_exports", [&]() -> int {
    if (!g_config.prefix_mode) return nbdkit_use_default_export(exports);
    auto store = OpenPluginStore(g_config.uri, nullptr);
    if (!store.ok()) return Fail(("list " + g_config.uri).c_str(), store.status());
    std::vector<std::string> names;
    bool truncated = false;
    Status st = ListFiles(store->get(), &names, &truncated);
    if (!st.ok()) return Fail(("list " + g_config.uri).c_str(), st);
    if (truncated) {
      nbdkit_debug("hyperfile: list_exports of %s stopped at %zu files (the listing's bound)",
                   g_config.uri.c_str(), names.size());
    }
    if (hyperfile_debug_exports) {
      nbdkit_debug("hyperfile: list_exports of %s: %zu files", g_config.uri.c_str(), names.size());
    }
    for (const std::string& n : names) {
      std::string desc = "hyperfile " + g_config.uri + n;
      if (nbdkit_add_export(exports, n.c_str(), desc.c_str()) == -1) return -1;
    }
    return 0;
  });
}

// -------------------------------------------------------- connections ---
struct Handle {
  std::shared_ptr<Export> ex;
  std::shared_ptr<File> file;
  uint64_t size = 0;
  bool readonly = false;
};

void* Open(int readonly) {
  try {
    const char* name_c = nbdkit_export_name();
    std::string name = name_c ? name_c : "";
    auto ex = Acquire(name);
    if (!ex.ok()) {
      Fail("open", ex.status());
      return nullptr;
    }
    auto* h = new Handle;
    h->ex = *ex;
    {
      std::lock_guard<std::mutex> lock(h->ex->mu);
      h->file = h->ex->file;
    }
    h->size = h->file->Size();
    h->readonly = readonly || h->ex->readonly;
    if (hyperfile_debug_exports) {
      nbdkit_debug("hyperfile: connection to export '%s' (%s)%s", name.c_str(), h->ex->uri.c_str(),
                   h->readonly ? " read-only" : "");
    }
    return h;
  } catch (...) {
    nbdkit_error("hyperfile: open: out of memory");
    nbdkit_set_error(ENOMEM);
    return nullptr;
  }
}

void Close(void* handle) {
  auto* h = static_cast<Handle*>(handle);
  if (!h) return;
  try {
    if (!h->readonly && g_config.flush_on_close) {
      auto r = FlushExport(h->ex.get(), h->file.get());
      if (!r.ok()) nbdkit_error("flush on disconnect: %s", r.status().ToString().c_str());
    }
    h->file.reset();
    Release(h->ex);
  } catch (...) {
    nbdkit_error("close: unexpected exception");
  }
  delete h;
}

Handle* H(void* handle) { return static_cast<Handle*>(handle); }

int64_t GetSize(void* handle) { return static_cast<int64_t>(H(handle)->size); }

const char* ExportDescription(void* handle) {
  // Set when the export opened; stable while a connection holds it open.
  Export* ex = H(handle)->ex.get();
  return ex->description.empty() ? nullptr : nbdkit_strdup_intern(ex->description.c_str());
}

int BlockSize(void* handle, uint32_t* minimum, uint32_t* preferred, uint32_t* maximum) {
  return Guard("block_size", [&]() -> int {
    auto st = H(handle)->file->Stat();
    if (!st.ok()) return Fail("stat", st.status());
    uint32_t pref = st->block_size;
    if (pref < 512) pref = 512;
    if (pref > (32u << 20)) pref = 32u << 20;
    *minimum = 1;
    *preferred = pref;
    *maximum = 0xffffffff;
    return 0;
  });
}

int CanWrite(void* handle) { return H(handle)->readonly ? 0 : 1; }
int CanFlush(void*) { return 1; }
int IsRotational(void*) { return 0; }
int CanTrim(void* handle) { return CanWrite(handle); }
int CanZero(void* handle) { return CanWrite(handle); }
// Zeroing never writes data (it is a hole in the index), so it is always fast.
int CanFastZero(void* handle) { return CanWrite(handle); }
int CanFua(void*) { return NBDKIT_FUA_NATIVE; }
// All connections to an export share one File: a flush on any of them
// commits every write completed on any of them, which is what multi-conn
// promises.
int CanMultiConn(void*) { return 1; }
int CanExtents(void*) { return 1; }
// nbdkit turns NBD_CMD_CACHE into preads, which warm the block cache.
int CanCache(void*) { return NBDKIT_CACHE_EMULATE; }

// Counts one request of `op` (and hyperfile.requests logs it).
struct Request {
  Request(Handle* h, int op, uint64_t offset, uint64_t count)
      : h(h), op(op), offset(offset), count(count), start(std::chrono::steady_clock::now()) {}
  int Done(int rc) {
    uint64_t us = MicrosSince(start);
    hm::ExportCounters& c = h->ex->counters;
    (rc == 0 ? c.ok : c.errors)[op].fetch_add(1, std::memory_order_relaxed);
    c.latency[op].Observe(us);
    if (rc == 0 && op == hm::kRead) c.bytes_read.fetch_add(count, std::memory_order_relaxed);
    if (rc == 0 && op == hm::kWrite) c.bytes_written.fetch_add(count, std::memory_order_relaxed);
    if (hyperfile_debug_requests) {
      nbdkit_debug(
          "hyperfile: %s export '%s' offset %" PRIu64 " count %" PRIu64 ": %s, %" PRIu64 " us",
          hm::OpName(op), h->ex->name.c_str(), offset, count, rc == 0 ? "ok" : "error", us);
    }
    return rc;
  }
  Handle* h;
  int op;
  uint64_t offset, count;
  std::chrono::steady_clock::time_point start;
};

int DoFlush(Handle* h) {
  auto r = FlushExport(h->ex.get(), h->file.get());
  if (!r.ok()) return Fail("flush", r.status());
  return 0;
}

int FuaIfAsked(Handle* h, uint32_t flags) { return (flags & NBDKIT_FLAG_FUA) ? DoFlush(h) : 0; }

int PRead(void* handle, void* buf, uint32_t count, uint64_t offset, uint32_t) {
  Request req(H(handle), hm::kRead, offset, count);
  return req.Done(Guard("pread", [&]() -> int {
    auto r = H(handle)->file->PRead(offset, buf, count);
    if (!r.ok()) return Fail("pread", r.status());
    if (*r != count && g_config.follow_ms) {
      // follow=: the file shrank since this connection opened (its size is
      // fixed for the connection): the bytes past the new end read as zeros.
      std::memset(static_cast<char*>(buf) + *r, 0, count - *r);
      return 0;
    }
    if (*r != count) {
      // nbdkit only asks for bytes inside the export; a short read means the
      // file shrank under us, which this plugin never does.
      nbdkit_error("pread: short read at %" PRIu64 ": %zu of %u bytes", offset, *r, count);
      nbdkit_set_error(EIO);
      return -1;
    }
    return 0;
  }));
}

int PWrite(void* handle, const void* buf, uint32_t count, uint64_t offset, uint32_t flags) {
  Request req(H(handle), hm::kWrite, offset, count);
  return req.Done(Guard("pwrite", [&]() -> int {
    Status st;
    {
      auto lock = WriteLock(offset, count);
      st = H(handle)->file->PWrite(offset, buf, count);
    }
    if (!st.ok()) return Fail("pwrite", st);
    return FuaIfAsked(H(handle), flags);
  }));
}

int Flush(void* handle, uint32_t) {
  Request req(H(handle), hm::kFlush, 0, 0);
  return req.Done(Guard("flush", [&]() -> int { return DoFlush(H(handle)); }));
}

int Trim(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  Request req(H(handle), hm::kTrim, offset, count);
  return req.Done(Guard("trim", [&]() -> int {
    Status st;
    {
      auto lock = WriteLock(offset, count);
      st = H(handle)->file->PunchHole(offset, count);
    }
    if (!st.ok()) return Fail("trim", st);
    return FuaIfAsked(H(handle), flags);
  }));
}

// Both branches store no data. With MAY_TRIM the client allows a hole, so we
// punch one; without it (NBD_CMD_FLAG_NO_HOLE) we write zeroes, which in this
// format is also a hole: there is no "allocated zeros" state to honour the hint
// with. FAST_ZERO is always satisfied: neither path ever writes data.
int Zero(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  Request req(H(handle), hm::kZero, offset, count);
  return req.Done(Guard("zero", [&]() -> int {
    Handle* h = H(handle);
    Status st;
    {
      auto lock = WriteLock(offset, count);
      st = (flags & NBDKIT_FLAG_MAY_TRIM) ? h->file->PunchHole(offset, count)
                                          : h->file->WriteZeroes(offset, count);
    }
    if (!st.ok()) return Fail("zero", st);
    return FuaIfAsked(h, flags);
  }));
}

int Extents(void* handle, uint32_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents* extents) {
  Request req(H(handle), hm::kExtents, offset, count);
  return req.Done(Guard("extents", [&]() -> int {
    auto r = H(handle)->file->Extents(offset, count);
    if (!r.ok()) return Fail("extents", r.status());
    for (const hyperfile::Extent& e : *r) {
      if (e.length == 0) continue;
      uint32_t type = e.data ? 0 : (NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO);
      if (nbdkit_add_extent(extents, e.offset, e.length, type) == -1) return -1;
      if (flags & NBDKIT_FLAG_REQ_ONE) break;
    }
    if (g_config.follow_ms && (r->empty() || !(flags & NBDKIT_FLAG_REQ_ONE))) {
      // follow=: past a shrunken file's end lies a hole up to this
      // connection's size.
      uint64_t end = r->empty() ? offset : r->back().offset + r->back().length;
      if (end < offset + count &&
          nbdkit_add_extent(extents, end, offset + count - end,
                            NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO) == -1) {
        return -1;
      }
    }
    return 0;
  }));
}

void DumpPlugin() {
  std::printf("hyperfile_api=%d\n", NBDKIT_API_VERSION);
  std::printf("hyperfile_uri_schemes=s3 file memory\n");
  std::printf("hyperfile_multi_export=yes\n");
  std::printf("hyperfile_metrics=prometheus\n");
}

#define HYPERFILE_NBD_CONFIG_HELP                                                                  \
  "uri=URI                 (required) the file: s3://bucket/prefix, file:///dir or a path.\n"      \
  "                        The key may be omitted: nbdkit hyperfile s3://bucket/disk\n"            \
  "                        Ending in '/': many files, the export name selects one\n"               \
  "                        (NAME, or NAME@SNAPSHOT|ID|TIME read-only); nbdinfo --list\n"           \
  "at=ID|TIME|SNAPSHOT     serve an older state read-only: a checkpoint id, a UTC time\n"          \
  "                        (2026-11-25T10:00:00Z, @UNIX_SECONDS), a snapshot name or latest\n"     \
  "readonly=BOOL           open the latest state read-only (no writer; default false)\n"           \
  "create-size=SIZE        create the file with this size if it does not exist\n"                  \
  "block-size=SIZE         block size of a created file: 4K..4M, power of two (64K)\n"             \
  "compression=CODEC       codec of a created file: zstd[:LEVEL] (zstd:1), lz4, none\n"            \
  "cache=SIZE              memory for cached data blocks (64M)\n"                                  \
  "index-cache=SIZE        memory for cached index nodes (16M)\n"                                  \
  "dirty-limit=SIZE        unflushed data kept before writers wait (256M)\n"                       \
  "disk-cache=DIR          local-disk cache of clean blocks (off)\n"                               \
  "disk-cache-size=SIZE    byte budget of the disk cache\n"                                        \
  "flush-interval-ms=MS    background checkpoint when the oldest dirty byte is this old (0=off)\n" \
  "flush-dirty=SIZE        background checkpoint when this much is dirty (0=half of "              \
  "dirty-limit)\n"                                                                                 \
  "flush-on-close=BOOL     checkpoint when a writable connection closes (true)\n"                  \
  "follow=INTERVAL         with readonly=true: follow the head, refreshing every INTERVAL\n"       \
  "                        (e.g. 1s); a connection's size stays what it was when it opened\n"      \
  "io-parallelism=N        parallel store requests for this file (8)\n"                            \
  "writer-name=NAME        writer name recorded in checkpoints (host/process)\n"                   \
  "endpoint=URL            S3 endpoint (default: AWS_ENDPOINT_URL or AWS)\n"                       \
  "region=REGION           S3 region (default: AWS_REGION)\n"                                      \
  "profile=NAME            AWS profile for credentials (default: AWS_PROFILE)\n"                   \
  "addressing=auto|path|virtual  S3 addressing style (auto)\n"                                     \
  "verify-tls=BOOL         verify the S3 server's certificate (true)\n"                            \
  "max-in-flight=N         concurrent S3 requests (16)\n"                                          \
  "retry-attempts=N        attempts per store request, incl. the first (6)\n"                      \
  "retry-max-ms=MS         give up retrying a request after this long (60000)\n"                   \
  "gc-interval=DURATION    collect (and compact) in this writer every DURATION, e.g. 10m (off)\n"  \
  "keep-last=N keep-within=DURATION keep-hourly=N keep-daily=N keep-weekly=N keep-monthly=N\n"     \
  "                        retention rules of that collector (default: the stored policy)\n"       \
  "gc-grace=DURATION       never delete objects younger than this (20m)\n"                         \
  "compact=BOOL            compact mostly-dead objects before collecting (true)\n"                 \
  "lease=BOOL              an at= export holds a reader lease on its checkpoint (true)\n"          \
  "latency=SPEC            simulated store latency, e.g. aws or get=30ms,bw=100MB (off; "          \
  "default:\n"                                                                                     \
  "                        HYPERFILE_STORE_LATENCY)\n"                                             \
  "access-key-id=ID        S3 access key id (with secret-key=)\n"                                  \
  "secret-key=+FILE|-FD|-  S3 secret key from a file, a file descriptor or the terminal\n"         \
  "session-token=+FILE|-FD|-  S3 session token, likewise\n"                                        \
  "key=+FILE|-FD|-         key of an encrypted file (64 hex digits or base64), read likewise\n"    \
  "key-file=PATH           the same from a key file (32 raw bytes, hex or base64)\n"               \
  "passphrase=+FILE|-FD|-  or a passphrase (Argon2id), read likewise\n"                            \
  "encrypt=BOOL            a file created here (size=) is encrypted under that key (false)\n"      \
  "metrics=ADDR:PORT       serve Prometheus metrics at http://ADDR:PORT/metrics\n"                 \
  "metrics-file=PATH       write them to PATH (node_exporter textfile), atomically\n"              \
  "metrics-interval=DURATION  how often metrics-file= is written (10s)\n"                          \
  "Debug flags: -D hyperfile.requests=1 -D hyperfile.store=1 -D hyperfile.retries=1\n"             \
  "             -D hyperfile.flushes=1 -D hyperfile.exports=1 (with -v)\n"                         \
  "Credentials come from the AWS chain (environment, profile, ...) or the keys above;\n"           \
  "a secret is never accepted literally on the command line."

struct nbdkit_plugin MakePlugin() {
  struct nbdkit_plugin p {};
  p.name = "hyperfile";
  p.longname = "nbdkit hyperfile plugin (files on S3-compatible object storage)";
  p.version = HYPERFILE_VERSION_STRING;
  p.description = "Serves a hyperfile (s3:// or local) as a block device";
  p.unload = Unload;
  p.config = Config_;
  p.config_complete = ConfigComplete;
  p.config_help = HYPERFILE_NBD_CONFIG_HELP;
  p.magic_config_key = "uri";
  p.get_ready = GetReady;
  p.after_fork = AfterFork;
  p.cleanup = Cleanup;
  p.dump_plugin = DumpPlugin;
  p.list_exports = ListExports;
  p.open = Open;
  p.close = Close;
  p.get_size = GetSize;
  p.export_description = ExportDescription;
  p.block_size = BlockSize;
  p.can_write = CanWrite;
  p.can_flush = CanFlush;
  p.is_rotational = IsRotational;
  p.can_trim = CanTrim;
  p.can_zero = CanZero;
  p.can_fast_zero = CanFastZero;
  p.can_fua = CanFua;
  p.can_multi_conn = CanMultiConn;
  p.can_extents = CanExtents;
  p.can_cache = CanCache;
  p.pread = PRead;
  p.pwrite = PWrite;
  p.flush = Flush;
  p.trim = Trim;
  p.zero = Zero;
  p.extents = Extents;
  p.errno_is_preserved = 0;
  return p;
}

struct nbdkit_plugin plugin = MakePlugin();

}  // namespace

NBDKIT_REGISTER_PLUGIN(plugin)
