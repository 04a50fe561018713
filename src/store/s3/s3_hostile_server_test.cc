// SPDX-License-Identifier: Apache-2.0
// The S3 backend against a hostile server on 127.0.0.1 (a thread in the
// test): trickling answers must hit the per-request deadline, oversized
// bodies, headers and error bodies must be cut off while they arrive, and a
// LIST that never advances must end. Also the checks made before any
// request: keys, prefixes, bucket names and StoreOptions.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "hyperfile/object_store.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

using Clock = std::chrono::steady_clock;

// A one-connection-at-a-time HTTP server. `respond` gets the request head and
// writes the answer with Send (which fails once the client hung up).
class HostileServer {
 public:
  using Handler = std::function<void(HostileServer*, int fd, const std::string& request)>;
  explicit HostileServer(Handler respond) : respond_(std::move(respond)) {
    listen_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listen_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(listen_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~HostileServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_);
  }
  int port() const { return port_; }
  bool stopping() const { return stop_; }
  uint64_t sent() const { return sent_; }  // body/header bytes the client accepted
  int requests() const { return requests_; }

  // Writes all of `data`; false once the client is gone (or the test ends).
  bool Send(int fd, std::string_view data) {
    while (!data.empty()) {
      if (stop_) return false;
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent_ += static_cast<uint64_t>(n);
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // ~2 KiB/s until the client hangs up or `limit` bytes are sent.
  void Trickle(int fd, uint64_t limit = 1 << 30) {
    for (uint64_t done = 0; done < limit && !stop_; done += 64) {
      if (!Send(fd, std::string(64, 'a'))) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{listen_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int fd = ::accept(listen_, nullptr, nullptr);
      if (fd < 0) continue;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos && !stop_) {
        pollfd q{fd, POLLIN, 0};
        if (::poll(&q, 1, 100) <= 0) continue;
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      requests_++;
      if (!request.empty()) respond_(this, fd, request);
      ::close(fd);
    }
  }

  Handler respond_;
  int listen_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> sent_{0};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

StoreOptions Dummy(int port) {
  StoreOptions o;
  o.endpoint = "http://127.0.0.1:" + std::to_string(port);
  o.addressing = StoreOptions::Addressing::kPath;
  o.access_key_id = "AKIDEXAMPLE";
  o.secret_access_key = "dummy-secret";
  o.region = "us-east-1";
  o.retry = false;
  return o;
}

std::shared_ptr<ObjectStore> Open(int /*port*/, StoreOptions o) {
  auto s = NewS3Store("bucket", "pre", o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : nullptr;
}

bool Has(const Status& st, std::string_view text) {
  return st.message().find(text) != std::string::npos;
}

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// 200 with a large Content-Length, then the body at ~2 KiB/s; for HEAD the
// headers themselves trickle (a HEAD answer has no body).
void TrickleHandler(HostileServer* s, int fd, const std::string& request) {
  if (request.starts_with("HEAD ")) {
    if (!s->Send(fd, "HTTP/1.1 200 OK\r\n")) return;
    while (!s->stopping()) {
      if (!s->Send(fd, "x-pad: " + std::string(56, 'a') + "\r\n")) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    return;
  }
  if (!s->Send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")) return;
  s->Trickle(fd);
}

TEST(S3Hostile, TricklingServerHitsTheRequestTimeout) {
  HostileServer server(TrickleHandler);
  StoreOptions o = Dummy(server.port());
  o.request_timeout_ms = 1500;
  o.low_speed_time_s = 30;  // 2 KiB/s is above the 1 KiB/s low-speed limit anyway
  auto store = Open(server.port(), o);
  ASSERT_NE(store, nullptr);
  std::string out;
  std::vector<ObjectInfo> all;
  for (const char* op : {"get", "head", "list"}) {
    auto start = Clock::now();
    Status st = std::string(op) == "get"    ? store->Get("seg/1", &out)
                : std::string(op) == "head" ? store->Head("seg/1", nullptr)
                                            : store->List("seg/", "", 0, &all);
    double took = Seconds(start);
    EXPECT_TRUE(st.IsTransient()) << op << ": " << st.ToString();
    EXPECT_TRUE(Has(st, "request_timeout_ms 1500 ms")) << st.ToString();
    EXPECT_TRUE(Has(st, "127.0.0.1:" + std::to_string(server.port()))) << st.ToString();
    EXPECT_TRUE(Has(st, "s3://bucket/pre/seg/")) << st.ToString();
    EXPECT_GE(took, 1.0) << op;
    EXPECT_LT(took, 10.0) << op;
  }
}

TEST(S3Hostile, RangedGetLongerThanAskedIsCutOff) {
  // No Content-Length: the body streams until the client hangs up.
  HostileServer server([](HostileServer* s, int fd, const std::string&) {
    if (!s->Send(fd, "HTTP/1.1 206 Partial Content\r\nConnection: close\r\n\r\n")) return;
    std::string chunk(64 << 10, 'b');
    for (int i = 0; i < 8192; i++) {  // up to 512 MiB
      if (!s->Send(fd, chunk)) return;
    }
  });
  auto store = Open(server.port(), Dummy(server.port()));
  std::string out;
  Status st = store->Get("seg/1", 0, 100, &out, nullptr);
  EXPECT_TRUE(st.IsCorrupt()) << st.ToString();
  EXPECT_TRUE(Has(st, "s3://bucket/pre/seg/1")) << st.ToString();
  EXPECT_TRUE(Has(st, "the 100 bytes asked for")) << st.ToString();
  EXPECT_LT(server.sent(), 64u << 20);  // aborted early, not after 512 MiB
}

TEST(S3Hostile, ContentLengthBeyondTheBoundIsRefusedAtOnce) {
  HostileServer server([](HostileServer* s, int fd, const std::string&) {
    if (!s->Send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 536870912\r\n\r\n")) return;
    std::string chunk(64 << 10, 'c');
    for (int i = 0; i < 8192; i++) {
      if (!s->Send(fd, chunk)) return;
    }
  });
  StoreOptions o = Dummy(server.port());
  o.max_whole_object_bytes = 1 << 20;
  auto store = Open(server.port(), o);
  std::string out;
  Status whole = store->Get("snap/x", &out);
  EXPECT_TRUE(whole.IsCorrupt()) << whole.ToString();
  EXPECT_TRUE(Has(whole, "Content-Length 536870912")) << whole.ToString();
  EXPECT_TRUE(Has(whole, "max_whole_object_bytes")) << whole.ToString();
  Status ranged = store->Get("snap/x", 10, 1000, &out, nullptr);
  EXPECT_TRUE(ranged.IsCorrupt()) << ranged.ToString();
  EXPECT_TRUE(Has(ranged, "the 1000 bytes asked for")) << ranged.ToString();
  EXPECT_LT(server.sent(), 64u << 20);
}

TEST(S3Hostile, EnormousErrorBodyIsBounded) {
  HostileServer server([](HostileServer* s, int fd, const std::string&) {
    if (!s->Send(fd, "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n<Error>"))
      return;
    std::string chunk(64 << 10, 'e');
    for (int i = 0; i < 8192; i++) {
      if (!s->Send(fd, chunk)) return;
    }
  });
  auto store = Open(server.port(), Dummy(server.port()));
  std::string out;
  std::vector<ObjectInfo> all;
  auto start = Clock::now();
  Status get = store->Get("seg/1", &out);
  Status list = store->List("", "", 0, &all);
  EXPECT_TRUE(get.IsTransient()) << get.ToString();
  EXPECT_TRUE(Has(get, "HTTP 500")) << get.ToString();
  EXPECT_TRUE(list.IsTransient()) << list.ToString();
  EXPECT_TRUE(out.empty());
  EXPECT_LT(get.message().size(), 4096u);
  EXPECT_LT(server.sent(), 64u << 20);
  EXPECT_LT(Seconds(start), 10.0);
}

TEST(S3Hostile, HeaderFloodIsBounded) {
  HostileServer server([](HostileServer* s, int fd, const std::string&) {
    if (!s->Send(fd, "HTTP/1.1 200 OK\r\n")) return;
    for (int i = 0; i < 1000000; i++) {
      if (!s->Send(fd, "x-h" + std::to_string(i) + ": v\r\n")) return;
    }
  });
  auto store = Open(server.port(), Dummy(server.port()));
  Status st = store->Head("seg/1", nullptr);
  EXPECT_TRUE(st.IsCorrupt()) << st.ToString();
  EXPECT_TRUE(Has(st, "header")) << st.ToString();
  EXPECT_LT(server.sent(), 16u << 20);
}

// Every LIST page says "more" with the same token and the same key.
TEST(S3Hostile, ListThatNeverAdvancesEnds) {
  HostileServer server([](HostileServer* s, int fd, const std::string&) {
    std::string body = "<ListBucketResult><IsTruncated>" +
                       std::string(s->requests() < 200 ? "true" : "false") +
                       "</IsTruncated><NextContinuationToken>same</NextContinuationToken>"
                       "<Contents><Key>pre/seg/1</Key><Size>1</Size></Contents></ListBucketResult>";
    s->Send(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n" + body);
  });
  auto store = Open(server.port(), Dummy(server.port()));
  std::vector<ObjectInfo> all;
  Status st = store->List("seg/", "", 0, &all);
  EXPECT_TRUE(st.IsCorrupt()) << st.ToString();
  EXPECT_LE(server.requests(), 3);
}

TEST(S3Hostile, ListedKeysOutsideThePrefixAreCorrupt) {
  HostileServer server([](HostileServer* s, int fd, const std::string&) {
    std::string body =
        "<ListBucketResult><IsTruncated>false</IsTruncated>"
        "<Contents><Key>other/seg/1</Key><Size>1</Size></Contents></ListBucketResult>";
    s->Send(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n\r\n" + body);
  });
  auto store = Open(server.port(), Dummy(server.port()));
  std::vector<ObjectInfo> all;
  Status st = store->List("seg/", "", 0, &all);
  EXPECT_TRUE(st.IsCorrupt()) << st.ToString();
  EXPECT_TRUE(Has(st, "outside the prefix")) << st.ToString();
}

// ---- checks made before any request (no server needed: port 1) ----------

TEST(S3Validation, KeysWithDotSegmentsOrControlCharactersAreRefused) {
  StoreOptions o = Dummy(1);
  o.connect_timeout_ms = 200;
  auto store = Open(1, o);
  ASSERT_NE(store, nullptr);
  const std::string nul("a\0b", 3);
  for (const std::string& bad :
       std::vector<std::string>{"", ".", "..", "a/./b", "a/../b", "../x", "x/..", "a//b", "/a",
                                "a/", "tab\there", "new\nline", nul, std::string(1100, 'k')}) {
    std::string out;
    std::vector<Status> all = {
        store->Put(bad, "x"),      store->Get(bad, &out), store->Get(bad, 0, 10, &out, nullptr),
        store->Head(bad, nullptr), store->Delete(bad),    store->DeleteMany({"ok", bad})};
    for (const Status& st : all) {
      EXPECT_TRUE(st.IsInvalidArgument()) << "'" << bad << "': " << st.ToString();
      EXPECT_TRUE(Has(st, "invalid key")) << st.ToString();
      EXPECT_TRUE(Has(st, "s3://bucket/pre")) << st.ToString();
    }
  }
  std::vector<ObjectInfo> list;
  EXPECT_TRUE(store->List("a\nb", "", 0, &list).IsInvalidArgument());
}

TEST(S3Validation, PrefixesWithDotSegmentsAreRefused) {
  for (const char* prefix : {"a/../b", "./a", "a/.", "..", "a//b", "/a", "a\tb", "a//"}) {
    auto s = NewS3Store("bucket", prefix, Dummy(1));
    ASSERT_FALSE(s.ok()) << prefix;
    EXPECT_TRUE(s.status().IsInvalidArgument()) << s.status().ToString();
    EXPECT_TRUE(Has(s.status(), "invalid prefix")) << s.status().ToString();
  }
  for (const char* uri : {"s3://bucket/a/../b", "s3://bucket/./x", "s3://bucket//x"}) {
    auto s = OpenStore(uri, Dummy(1));
    ASSERT_FALSE(s.ok()) << uri;
    EXPECT_TRUE(s.status().IsInvalidArgument()) << uri << ": " << s.status().ToString();
  }
  EXPECT_TRUE(NewS3Store("bucket", "a/b/", Dummy(1)).ok());  // one trailing '/' is fine
  EXPECT_TRUE(NewS3Store("bucket", "", Dummy(1)).ok());
}

TEST(S3Validation, BucketNamesFollowS3Rules) {
  for (const char* bad :
       {"ab", "Bucket", "buck_et", "-bucket", "bucket-", "a..b", "bu/cket", "bu?cket",
        "bucket name", "a123456789012345678901234567890123456789012345678901234567890123"}) {
    auto s = NewS3Store(bad, "", Dummy(1));
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_TRUE(s.status().IsInvalidArgument()) << s.status().ToString();
    EXPECT_TRUE(Has(s.status(), "invalid bucket name")) << s.status().ToString();
  }
  for (const char* good : {"abc", "hyperfile-test", "hyperfile-no-such-bucket-0123456789abcdef",
                           "my.bucket.1", "unconfigured", "bucket"}) {
    EXPECT_TRUE(NewS3Store(good, "", Dummy(1)).ok()) << good;
  }
}

TEST(S3Validation, StoreOptionsOutOfRangeAreRefused) {
  struct Case {
    const char* name;
    std::function<void(StoreOptions&)> set;
  };
  std::vector<Case> cases = {
      {"max_in_flight", [](StoreOptions& o) { o.max_in_flight = 0; }},
      {"max_in_flight", [](StoreOptions& o) { o.max_in_flight = -3; }},
      {"connect_timeout_ms", [](StoreOptions& o) { o.connect_timeout_ms = 0; }},
      {"request_timeout_ms", [](StoreOptions& o) { o.request_timeout_ms = 0; }},
      {"request_timeout_ms", [](StoreOptions& o) { o.request_timeout_ms = -1; }},
      {"low_speed_time_s", [](StoreOptions& o) { o.low_speed_time_s = 0; }},
      {"multipart_part_size", [](StoreOptions& o) { o.multipart_part_size = 1 << 20; }},
      {"multipart_part_size", [](StoreOptions& o) { o.multipart_part_size = 6ull << 30; }},
      {"multipart_threshold",
       [](StoreOptions& o) {
         o.multipart_part_size = 16 << 20;
         o.multipart_threshold = 8 << 20;
       }},
      {"multipart_threshold", [](StoreOptions& o) { o.multipart_threshold = 6ull << 30; }},
      {"max_whole_object_bytes", [](StoreOptions& o) { o.max_whole_object_bytes = 0; }},
  };
  for (const Case& c : cases) {
    StoreOptions o = Dummy(1);
    c.set(o);
    auto s = NewS3Store("bucket", "p", o);
    ASSERT_FALSE(s.ok()) << c.name;
    EXPECT_TRUE(s.status().IsInvalidArgument()) << s.status().ToString();
    EXPECT_TRUE(Has(s.status(), std::string("StoreOptions::") + c.name)) << s.status().ToString();
    EXPECT_TRUE(Has(s.status(), "accepted: ")) << s.status().ToString();
    auto via_uri = OpenStore("s3://bucket/p", o);
    EXPECT_TRUE(via_uri.status().IsInvalidArgument()) << c.name;
  }
  for (auto set : std::vector<std::function<void(StoreOptions&)>>{
           [](StoreOptions& o) { o.retry_max_attempts = 0; },
           [](StoreOptions& o) { o.retry_base_delay_ms = -1; },
           [](StoreOptions& o) { o.retry_max_delay_ms = -1; },
           [](StoreOptions& o) { o.retry_max_total_ms = -5; }}) {
    StoreOptions o = Dummy(1);
    o.retry = true;
    set(o);
    auto s = OpenStore("s3://bucket/p", o);
    ASSERT_FALSE(s.ok());
    EXPECT_TRUE(s.status().IsInvalidArgument()) << s.status().ToString();
    EXPECT_TRUE(Has(s.status(), "StoreOptions::retry_")) << s.status().ToString();
  }
  StoreOptions fine = Dummy(1);
  fine.multipart_part_size = 5 << 20;
  fine.multipart_threshold = 8 << 20;
  EXPECT_TRUE(NewS3Store("bucket", "p", fine).ok());
}

// The request heads a server saw for PUTs of `body`, with either payload
// protection (the body is read, then 200).
std::vector<std::string> PutHeads(StoreOptions::PayloadSigning mode, const std::string& body,
                                  bool multipart) {
  std::mutex mu;
  std::vector<std::string> heads;
  HostileServer server([&](HostileServer* s, int fd, const std::string& request) {
    {
      std::lock_guard<std::mutex> lock(mu);
      heads.push_back(request.substr(0, request.find("\r\n\r\n")));
    }
    std::string lower = request;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    size_t cl = lower.find("\r\ncontent-length: ");
    uint64_t want =
        cl == std::string::npos ? 0 : std::strtoull(lower.c_str() + cl + 18, nullptr, 10);
    uint64_t have = request.size() - (request.find("\r\n\r\n") + 4);
    char buf[65536];
    while (have < want && !s->stopping()) {
      pollfd q{fd, POLLIN, 0};
      if (::poll(&q, 1, 100) <= 0) continue;
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      have += static_cast<uint64_t>(n);
    }
    std::string answer = "";
    if (request.starts_with("POST ") && request.find("?uploads") != std::string::npos) {
      answer =
          "<InitiateMultipartUploadResult><UploadId>u1</UploadId>"
          "</InitiateMultipartUploadResult>";
    } else if (request.starts_with("POST ")) {
      answer = "<CompleteMultipartUploadResult></CompleteMultipartUploadResult>";
    }
    s->Send(fd, "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nConnection: close\r\nContent-Length: " +
                    std::to_string(answer.size()) + "\r\n\r\n" + answer);
  });
  StoreOptions o = Dummy(server.port());
  o.payload_signing = mode;
  if (multipart) {
    o.multipart_part_size = 5 << 20;
    o.multipart_threshold = 5 << 20;
  }
  auto store = Open(server.port(), o);
  Status st = store->Put("seg/1", body);
  EXPECT_TRUE(st.ok()) << st.ToString();
  std::lock_guard<std::mutex> lock(mu);
  return heads;
}

bool HeadHas(const std::string& head, const std::string& line) {
  std::string h = head, l = line;
  std::transform(h.begin(), h.end(), h.begin(), ::tolower);
  std::transform(l.begin(), l.end(), l.begin(), ::tolower);
  return h.find("\r\n" + l + "\r\n") != std::string::npos || h.ends_with("\r\n" + l);
}

TEST(S3PayloadSigning, DefaultIsUnsignedPayloadWithSignedCrc32c) {
  auto heads = PutHeads(StoreOptions::PayloadSigning::kUnsignedCrc32c, "hello world", false);
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_TRUE(HeadHas(heads[0], "x-amz-content-sha256: UNSIGNED-PAYLOAD")) << heads[0];
  EXPECT_TRUE(HeadHas(heads[0], "x-amz-checksum-crc32c: yZRlqg==")) << heads[0];
  EXPECT_NE(heads[0].find("x-amz-checksum-crc32c;x-amz-content-sha256"), std::string::npos)
      << "the checksum header is signed: " << heads[0];
}

TEST(S3PayloadSigning, Sha256SignsTheBody) {
  auto heads = PutHeads(StoreOptions::PayloadSigning::kSha256, "hello world", false);
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_TRUE(HeadHas(heads[0],
                      "x-amz-content-sha256: "
                      "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"))
      << heads[0];
  EXPECT_EQ(heads[0].find("x-amz-checksum-crc32c"), std::string::npos) << heads[0];
}

TEST(S3PayloadSigning, MultipartPartsCarryCrc32c) {
  std::string body(6 << 20, 'm');  // two parts: 5 MiB and 1 MiB
  auto heads = PutHeads(StoreOptions::PayloadSigning::kUnsignedCrc32c, body, true);
  ASSERT_EQ(heads.size(), 4u);  // start, two parts, completion
  EXPECT_TRUE(HeadHas(heads[0], "x-amz-checksum-algorithm: CRC32C")) << heads[0];
  int parts = 0;
  for (const std::string& h : heads) {
    if (!h.starts_with("PUT ")) continue;
    parts++;
    EXPECT_TRUE(HeadHas(h, "x-amz-content-sha256: UNSIGNED-PAYLOAD")) << h;
    EXPECT_NE(h.find("x-amz-checksum-crc32c: "), std::string::npos) << h;
  }
  EXPECT_EQ(parts, 2);
  // The completion's own (XML) body stays signed.
  EXPECT_EQ(heads[3].find("UNSIGNED-PAYLOAD"), std::string::npos) << heads[3];
}

// Both protections against the real gateway, single and multipart.
TEST(S3PayloadSigning, BothModesRoundTripOnTheGateway) {
  HF_REQUIRE_S3();
  for (auto mode :
       {StoreOptions::PayloadSigning::kUnsignedCrc32c, StoreOptions::PayloadSigning::kSha256}) {
    StoreOptions o;
    o.payload_signing = mode;
    o.multipart_part_size = 5 << 20;
    o.multipart_threshold = 5 << 20;
    auto s = testing::NewS3TestStore("payload-signing", o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    std::string small = "small object", big(11 << 20, '\0');
    for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<char>(i * 131 + (i >> 20));
    ASSERT_TRUE((*s)->Put("small", small).ok());
    Payload pieces{std::string_view(big).substr(0, 3 << 20), std::string_view(big).substr(3 << 20)};
    ASSERT_TRUE((*s)->Put("big", pieces, PutOptions{}, nullptr).ok());
    PutOptions create;
    create.if_absent = true;
    ASSERT_TRUE((*s)->Put("create-only", big, create).ok());
    std::string out;
    ASSERT_TRUE((*s)->Get("small", &out).ok());
    EXPECT_EQ(out, small);
    ASSERT_TRUE((*s)->Get("big", &out).ok());
    EXPECT_TRUE(out == big);
    ASSERT_TRUE((*s)->Get("create-only", 1 << 20, 4 << 20, &out, nullptr).ok());
    EXPECT_TRUE(out == big.substr(1 << 20, 4 << 20));
    EXPECT_TRUE((*s)->DeleteMany({"small", "big", "create-only"}).ok());
  }
}

// Against the real local gateway: dot-segment keys are refused up front
// (not a SignatureDoesNotMatch), and keys with dots inside names still work.
TEST(S3Validation, DotSegmentKeysAgainstTheGateway) {
  HF_REQUIRE_S3();
  auto s = testing::NewS3TestStore("dotkeys");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  for (const char* bad : {"a/../b", "./a", "a/./b", "a//b"}) {
    Status put = (*s)->Put(bad, "x");
    EXPECT_TRUE(put.IsInvalidArgument()) << bad << ": " << put.ToString();
    EXPECT_FALSE(Has(put, "SignatureDoesNotMatch")) << put.ToString();
  }
  ASSERT_TRUE((*s)->Put("a..b/.c/..d", "dots inside names").ok());
  std::string out;
  ASSERT_TRUE((*s)->Get("a..b/.c/..d", &out).ok());
  EXPECT_EQ(out, "dots inside names");
  ASSERT_TRUE((*s)->Delete("a..b/.c/..d").ok());
  auto config = testing::S3TestConfigFromEnv();
  auto bad_prefix = OpenStore(config->uri + "/x/../y", config->ToStoreOptions());
  EXPECT_TRUE(bad_prefix.status().IsInvalidArgument()) << bad_prefix.status().ToString();
}

}  // namespace
}  // namespace hyperfile
