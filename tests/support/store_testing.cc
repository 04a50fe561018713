// SPDX-License-Identifier: Apache-2.0
#include "support/store_testing.h"

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>

namespace hyperfile::testing {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Deletes every object of the store (best effort), for S3 test prefixes.
void DeleteAll(ObjectStore* store) {
  std::vector<ObjectInfo> all;
  if (!store->List("", "", 0, &all).ok()) return;
  std::vector<std::string> keys;
  keys.reserve(all.size());
  for (ObjectInfo& o : all) keys.push_back(std::move(o.key));
  (void)store->DeleteMany(keys);
}

// Keeps what a store needs alive (its directory) or cleans up after it.
struct Holder {
  std::unique_ptr<TempDir> dir;
  std::shared_ptr<ObjectStore> store;
  bool delete_all = false;
  ~Holder() {
    if (delete_all) DeleteAll(store.get());
    store.reset();  // before the directory goes
  }
};

// Returns a store sharing ownership with `holder` (aliasing constructor).
std::shared_ptr<ObjectStore> Own(std::shared_ptr<Holder> holder) {
  ObjectStore* raw = holder->store.get();
  return std::shared_ptr<ObjectStore>(std::move(holder), raw);
}

}  // namespace

StoreOptions S3TestConfig::ToStoreOptions(StoreOptions base) const {
  if (base.endpoint.empty()) base.endpoint = endpoint;
  if (base.access_key_id.empty()) base.access_key_id = access_key_id;
  if (base.secret_access_key.empty()) base.secret_access_key = secret_access_key;
  if (base.region.empty()) base.region = region;
  return base;
}

std::optional<S3TestConfig> S3TestConfigFromEnv() {
  S3TestConfig c;
  c.uri = Env("HYPERFILE_TEST_S3_URI");
  if (c.uri.empty()) return std::nullopt;
  while (c.uri.size() > 5 && c.uri.back() == '/') c.uri.pop_back();
  c.endpoint = Env("AWS_ENDPOINT_URL");
  c.access_key_id = Env("AWS_ACCESS_KEY_ID");
  c.secret_access_key = Env("AWS_SECRET_ACCESS_KEY");
  c.region = Env("AWS_REGION");
  return c;
}

bool S3Configured() { return S3TestConfigFromEnv().has_value(); }

bool S3Required() { return Env("HYPERFILE_REQUIRE_S3") == "1"; }

std::string RandomSuffix() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

std::string UniqueS3Uri(std::string_view name) {
  auto config = S3TestConfigFromEnv();
  std::string base = config ? config->uri : "s3://unconfigured";
  return base + "/" + std::string(name) + "-" + RandomSuffix();
}

Result<std::shared_ptr<ObjectStore>> NewS3TestStore(std::string_view test_name,
                                                    StoreOptions options) {
  auto config = S3TestConfigFromEnv();
  if (!config) return Status::NotSupported("S3 not configured: HYPERFILE_TEST_S3_URI is not set");
  return OpenStore(UniqueS3Uri(test_name), config->ToStoreOptions(std::move(options)));
}

TempDir::TempDir() {
  std::string tmpl = std::filesystem::temp_directory_path().string() + "/hyperfile-test.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::perror("TempDir: mkdtemp");
    std::abort();  // nothing sensible a test can do without it
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

Result<std::shared_ptr<ObjectStore>> MakeStoreForBackend(std::string_view backend,
                                                         std::string_view name, std::string* uri,
                                                         StoreOptions options) {
  auto holder = std::make_shared<Holder>();
  std::string where;
  if (backend == "memory") {
    where = "memory://" + std::string(name) + "-" + RandomSuffix();
  } else if (backend == "local") {
    holder->dir = std::make_unique<TempDir>();
    where = holder->dir->uri();
  } else if (backend == "s3") {
    auto config = S3TestConfigFromEnv();
    if (!config) return Status::NotSupported("S3 not configured: HYPERFILE_TEST_S3_URI not set");
    where = UniqueS3Uri(name);
    options = config->ToStoreOptions(std::move(options));
    holder->delete_all = true;
  } else {
    return Status::InvalidArgument("MakeStoreForBackend: unknown backend '" + std::string(backend) +
                                   "' (memory, local or s3)");
  }
  HF_ASSIGN_OR_RETURN(holder->store, OpenStore(where, options));
  if (uri) *uri = where;
  return Own(std::move(holder));
}

}  // namespace hyperfile::testing
