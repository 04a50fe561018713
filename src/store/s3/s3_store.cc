// The S3 backend over libcurl, with AWS Signature V4 written here (no
// Debian-packaged C++ library does SigV4 for a plain libcurl client) using
// OpenSSL for SHA-256/HMAC and tinyxml2 for response bodies.
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <tinyxml2.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "hyperfile/object_store.h"
#include "store/s3/sigv4.h"

namespace hyperfile {
namespace {

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
  std::string* sink = nullptr;  // receives the body (else Response::body)
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

// Reads `key = value` lines of one [section] of an AWS ini file.
std::map<std::string, std::string> IniSection(const std::string& path, const std::string& section) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string line, current;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      current = Trim(line.substr(1, line.size() - 2));
      continue;
    }
    size_t eq = line.find('=');
    if (current == section && eq != std::string::npos) {
      out[Trim(line.substr(0, eq))] = Trim(line.substr(eq + 1));
    }
  }
  return out;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
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
    std::string profile = !options_.profile.empty() ? options_.profile : Env("AWS_PROFILE");
    if (profile.empty()) profile = "default";
    std::string home = Env("HOME");
    std::string cred_file = Env("AWS_SHARED_CREDENTIALS_FILE");
    if (cred_file.empty()) cred_file = home + "/.aws/credentials";
    std::string config_file = Env("AWS_CONFIG_FILE");
    if (config_file.empty()) config_file = home + "/.aws/config";
    auto creds = IniSection(cred_file, profile);
    auto config = IniSection(config_file, profile == "default" ? "default" : "profile " + profile);
    auto pick = [](std::initializer_list<std::string> values) {
      for (const std::string& v : values) {
        if (!v.empty()) return v;
      }
      return std::string();
    };
    key_.access_key =
        pick({options_.access_key_id, Env("AWS_ACCESS_KEY_ID"), creds["aws_access_key_id"]});
    key_.secret_key = pick(
        {options_.secret_access_key, Env("AWS_SECRET_ACCESS_KEY"), creds["aws_secret_access_key"]});
    key_.session_token =
        pick({options_.session_token, Env("AWS_SESSION_TOKEN"), creds["aws_session_token"]});
    region_ = pick({options_.region, Env("AWS_REGION"), Env("AWS_DEFAULT_REGION"), config["region"],
                    "us-east-1"});
    std::string endpoint = pick({options_.endpoint, Env("AWS_ENDPOINT_URL_S3"),
                                 Env("AWS_ENDPOINT_URL"), config["endpoint_url"]});
    if (key_.access_key.empty() || key_.secret_key.empty()) {
      return Status::Auth("s3://" + bucket_ +
                          ": no credentials (set AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials)");
    }
    bool path_style = options_.addressing == StoreOptions::Addressing::kPath ||
                      (options_.addressing == StoreOptions::Addressing::kAuto && !endpoint.empty());
    if (endpoint.empty()) endpoint = "https://s3." + region_ + ".amazonaws.com";
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    size_t scheme = endpoint.find("://");
    if (scheme == std::string::npos)
      return Status::InvalidArgument("bad S3 endpoint '" + endpoint + "'");
    std::string host = endpoint.substr(scheme + 3);
    if (path_style) {
      base_url_ = endpoint;
      host_ = host;
      path_prefix_ = "/" + bucket_;
    } else {
      base_url_ = endpoint.substr(0, scheme + 3) + bucket_ + "." + host;
      host_ = bucket_ + "." + host;
      path_prefix_ = "";
    }
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
    while (!prefix_.empty() && prefix_.front() == '/') prefix_.erase(0, 1);
    return Status::OK();
  }

  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    uint64_t total = 0;
    for (std::string_view p : data) total += p.size();
    if (total > options_.multipart_threshold && options.if_match.empty()) {
      HF_RETURN_IF_ERROR(PutMultipart(key, data, total, options));
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
    if (length == 0) return Head(key, info);
    Request req;
    req.key = FullKey(key);
    if (offset != 0 || length != kToEnd) {
      std::string range = "bytes=" + std::to_string(offset) + "-";
      if (length != kToEnd) range += std::to_string(offset + length - 1);
      req.headers["range"] = range;
    }
    req.sink = out;
    // The body arrives in pieces of a few KiB: room for all of it up front
    // saves the string's regrowth copies (bounded: a bad length is no promise).
    if (length != kToEnd) out->reserve(std::min<uint64_t>(length, 64ull << 20));
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
    std::string token;
    size_t got = 0;
    for (;;) {
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
        if (full.size() < strip) continue;
        info.key = full.substr(strip);
        info.size = std::strtoull(Text(c, "Size").c_str(), nullptr, 10);
        info.etag = StripQuotes(Text(c, "ETag"));
        time_t t = curl_getdate(Text(c, "LastModified").c_str(), nullptr);
        info.mtime_ms = t > 0 ? static_cast<int64_t>(t) * 1000 : 0;
        out->push_back(std::move(info));
        got++;
      }
      bool truncated = Text(root, "IsTruncated") == "true";
      token = Text(root, "NextContinuationToken");
      if (!truncated || token.empty() || (limit != 0 && got >= limit)) return Status::OK();
    }
  }

  Status Delete(std::string_view key) override {
    Request req;
    req.method = "DELETE";
    req.key = FullKey(key);
    Response resp;
    Status st = Perform(req, &resp, "delete", key);
    return st.IsNotFound() ? Status::OK() : st;
  }

  Status DeleteMany(const std::vector<std::string>& keys) override {
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

  // Large objects: parts uploaded in parallel (bounded by max_in_flight),
  // then a completion that is itself conditional when the put is
  // create-only (If-None-Match on CompleteMultipartUpload, as AWS supports).
  Status PutMultipart(std::string_view key, const Payload& data, uint64_t total,
                      const PutOptions& options) {
    Request init;
    init.method = "POST";
    init.key = FullKey(key);
    init.query["uploads"] = "";
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
    std::vector<std::string> etags(parts);
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
        Response r;
        results[i] = Perform(req, &r, "put (part)", key);
        etags[i] = r.headers["etag"];
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
               XmlEscape(etags[i]) + "</ETag></Part>";
      }
      xml += "</CompleteMultipartUpload>";
      Payload body{xml};
      Request done;
      done.method = "POST";
      done.key = FullKey(key);
      done.query["uploadId"] = upload_id;
      done.body = &body;
      if (options.if_absent) {
        done.headers["if-none-match"] = "*";
        // Ceph Pacific ignores If-None-Match on the completion (measured:
        // a second create-only multipart put replaced the object), so also
        // refuse when the key exists now. This narrows the race on such
        // servers; AWS enforces the header itself.
        ObjectInfo existing;
        Status head = Head(key, &existing);
        if (head.ok()) {
          st = Status::PreconditionFailed("put " + Where(key) + ": object already exists");
        } else if (!head.IsNotFound()) {
          st = head;
        }
      }
      Response r;
      if (st.ok()) st = Perform(done, &r, "put (multipart complete)", key);
      if (st.IsNotSupported() || (r.status == 501 && options.if_absent)) {
        // The server cannot make the completion conditional: check, then
        // complete unconditionally (a narrow race, documented).
        ObjectInfo existing;
        Status head = Head(key, &existing);
        if (head.ok()) {
          st = Status::PreconditionFailed("put " + Where(key) + ": object already exists");
        } else {
          done.headers.erase("if-none-match");
          Response again;
          st = Perform(done, &again, "put (multipart complete)", key);
          r = again;
        }
      }
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
  std::string Where(std::string_view key) const { return Name() + "/" + std::string(key); }

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
  static size_t WriteBody(char* data, size_t size, size_t n, void* user) {
    static_cast<std::string*>(user)->append(data, size * n);
    return size * n;
  }
  static size_t WriteHeader(char* data, size_t size, size_t n, void* user) {
    std::string line(data, size * n);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      (*static_cast<std::map<std::string, std::string>*>(user))[name] =
          Trim(line.substr(colon + 1));
    }
    return size * n;
  }

  Status Perform(Request& req, Response* resp, const char* op, std::string_view key) {
    uint64_t body_size = 0;
    if (req.body) {
      for (std::string_view p : *req.body) body_size += p.size();
    }
    std::string canonical_uri = path_prefix_ + "/" + sigv4::UriEncode(req.key, false);
    if (req.key.empty()) canonical_uri = path_prefix_.empty() ? "/" : path_prefix_;
    std::string query = sigv4::CanonicalQuery(req.query);
    sigv4::Signed sig =
        sigv4::Sign(key_, region_, req.method, host_, canonical_uri, query, req.headers,
                    req.body ? *req.body : Payload{}, std::time(nullptr));
    std::string url = base_url_ + canonical_uri + (query.empty() ? "" : "?" + query);
    CURL* h = Acquire();
    curl_easy_reset(h);
    curl_slist* headers = nullptr;
    for (const auto& [name, value] : sig.headers) {
      headers = curl_slist_append(headers, (name + ": " + value).c_str());
    }
    headers = curl_slist_append(headers, "Expect:");
    ReadState rs{req.body};
    std::string* sink = req.sink ? req.sink : &resp->body;
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.connect_timeout_ms));
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.low_speed_time_s));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &S3Store::WriteBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &S3Store::WriteHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp->headers);
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
    curl_slist_free_all(headers);
    Release(h);
    std::string where = std::string(op) + " " + Where(key);
    if (resp->curl != CURLE_OK) {
      std::string msg = where + ": " + curl_easy_strerror(resp->curl);
      if (resp->curl == CURLE_SSL_CACERT || resp->curl == CURLE_PEER_FAILED_VERIFICATION) {
        return Status::Auth(msg + " (certificate verification failed)");
      }
      if (resp->curl == CURLE_URL_MALFORMAT) return Status::InvalidArgument(msg);
      return Status::Transient(msg);
    }
    if (resp->status >= 200 && resp->status < 300) return Status::OK();
    return Classify(where, resp->status, req.sink ? *req.sink : resp->body);
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
    if (status >= 500 || status == 408) return Status::Transient(msg);
    if (status == 400 || status == 411 || status == 413) return Status::InvalidArgument(msg);
    return Status::IOError(msg);
  }

  std::string bucket_, prefix_;
  StoreOptions options_;
  sigv4::Credentials key_;
  std::string region_, base_url_, host_, path_prefix_;
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  std::vector<CURL*> idle_;
};

}  // namespace

Result<std::shared_ptr<ObjectStore>> NewS3Store(std::string_view bucket, std::string_view prefix,
                                                const StoreOptions& options) {
  if (bucket.empty()) return Status::InvalidArgument("s3: empty bucket name");
  auto store = std::make_shared<S3Store>(std::string(bucket), std::string(prefix), options);
  HF_RETURN_IF_ERROR(store->Init());
  return std::shared_ptr<ObjectStore>(store);
}

}  // namespace hyperfile
