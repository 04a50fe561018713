// SPDX-License-Identifier: Apache-2.0
#include "store/s3/sigv4.h"

#include <gtest/gtest.h>

namespace hyperfile::sigv4 {
namespace {

// The GET-object example of the AWS Signature V4 documentation for S3.
TEST(SigV4, AwsDocumentedGetObjectExample) {
  Credentials c{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
  std::tm tm{};
  tm.tm_year = 113;
  tm.tm_mon = 4;
  tm.tm_mday = 24;
  std::time_t t = timegm(&tm);
  Signed s = Sign(c, "us-east-1", "GET", "examplebucket.s3.amazonaws.com", "/test.txt", "",
                  {{"range", "bytes=0-9"}}, Payload{}, t);
  EXPECT_NE(s.headers["authorization"].find(
                "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
            std::string::npos)
      << s.canonical_request;
  EXPECT_EQ(s.headers["authorization"].find(c.secret_key), std::string::npos);
}

TEST(SigV4, Encoding) {
  EXPECT_EQ(UriEncode("dir/a b/\xc3\xbc~x", false), "dir/a%20b/%C3%BC~x");
  EXPECT_EQ(UriEncode("a/b", true), "a%2Fb");
  EXPECT_EQ(CanonicalQuery({{"prefix", "a b"}, {"list-type", "2"}, {"delete", ""}}),
            "delete=&list-type=2&prefix=a%20b");
  EXPECT_EQ(Base64(Md5("")), "1B2M2Y8AsgTpgAmY7PhCfg==");
}

// x-amz-checksum-crc32c: base64 of the big-endian CRC32C, over all pieces.
TEST(SigV4, Crc32cChecksumHeader) {
  EXPECT_EQ(Crc32cBase64(Payload{"hello world"}), "yZRlqg==");
  EXPECT_EQ(Crc32cBase64(Payload{"hello", " ", "", "world"}), "yZRlqg==");
  EXPECT_EQ(Crc32cBase64(Payload{}), "AAAAAA==");
  EXPECT_EQ(Crc32cBase64(Payload{"123456789"}), Base64("\xE3\x06\x92\x83"));
}

// An unsigned payload: the literal is signed, the body is never hashed.
TEST(SigV4, UnsignedPayload) {
  Credentials c{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
  Signed s = Sign(c, "us-east-1", "PUT", "examplebucket.s3.amazonaws.com", "/k", "",
                  {{"x-amz-checksum-crc32c", "yZRlqg=="}}, Payload{"hello world"}, 1369353600,
                  kUnsignedPayload);
  EXPECT_EQ(s.headers["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
  EXPECT_TRUE(s.canonical_request.ends_with("\nUNSIGNED-PAYLOAD")) << s.canonical_request;
  EXPECT_NE(s.canonical_request.find("x-amz-checksum-crc32c:yZRlqg==\n"), std::string::npos);
  EXPECT_NE(s.headers["authorization"].find(
                "SignedHeaders=host;x-amz-checksum-crc32c;x-amz-content-sha256;x-amz-date,"),
            std::string::npos)
      << s.headers["authorization"];
}

}  // namespace
}  // namespace hyperfile::sigv4
