// SPDX-License-Identifier: Apache-2.0
// Result: the value of a failed Result is never undefined behaviour.
#include "hyperfile/status.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <type_traits>

namespace hyperfile {
namespace {

Result<std::string> Fails() { return Status::NotFound("get memory://x/seg/1: no such object"); }
Result<std::unique_ptr<int>> FailsPtr() { return Status::Auth("access denied to s3://b/p"); }

TEST(ResultDeathTest, ValueOfAFailedResultAbortsWithTheMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH((void)Fails().value(),
               "value\\(\\) of a failed Result: NotFound: get memory://x/seg/1: no such object");
  auto r = Fails();
  EXPECT_DEATH((void)r.value(), "NotFound: get memory://x/seg/1");
  const auto& cr = r;
  EXPECT_DEATH((void)cr.value(), "NotFound");
  EXPECT_DEATH((void)*r, "NotFound");
  EXPECT_DEATH((void)r->size(), "NotFound");
  auto p = FailsPtr();
  EXPECT_DEATH((void)std::move(p).value(), "Auth: access denied to s3://b/p");
}

TEST(ResultTest, ValueOfASuccessfulResult) {
  Result<std::string> r(std::string("abc"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), "abc");
  EXPECT_EQ(*r, "abc");
  EXPECT_EQ(r->size(), 3u);
  EXPECT_EQ(std::move(r).value(), "abc");
}

TEST(ResultTest, FromOkStatusIsAnError) {
  Result<int> r(Status::OK());
  EXPECT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
}

}  // namespace
}  // namespace hyperfile
