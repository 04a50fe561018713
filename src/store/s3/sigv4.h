// SPDX-License-Identifier: Apache-2.0
// AWS Signature Version 4 for S3 requests (hand-written: no Debian-packaged
// library signs requests for a plain libcurl client).
#pragma once

#include <ctime>
#include <map>
#include <string>
#include <string_view>

#include "hyperfile/object_store.h"

namespace hyperfile::sigv4 {

struct Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;
};

struct Signed {
  std::map<std::string, std::string> headers;  // to send, including authorization
  std::string canonical_request;               // for tests
  std::string string_to_sign;
};

// RFC 3986 encoding: unreserved characters kept; '/' kept unless encode_slash.
std::string UriEncode(std::string_view s, bool encode_slash);
// Sorted, encoded query string ("a=1&b=").
std::string CanonicalQuery(const std::map<std::string, std::string>& query);
std::string HexSha256(const Payload& data);
std::string Md5(std::string_view data);  // raw digest
std::string Base64(std::string_view data);
// The value of an x-amz-checksum-crc32c header: base64 of the big-endian
// CRC32C of the concatenated pieces.
std::string Crc32cBase64(const Payload& data);
// The x-amz-content-sha256 value for a body that is not signed.
inline constexpr const char* kUnsignedPayload = "UNSIGNED-PAYLOAD";

// Signs a request. `headers` are extra lower-case headers to sign and send;
// host, x-amz-date, x-amz-content-sha256 (and x-amz-security-token) are added.
// x-amz-content-sha256 is `payload_hash` if not empty (e.g. kUnsignedPayload;
// `body` is then not read), else the SHA-256 of `body`. `service` is the
// signing name of the service: "s3", or "sts" for AssumeRole.
Signed Sign(const Credentials& creds, const std::string& region, const std::string& method,
            const std::string& host, const std::string& canonical_uri,
            const std::string& canonical_query, const std::map<std::string, std::string>& headers,
            const Payload& body, std::time_t now, const std::string& payload_hash = "",
            const std::string& service = "s3");

}  // namespace hyperfile::sigv4
