// SPDX-License-Identifier: Apache-2.0
// OpenStore: URI -> backend, and the one place where the stack of layers is
// assembled from StoreOptions (backend -> latency -> metrics -> retry).
#include <unistd.h>

#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>

#include "hyperfile/object_store.h"
#include "hyperfile/store_layers.h"
#include "util/parse_number.h"

namespace hyperfile {
namespace {

Status BadUri(std::string_view uri, std::string_view why) {
  return Status::InvalidArgument("open store '" + std::string(uri) + "': " + std::string(why) +
                                 " (use s3://bucket[/prefix], file:///path, a path or "
                                 "memory://name)");
}

// memory://name: one store per name for the life of the process, so that two
// opens of the same URI (e.g. a writer and a reader in one test) share data.
std::shared_ptr<ObjectStore> MemoryStoreNamed(std::string_view name) {
  static std::mutex mu;
  static auto* registry = new std::map<std::string, std::shared_ptr<ObjectStore>, std::less<>>;
  std::lock_guard<std::mutex> lock(mu);
  auto it = registry->find(name);
  if (it == registry->end()) {
    it = registry->emplace(std::string(name), NewMemoryStore(std::string(name))).first;
  }
  return it->second;
}

Result<std::shared_ptr<ObjectStore>> OpenS3(std::string_view uri, const StoreOptions& options) {
  std::string_view rest = uri.substr(5);
  size_t slash = rest.find('/');
  std::string_view bucket = rest.substr(0, slash);
  std::string_view prefix = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  if (bucket.empty()) return BadUri(uri, "no bucket");
  return NewS3Store(bucket, prefix, options);
}

}  // namespace

#ifndef HYPERFILE_HAVE_S3
// A library configured with -DHYPERFILE_S3=OFF has no S3 client (no libcurl,
// no tinyxml2); the entry point stays, so programs link either way.
Result<std::shared_ptr<ObjectStore>> NewS3Store(std::string_view bucket, std::string_view prefix,
                                                const StoreOptions& /*options*/) {
  return Status::NotSupported("open s3://" + std::string(bucket) +
                              (prefix.empty() ? "" : "/" + std::string(prefix)) +
                              ": this libhyperfile was built without the S3 backend "
                              "(-DHYPERFILE_S3=OFF); only local directories and memory:// work");
}
#endif

namespace {

Result<std::shared_ptr<ObjectStore>> OpenPath(std::string_view uri, std::string path) {
  if (path.empty()) return BadUri(uri, "empty path");
  if (path[0] != '/') {
    char cwd[4096];
    if (!::getcwd(cwd, sizeof cwd)) return Status::IOError("open " + path + ": getcwd failed");
    path = std::string(cwd) + "/" + path;
  }
  return NewLocalStore(path);
}

Result<std::shared_ptr<ObjectStore>> OpenBackend(std::string_view uri,
                                                 const StoreOptions& options) {
  if (uri.empty()) return BadUri(uri, "empty URI");
  if (uri.starts_with("memory://")) return MemoryStoreNamed(uri.substr(9));
  if (uri.starts_with("s3://")) return OpenS3(uri, options);
  if (uri.starts_with("file://")) {
    std::string_view path = uri.substr(7);
    if (!path.starts_with("/")) return BadUri(uri, "file:// needs an absolute path");
    return OpenPath(uri, std::string(path));
  }
  if (uri.find("://") != std::string_view::npos) return BadUri(uri, "unknown scheme");
  return OpenPath(uri, std::string(uri));
}

Status ValidateRetryOptions(const StoreOptions& o) {
  auto check = [](const char* name, int v, int lo) {
    if (v >= lo) return Status::OK();
    return Status::InvalidArgument("open store: StoreOptions::" + std::string(name) + " is " +
                                   std::to_string(v) + "; accepted: " + std::to_string(lo) + ".." +
                                   std::to_string(std::numeric_limits<int>::max()));
  };
  HF_RETURN_IF_ERROR(check("retry_max_attempts", o.retry_max_attempts, 1));
  HF_RETURN_IF_ERROR(check("retry_base_delay_ms", o.retry_base_delay_ms, 0));
  HF_RETURN_IF_ERROR(check("retry_max_delay_ms", o.retry_max_delay_ms, 0));
  HF_RETURN_IF_ERROR(check("retry_max_total_ms", o.retry_max_total_ms, 0));
  return check("slow_request_ms", o.slow_request_ms, 0);
}

// ------------------------------------------------------------- latency ---
constexpr int64_t kMaxLatencyUs = 60'000'000;  // 60 s: anything more is a typo
constexpr int kMaxLatencyInFlight = 4096;
constexpr const char* kLatencyVariable = "HYPERFILE_STORE_LATENCY";

Status BadLatency(std::string_view spec, std::string_view item, std::string_view why) {
  return Status::InvalidArgument("latency spec '" + std::string(spec) + "': item '" +
                                 std::string(item) + "': " + std::string(why));
}

// "<digits>us", "<digits>ms", "<digits>s" or "0", at most 60 s.
Result<std::chrono::microseconds> ParseLatencyTime(std::string_view text) {
  if (text == "0") return std::chrono::microseconds{0};
  int64_t unit = 0;
  std::string_view digits;
  if (text.ends_with("us")) {
    unit = 1;
    digits = text.substr(0, text.size() - 2);
  } else if (text.ends_with("ms")) {
    unit = 1000;
    digits = text.substr(0, text.size() - 2);
  } else if (text.ends_with("s")) {
    unit = 1'000'000;
    digits = text.substr(0, text.size() - 1);
  } else {
    return Status::InvalidArgument("a time needs a unit: us, ms or s (e.g. 30ms)");
  }
  Result<uint64_t> n = util::ParseNumber(digits, /*allow_suffix=*/false);
  if (!n.ok()) return n.status();
  if (*n > static_cast<uint64_t>(kMaxLatencyUs / unit)) {
    return Status::InvalidArgument("more than 60s");
  }
  return std::chrono::microseconds{static_cast<int64_t>(*n) * unit};
}

Result<std::optional<LatencyOptions>> LatencyFromEnvironment() {
  const char* value = std::getenv(kLatencyVariable);
  if (value == nullptr || *value == '\0') return std::optional<LatencyOptions>();
  Result<LatencyOptions> parsed = ParseLatencyOptions(value);
  if (!parsed.ok()) {
    return parsed.status().WithContext(std::string("environment variable ") + kLatencyVariable);
  }
  return std::optional<LatencyOptions>(*parsed);
}

Status ValidateLatencyOptions(const LatencyOptions& o) {
  auto check_time = [](const char* name, std::chrono::microseconds t) {
    if (t.count() >= 0) return Status::OK();
    return Status::InvalidArgument("open store: StoreOptions::latency." + std::string(name) +
                                   " is " + std::to_string(t.count()) + " us; accepted: >= 0");
  };
  HF_RETURN_IF_ERROR(check_time("get_ttfb", o.get_ttfb));
  HF_RETURN_IF_ERROR(check_time("put_ttfb", o.put_ttfb));
  HF_RETURN_IF_ERROR(check_time("head_ttfb", o.head_ttfb));
  HF_RETURN_IF_ERROR(check_time("list_ttfb", o.list_ttfb));
  HF_RETURN_IF_ERROR(check_time("delete_ttfb", o.delete_ttfb));
  if (o.max_in_flight < 0 || o.max_in_flight > kMaxLatencyInFlight) {
    return Status::InvalidArgument("open store: StoreOptions::latency.max_in_flight is " +
                                   std::to_string(o.max_in_flight) + "; accepted: 0.." +
                                   std::to_string(kMaxLatencyInFlight));
  }
  return Status::OK();
}

}  // namespace

Result<LatencyOptions> ParseLatencyOptions(std::string_view spec) {
  LatencyOptions o;
  if (spec == "aws") return o;
  if (spec.empty()) return BadLatency(spec, "", "empty (use \"aws\" or key=value,...)");
  std::string_view rest = spec;
  bool first = true;
  std::vector<std::string> seen;
  while (true) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    if (first && item == "aws") {
      // Start from the profile; the items after it adjust it.
    } else {
      if (first) {
        o.get_ttfb = o.put_ttfb = o.head_ttfb = o.list_ttfb = o.delete_ttfb = {};
        o.bandwidth_bytes_per_s = 0;
      }
      size_t eq = item.find('=');
      if (item.empty()) return BadLatency(spec, item, "empty item");
      if (eq == std::string_view::npos) {
        return BadLatency(spec, item,
                          "expected key=value (keys: get, put, head, list, delete, "
                          "all, bw, inflight), or \"aws\" first");
      }
      std::string key(item.substr(0, eq));
      std::string_view value = item.substr(eq + 1);
      for (const std::string& k : seen) {
        if (k == key) return BadLatency(spec, item, "key '" + key + "' given twice");
      }
      seen.push_back(key);
      std::chrono::microseconds* times[5] = {&o.get_ttfb, &o.put_ttfb, &o.head_ttfb, &o.list_ttfb,
                                             &o.delete_ttfb};
      const char* names[5] = {"get", "put", "head", "list", "delete"};
      int which = -1;
      for (int i = 0; i < 5; i++) {
        if (key == names[i]) which = i;
      }
      if (which >= 0 || key == "all") {
        Result<std::chrono::microseconds> t = ParseLatencyTime(value);
        if (!t.ok()) return BadLatency(spec, item, t.status().message());
        if (which >= 0) {
          *times[which] = *t;
        } else {
          for (auto* p : times) *p = *t;
        }
      } else if (key == "bw") {
        std::string_view number = value;
        if (number.ends_with("/s")) number.remove_suffix(2);
        Result<uint64_t> n = util::ParseNumber(number, /*allow_suffix=*/true);
        if (!n.ok()) {
          return BadLatency(spec, item,
                            n.status().message() + " (bytes per second, e.g. 100MB or 100MiB/s)");
        }
        o.bandwidth_bytes_per_s = *n;
      } else if (key == "inflight") {
        Result<uint64_t> n = util::ParseNumber(value, /*allow_suffix=*/false);
        if (!n.ok()) return BadLatency(spec, item, n.status().message());
        if (*n > static_cast<uint64_t>(kMaxLatencyInFlight)) {
          return BadLatency(spec, item, "accepted: 0..4096");
        }
        o.max_in_flight = static_cast<int>(*n);
      } else {
        return BadLatency(spec, item,
                          "unknown key '" + key +
                              "' (keys: get, put, head, list, delete, all, bw, "
                              "inflight)");
      }
    }
    first = false;
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return o;
}

Result<StoreStack> OpenStoreStack(std::string_view uri, const StoreOptions& options) {
  if (options.retry) HF_RETURN_IF_ERROR(ValidateRetryOptions(options));
  std::optional<LatencyOptions> latency = options.latency;
  if (!latency && options.latency_from_environment) {
    Result<std::optional<LatencyOptions>> from_env = LatencyFromEnvironment();
    if (!from_env.ok()) {
      return from_env.status().WithContext("open store '" + std::string(uri) + "'");
    }
    latency = *from_env;
  }
  if (latency) HF_RETURN_IF_ERROR(ValidateLatencyOptions(*latency));

  StoreStack stack;
  HF_ASSIGN_OR_RETURN(stack.backend, OpenBackend(uri, options));
  // Bottom up; the order is explained at the declaration (object_store.h).
  std::shared_ptr<ObjectStore> top = stack.backend;
  if (latency) {
    if (uri.starts_with("s3://") && latency->multipart_threshold == 0) {
      latency->multipart_threshold = options.multipart_threshold;
      latency->multipart_part_size = options.multipart_part_size;
      latency->multipart_parallelism = options.max_in_flight;
    }
    top = NewLatencyStore(std::move(top), *latency);
  }
  if (options.metrics) {
    stack.metrics = std::make_shared<MetricsStore>(std::move(top));
    top = stack.metrics;
  }
  if (options.retry) {
    RetryOptions retry;
    retry.max_attempts = options.retry_max_attempts;
    retry.base_delay_ms = options.retry_base_delay_ms;
    retry.max_delay_ms = options.retry_max_delay_ms;
    retry.max_total_ms = options.retry_max_total_ms;
    retry.slow_request_ms = options.slow_request_ms;
    top = NewRetryStore(std::move(top), retry);
  }
  stack.store = std::move(top);
  return stack;
}

Result<std::shared_ptr<ObjectStore>> OpenStore(std::string_view uri, const StoreOptions& options) {
  HF_ASSIGN_OR_RETURN(StoreStack stack, OpenStoreStack(uri, options));
  return std::move(stack.store);
}

StoreOpener MakeStoreOpener(StoreOptions options) {
  return [options = std::move(options)](const std::string& uri) { return OpenStore(uri, options); };
}

}  // namespace hyperfile
