// OpenStore: URI -> store (placeholder until the full factory lands).
#include <map>
#include <mutex>

#include "hyperfile/object_store.h"

namespace hyperfile {

Result<std::shared_ptr<ObjectStore>> OpenStore(std::string_view uri, const StoreOptions& options) {
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
    if (bucket.empty()) return Status::InvalidArgument("bad URI '" + std::string(uri) + "': no bucket");
    return NewS3Store(bucket, prefix, options);
  }
  return Status::InvalidArgument("unsupported URI '" + std::string(uri) + "'");
}

}  // namespace hyperfile
