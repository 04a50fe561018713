// OpenStore: URI -> backend, wrapped in the retry layer.
#include <unistd.h>

#include <limits>
#include <map>
#include <mutex>

#include "hyperfile/object_store.h"
#include "hyperfile/store_layers.h"

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
  return check("retry_max_total_ms", o.retry_max_total_ms, 0);
}

}  // namespace

Result<std::shared_ptr<ObjectStore>> OpenStore(std::string_view uri, const StoreOptions& options) {
  if (options.retry) HF_RETURN_IF_ERROR(ValidateRetryOptions(options));
  HF_ASSIGN_OR_RETURN(std::shared_ptr<ObjectStore> store, OpenBackend(uri, options));
  if (!options.retry) return store;
  RetryOptions retry;
  retry.max_attempts = options.retry_max_attempts;
  retry.base_delay_ms = options.retry_base_delay_ms;
  retry.max_delay_ms = options.retry_max_delay_ms;
  retry.max_total_ms = options.retry_max_total_ms;
  return NewRetryStore(std::move(store), retry);
}

}  // namespace hyperfile
