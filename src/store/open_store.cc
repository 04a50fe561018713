// OpenStore: URI -> store (placeholder until the full factory lands).
#include <unistd.h>

#include <map>
#include <mutex>

#include "hyperfile/object_store.h"
#include "hyperfile/store_layers.h"

namespace hyperfile {

namespace {
Result<std::shared_ptr<ObjectStore>> OpenBackend(std::string_view uri,
                                                 const StoreOptions& options) {
  if (uri.substr(0, 9) == "memory://") {
    static std::mutex mu;
    static std::map<std::string, std::shared_ptr<ObjectStore>> registry;
    std::lock_guard<std::mutex> lock(mu);
    auto& store = registry[std::string(uri.substr(9))];
    if (!store) store = NewMemoryStore(std::string(uri.substr(9)));
    return store;
  }
  if (uri.substr(0, 5) == "s3://") {
    std::string_view rest = uri.substr(5);
    size_t slash = rest.find('/');
    std::string_view bucket = rest.substr(0, slash);
    std::string_view prefix = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    if (bucket.empty())
      return Status::InvalidArgument("bad URI '" + std::string(uri) + "': no bucket");
    return NewS3Store(bucket, prefix, options);
  }
  std::string path;
  if (uri.substr(0, 7) == "file://") {
    path = std::string(uri.substr(7));
  } else if (uri.find("://") == std::string_view::npos && !uri.empty()) {
    path = std::string(uri);
    if (path[0] != '/') {
      char cwd[4096];
      if (!getcwd(cwd, sizeof cwd)) return Status::IOError("open " + path + ": getcwd failed");
      path = std::string(cwd) + "/" + path;
    }
  } else {
    return Status::InvalidArgument("unsupported URI '" + std::string(uri) +
                                   "' (use s3://bucket/prefix, file:///path or a path)");
  }
  if (path.empty() || path[0] != '/') {
    return Status::InvalidArgument("bad URI '" + std::string(uri) +
                                   "': file:// needs an absolute path");
  }
  return NewLocalStore(path);
}
}  // namespace

Result<std::shared_ptr<ObjectStore>> OpenStore(std::string_view uri, const StoreOptions& options) {
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
