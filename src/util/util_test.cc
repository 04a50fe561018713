// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include <atomic>
#include <string>

#include "hyperfile/status.h"
#include "util/coding.h"
#include "util/crc32c.h"
#include "util/parse_number.h"
#include "util/thread_pool.h"

namespace hyperfile {
namespace {

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c::Value("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c::Value(""), 0u);
  std::string zeros(32, '\0');
  EXPECT_EQ(crc32c::Value(zeros), 0x8A9136AAu);  // RFC 3720 B.4
}

TEST(Crc32c, ExtendEqualsWhole) {
  std::string a = "hello, ", b = "world";
  EXPECT_EQ(crc32c::Extend(crc32c::Value(a), b.data(), b.size()), crc32c::Value(a + b));
}

TEST(Coding, RoundTripAndBounds) {
  std::string buf;
  PutFixed8(&buf, 0xAB);
  PutFixed16(&buf, 0xBEEF);
  PutFixed32(&buf, 0xDEADBEEF);
  PutFixed64(&buf, 0x0123456789ABCDEFull);
  PutString16(&buf, "key");
  ASSERT_EQ(buf.size(), 1u + 2 + 4 + 8 + 2 + 3);
  EXPECT_EQ(static_cast<uint8_t>(buf[1]), 0xEF);  // little-endian on the wire
  Decoder d(buf);
  EXPECT_EQ(d.U8(), 0xAB);
  EXPECT_EQ(d.U16(), 0xBEEF);
  EXPECT_EQ(d.U32(), 0xDEADBEEFu);
  EXPECT_EQ(d.U64(), 0x0123456789ABCDEFull);
  EXPECT_EQ(d.String16(), "key");
  EXPECT_TRUE(d.ok());
  EXPECT_EQ(d.U32(), 0u);
  EXPECT_FALSE(d.ok());  // latched
  Decoder e(std::string_view("\xff\xff", 2));
  EXPECT_TRUE(e.String16().empty());  // absurd length is refused, not read
  EXPECT_FALSE(e.ok());
}

TEST(StatusTest, CodesAndContext) {
  Status s = Status::NotFound("get memory://x/key");
  EXPECT_TRUE(s.IsNotFound());
  EXPECT_FALSE(s.IsRetryable());
  EXPECT_EQ(s.WithContext("open").ToString(), "NotFound: open: get memory://x/key");
  EXPECT_TRUE(Status::Throttled("x").IsRetryable());
  Result<int> r = 5;
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(*r, 5);
  Result<int> bad = Status::Corrupt("c");
  EXPECT_TRUE(bad.status().IsCorrupt());
}

TEST(ThreadPoolTest, RunsEverything) {
  std::atomic<int> n{0};
  {
    ThreadPool pool(4);
    std::vector<std::future<int>> fs;
    for (int i = 0; i < 100; i++)
      fs.push_back(pool.Submit([&n, i] {
        n++;
        return i;
      }));
    int sum = 0;
    for (auto& f : fs) sum += f.get();
    EXPECT_EQ(sum, 4950);
  }
  EXPECT_EQ(n.load(), 100);
}

TEST(ParseDuration, UnitsAndLimits) {
  EXPECT_EQ(*util::ParseDurationMs("0"), 0u);
  EXPECT_EQ(*util::ParseDurationMs("250ms"), 250u);
  EXPECT_EQ(*util::ParseDurationMs("5s"), 5000u);
  EXPECT_EQ(*util::ParseDurationMs("2m"), 120000u);
  EXPECT_EQ(*util::ParseDurationMs("24h"), 86400000u);
  for (const char* bad : {"", "5", "s", "5x", "1.5s", "-1s", " 5s", "5 s", "25h", "86400001ms",
                          "99999999999999999999s"}) {
    auto r = util::ParseDurationMs(bad);
    EXPECT_TRUE(r.status().IsInvalidArgument()) << "'" << bad << "'";
  }
}

}  // namespace
}  // namespace hyperfile
