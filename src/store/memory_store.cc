// SPDX-License-Identifier: Apache-2.0
// The in-memory backend (tests, memory:// URIs).
#include <openssl/evp.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>

#include "hyperfile/object_store.h"

namespace hyperfile {
namespace {

std::string HexMd5(const Payload& data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_md5(), nullptr);
  for (std::string_view p : data) EVP_DigestUpdate(ctx, p.data(), p.size());
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, d, &n);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  char byte[3];
  for (unsigned int i = 0; i < n; i++) {
    std::snprintf(byte, sizeof byte, "%02x", d[i]);
    hex += byte;
  }
  return hex;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class MemoryStore : public ObjectStore {
 public:
  explicit MemoryStore(std::string name) : name_(std::move(name)) {}

  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    if (key.empty()) return Status::InvalidArgument("put " + Name() + ": empty key");
    Object obj;
    for (std::string_view p : data) obj.data.append(p);
    obj.info.key = std::string(key);
    obj.info.size = obj.data.size();
    obj.info.etag = HexMd5(data);
    obj.info.mtime_ms = NowMs();
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(obj.info.key);
    if (options.if_absent && it != objects_.end()) {
      return Status::PreconditionFailed("put " + Where(key) + ": object already exists");
    }
    if (!options.if_match.empty()) {
      if (it == objects_.end()) return Status::NotFound("put " + Where(key) + ": no such object");
      if (it->second.info.etag != options.if_match) {
        return Status::PreconditionFailed("put " + Where(key) + ": etag does not match");
      }
    }
    if (info) *info = obj.info;
    objects_[obj.info.key] = std::move(obj);
    return Status::OK();
  }

  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(std::string(key));
    if (it == objects_.end()) return Status::NotFound("get " + Where(key) + ": no such object");
    const std::string& d = it->second.data;
    out->clear();
    if (offset < d.size()) out->assign(d, offset, std::min<uint64_t>(length, d.size() - offset));
    if (info) *info = it->second.info;
    return Status::OK();
  }

  Status Head(std::string_view key, ObjectInfo* info) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(std::string(key));
    if (it == objects_.end()) return Status::NotFound("head " + Where(key) + ": no such object");
    if (info) *info = it->second.info;
    return Status::OK();
  }

  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = start_after.empty() || start_after < prefix
                  ? objects_.lower_bound(std::string(prefix))
                  : objects_.upper_bound(std::string(start_after));
    size_t n = 0;
    for (; it != objects_.end() && (limit == 0 || n < limit); ++it, ++n) {
      if (it->first.compare(0, prefix.size(), prefix) != 0) break;
      out->push_back(it->second.info);
    }
    return Status::OK();
  }

  Status Delete(std::string_view key) override {
    std::lock_guard<std::mutex> lock(mu_);
    objects_.erase(std::string(key));
    return Status::OK();
  }

  Status DeleteMany(const std::vector<std::string>& keys) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& k : keys) objects_.erase(k);
    return Status::OK();
  }

  std::string Name() const override { return "memory://" + name_; }

 private:
  struct Object {
    std::string data;
    ObjectInfo info;
  };
  std::string Where(std::string_view key) const { return Name() + "/" + std::string(key); }
  std::string name_;
  std::mutex mu_;
  std::map<std::string, Object> objects_;
};

}  // namespace

std::shared_ptr<ObjectStore> NewMemoryStore(std::string name) {
  return std::make_shared<MemoryStore>(std::move(name));
}

}  // namespace hyperfile
