// SPDX-License-Identifier: Apache-2.0
#include "store/s3/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>

#include "util/crc32c.h"

namespace hyperfile::sigv4 {
namespace {

std::string Hex(const unsigned char* d, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; i++) {
    out.push_back(digits[d[i] >> 4]);
    out.push_back(digits[d[i] & 15]);
  }
  return out;
}

std::string Digest(const EVP_MD* md, const Payload& data) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, md, nullptr);
  for (std::string_view p : data) EVP_DigestUpdate(ctx, p.data(), p.size());
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, out, &n);
  EVP_MD_CTX_free(ctx);
  return std::string(reinterpret_cast<char*>(out), n);
}

std::string Hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &n);
  return std::string(reinterpret_cast<char*>(out), n);
}

}  // namespace

std::string UriEncode(std::string_view s, bool encode_slash) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~' || (c == '/' && !encode_slash)) {
      out.push_back(static_cast<char>(c));
    } else {
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string CanonicalQuery(const std::map<std::string, std::string>& query) {
  std::map<std::string, std::string> encoded;
  for (const auto& [k, v] : query) encoded[UriEncode(k, true)] = UriEncode(v, true);
  std::string out;
  for (const auto& [k, v] : encoded) {
    if (!out.empty()) out += "&";
    out += k + "=" + v;
  }
  return out;
}

std::string HexSha256(const Payload& data) {
  std::string d = Digest(EVP_sha256(), data);
  return Hex(reinterpret_cast<const unsigned char*>(d.data()), d.size());
}

std::string Md5(std::string_view data) { return Digest(EVP_md5(), Payload{data}); }

std::string Base64(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Crc32cBase64(const Payload& data) {
  uint32_t crc = 0;
  for (std::string_view p : data) crc = crc32c::Extend(crc, p.data(), p.size());
  const char be[4] = {static_cast<char>(crc >> 24), static_cast<char>(crc >> 16),
                      static_cast<char>(crc >> 8), static_cast<char>(crc)};
  return Base64(std::string_view(be, 4));
}

Signed Sign(const Credentials& creds, const std::string& region, const std::string& method,
            const std::string& host, const std::string& canonical_uri,
            const std::string& canonical_query, const std::map<std::string, std::string>& headers,
            const Payload& body, std::time_t now, const std::string& payload_hash,
            const std::string& service) {
  char date[9], stamp[17];
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(date, sizeof date, "%Y%m%d", &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  Signed out;
  out.headers = headers;
  out.headers["host"] = host;
  out.headers["x-amz-date"] = stamp;
  out.headers["x-amz-content-sha256"] = payload_hash.empty() ? HexSha256(body) : payload_hash;
  if (!creds.session_token.empty()) out.headers["x-amz-security-token"] = creds.session_token;
  std::string canonical_headers, signed_headers;
  for (const auto& [name, value] : out.headers) {
    canonical_headers += name + ":" + value + "\n";
    if (!signed_headers.empty()) signed_headers += ";";
    signed_headers += name;
  }
  out.canonical_request = method + "\n" + canonical_uri + "\n" + canonical_query + "\n" +
                          canonical_headers + "\n" + signed_headers + "\n" +
                          out.headers["x-amz-content-sha256"];
  std::string scope = std::string(date) + "/" + region + "/" + service + "/aws4_request";
  out.string_to_sign = "AWS4-HMAC-SHA256\n" + std::string(stamp) + "\n" + scope + "\n" +
                       HexSha256(Payload{out.canonical_request});
  std::string key = Hmac("AWS4" + creds.secret_key, date);
  key = Hmac(key, region);
  key = Hmac(key, service);
  key = Hmac(key, "aws4_request");
  std::string sig = Hmac(key, out.string_to_sign);
  out.headers["authorization"] =
      "AWS4-HMAC-SHA256 Credential=" + creds.access_key + "/" + scope +
      ", SignedHeaders=" + signed_headers +
      ", Signature=" + Hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
  return out;
}

}  // namespace hyperfile::sigv4
