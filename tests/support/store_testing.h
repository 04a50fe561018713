// Helpers for tests that run against the local S3 server started by
// scripts/test.sh (HYPERFILE_TEST_S3_URI plus the AWS_* variables).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "hyperfile/object_store.h"

namespace hyperfile::testing {

// True when the environment names an S3 bucket for tests.
inline bool S3Configured() { return std::getenv("HYPERFILE_TEST_S3_URI") != nullptr; }
// scripts/test.sh sets HYPERFILE_REQUIRE_S3=1: S3 tests must run, not skip.
inline bool S3Required() {
  const char* v = std::getenv("HYPERFILE_REQUIRE_S3");
  return v && std::string(v) == "1";
}
// A URI under the test bucket that no other test uses.
inline std::string UniqueS3Uri(const std::string& name) {
  std::random_device rd;
  return std::string(std::getenv("HYPERFILE_TEST_S3_URI")) + "/" + name + "-" +
         std::to_string(rd()) + std::to_string(rd());
}

}  // namespace hyperfile::testing

// Skips the test without S3, or fails it when S3 is required.
#define HF_REQUIRE_S3()                                                            \
  do {                                                                             \
    if (!::hyperfile::testing::S3Configured()) {                                   \
      if (::hyperfile::testing::S3Required()) FAIL() << "S3 required but not set"; \
      GTEST_SKIP() << "HYPERFILE_TEST_S3_URI not set";                             \
    }                                                                              \
  } while (0)
