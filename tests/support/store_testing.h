// SPDX-License-Identifier: Apache-2.0
// Store helpers shared by the tests of every layer (store, file, CLI, NBD).
//
// S3 tests run against the server named by the environment (scripts/test.sh
// starts a local Ceph RGW and sets these):
//   HYPERFILE_TEST_S3_URI   e.g. s3://hyperfile-test   (unset: S3 tests skip)
//   AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION
//   HYPERFILE_REQUIRE_S3=1  S3 tests FAIL instead of skipping when unset
//
// Typical use in a test parameterized over backends:
//
//   TEST_P(MyTest, Works) {
//     HF_REQUIRE_BACKEND(GetParam());          // skip (or fail) S3 if unset
//     auto store = testing::MakeStoreForBackend(GetParam(), "my-test");
//     ASSERT_TRUE(store.ok()) << store.status().ToString();
//     ...(*store)->Put(...)...
//   }
//   INSTANTIATE_TEST_SUITE_P(Backends, MyTest,
//                            ::testing::Values("memory", "local", "s3"));
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "hyperfile/object_store.h"

namespace hyperfile::testing {

// The S3 server for tests, from the environment.
struct S3TestConfig {
  std::string uri;                // HYPERFILE_TEST_S3_URI, e.g. "s3://hyperfile-test"
  std::string endpoint;           // AWS_ENDPOINT_URL (may be empty: AWS)
  std::string access_key_id;      // AWS_ACCESS_KEY_ID
  std::string secret_access_key;  // AWS_SECRET_ACCESS_KEY
  std::string region;             // AWS_REGION

  // Options for OpenStore with these credentials filled in explicitly.
  StoreOptions ToStoreOptions(StoreOptions base = {}) const;
};

// nullopt when HYPERFILE_TEST_S3_URI is not set.
std::optional<S3TestConfig> S3TestConfigFromEnv();
// True when HYPERFILE_TEST_S3_URI is set.
bool S3Configured();
// HYPERFILE_REQUIRE_S3=1: S3 tests must run, so a missing server is a failure.
bool S3Required();

// A random suffix (16 hex digits) for names that must not collide between
// tests or runs.
std::string RandomSuffix();
// "<HYPERFILE_TEST_S3_URI>/<name>-<random>": a prefix no other test uses.
// Requires S3Configured().
std::string UniqueS3Uri(std::string_view name);
// Opens UniqueS3Uri(test_name) with the environment's credentials. `options`
// may set e.g. multipart sizes or retry settings; credentials left empty in it
// come from the environment. NotSupported when S3 is not configured.
Result<std::shared_ptr<ObjectStore>> NewS3TestStore(std::string_view test_name,
                                                    StoreOptions options = {});

// A fresh directory under $TMPDIR (or /tmp), removed with its contents when
// the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }  // absolute, no trailing '/'
  std::string uri() const { return "file://" + path_; }

 private:
  std::string path_;
};

// A fresh, empty store of the given backend: "memory", "local" or "s3".
//   memory: memory://<name>-<random> (OpenStore of that URI shares it)
//   local:  a TempDir, removed when the last reference to the store goes
//   s3:     UniqueS3Uri(name); its objects are deleted (best effort) when the
//           last reference goes, so the test server does not fill up
// If `uri` is non-null it receives the store's URI, to reopen it (e.g. from
// another process) while the store is alive. `options` as for OpenStore.
// Call HF_REQUIRE_BACKEND(backend) first so S3 skips when not configured.
Result<std::shared_ptr<ObjectStore>> MakeStoreForBackend(std::string_view backend,
                                                         std::string_view name = "test",
                                                         std::string* uri = nullptr,
                                                         StoreOptions options = {});

}  // namespace hyperfile::testing

// Skips the test without S3, or fails it when HYPERFILE_REQUIRE_S3=1.
#define HF_REQUIRE_S3()                                                          \
  do {                                                                           \
    if (!::hyperfile::testing::S3Configured()) {                                 \
      if (::hyperfile::testing::S3Required()) {                                  \
        FAIL() << "HYPERFILE_REQUIRE_S3=1 but HYPERFILE_TEST_S3_URI is not set"; \
      }                                                                          \
      GTEST_SKIP() << "S3 not configured (set HYPERFILE_TEST_S3_URI and AWS_*)"; \
    }                                                                            \
  } while (0)

// HF_REQUIRE_S3() when `backend` is "s3"; nothing for the other backends.
#define HF_REQUIRE_BACKEND(backend)                         \
  do {                                                      \
    if (std::string_view(backend) == "s3") HF_REQUIRE_S3(); \
  } while (0)
