// SPDX-License-Identifier: Apache-2.0
// The S3 backend over libcurl, with AWS Signature V4 written here (no
// Debian-packaged C++ library does SigV4 for a plain libcurl client) using
// OpenSSL for SHA-256/HMAC and tinyxml2 for response bodies.
//
// The server is untrusted input. Every request has an overall deadline
// (StoreOptions::request_timeout_ms, per HTTP request: one part of a
// multipart upload, one ranged GET, one LIST page), and what a server can
// make us hold is bounded, enforced while the response arrives (the transfer
// is aborted from the write callback, not after it is complete):
//   ranged GET body      at most the length asked for
//   whole-object GET     at most StoreOptions::max_whole_object_bytes
//                        (Content-Length checked up front, then the bytes)
//   other bodies (LIST and other XML answers): 8 MiB; error bodies: 1 MiB
//                        (kept truncated, enough to classify the error)
//   response headers     at most 256 lines and 64 KiB
//   LIST pagination      at most kMaxListPages pages; a continuation token
//                        that does not advance, keys that do not ascend or
//                        lie outside the prefix are Corrupt
// Keys, the prefix and the bucket name are checked before anything is sent:
// a key or prefix with an empty, "." or ".." segment, a control character,
// or longer than 1024 bytes is InvalidArgument (curl and servers normalise
// such paths after signing, which would reach another key or fail with a
// misleading SignatureDoesNotMatch); curl is also told never to normalise
// the path (CURLOPT_PATH_AS_IS).
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <tinyxml2.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "hyperfile/object_store.h"
#include "store/s3/aws_config.h"
#include "store/s3/credentials.h"
#include "store/s3/sigv4.h"

namespace hyperfile {
namespace {

constexpr uint64_t kMaxSinglePut = 5ull << 30;  // S3's limit for one PUT

constexpr uint64_t kMaxXmlBody = 8ull << 20;
constexpr uint64_t kMaxErrorBody = 1ull << 20;
constexpr size_t kMaxHeaderLines = 256;
constexpr size_t kMaxHeaderBytes = 64 << 10;
constexpr size_t kMaxListPages = 1000000;  // a billion keys
constexpr size_t kMaxKeyBytes = 1024;      // S3's limit on a full key
// The most a body buffer is reserved ahead of the bytes arriving.
constexpr uint64_t kMaxReserve = 64ull << 20;
// curl's buffers for bodies of 1 MiB and more (defaults 64 KiB and 16 KiB).
// Measured with store_bench on the local gateway: about 5-10% less client
// CPU per GiB; larger ones gained nothing more.
constexpr long kLargeUploadBuffer = 1 << 20;
constexpr long kLargeReceiveBuffer = 256 << 10;

// A key for messages: control characters shown as '?'.
std::string Shown(std::string_view key) {
  std::string out(key);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

// Why a key or prefix cannot be an S3 object path; empty if it can.
std::string BadPath(std::string_view key) {
  if (key.empty()) return "it is empty";
  for (unsigned char c : key) {
    if (c < 0x20 || c == 0x7f) return "it contains a control character (NUL, tab, newline...)";
  }
  for (size_t pos = 0; pos <= key.size();) {
    size_t next = std::min(key.find('/', pos), key.size());
    std::string_view seg = key.substr(pos, next - pos);
    if (seg.empty()) return "it has an empty path segment (a leading, trailing or double '/')";
    if (seg == "." || seg == "..") return "it has a '" + std::string(seg) + "' path segment";
    pos = next + 1;
  }
  return "";
}

// Why a bucket name breaks the S3 naming rules; empty if it does not.
std::string BadBucket(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) return "a bucket name has 3 to 63 characters";
  for (char c : b) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) {
      return "a bucket name holds only lowercase letters, digits, '.' and '-'";
    }
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(b.front()) || !alnum(b.back())) {
    return "a bucket name starts and ends with a letter or digit";
  }
  if (b.find("..") != std::string_view::npos) return "a bucket name has no '..'";
  return "";
}

// InvalidArgument naming the option and its accepted range, or OK.
Status ValidateOptions(const StoreOptions& o) {
  auto range = [](const char* name, int64_t v, int64_t lo, int64_t hi) {
    if (v >= lo && v <= hi) return Status::OK();
    return Status::InvalidArgument("s3: StoreOptions::" + std::string(name) + " is " +
                                   std::to_string(v) + "; accepted: " + std::to_string(lo) + ".." +
                                   std::to_string(hi));
  };
  constexpr int64_t kMiB = 1 << 20, kGiB = 1ll << 30, kIntMax = 2147483647;
  HF_RETURN_IF_ERROR(range("max_in_flight", o.max_in_flight, 1, 4096));
  HF_RETURN_IF_ERROR(range("connect_timeout_ms", o.connect_timeout_ms, 1, kIntMax));
  HF_RETURN_IF_ERROR(range("request_timeout_ms", o.request_timeout_ms, 1, kIntMax));
  HF_RETURN_IF_ERROR(range("low_speed_time_s", o.low_speed_time_s, 1, kIntMax));
  // S3: a part is 5 MiB..5 GiB; a single PUT at most 5 GiB.
  HF_RETURN_IF_ERROR(
      range("multipart_part_size",
            static_cast<int64_t>(std::min<uint64_t>(o.multipart_part_size, 1ull << 62)), 5 * kMiB,
            5 * kGiB));
  HF_RETURN_IF_ERROR(
      range("multipart_threshold",
            static_cast<int64_t>(std::min<uint64_t>(o.multipart_threshold, 1ull << 62)),
            static_cast<int64_t>(o.multipart_part_size), 5 * kGiB));
  HF_RETURN_IF_ERROR(
      range("max_whole_object_bytes",
            static_cast<int64_t>(std::min<uint64_t>(o.max_whole_object_bytes, 1ull << 62)), 1,
            1ll << 62));
  return Status::OK();
}

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  CURLcode curl = CURLE_OK;
  std::string curl_error;
};

struct Request {
  std::string method = "GET";
  std::string key;                             // object key (already prefixed); empty = bucket
  std::map<std::string, std::string> query;    // unencoded
  std::map<std::string, std::string> headers;  // lower-case names
  const Payload* body = nullptr;
  // The body is object data (a PUT of an object or a part): protected as
  // StoreOptions::payload_signing says. Other bodies are always signed.
  bool object_data = false;
  std::string* sink = nullptr;  // receives the body (else Response::body)
  // The most body bytes a successful answer may carry; 0 = kMaxXmlBody.
  uint64_t limit = 0;
  std::string limit_what;     // for the message: "the 100 bytes asked for"
  bool large_answer = false;  // a ranged GET of 1 MiB or more: a larger receive buffer
};

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') i++;
  return s.substr(i);
}

std::string StripQuotes(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

// A region name as S3 sends it in x-amz-bucket-region or <Region>: what
// may go into a host name and a signing scope.
bool PlausibleRegion(const std::string& r) {
  if (r.empty() || r.size() > 32) return false;
  for (char c : r) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

class S3Store : public ObjectStore {
 public:
  S3Store(std::string bucket, std::string prefix, StoreOptions options)
      : bucket_(std::move(bucket)), prefix_(std::move(prefix)), options_(std::move(options)) {}

  ~S3Store() override {
    for (CURL* h : idle_) curl_easy_cleanup(h);
  }

  Status Init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    const std::string name = "s3://" + bucket_;
    Result<aws::SharedConfig> config = aws::SharedConfig::Load();
    if (!config.ok()) return config.status().WithContext(name);
    Result<aws::S3Settings> settings = aws::ResolveS3Settings(options_, *config);
    if (!settings.ok()) return settings.status().WithContext(name);
    ca_bundle_ = settings->ca_bundle;
    path_style_ =
        options_.addressing == StoreOptions::Addressing::kPath ||
        (options_.addressing == StoreOptions::Addressing::kAuto && !settings->endpoint.empty());
    endpoint_from_region_ = settings->endpoint.empty();
    configured_endpoint_ = settings->endpoint;
    if (!endpoint_from_region_) {
      size_t scheme = configured_endpoint_.find("://");
      if (scheme == std::string::npos || scheme == 0 || configured_endpoint_.size() == scheme + 3) {
        return Status::InvalidArgument(name + ": bad S3 endpoint '" + configured_endpoint_ +
                                       "' (expected scheme://host[:port])");
      }
    }
    SetTarget(settings->region);

    aws::ChainOptions chain;
    chain.region = settings->region;
    chain.ca_bundle = ca_bundle_;
    chain.verify_tls = options_.verify_tls;
    std::string looked_at;
    Result<std::unique_ptr<aws::CredentialsProvider>> provider =
        aws::ResolveCredentialChain(options_, *config, chain, &looked_at);
    if (!provider.ok()) return provider.status().WithContext(name);
    credentials_ = std::make_shared<aws::CachedCredentials>(std::move(provider).value());
    // The first credentials now, so that a store without any fails at open.
    Result<aws::Credentials> first = credentials_->Get();
    if (!first.ok()) {
      if (!looked_at.empty()) {  // the chain fell through to instance metadata
        return Status::Auth(name + ": no AWS credentials found (" + looked_at + "; " +
                            first.status().message() + ")");
      }
      return first.status().WithContext(name + ": credentials from " + credentials_->Describe());
    }
    return Status::OK();
  }

  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    HF_RETURN_IF_ERROR(CheckKey("put", key));
    uint64_t total = 0;
    for (std::string_view p : data) total += p.size();
    // A create-only put is always one request: servers accept a conditional
    // CompleteMultipartUpload without honouring If-None-Match (Ceph does), so
    // a multipart create-only put could let two writers both "win". S3 takes
    // a single PUT of up to 5 GiB.
    if (options.if_absent && total > kMaxSinglePut) {
      return Status::InvalidArgument("put " + Where(key) + ": a create-only put of " +
                                     std::to_string(total) +
                                     " bytes exceeds the 5 GiB of one S3 request");
    }
    if (total > options_.multipart_threshold && options.if_match.empty() && !options.if_absent) {
      HF_RETURN_IF_ERROR(PutMultipart(key, data, total));
      if (info) {
        info->key = std::string(key);
        info->size = total;
      }
      return Status::OK();
    }
    Request req;
    req.method = "PUT";
    req.key = FullKey(key);
    req.body = &data;
    req.object_data = true;
    if (options.if_absent) req.headers["if-none-match"] = "*";
    if (!options.if_match.empty()) req.headers["if-match"] = "\"" + options.if_match + "\"";
    Response resp;
    HF_RETURN_IF_ERROR(Perform(req, &resp, "put", key));
    if (info) {
      info->key = std::string(key);
      info->size = 0;
      for (std::string_view p : data) info->size += p.size();
      info->etag = StripQuotes(resp.headers["etag"]);
    }
    return Status::OK();
  }

  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    out->clear();
    HF_RETURN_IF_ERROR(CheckKey("get", key));
    if (length == 0) return Head(key, info);
    if (length != kToEnd) length = std::min(length, kToEnd - offset);  // no overflow below
    Request req;
    req.key = FullKey(key);
    if (offset != 0 || length != kToEnd) {
      std::string range = "bytes=" + std::to_string(offset) + "-";
      if (length != kToEnd) range += std::to_string(offset + length - 1);
      req.headers["range"] = range;
    }
    req.sink = out;
    if (length != kToEnd) {
      req.limit = length;
      req.limit_what = "the " + std::to_string(length) + " bytes asked for";
      req.large_answer = length >= (1 << 20);
    } else {
      req.limit = options_.max_whole_object_bytes;
      req.limit_what = "the " + std::to_string(req.limit) +
                       " bytes a whole-object read may return (max_whole_object_bytes)";
    }
    // The body arrives in pieces of a few KiB: room for all of it up front
    // saves the string's regrowth copies (bounded: a bad length is no promise).
    if (length != kToEnd) out->reserve(std::min<uint64_t>(length, kMaxReserve));
    Response resp;
    Status st = Perform(req, &resp, "get", key);
    if (resp.status == 416) {  // range starts at or past the end
      out->clear();
      return Status::OK();
    }
    HF_RETURN_IF_ERROR(st);
    if (length != kToEnd && out->size() > length) {
      return Status::Corrupt("get " + Where(key) + ": server returned more bytes than asked");
    }
    auto cl = resp.headers.find("content-length");
    if (cl != resp.headers.end() && std::to_string(out->size()) != cl->second) {
      return Status::Corrupt("get " + Where(key) + ": short body");
    }
    if (info) {
      info->key = std::string(key);
      info->etag = StripQuotes(resp.headers["etag"]);
      info->size = out->size();
      auto cr = resp.headers.find("content-range");
      if (cr != resp.headers.end() && cr->second.find('/') != std::string::npos) {
        info->size =
            std::strtoull(cr->second.substr(cr->second.find('/') + 1).c_str(), nullptr, 10);
      }
    }
    return Status::OK();
  }

  Status Head(std::string_view key, ObjectInfo* info) override {
    HF_RETURN_IF_ERROR(CheckKey("head", key));
    Request req;
    req.method = "HEAD";
    req.key = FullKey(key);
    Response resp;
    HF_RETURN_IF_ERROR(Perform(req, &resp, "head", key));
    if (info) {
      info->key = std::string(key);
      info->size = std::strtoull(resp.headers["content-length"].c_str(), nullptr, 10);
      info->etag = StripQuotes(resp.headers["etag"]);
      time_t t = curl_getdate(resp.headers["last-modified"].c_str(), nullptr);
      info->mtime_ms = t > 0 ? static_cast<int64_t>(t) * 1000 : 0;
    }
    return Status::OK();
  }

  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override {
    for (std::string_view s : {prefix, start_after}) {
      for (unsigned char c : s) {
        if (c < 0x20 || c == 0x7f) {
          return Status::InvalidArgument("list " + Where(Shown(prefix)) + ": '" + Shown(s) +
                                         "' contains a control character");
        }
      }
    }
    const std::string full_prefix = FullKey(prefix, true);
    std::string token, last_key;
    size_t got = 0;
    for (size_t page = 0;; page++) {
      if (page >= kMaxListPages) {
        return Status::Corrupt("list " + Where(prefix) + ": more than " +
                               std::to_string(kMaxListPages) + " pages");
      }
      Request req;
      req.query["list-type"] = "2";
      req.query["prefix"] = FullKey(prefix, true);
      req.query["encoding-type"] = "url";
      size_t want = limit == 0 ? 1000 : std::min<size_t>(1000, limit - got);
      req.query["max-keys"] = std::to_string(want);
      if (!token.empty())
        req.query["continuation-token"] = token;
      else if (!start_after.empty())
        req.query["start-after"] = FullKey(start_after);
      Response resp;
      HF_RETURN_IF_ERROR(Perform(req, &resp, "list", prefix));
      tinyxml2::XMLDocument doc;
      if (doc.Parse(resp.body.data(), resp.body.size()) != tinyxml2::XML_SUCCESS ||
          !doc.RootElement()) {
        return Status::Corrupt("list " + Where(prefix) + ": unparsable ListObjectsV2 response");
      }
      auto* root = doc.RootElement();
      size_t strip = prefix_.empty() ? 0 : prefix_.size() + 1;
      for (auto* c = root->FirstChildElement("Contents"); c;
           c = c->NextSiblingElement("Contents")) {
        ObjectInfo info;
        std::string full = UrlDecode(Text(c, "Key"));
        // The answer must stay inside what was asked, in ascending order
        // (a server repeating a page would otherwise loop forever).
        if (!full.starts_with(full_prefix) || full.size() <= strip) {
          return Status::Corrupt("list " + Where(prefix) + ": the server listed '" + Shown(full) +
                                 "', outside the prefix '" + Shown(full_prefix) + "'");
        }
        if (full <= last_key || (!start_after.empty() && full <= FullKey(start_after))) {
          return Status::Corrupt("list " + Where(prefix) + ": the server listed '" + Shown(full) +
                                 "' out of order (after '" + Shown(last_key) + "')");
        }
        last_key = full;
        if (limit != 0 && got >= limit) break;  // more than max-keys
        info.key = full.substr(strip);
        info.size = std::strtoull(Text(c, "Size").c_str(), nullptr, 10);
        info.etag = StripQuotes(Text(c, "ETag"));
        // ISO 8601 here (curl_getdate reads only the HTTP date forms); an
        // unreadable time stays 0, which every user of it treats as "unknown".
        if (auto t = aws::ParseIso8601(Text(c, "LastModified"))) {
          info.mtime_ms =
              std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count();
        }
        out->push_back(std::move(info));
        got++;
      }
      bool truncated = Text(root, "IsTruncated") == "true";
      std::string next = Text(root, "NextContinuationToken");
      if (!truncated || next.empty() || (limit != 0 && got >= limit)) return Status::OK();
      if (next == token) {
        return Status::Corrupt("list " + Where(prefix) +
                               ": the server's continuation token does not advance");
      }
      token = std::move(next);
    }
  }

  Status Delete(std::string_view key) override {
    HF_RETURN_IF_ERROR(CheckKey("delete", key));
    Request req;
    req.method = "DELETE";
    req.key = FullKey(key);
    Response resp;
    Status st = Perform(req, &resp, "delete", key);
    return st.IsNotFound() ? Status::OK() : st;
  }

  Status DeleteMany(const std::vector<std::string>& keys) override {
    for (const std::string& k : keys) HF_RETURN_IF_ERROR(CheckKey("delete", k));
    for (size_t start = 0; start < keys.size(); start += 1000) {
      std::string xml = "<Delete><Quiet>true</Quiet>";
      for (size_t i = start; i < std::min(keys.size(), start + 1000); i++) {
        xml += "<Object><Key>" + XmlEscape(FullKey(keys[i])) + "</Key></Object>";
      }
      xml += "</Delete>";
      Payload body{xml};
      Request req;
      req.method = "POST";
      req.query["delete"] = "";
      req.body = &body;
      req.headers["content-md5"] = sigv4::Base64(sigv4::Md5(xml));
      req.headers["content-type"] = "application/xml";
      Response resp;
      HF_RETURN_IF_ERROR(Perform(req, &resp, "delete", keys[start]));
      tinyxml2::XMLDocument doc;
      if (doc.Parse(resp.body.data(), resp.body.size()) == tinyxml2::XML_SUCCESS &&
          doc.RootElement()) {
        if (auto* err = doc.RootElement()->FirstChildElement("Error")) {
          return Status::IOError("delete " + Where(Text(err, "Key")) + ": " + Text(err, "Code") +
                                 " " + Text(err, "Message"));
        }
      }
    }
    return Status::OK();
  }

  // Large unconditional objects: parts uploaded in parallel (bounded by
  // max_in_flight), then the completion. Never used for create-only puts.
  Status PutMultipart(std::string_view key, const Payload& data, uint64_t total) {
    {
      uint64_t part_size = std::max<uint64_t>(options_.multipart_part_size, 5ull << 20);
      uint64_t parts = (total + part_size - 1) / part_size;
      if (parts > 10000) {  // S3 allows 10,000 parts: refuse before uploading
        return Status::InvalidArgument("put " + Where(key) + ": " + std::to_string(total) +
                                       " bytes need " + std::to_string(parts) +
                                       " parts of multipart_part_size " +
                                       std::to_string(part_size) + "; S3 allows 10000");
      }
    }
    Request init;
    init.method = "POST";
    init.key = FullKey(key);
    init.query["uploads"] = "";
    // Parts then carry x-amz-checksum-crc32c and the completion lists them
    // (AWS refuses part checksums of another algorithm than the upload's).
    const bool crc_parts = UnsignedPayloads();
    if (crc_parts) init.headers["x-amz-checksum-algorithm"] = "CRC32C";
    Payload empty;
    init.body = &empty;
    Response resp;
    HF_RETURN_IF_ERROR(Perform(init, &resp, "put (multipart start)", key));
    tinyxml2::XMLDocument doc;
    std::string upload_id;
    if (doc.Parse(resp.body.data(), resp.body.size()) == tinyxml2::XML_SUCCESS &&
        doc.RootElement()) {
      upload_id = Text(doc.RootElement(), "UploadId");
    }
    if (upload_id.empty())
      return Status::Corrupt("put " + Where(key) + ": no UploadId in response");
    uint64_t part_size = std::max<uint64_t>(options_.multipart_part_size, 5ull << 20);
    size_t parts = static_cast<size_t>((total + part_size - 1) / part_size);
    std::vector<std::string> etags(parts), crcs(parts);
    std::vector<Status> results(parts);
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (size_t i; (i = next++) < parts;) {
        Payload piece = Slice(data, i * part_size, std::min(total, (i + 1) * part_size));
        Request req;
        req.method = "PUT";
        req.key = FullKey(key);
        req.query["partNumber"] = std::to_string(i + 1);
        req.query["uploadId"] = upload_id;
        req.body = &piece;
        req.object_data = true;
        Response r;
        results[i] = Perform(req, &r, "put (part)", key);
        etags[i] = r.headers["etag"];
        if (auto c = req.headers.find("x-amz-checksum-crc32c"); c != req.headers.end()) {
          crcs[i] = c->second;
        }
      }
    };
    std::vector<std::thread> threads;
    size_t n = std::min<size_t>(parts, static_cast<size_t>(std::max(1, options_.max_in_flight)));
    for (size_t t = 0; t < n; t++) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
    Status st;
    for (const Status& r : results) {
      if (!r.ok()) {
        st = r;
        break;
      }
    }
    if (st.ok()) {
      std::string xml = "<CompleteMultipartUpload>";
      for (size_t i = 0; i < parts; i++) {
        xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
               XmlEscape(etags[i]) + "</ETag>";
        if (crc_parts) xml += "<ChecksumCRC32C>" + XmlEscape(crcs[i]) + "</ChecksumCRC32C>";
        xml += "</Part>";
      }
      xml += "</CompleteMultipartUpload>";
      Payload body{xml};
      Request done;
      done.method = "POST";
      done.key = FullKey(key);
      done.query["uploadId"] = upload_id;
      done.body = &body;
      Response r;
      if (st.ok()) st = Perform(done, &r, "put (multipart complete)", key);
      // A 200 answer may still carry an error document.
      tinyxml2::XMLDocument out;
      if (st.ok() && out.Parse(r.body.data(), r.body.size()) == tinyxml2::XML_SUCCESS &&
          out.RootElement() && std::string(out.RootElement()->Name()) == "Error") {
        st = Classify("put (multipart complete) " + Where(key), 500, r.body);
      }
    }
    if (!st.ok()) {
      Request abort;
      abort.method = "DELETE";
      abort.key = FullKey(key);
      abort.query["uploadId"] = upload_id;
      Response r;
      (void)Perform(abort, &r, "put (multipart abort)", key);
    }
    return st;
  }

  // The bytes [start, end) of a gather list, as a gather list (no copy).
  static Payload Slice(const Payload& data, uint64_t start, uint64_t end) {
    Payload out;
    uint64_t pos = 0;
    for (std::string_view p : data) {
      uint64_t s = std::max(start, pos), e = std::min(end, pos + p.size());
      if (s < e) out.push_back(p.substr(s - pos, e - s));
      pos += p.size();
      if (pos >= end) break;
    }
    return out;
  }

  std::string Name() const override {
    return "s3://" + bucket_ + (prefix_.empty() ? "" : "/" + prefix_);
  }

 private:
  static std::string Text(const tinyxml2::XMLElement* e, const char* name) {
    auto* c = e->FirstChildElement(name);
    return c && c->GetText() ? c->GetText() : "";
  }
  static std::string UrlDecode(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); i++) {
      if (s[i] == '%' && i + 2 < s.size()) {
        out.push_back(static_cast<char>(std::strtol(s.substr(i + 1, 2).c_str(), nullptr, 16)));
        i += 2;
      } else if (s[i] == '+') {
        out.push_back(' ');
      } else {
        out.push_back(s[i]);
      }
    }
    return out;
  }
  static std::string XmlEscape(const std::string& s) {
    std::string out;
    for (char c : s) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&apos;";
          break;
        default:
          out.push_back(c);
      }
    }
    return out;
  }

  std::string FullKey(std::string_view key, bool allow_empty = false) const {
    if (prefix_.empty()) return std::string(key);
    if (key.empty() && allow_empty) return prefix_ + "/";
    return prefix_ + "/" + std::string(key);
  }
  std::string Where(std::string_view key) const { return Name() + "/" + Shown(key); }

  // Refuses a key that cannot be sent as an object path, before any request.
  Status CheckKey(const char* op, std::string_view key) const {
    std::string why = BadPath(key);
    if (why.empty() && FullKey(key).size() > kMaxKeyBytes) {
      why = "the full key is longer than S3's " + std::to_string(kMaxKeyBytes) + " bytes";
    }
    if (why.empty()) return Status::OK();
    return Status::InvalidArgument(std::string(op) + " " + Where(key) + ": invalid key '" +
                                   Shown(key) + "': " + why);
  }

  bool UnsignedPayloads() const {
    return options_.payload_signing == StoreOptions::PayloadSigning::kUnsignedCrc32c;
  }

  CURL* Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ < std::max(1, options_.max_in_flight); });
    in_flight_++;
    if (!idle_.empty()) {
      CURL* h = idle_.back();
      idle_.pop_back();
      return h;
    }
    return curl_easy_init();
  }
  void Release(CURL* h) {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(h);
    in_flight_--;
    cv_.notify_one();
  }

  struct ReadState {
    const Payload* body;
    size_t piece = 0, offset = 0;
  };
  static size_t ReadBody(char* buf, size_t size, size_t n, void* user) {
    auto* st = static_cast<ReadState*>(user);
    size_t cap = size * n, done = 0;
    while (done < cap && st->piece < st->body->size()) {
      std::string_view p = (*st->body)[st->piece];
      size_t take = std::min(cap - done, p.size() - st->offset);
      std::memcpy(buf + done, p.data() + st->offset, take);
      done += take;
      st->offset += take;
      if (st->offset == p.size()) {
        st->piece++;
        st->offset = 0;
      }
    }
    return done;
  }
  // Receives a response body, within bounds: a successful answer's body goes
  // to `sink` up to `limit` bytes (the transfer is aborted beyond it, or at
  // once when Content-Length announces more); an error answer's body goes to
  // `error_body`, kept up to kMaxErrorBody (then the transfer stops: that is
  // enough to classify the error).
  struct WriteState {
    CURL* handle = nullptr;
    std::string* sink = nullptr;
    std::string* error_body = nullptr;
    uint64_t limit = 0;
    const std::map<std::string, std::string>* headers = nullptr;
    bool started = false, is_error = false;
    bool overflow = false;         // a successful answer exceeded the limit
    bool error_truncated = false;  // an error body was cut at kMaxErrorBody
    std::string overflow_what;
  };
  static size_t WriteBody(char* data, size_t size, size_t n, void* user) {
    auto* st = static_cast<WriteState*>(user);
    size_t len = size * n;
    if (!st->started) {
      st->started = true;
      long code = 0;
      curl_easy_getinfo(st->handle, CURLINFO_RESPONSE_CODE, &code);
      st->is_error = code < 200 || code >= 300;
      if (st->is_error) {
        st->sink = st->error_body;
        st->limit = kMaxErrorBody;
      } else if (auto cl = st->headers->find("content-length"); cl != st->headers->end()) {
        uint64_t announced = std::strtoull(cl->second.c_str(), nullptr, 10);
        if (announced > st->limit) {
          st->overflow = true;
          st->overflow_what = "Content-Length " + cl->second;
          return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
        }
        // Room for the announced body (within the limit, and at most
        // kMaxReserve: a length is no promise) so that it is received
        // without the string's regrowth copies.
        if (announced > st->sink->capacity()) {
          st->sink->reserve(std::min<uint64_t>(announced, kMaxReserve));
        }
      }
    }
    if (st->sink->size() + len > st->limit) {
      if (st->is_error) {
        st->sink->append(data, st->limit - st->sink->size());
        st->error_truncated = true;
      } else {
        st->overflow = true;
        st->overflow_what = "more than " + std::to_string(st->limit) + " bytes";
      }
      return 0;
    }
    st->sink->append(data, len);
    return len;
  }
  struct HeaderState {
    std::map<std::string, std::string>* headers = nullptr;
    size_t lines = 0, bytes = 0;
    bool overflow = false;
  };
  static size_t WriteHeader(char* data, size_t size, size_t n, void* user) {
    auto* st = static_cast<HeaderState*>(user);
    st->lines++;
    st->bytes += size * n;
    if (st->lines > kMaxHeaderLines || st->bytes > kMaxHeaderBytes) {
      st->overflow = true;
      return 0;  // aborts the transfer
    }
    std::string line(data, size * n);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      (*st->headers)[name] = Trim(line.substr(colon + 1));
    }
    return size * n;
  }

  // Where requests go: changes when S3 redirects to the bucket's region.
  struct Target {
    std::string region, base_url, host, path_prefix, endpoint;
  };
  // Points requests at `region`: the endpoint derived from it when none was
  // configured, else the configured one signed for the new region.
  void SetTarget(const std::string& region) {
    Target t;
    t.region = region;
    std::string endpoint =
        endpoint_from_region_ ? "https://s3." + region + ".amazonaws.com" : configured_endpoint_;
    size_t scheme = endpoint.find("://");
    std::string host = endpoint.substr(scheme + 3);
    if (path_style_) {
      t.base_url = endpoint;
      t.host = host;
      t.path_prefix = "/" + bucket_;
    } else {
      t.base_url = endpoint.substr(0, scheme + 3) + bucket_ + "." + host;
      t.host = bucket_ + "." + host;
    }
    t.endpoint = endpoint;
    std::lock_guard<std::mutex> lock(target_mu_);
    target_ = std::move(t);
  }
  Target CurrentTarget() const {
    std::lock_guard<std::mutex> lock(target_mu_);
    return target_;
  }

  // The region S3 says the bucket is in, from a redirect or a wrong-region
  // error (x-amz-bucket-region, else the error body's <Region>); "" if the
  // answer is no such redirect.
  static std::string RedirectRegion(const Response& resp, const std::string& signed_region) {
    if (resp.status != 301 && resp.status != 307 && resp.status != 400) return "";
    std::string region;
    if (auto h = resp.headers.find("x-amz-bucket-region"); h != resp.headers.end()) {
      region = h->second;
    } else if (!resp.body.empty()) {
      tinyxml2::XMLDocument doc;
      if (doc.Parse(resp.body.data(), resp.body.size()) == tinyxml2::XML_SUCCESS &&
          doc.RootElement()) {
        region = Text(doc.RootElement(), "Region");
      }
    }
    if (!PlausibleRegion(region) || region == signed_region) return "";
    return region;
  }

  // One request, signed with fresh credentials; a redirect to the bucket's
  // region is followed once (and remembered for every later request).
  Status Perform(Request& req, Response* resp, const char* op, std::string_view key) {
    Target target = CurrentTarget();
    Status st = PerformOnce(req, resp, op, key, target);
    std::string region = st.ok() ? "" : RedirectRegion(*resp, target.region);
    if (region.empty()) return st;
    SetTarget(region);
    *resp = Response();
    return PerformOnce(req, resp, op, key, CurrentTarget());
  }

  Status PerformOnce(Request& req, Response* resp, const char* op, std::string_view key,
                     const Target& target) {
    std::string where = std::string(op) + " " + Where(key);
    Result<aws::Credentials> creds = credentials_->Get();
    if (!creds.ok()) {
      return creds.status().WithContext(where + ": credentials from " + credentials_->Describe());
    }
    uint64_t body_size = 0;
    if (req.body) {
      for (std::string_view p : *req.body) body_size += p.size();
    }
    std::string canonical_uri = target.path_prefix + "/" + sigv4::UriEncode(req.key, false);
    if (req.key.empty()) canonical_uri = target.path_prefix.empty() ? "/" : target.path_prefix;
    std::string query = sigv4::CanonicalQuery(req.query);
    std::string payload_hash;  // empty: the SHA-256 of the body
    if (req.object_data && UnsignedPayloads()) {
      payload_hash = sigv4::kUnsignedPayload;
      req.headers["x-amz-checksum-crc32c"] = sigv4::Crc32cBase64(*req.body);
    }
    sigv4::Signed sig =
        sigv4::Sign({creds->access_key, creds->secret_key, creds->session_token}, target.region,
                    req.method, target.host, canonical_uri, query, req.headers,
                    req.body ? *req.body : Payload{}, std::time(nullptr), payload_hash);
    std::string url = target.base_url + canonical_uri + (query.empty() ? "" : "?" + query);
    CURL* h = Acquire();
    curl_easy_reset(h);
    curl_slist* headers = nullptr;
    for (const auto& [name, value] : sig.headers) {
      headers = curl_slist_append(headers, (name + ": " + value).c_str());
    }
    headers = curl_slist_append(headers, "Expect:");
    ReadState rs{req.body};
    WriteState ws;
    ws.handle = h;
    ws.sink = req.sink ? req.sink : &resp->body;
    ws.error_body = &resp->body;
    ws.limit = req.limit ? req.limit : kMaxXmlBody;
    ws.headers = &resp->headers;
    HeaderState hs;
    hs.headers = &resp->headers;
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);  // never normalise what was signed
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
    // The whole request (connect, send, receive), per HTTP request.
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout_ms));
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.low_speed_time_s));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
    if (!ca_bundle_.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, ca_bundle_.c_str());
    char error[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &S3Store::WriteBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &ws);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &S3Store::WriteHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hs);
    // Large bodies move through bigger buffers: fewer callbacks and send /
    // recv calls per byte. Only then: curl allocates them per request (a
    // whole-object GET, of unknown size, keeps the small default).
    if (body_size >= (1 << 20)) {
      curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, static_cast<long>(kLargeUploadBuffer));
    }
    if (req.large_answer) {
      curl_easy_setopt(h, CURLOPT_BUFFERSIZE, static_cast<long>(kLargeReceiveBuffer));
    }
    if (req.method == "PUT") {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(body_size));
      curl_easy_setopt(h, CURLOPT_READFUNCTION, &S3Store::ReadBody);
      curl_easy_setopt(h, CURLOPT_READDATA, &rs);
    } else if (req.method == "POST") {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_size));
      curl_easy_setopt(h, CURLOPT_READFUNCTION, &S3Store::ReadBody);
      curl_easy_setopt(h, CURLOPT_READDATA, &rs);
    } else if (req.method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (req.method == "DELETE") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    resp->curl = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    double connect_time = 0;
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME, &connect_time);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);  // `error` goes out of scope
    curl_slist_free_all(headers);
    Release(h);
    if (hs.overflow) {
      return Status::Corrupt(where + ": the server " + target.endpoint + " sent more than " +
                             std::to_string(kMaxHeaderLines) + " header lines or " +
                             std::to_string(kMaxHeaderBytes) + " bytes of headers");
    }
    if (ws.overflow) {
      return Status::Corrupt(
          where + ": the server " + target.endpoint + " sent " + ws.overflow_what + ", more than " +
          (req.limit_what.empty() ? "the " + std::to_string(ws.limit) + " bytes a response may hold"
                                  : req.limit_what) +
          "; transfer aborted");
    }
    if (resp->curl == CURLE_WRITE_ERROR && ws.error_truncated) {
      resp->curl = CURLE_OK;  // an error answer, cut short on purpose: classify it
    }
    if (resp->curl == CURLE_OPERATION_TIMEDOUT) {
      return Status::Transient(where + ": timed out talking to " + target.endpoint + " (" +
                               (connect_time == 0
                                    ? "no connection within connect_timeout_ms " +
                                          std::to_string(options_.connect_timeout_ms) + " ms"
                                    : "the request did not complete within request_timeout_ms " +
                                          std::to_string(options_.request_timeout_ms) + " ms") +
                               ")");
    }
    if (resp->curl != CURLE_OK) {
      // Named with the endpoint: "Could not resolve host" alone does not
      // say which of the configured endpoints is wrong.
      std::string msg = where + ": " + curl_easy_strerror(resp->curl) + " (endpoint " +
                        target.endpoint + (error[0] ? std::string(": ") + error : "") + ")";
      if (resp->curl == CURLE_SSL_CACERT || resp->curl == CURLE_PEER_FAILED_VERIFICATION ||
          resp->curl == CURLE_SSL_CACERT_BADFILE) {
        return Status::Auth(msg + " (certificate verification failed)");
      }
      if (resp->curl == CURLE_URL_MALFORMAT) return Status::InvalidArgument(msg);
      return Status::Transient(msg);
    }
    if (resp->status >= 200 && resp->status < 300) return Status::OK();
    // The server's message is quoted: it must not carry our secrets back.
    return aws::Redact(Classify(where, resp->status, resp->body), *creds);
  }

  Status Classify(const std::string& where, long status, const std::string& body) const {
    std::string code, message;
    tinyxml2::XMLDocument doc;
    if (!body.empty() && doc.Parse(body.data(), body.size()) == tinyxml2::XML_SUCCESS &&
        doc.RootElement()) {
      code = Text(doc.RootElement(), "Code");
      message = Text(doc.RootElement(), "Message");
    }
    std::string msg = where + ": HTTP " + std::to_string(status) +
                      (code.empty() ? "" : " " + code) +
                      (message.empty() ? "" : " (" + message + ")");
    if (code == "NoSuchBucket") {
      return Status::NotFound(where + ": bucket '" + bucket_ + "' does not exist");
    }
    if (status == 404) return Status::NotFound(msg);
    if (status == 412 || code == "PreconditionFailed" || code == "ConditionalRequestConflict") {
      return Status::PreconditionFailed(msg);
    }
    if (status == 429 || code == "SlowDown" || code == "Throttling" ||
        code == "ThrottlingException" || code == "RequestLimitExceeded") {
      return Status::Throttled(msg);
    }
    if (status == 401 || status == 403) return Status::Auth(msg);
    if (status == 301 || status == 307) {
      return Status::IOError(msg + ": the bucket is not at " + CurrentTarget().endpoint +
                             " (another region or endpoint; S3 named no region to follow)");
    }
    if (status >= 500 || status == 408) return Status::Transient(msg);
    if (status == 400 || status == 411 || status == 413) return Status::InvalidArgument(msg);
    return Status::IOError(msg);
  }

  std::string bucket_, prefix_;
  StoreOptions options_;
  std::shared_ptr<aws::CachedCredentials> credentials_;
  std::string ca_bundle_, configured_endpoint_;
  bool path_style_ = false, endpoint_from_region_ = false;
  mutable std::mutex target_mu_;
  Target target_;
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  std::vector<CURL*> idle_;
};

}  // namespace

Result<std::shared_ptr<ObjectStore>> NewS3Store(std::string_view bucket, std::string_view prefix,
                                                const StoreOptions& options) {
  if (std::string why = BadBucket(bucket); !why.empty()) {
    return Status::InvalidArgument("s3: invalid bucket name '" + Shown(bucket) + "': " + why);
  }
  // One trailing '/' is how a prefix is often written ("s3://b/dir/").
  if (prefix.ends_with('/')) prefix.remove_suffix(1);
  if (!prefix.empty()) {
    if (std::string why = BadPath(prefix); !why.empty()) {
      return Status::InvalidArgument("s3://" + std::string(bucket) + ": invalid prefix '" +
                                     Shown(prefix) + "': " + why);
    }
  }
  HF_RETURN_IF_ERROR(ValidateOptions(options));
  auto store = std::make_shared<S3Store>(std::string(bucket), std::string(prefix), options);
  HF_RETURN_IF_ERROR(store->Init());
  return std::shared_ptr<ObjectStore>(store);
}

}  // namespace hyperfile
