// SPDX-License-Identifier: Apache-2.0
// nbdkit plugin: serves a hyperfile as a network block device.
//
//   nbdkit nbdkit-hyperfile-plugin.so uri=s3://bucket/disk1 [at=...] [readonly=true]
//          [create-size=10G block-size=64K] [cache=256M] ...
//
// One File handle is opened per nbdkit process (after nbdkit has forked into
// the background, so the library's threads survive) and shared by every
// connection; File is thread-safe, so the plugin runs in the PARALLEL thread
// model and advertises multi-conn (a flush on any connection commits the
// writes of all of them). Every NBD flush (or FUA write) is one hyperfile
// checkpoint. Trim and write-zeroes never store data: they become holes.
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

#include "hyperfile/file.h"
#include "hyperfile/gc.h"
#include "hyperfile/object_store.h"
#include "hyperfile/options.h"
#include "hyperfile/status.h"
#include "hyperfile/version.h"
#include "util/parse_number.h"

namespace {

using hyperfile::At;
using hyperfile::File;
using hyperfile::ObjectStore;
using hyperfile::Status;

// ------------------------------------------------------------- config ---
struct Config {
  std::string uri;
  std::string at_text;  // empty = latest, read-write
  std::optional<At> at;
  bool readonly = false;
  std::optional<uint64_t> create_size;
  std::optional<uint32_t> block_size;
  std::optional<hyperfile::Compression> compression;  // compression=: of a created file
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
};

Config g_config;

// The one File handle shared by all connections (set in after_fork, released
// in cleanup/unload).
std::mutex g_mu;
std::shared_ptr<File> g_file;
std::string g_description;
// An at= export's reader lease: the collector keeps its checkpoint.
std::unique_ptr<hyperfile::Lease> g_lease;
// Writes hold their blocks' stripes shared; a compaction rewrite holds its
// range's stripes exclusively while it reads it and writes the same bytes
// back, so it can never put back bytes a client overwrote in between, and
// writes elsewhere go on (set in after_fork when a collector runs).
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

bool ReadOnlyExport() { return g_config.readonly || g_config.at.has_value(); }

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
  std::lock_guard<std::mutex> lock(g_mu);
  return g_file;
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

// A local path (bare or file://) made absolute; other schemes unchanged.
bool ResolveUri(const char* value, std::string* out) {
  std::string v = value;
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
  } else if (k == "access-key-id" || k == "secret-access-key" || k == "session-token") {
    nbdkit_error(
        "%s: credentials are not accepted on the command line (visible in ps); "
        "set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or "
        "use profile=",
        key);
    return -1;
  } else {
    nbdkit_error("unknown parameter '%s' (see nbdkit hyperfile --help)", key);
    return -1;
  }
  return 0;
}

int Config_(const char* key, const char* value) {
  return Guard("config", [&]() -> int { return ConfigImpl(key, value); });
}

int ConfigCompleteImpl() {
  Config& c = g_config;
  if (c.uri.empty()) {
    nbdkit_error("uri= is required (s3://bucket/prefix, file:///path or a path)");
    return -1;
  }
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
  // A clone's origins are opened with the same store options (endpoint,
  // region, profile, layers) as the file itself.
  if (!c.open.store_resolver) c.open.store_resolver = hyperfile::MakeStoreOpener(c.store);
  return 0;
}

int ConfigComplete() {
  return Guard("config_complete", [&]() -> int { return ConfigCompleteImpl(); });
}

// Opens the store and the file. Called twice: in get_ready (to fail early, with
// the error on the terminal, and to create the file) and again in after_fork
// (the library's threads must be started in the process that serves).
hyperfile::Result<std::shared_ptr<File>> OpenFile(bool create_if_missing) {
  const Config& c = g_config;
  HF_ASSIGN_OR_RETURN(std::shared_ptr<ObjectStore> store, hyperfile::OpenStore(c.uri, c.store));
  hyperfile::Result<std::unique_ptr<File>> file = Status::NotFound("unreachable");
  if (c.at && c.at->kind != At::Kind::kLatest) {
    if (c.lease) {
      // Lease first, then open exactly the leased checkpoint: a collection
      // on another machine keeps it for as long as this export runs.
      HF_ASSIGN_OR_RETURN(std::unique_ptr<hyperfile::Lease> lease,
                          hyperfile::Lease::Acquire(store, *c.at, 10 * 60 * 1000,
                                                    "nbdkit pid " + std::to_string(getpid())));
      file = File::OpenAt(store, At::Checkpoint(lease->checkpoint()), c.open);
      if (file.ok()) {
        std::lock_guard<std::mutex> lock(g_mu);
        g_lease = std::move(lease);
      }
    } else {
      file = File::OpenAt(store, *c.at, c.open);
    }
  } else {
    file = File::Open(store, c.open);
    if (!file.ok() && file.status().IsNotFound() && create_if_missing && c.create_size) {
      hyperfile::CreateOptions create;
      create.initial_size = *c.create_size;
      if (c.block_size) create.block_size = *c.block_size;
      if (c.compression) create.compression = *c.compression;
      nbdkit_debug("hyperfile: creating %s (size %" PRIu64 ", block size %u)", c.uri.c_str(),
                   create.initial_size, create.block_size);
      file = File::Create(store, create, c.open);
      if (!file.ok() && file.status().IsAlreadyExists()) {
        file = File::Open(store, c.open);  // lost a race with another creator
      }
    }
  }
  if (!file.ok()) {
    Status st = file.status();
    if (st.IsNotFound() && !c.at && !c.create_size) {
      st = st.WithContext("no hyperfile at " + c.uri + " (give create-size= to create one)");
    }
    return st;
  }
  return std::shared_ptr<File>(std::move(file).value());
}

int GetReady() {
  return Guard("get_ready", [&]() -> int {
    auto file = OpenFile(/*create_if_missing=*/true);
    if (!file.ok()) return Fail(("open " + g_config.uri).c_str(), file.status());
    const Config& c = g_config;
    if (c.create_size && (*file)->Size() != *c.create_size) {
      nbdkit_debug("hyperfile: %s exists; serving its size %" PRIu64 ", not create-size=%" PRIu64,
                   c.uri.c_str(), (*file)->Size(), *c.create_size);
    }
    Status st = (*file)->Close();
    {
      std::lock_guard<std::mutex> lock(g_mu);
      g_lease.reset();  // taken again in the serving process
    }
    if (!st.ok()) return Fail(("close " + c.uri).c_str(), st);
    return 0;
  });
}

// One collection (and compaction first, through the export's own handle).
void CollectOnce(const std::shared_ptr<File>& file) {
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
    if (!c.gc_rules.empty()) co.policy = *hyperfile::RetentionPolicy::Parse(c.gc_rules);
    auto cr = hyperfile::CompactThrough(file.get(), *store, co, rewrite);
    if (!cr.ok()) {
      nbdkit_error("gc: compaction: %s", cr.status().ToString().c_str());
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
          CollectOnce(file);
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
    // A memory:// file lives in one process: after a fork it must be made
    // again (get_ready's was in the parent). Anything else exists by now.
    auto file = OpenFile(/*create_if_missing=*/g_config.uri.starts_with("memory://"));
    if (!file.ok()) return Fail(("open " + g_config.uri).c_str(), file.status());
    std::string desc = "hyperfile " + g_config.uri;
    auto stat = (*file)->Stat();
    if (stat.ok()) {
      desc += " checkpoint " + std::to_string(stat->checkpoint);
      nbdkit_debug("hyperfile: opened %s at checkpoint %" PRIu64 ", size %" PRIu64
                   ", block size %u%s",
                   g_config.uri.c_str(), stat->checkpoint, stat->size, stat->block_size,
                   ReadOnlyExport() ? ", read-only" : "");
    }
    if (ReadOnlyExport()) desc += " (read-only)";
    {
      std::lock_guard<std::mutex> lock(g_mu);
      g_file = std::move(file).value();
      g_description = std::move(desc);
    }
    StartCollector(stat.ok() ? stat->block_size : 4096);
    return 0;
  });
}

void CloseFile() {
  StopCollector();
  std::shared_ptr<File> file;
  std::unique_ptr<hyperfile::Lease> lease;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    file.swap(g_file);
    lease.swap(g_lease);
  }
  if (!file) return;
  try {
    // Close flushes a writable file: the last writes become a checkpoint.
    Status st = file->Close();
    if (!st.ok()) nbdkit_error("close %s: %s", g_config.uri.c_str(), st.ToString().c_str());
  } catch (...) {
    nbdkit_error("close %s: unexpected exception", g_config.uri.c_str());
  }
}

void Cleanup() { CloseFile(); }
void Unload() { CloseFile(); }

// -------------------------------------------------------- connections ---
struct Handle {
  std::shared_ptr<File> file;
  uint64_t size = 0;
  bool readonly = false;
};

void* Open(int readonly) {
  try {
    std::shared_ptr<File> file = CurrentFile();
    if (!file) {
      nbdkit_error("hyperfile: %s is not open", g_config.uri.c_str());
      nbdkit_set_error(EIO);
      return nullptr;
    }
    auto* h = new Handle;
    h->file = std::move(file);
    h->size = h->file->Size();
    h->readonly = readonly || ReadOnlyExport();
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
  if (!h->readonly && g_config.flush_on_close) {
    try {
      auto r = h->file->Flush();
      if (!r.ok()) nbdkit_error("flush on disconnect: %s", r.status().ToString().c_str());
    } catch (...) {
      nbdkit_error("flush on disconnect: unexpected exception");
    }
  }
  delete h;
}

Handle* H(void* handle) { return static_cast<Handle*>(handle); }

int64_t GetSize(void* handle) { return static_cast<int64_t>(H(handle)->size); }

const char* ExportDescription(void*) {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_description.empty() ? nullptr : g_description.c_str();
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
// All connections share one File: a flush on any of them commits every write
// completed on any of them, which is what multi-conn promises.
int CanMultiConn(void*) { return 1; }
int CanExtents(void*) { return 1; }
// nbdkit turns NBD_CMD_CACHE into preads, which warm the block cache.
int CanCache(void*) { return NBDKIT_CACHE_EMULATE; }

int DoFlush(Handle* h) {
  auto r = h->file->Flush();
  if (!r.ok()) return Fail("flush", r.status());
  return 0;
}

int FuaIfAsked(Handle* h, uint32_t flags) { return (flags & NBDKIT_FLAG_FUA) ? DoFlush(h) : 0; }

int PRead(void* handle, void* buf, uint32_t count, uint64_t offset, uint32_t) {
  return Guard("pread", [&]() -> int {
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
  });
}

int PWrite(void* handle, const void* buf, uint32_t count, uint64_t offset, uint32_t flags) {
  return Guard("pwrite", [&]() -> int {
    Status st;
    {
      auto lock = WriteLock(offset, count);
      st = H(handle)->file->PWrite(offset, buf, count);
    }
    if (!st.ok()) return Fail("pwrite", st);
    return FuaIfAsked(H(handle), flags);
  });
}

int Flush(void* handle, uint32_t) {
  return Guard("flush", [&]() -> int { return DoFlush(H(handle)); });
}

int Trim(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  return Guard("trim", [&]() -> int {
    Status st;
    {
      auto lock = WriteLock(offset, count);
      st = H(handle)->file->PunchHole(offset, count);
    }
    if (!st.ok()) return Fail("trim", st);
    return FuaIfAsked(H(handle), flags);
  });
}

// Both branches store no data. With MAY_TRIM the client allows a hole, so we
// punch one; without it (NBD_CMD_FLAG_NO_HOLE) we write zeroes, which in this
// format is also a hole: there is no "allocated zeros" state to honour the hint
// with. FAST_ZERO is always satisfied: neither path ever writes data.
int Zero(void* handle, uint32_t count, uint64_t offset, uint32_t flags) {
  return Guard("zero", [&]() -> int {
    Handle* h = H(handle);
    Status st;
    {
      auto lock = WriteLock(offset, count);
      st = (flags & NBDKIT_FLAG_MAY_TRIM) ? h->file->PunchHole(offset, count)
                                          : h->file->WriteZeroes(offset, count);
    }
    if (!st.ok()) return Fail("zero", st);
    return FuaIfAsked(h, flags);
  });
}

int Extents(void* handle, uint32_t count, uint64_t offset, uint32_t flags,
            struct nbdkit_extents* extents) {
  return Guard("extents", [&]() -> int {
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
  });
}

void DumpPlugin() {
  std::printf("hyperfile_api=%d\n", NBDKIT_API_VERSION);
  std::printf("hyperfile_uri_schemes=s3 file memory\n");
}

#define HYPERFILE_NBD_CONFIG_HELP                                                                  \
  "uri=URI                 (required) the file: s3://bucket/prefix, file:///dir or a path.\n"      \
  "                        The key may be omitted: nbdkit hyperfile s3://bucket/disk\n"            \
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
  "Credentials come from the AWS environment (AWS_ACCESS_KEY_ID, ...), never from keys."

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
