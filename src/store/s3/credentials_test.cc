// SPDX-License-Identifier: Apache-2.0
// The AWS credential chain and shared config (credentials.h, aws_config.h)
// against local fakes on 127.0.0.1: an EC2 metadata server (IMDSv2), a
// container-credentials server, an STS stub, credential processes written by
// the test, and profile files in a temporary HOME. Also the S3 store's use of
// them: refresh before expiry, region redirects, endpoints from the config,
// and one round trip against the real local S3 gateway through a profile
// and through a credential_process. No test reaches a real metadata address:
// every one points the services at 127.0.0.1 or disables them.
#include "store/s3/credentials.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "hyperfile/object_store.h"
#include "store/s3/aws_config.h"
#include "support/store_testing.h"

namespace hyperfile::aws {
namespace {

using namespace std::chrono_literals;

// ------------------------------------------------------------- fakes ---

struct HttpRequest {
  std::string method, path, body;
  std::map<std::string, std::string> headers;  // lower-case names
};
struct HttpReply {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// An HTTP/1.1 server on 127.0.0.1, one connection at a time, closing each
// after one answer. Records every request.
class FakeHttp {
 public:
  using Handler = std::function<HttpReply(const HttpRequest&)>;
  explicit FakeHttp(Handler handler) : handler_(std::move(handler)) {
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
  ~FakeHttp() {
    stop_ = true;
    thread_.join();
    ::close(listen_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  size_t count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_.size();
  }
  std::vector<HttpRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{listen_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int fd = ::accept(listen_, nullptr, nullptr);
      if (fd < 0) continue;
      HttpRequest req;
      if (Read(fd, &req)) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          requests_.push_back(req);
        }
        HttpReply reply = handler_(req);
        std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " X\r\n";
        for (const auto& [k, v] : reply.headers) out += k + ": " + v + "\r\n";
        out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
        out += "Connection: close\r\n\r\n";
        if (req.method != "HEAD") out += reply.body;
        Send(fd, out);
      }
      ::close(fd);
    }
  }
  bool Read(int fd, HttpRequest* req) {
    std::string data;
    char buf[8192];
    size_t head_end = std::string::npos;
    size_t want = 0;
    for (int idle = 0; idle < 100 && !stop_;) {
      if (head_end != std::string::npos && data.size() >= head_end + 4 + want) break;
      pollfd q{fd, POLLIN, 0};
      if (::poll(&q, 1, 50) <= 0) {
        idle++;
        continue;
      }
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return false;
      data.append(buf, static_cast<size_t>(n));
      if (head_end == std::string::npos &&
          (head_end = data.find("\r\n\r\n")) != std::string::npos) {
        Parse(data.substr(0, head_end), req);
        auto cl = req->headers.find("content-length");
        want = cl == req->headers.end() ? 0 : std::stoul(cl->second);
      }
    }
    if (head_end == std::string::npos) return false;
    req->body = data.substr(head_end + 4, want);
    return true;
  }
  static void Parse(const std::string& head, HttpRequest* req) {
    size_t eol = head.find("\r\n");
    std::string first = head.substr(0, eol);
    size_t sp1 = first.find(' '), sp2 = first.rfind(' ');
    req->method = first.substr(0, sp1);
    req->path = first.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = eol == std::string::npos ? head.size() : eol + 2;
    while (pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      if (end == std::string::npos) end = head.size();
      std::string line = head.substr(pos, end - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ') v++;
        req->headers[name] = line.substr(v);
      }
      pos = end + 2;
    }
  }
  void Send(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

  Handler handler_;
  int listen_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<HttpRequest> requests_;
  std::thread thread_;
};

std::string Iso(Clock::time_point t) {
  std::time_t s = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string CredsJson(const std::string& id, const std::string& secret, const std::string& token,
                      Clock::time_point expiration, const char* token_field = "Token") {
  return std::string("{\"Code\":\"Success\",\"AccessKeyId\":\"") + id +
         "\",\"SecretAccessKey\":\"" + secret + "\",\"" + token_field + "\":\"" + token +
         "\",\"Expiration\":\"" + Iso(expiration) + "\"}";
}

// A fake EC2 metadata service (IMDSv2): PUT /latest/api/token, then the
// role and its credentials with that token; anything else 401/404. The
// credentials live `life` from the (test) clock; each fetch gets a new key.
class FakeImds {
 public:
  explicit FakeImds(std::chrono::seconds life = 6h)
      : life_(life), server_([this](const HttpRequest& r) { return Answer(r); }) {}
  std::string url() const { return server_.url(); }
  const FakeHttp& server() const { return server_; }
  int fetched() const { return fetched_; }
  static constexpr const char* kSecret = "imds-secret-KEY-0123456789";

 private:
  HttpReply Answer(const HttpRequest& r) {
    if (r.method == "PUT" && r.path == "/latest/api/token") {
      if (!r.headers.count("x-aws-ec2-metadata-token-ttl-seconds")) return {400, "", {}};
      return {200, "TOKEN-abc", {}};
    }
    auto t = r.headers.find("x-aws-ec2-metadata-token");
    if (t == r.headers.end() || t->second != "TOKEN-abc") return {401, "", {}};
    if (r.path == "/latest/meta-data/iam/security-credentials/") return {200, "my-role\n", {}};
    if (r.path == "/latest/meta-data/iam/security-credentials/my-role") {
      int n = ++fetched_;
      return {
          200, CredsJson("AKIDIMDS" + std::to_string(n), kSecret, "imds-token", Now() + life_), {}};
    }
    return {404, "", {}};
  }
  std::chrono::seconds life_;
  std::atomic<int> fetched_{0};
  FakeHttp server_;
};

// The access key id in an S3 request's Authorization header.
std::string SignedKeyId(const HttpRequest& r) {
  auto a = r.headers.find("authorization");
  if (a == r.headers.end()) return "";
  size_t p = a->second.find("Credential=");
  if (p == std::string::npos) return "";
  p += 11;
  return a->second.substr(p, a->second.find('/', p) - p);
}
// The region of an S3 request's signing scope.
std::string SignedRegion(const HttpRequest& r) {
  auto a = r.headers.find("authorization");
  if (a == r.headers.end()) return "";
  // Credential=AKID/20261201/REGION/s3/aws4_request
  size_t p = a->second.find("Credential=");
  size_t d1 = a->second.find('/', p), d2 = a->second.find('/', d1 + 1);
  size_t d3 = a->second.find('/', d2 + 1);
  return a->second.substr(d2 + 1, d3 - d2 - 1);
}

// A fake S3 that takes any signed request: PUT stores, GET returns it,
// HEAD answers its size. `region` (if set) is where the bucket "is": a
// request signed for another region gets 301 + x-amz-bucket-region.
class FakeS3 {
 public:
  explicit FakeS3(std::string region = "", bool region_in_body = false)
      : region_(std::move(region)),
        in_body_(region_in_body),
        server_([this](const HttpRequest& r) { return Answer(r); }) {}
  std::string url() const { return server_.url(); }
  const FakeHttp& server() const { return server_; }

 private:
  HttpReply Answer(const HttpRequest& r) {
    if (!r.headers.count("authorization")) return {403, "", {}};
    if (!region_.empty() && SignedRegion(r) != region_) {
      if (in_body_) {
        return {400,
                "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region is wrong"
                "</Message><Region>" +
                    region_ + "</Region></Error>",
                {}};
      }
      return {
          301, "<Error><Code>PermanentRedirect</Code></Error>", {{"x-amz-bucket-region", region_}}};
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (r.method == "PUT") {
      objects_[r.path] = r.body;
      return {200, "", {{"ETag", "\"e\""}}};
    }
    auto it = objects_.find(r.path);
    if (it == objects_.end()) return {404, "<Error><Code>NoSuchKey</Code></Error>", {}};
    if (r.method == "HEAD") return {200, "", {{"ETag", "\"e\""}}};
    return {200, it->second, {{"ETag", "\"e\""}}};
  }
  std::string region_;
  bool in_body_;
  std::mutex mu_;
  std::map<std::string, std::string> objects_;
  FakeHttp server_;
};

// --------------------------------------------------------- environment ---

// Every variable the chain reads; each test starts with all of them unset,
// HOME in a fresh directory and instance metadata disabled.
const char* const kAwsVariables[] = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_STS",
    "AWS_CA_BUNDLE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_DISABLED",
    "HOME",
};

class CredentialsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    s3_ = testing::S3TestConfigFromEnv();
    for (const char* name : kAwsVariables) {
      if (const char* v = std::getenv(name)) saved_[name] = v;
      ::unsetenv(name);
    }
    Set("HOME", home_.path());
    Set("AWS_EC2_METADATA_DISABLED", "true");
    ::mkdir((home_.path() + "/.aws").c_str(), 0700);
  }
  void TearDown() override {
    SetClockForTesting(nullptr);
    for (const char* name : kAwsVariables) {
      auto it = saved_.find(name);
      if (it != saved_.end()) {
        ::setenv(name, it->second.c_str(), 1);
      } else {
        ::unsetenv(name);
      }
    }
  }
  static void Set(const char* name, const std::string& value) { ::setenv(name, value.c_str(), 1); }
  std::string Write(const std::string& name, const std::string& text, bool executable = false) {
    std::string path = home_.path() + "/" + name;
    std::ofstream(path) << text;
    if (executable) ::chmod(path.c_str(), 0700);
    return path;
  }
  void Config(const std::string& text) { Write(".aws/config", text); }
  void CredentialsFile(const std::string& text) { Write(".aws/credentials", text); }

  Result<std::unique_ptr<CredentialsProvider>> Resolve(const StoreOptions& o = {},
                                                       ChainOptions chain = {},
                                                       std::string* looked_at = nullptr) {
    auto config = SharedConfig::Load();
    if (!config.ok()) return config.status();
    return ResolveCredentialChain(o, *config, chain, looked_at);
  }
  Result<Credentials> Fetch(const StoreOptions& o = {}, ChainOptions chain = {}) {
    auto p = Resolve(o, chain);
    if (!p.ok()) return p.status();
    return (*p)->Fetch();
  }

  testing::TempDir home_;
  std::optional<testing::S3TestConfig> s3_;
  std::map<std::string, std::string> saved_;
};

bool Has(const Status& st, std::string_view text) {
  return st.message().find(text) != std::string::npos;
}

StoreOptions FakeS3Options(const std::string& endpoint) {
  StoreOptions o;
  o.endpoint = endpoint;
  o.retry = false;
  o.latency_from_environment = false;
  return o;
}

// ------------------------------------------------------------ the files ---

TEST_F(CredentialsTest, IniNestedSectionsCommentsAndCase) {
  auto ini = ParseIni(
      "# comment\n[profile a]\nRegion = eu-west-1\n; another\n"
      "s3 =\n  addressing_style = path\n  endpoint_url = http://x\n"
      "output=json\n\n[services ceph]\ns3 =\n\tendpoint_url = http://ceph:7480\n",
      "cfg");
  ASSERT_TRUE(ini.ok()) << ini.status().ToString();
  EXPECT_EQ(ini->sections["profile a"]["region"], "eu-west-1");
  EXPECT_EQ(ini->sections["profile a"]["s3.endpoint_url"], "http://x");
  EXPECT_EQ(ini->sections["profile a"]["s3.addressing_style"], "path");
  EXPECT_EQ(ini->sections["profile a"]["output"], "json");
  EXPECT_EQ(ini->sections["services ceph"]["s3.endpoint_url"], "http://ceph:7480");
}

TEST_F(CredentialsTest, IniBadLineNamesFileAndLineButNotTheText) {
  auto ini = ParseIni("[default]\naws_secret_access_key wJalrXUtnFEMI-SECRET\n", "/x/credentials");
  ASSERT_FALSE(ini.ok());
  EXPECT_TRUE(ini.status().IsInvalidArgument());
  EXPECT_TRUE(Has(ini.status(), "/x/credentials line 2")) << ini.status().ToString();
  EXPECT_FALSE(Has(ini.status(), "SECRET")) << ini.status().ToString();
  EXPECT_FALSE(ParseIni("k = v\n", "f").ok());            // before any section
  EXPECT_FALSE(ParseIni("[default\nk = v\n", "f").ok());  // unclosed header
}

TEST_F(CredentialsTest, SettingsPrecedenceOptionsThenEnvironmentThenProfile) {
  Config(
      "[default]\nregion = eu-north-1\nendpoint_url = http://profile-global\n"
      "ca_bundle = /profile/ca.pem\nservices = mine\n"
      "[services mine]\ns3 =\n  endpoint_url = http://profile-s3\n");
  auto config = SharedConfig::Load();
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto s = ResolveS3Settings({}, *config);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->region, "eu-north-1");
  EXPECT_EQ(s->endpoint, "http://profile-s3");  // [services] beats the profile's endpoint_url
  EXPECT_EQ(s->ca_bundle, "/profile/ca.pem");

  Set("AWS_ENDPOINT_URL", "http://env-global/");
  Set("AWS_DEFAULT_REGION", "ap-south-1");
  Set("AWS_CA_BUNDLE", "/env/ca.pem");
  s = ResolveS3Settings({}, *config);
  EXPECT_EQ(s->endpoint, "http://env-global");  // trailing '/' dropped
  EXPECT_EQ(s->region, "ap-south-1");
  EXPECT_EQ(s->ca_bundle, "/env/ca.pem");
  Set("AWS_ENDPOINT_URL_S3", "http://env-s3");
  Set("AWS_REGION", "us-west-2");
  s = ResolveS3Settings({}, *config);
  EXPECT_EQ(s->endpoint, "http://env-s3");
  EXPECT_EQ(s->region, "us-west-2");

  StoreOptions o;
  o.endpoint = "http://explicit";
  o.region = "sa-east-1";
  o.ca_bundle = "/explicit/ca.pem";
  s = ResolveS3Settings(o, *config);
  EXPECT_EQ(s->endpoint, "http://explicit");
  EXPECT_EQ(s->region, "sa-east-1");
  EXPECT_EQ(s->ca_bundle, "/explicit/ca.pem");
}

TEST_F(CredentialsTest, NamedProfileMustExistAndDefaultsApply) {
  Config("[profile eu]\nregion = eu-west-3\n");
  auto config = SharedConfig::Load();
  ASSERT_TRUE(config.ok());
  auto s = ResolveS3Settings({}, *config);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->region, "us-east-1");  // no default profile: AWS's default
  EXPECT_EQ(s->endpoint, "");
  Set("AWS_PROFILE", "eu");
  s = ResolveS3Settings({}, *config);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->region, "eu-west-3");
  StoreOptions o;
  o.profile = "nope";
  s = ResolveS3Settings(o, *config);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.status().IsInvalidArgument());
  EXPECT_TRUE(Has(s.status(), "'nope'")) << s.status().ToString();
  EXPECT_TRUE(Has(s.status(), home_.path() + "/.aws/config")) << s.status().ToString();
}

// ------------------------------------------------------------ the chain ---

TEST_F(CredentialsTest, ExplicitKeysThenEnvironment) {
  Set("AWS_ACCESS_KEY_ID", "AKIDENV");
  Set("AWS_SECRET_ACCESS_KEY", "env-secret");
  Set("AWS_SESSION_TOKEN", "env-token");
  auto c = Fetch();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key, "AKIDENV");
  EXPECT_EQ(c->session_token, "env-token");
  EXPECT_FALSE(c->expiration);
  StoreOptions o;
  o.access_key_id = "AKIDOPT";
  o.secret_access_key = "opt-secret";
  c = Fetch(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key, "AKIDOPT");
  EXPECT_EQ(c->session_token, "");
  o.secret_access_key = "";
  EXPECT_TRUE(Fetch(o).status().IsInvalidArgument());
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  auto partial = Fetch();
  EXPECT_TRUE(partial.status().IsInvalidArgument());
  EXPECT_TRUE(Has(partial.status(), "AWS_SECRET_ACCESS_KEY")) << partial.status().ToString();
}

TEST_F(CredentialsTest, ProfileKeysFromEitherFileCredentialsFileWins) {
  CredentialsFile("[default]\naws_access_key_id = AKIDCREDFILE\naws_secret_access_key = s1\n");
  Config(
      "[default]\naws_access_key_id = AKIDCONFIG\naws_secret_access_key = s2\n"
      "[profile cfgonly]\naws_access_key_id = AKIDCFGONLY\naws_secret_access_key = s3\n"
      "aws_session_token = tok\n");
  auto c = Fetch();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key, "AKIDCREDFILE");
  Set("AWS_PROFILE", "cfgonly");
  c = Fetch();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key, "AKIDCFGONLY");  // keys in the config file are honoured
  EXPECT_EQ(c->session_token, "tok");
}

TEST_F(CredentialsTest, EnvironmentBeatsAwsProfileButNotANamedProfile) {
  CredentialsFile("[p]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = sp\n");
  Set("AWS_ACCESS_KEY_ID", "AKIDENV");
  Set("AWS_SECRET_ACCESS_KEY", "env-secret");
  Set("AWS_PROFILE", "p");
  auto c = Fetch();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key, "AKIDENV");  // as aws-cli: AWS_PROFILE does not hide env keys
  StoreOptions o;
  o.profile = "p";
  c = Fetch(o);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key, "AKIDPROFILE");  // as aws --profile p
}

TEST_F(CredentialsTest, NothingConfiguredSaysWhatWasLookedAt) {
  auto p = Resolve();
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(p.status().IsAuth());
  for (const char* what :
       {"AWS_ACCESS_KEY_ID", "profile 'default'", "container", "AWS_EC2_METADATA_DISABLED"}) {
    EXPECT_TRUE(Has(p.status(), what)) << what << ": " << p.status().ToString();
  }
}

// ------------------------------------------------------ credential_process ---

TEST_F(CredentialsTest, CredentialProcessJson) {
  std::string script = Write("creds.sh",
                             "#!/bin/sh\n"
                             "echo '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROC\", "
                             "\"SecretAccessKey\": \"proc-secret\", \"SessionToken\": \"pt\", "
                             "\"Expiration\": \"2031-01-02T03:04:05Z\"}'\n",
                             true);
  Config("[profile proc]\ncredential_process = " + script + " --flag\n");
  StoreOptions o;
  o.profile = "proc";
  auto p = Resolve(o);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_NE((*p)->Describe().find("credential_process"), std::string::npos);
  auto c = (*p)->Fetch();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key, "AKIDPROC");
  EXPECT_EQ(c->secret_key, "proc-secret");
  EXPECT_EQ(c->session_token, "pt");
  ASSERT_TRUE(c->expiration);
  EXPECT_EQ(Iso(*c->expiration), "2031-01-02T03:04:05Z");
}

TEST_F(CredentialsTest, CredentialProcessFailuresNeverQuoteTheOutput) {
  const std::string secret = "PROCESS-SECRET-0123456789";
  struct Case {
    std::string body;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"echo '{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" + secret +
           "\"}'; exit 3",
       "status 3"},
      {"echo 'not json " + secret + "'", "not a JSON object"},
      {"echo '{\"Version\":2,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" + secret + "\"}'",
       "Version"},
      {"echo '{\"Version\":1,\"SecretAccessKey\":\"" + secret + "\"}'", "AccessKeyId"},
      {"echo '{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" + secret +
           "\",\"Expiration\":\"tomorrow\"}'",
       "ISO 8601"},
      {"yes " + secret, "more than 65536 bytes"},
  };
  for (const Case& c : cases) {
    std::string script = Write("bad.sh", "#!/bin/sh\n" + c.body + "\n", true);
    auto p = NewProcessProvider(script, "profile 'x' (credential_process bad.sh)", 10000);
    auto r = p->Fetch();
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_TRUE(Has(r.status(), c.expect)) << c.body << ": " << r.status().ToString();
    EXPECT_FALSE(Has(r.status(), secret)) << r.status().ToString();
    EXPECT_TRUE(Has(r.status(), "profile 'x'")) << r.status().ToString();
  }
  auto killed = NewProcessProvider("kill -9 $$", "killed", 10000)->Fetch();
  EXPECT_TRUE(Has(killed.status(), "killed by signal 9")) << killed.status().ToString();
  auto slow = NewProcessProvider("sleep 5", "slow", 200);
  auto start = std::chrono::steady_clock::now();
  auto r = slow->Fetch();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_TRUE(Has(r.status(), "did not finish within 200 ms")) << r.status().ToString();
}

TEST_F(CredentialsTest, StoreOpenNamesTheFailingConfiguredProvider) {
  Config("[default]\ncredential_process = " + Write("fail.sh", "#!/bin/sh\nexit 7\n", true) + "\n");
  std::string looked_at = "unchanged";
  auto p = Resolve({}, {}, &looked_at);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(looked_at, "");  // a configured provider: no fall-through summary
  StoreOptions o = FakeS3Options("http://127.0.0.1:9");
  auto store = OpenStore("s3://bucket", o);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(store.status().IsAuth()) << store.status().ToString();
  EXPECT_TRUE(Has(store.status(), "credentials from profile 'default' (credential_process"))
      << store.status().ToString();
  EXPECT_TRUE(Has(store.status(), "exited with status 7")) << store.status().ToString();
  EXPECT_FALSE(Has(store.status(), "no AWS credentials found")) << store.status().ToString();
}

// ------------------------------------------------------ instance metadata ---

TEST_F(CredentialsTest, ImdsV2TokenRoleCredentials) {
  FakeImds imds;
  ::unsetenv("AWS_EC2_METADATA_DISABLED");
  Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url() + "/");
  std::string looked_at;
  auto p = Resolve({}, {}, &looked_at);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(imds.server().count(), 0u);  // choosing IMDS costs no request
  EXPECT_NE(looked_at.find("container"), std::string::npos) << looked_at;
  auto c = (*p)->Fetch();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key, "AKIDIMDS1");
  EXPECT_EQ(c->secret_key, FakeImds::kSecret);
  EXPECT_EQ(c->session_token, "imds-token");
  ASSERT_TRUE(c->expiration);
  auto reqs = imds.server().requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].method, "PUT");
  EXPECT_EQ(reqs[0].headers["x-aws-ec2-metadata-token-ttl-seconds"], "21600");
  EXPECT_EQ(reqs[1].path, "/latest/meta-data/iam/security-credentials/");
  EXPECT_EQ(reqs[2].path, "/latest/meta-data/iam/security-credentials/my-role");
  EXPECT_EQ(reqs[2].headers["x-aws-ec2-metadata-token"], "TOKEN-abc");
}

TEST_F(CredentialsTest, ImdsErrorsNameTheEndpointAndAreBounded) {
  FakeHttp no_role([](const HttpRequest& r) -> HttpReply {
    if (r.method == "PUT") return {200, "T", {}};
    return {404, "", {}};
  });
  auto r = NewImdsProvider(no_role.url(), {})->Fetch();
  EXPECT_TRUE(r.status().IsAuth()) << r.status().ToString();
  EXPECT_TRUE(Has(r.status(), "no IAM role")) << r.status().ToString();
  FakeHttp huge([](const HttpRequest&) -> HttpReply {
    return {200, std::string(1 << 20, 'x'), {}};
  });
  r = NewImdsProvider(huge.url(), {})->Fetch();
  EXPECT_TRUE(r.status().IsCorrupt()) << r.status().ToString();
  EXPECT_TRUE(Has(r.status(), "larger than 65536")) << r.status().ToString();
  const std::string secret = "LEAKED-IMDS-SECRET-42";
  FakeHttp bad_json([&](const HttpRequest& r) -> HttpReply {
    if (r.method == "PUT") return {200, "T", {}};
    if (r.path.ends_with("/")) return {200, "role", {}};
    return {200,
            "{\"Code\":\"Success\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"" + secret +
                "\",\"Expiration\":\"soon\"}",
            {}};
  });
  r = NewImdsProvider(bad_json.url(), {})->Fetch();
  EXPECT_TRUE(r.status().IsCorrupt()) << r.status().ToString();
  EXPECT_FALSE(Has(r.status(), secret)) << r.status().ToString();
  // Nothing listening: a fast failure naming the endpoint.
  FakeHttp* gone = new FakeHttp([](const HttpRequest&) { return HttpReply{}; });
  std::string url = gone->url();
  delete gone;
  auto start = std::chrono::steady_clock::now();
  r = NewImdsProvider(url, {})->Fetch();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_TRUE(r.status().IsTransient()) << r.status().ToString();
  EXPECT_TRUE(Has(r.status(), url)) << r.status().ToString();
}

// A metadata address that accepts connections and never answers costs at
// most the metadata timeout (2 s), not the S3 request timeout (120 s).
TEST_F(CredentialsTest, SilentMetadataServiceIsCutShort) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 4), 0);  // the kernel accepts; nobody answers
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  ChainOptions chain;
  chain.metadata_timeout_ms = 300;
  auto start = std::chrono::steady_clock::now();
  auto r = NewImdsProvider(url, chain)->Fetch();
  auto took = std::chrono::steady_clock::now() - start;
  ::close(fd);
  EXPECT_TRUE(r.status().IsTransient()) << r.status().ToString();
  EXPECT_TRUE(Has(r.status(), "within 300 ms")) << r.status().ToString();
  EXPECT_LT(took, 2s);
  EXPECT_EQ(ChainOptions().metadata_timeout_ms, 2000);
  EXPECT_EQ(ChainOptions().metadata_connect_timeout_ms, 500);
}

// ------------------------------------------------- container credentials ---

TEST_F(CredentialsTest, ContainerFullUriWithTokenFile) {
  FakeHttp agent([](const HttpRequest& r) -> HttpReply {
    auto a = r.headers.find("authorization");
    if (a == r.headers.end() || a->second != "container-auth-TOKEN-xyz") {
      return {401, "", {}};
    }
    return {200, CredsJson("AKIDECS", "ecs-secret", "ecs-token", Now() + 1h), {}};
  });
  Set("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.url() + "/v2/credentials");
  Set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", Write("token", "container-auth-TOKEN-xyz\n"));
  auto c = Fetch();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key, "AKIDECS");
  EXPECT_EQ(c->session_token, "ecs-token");
  EXPECT_EQ(agent.requests().at(0).path, "/v2/credentials");
  // A wrong token: Auth, and the token is not in the message.
  Write("token", "wrong-TOKEN-value-123");
  c = Fetch();
  EXPECT_TRUE(c.status().IsAuth()) << c.status().ToString();
  EXPECT_TRUE(Has(c.status(), agent.url())) << c.status().ToString();
  EXPECT_FALSE(Has(c.status(), "wrong-TOKEN")) << c.status().ToString();
}

TEST_F(CredentialsTest, ContainerRelativeUriAndRefusedFullUri) {
  FakeHttp agent([](const HttpRequest& r) -> HttpReply {
    if (r.path != "/v2/credentials/abc") return {404, "", {}};
    return {200, CredsJson("AKIDREL", "s", "t", Now() + 1h), {}};
  });
  Set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc");
  ChainOptions chain;
  chain.container_host = agent.url();
  auto c = Fetch({}, chain);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key, "AKIDREL");
  ::unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  Set("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.1/creds");
  auto p = Resolve();
  EXPECT_TRUE(p.status().IsInvalidArgument()) << p.status().ToString();
  EXPECT_TRUE(Has(p.status(), "loopback")) << p.status().ToString();
}

// --------------------------------------------------------------- STS ---

// An STS stub: AssumeRole (signed) and AssumeRoleWithWebIdentity.
class FakeSts {
 public:
  FakeSts() : server_([this](const HttpRequest& r) { return Answer(r); }) {}
  std::string url() const { return server_.url(); }
  const FakeHttp& server() const { return server_; }
  std::string deny_with;  // set: answer AccessDenied with this message

 private:
  HttpReply Answer(const HttpRequest& r) {
    if (!deny_with.empty()) {
      return {403,
              "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>" +
                  deny_with + "</Message></Error></ErrorResponse>",
              {}};
    }
    std::string action;
    if (r.body.find("Action=AssumeRoleWithWebIdentity") != std::string::npos) {
      action = "AssumeRoleWithWebIdentity";
      if (r.body.find("WebIdentityToken=web-TOKEN-1") == std::string::npos) return {400, "", {}};
    } else if (r.body.find("Action=AssumeRole&") != std::string::npos) {
      action = "AssumeRole";
      auto a = r.headers.find("authorization");
      if (a == r.headers.end() || a->second.find("/sts/aws4_request") == std::string::npos) {
        return {403, "", {}};
      }
    } else {
      return {400, "", {}};
    }
    int n = ++calls_;
    return {200,
            "<" + action + "Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><" +
                action + "Result><Credentials><AccessKeyId>AKIDSTS" + std::to_string(n) +
                "</AccessKeyId><SecretAccessKey>sts-secret</SecretAccessKey><SessionToken>sts-"
                "token</SessionToken><Expiration>" +
                Iso(Now() + 1h) + "</Expiration></Credentials></" + action + "Result></" + action +
                "Response>",
            {}};
  }
  std::atomic<int> calls_{0};
  FakeHttp server_;
};

TEST_F(CredentialsTest, SourceProfileRoleArnAssumeRole) {
  FakeSts sts;
  Set("AWS_ENDPOINT_URL_STS", sts.url());
  CredentialsFile("[base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = base-SECRET-1\n");
  Config(
      "[profile admin]\nrole_arn = arn:aws:iam::123456789012:role/admin\nsource_profile = base\n"
      "role_session_name = sess1\nexternal_id = ext-9\nregion = eu-west-1\n");
  StoreOptions o;
  o.profile = "admin";
  auto c = Fetch(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key, "AKIDSTS1");
  EXPECT_EQ(c->session_token, "sts-token");
  ASSERT_TRUE(c->expiration);
  auto r = sts.server().requests().at(0);
  EXPECT_EQ(r.method, "POST");
  EXPECT_NE(r.body.find("RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fadmin"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("RoleSessionName=sess1"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("ExternalId=ext-9"), std::string::npos) << r.body;
  EXPECT_NE(r.headers["authorization"].find("Credential=AKIDBASE/"), std::string::npos);
  EXPECT_NE(r.headers["authorization"].find("/eu-west-1/sts/aws4_request"), std::string::npos)
      << r.headers["authorization"];
  EXPECT_EQ(r.headers["authorization"].find("base-SECRET-1"), std::string::npos);

  // A refusal that echoes the secret: Auth, named, scrubbed.
  sts.deny_with = "not allowed for base-SECRET-1";
  c = Fetch(o);
  EXPECT_TRUE(c.status().IsAuth()) << c.status().ToString();
  EXPECT_TRUE(Has(c.status(), "AccessDenied")) << c.status().ToString();
  EXPECT_TRUE(Has(c.status(), "profile 'admin'")) << c.status().ToString();
  EXPECT_FALSE(Has(c.status(), "base-SECRET-1")) << c.status().ToString();
}

TEST_F(CredentialsTest, RoleChainsThroughProfilesAndRefusesCycles) {
  FakeSts sts;
  Set("AWS_ENDPOINT_URL_STS", sts.url());
  Config(
      "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n"
      "[profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = c\n"
      "[profile c]\naws_access_key_id = AKIDC\naws_secret_access_key = sc\n"
      "[profile x]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = y\n"
      "[profile y]\nrole_arn = arn:aws:iam::1:role/y\nsource_profile = x\n"
      "[profile lonely]\nrole_arn = arn:aws:iam::1:role/l\n");
  StoreOptions o;
  o.profile = "a";
  auto c = Fetch(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key, "AKIDSTS2");  // b's role first (signed by c), then a's (signed by b)
  auto reqs = sts.server().requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_NE(reqs[0].headers["authorization"].find("Credential=AKIDC/"), std::string::npos);
  EXPECT_NE(reqs[1].headers["authorization"].find("Credential=AKIDSTS1/"), std::string::npos);
  o.profile = "x";
  auto p = Resolve(o);
  EXPECT_TRUE(p.status().IsInvalidArgument());
  EXPECT_TRUE(Has(p.status(), "cycle")) << p.status().ToString();
  o.profile = "lonely";
  p = Resolve(o);
  EXPECT_TRUE(p.status().IsInvalidArgument());
  EXPECT_TRUE(Has(p.status(), "source_profile, credential_source")) << p.status().ToString();
}

TEST_F(CredentialsTest, RoleWithCredentialSourceAndDuration) {
  FakeSts sts;
  FakeImds imds;
  Set("AWS_ENDPOINT_URL_STS", sts.url());
  Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url());
  Set("AWS_ACCESS_KEY_ID", "AKIDENVSRC");
  Set("AWS_SECRET_ACCESS_KEY", "env-secret");
  Config(
      "[profile env]\nrole_arn = arn:aws:iam::1:role/e\ncredential_source = Environment\n"
      "duration_seconds = 7200\n"
      "[profile ec2]\nrole_arn = arn:aws:iam::1:role/i\ncredential_source = Ec2InstanceMetadata\n"
      "[profile odd]\nrole_arn = arn:aws:iam::1:role/o\ncredential_source = Moon\n"
      "[profile short]\nrole_arn = arn:aws:iam::1:role/s\ncredential_source = Environment\n"
      "duration_seconds = 60\n");
  StoreOptions o;
  o.profile = "env";
  auto c = Fetch(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto r = sts.server().requests().at(0);
  EXPECT_NE(r.headers["authorization"].find("Credential=AKIDENVSRC/"), std::string::npos);
  EXPECT_NE(r.body.find("DurationSeconds=7200"), std::string::npos) << r.body;
  o.profile = "ec2";
  EXPECT_TRUE(Has(Resolve(o).status(), "AWS_EC2_METADATA_DISABLED is true"));
  ::unsetenv("AWS_EC2_METADATA_DISABLED");
  c = Fetch(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(imds.fetched(), 1);
  r = sts.server().requests().at(1);
  EXPECT_NE(r.headers["authorization"].find("Credential=AKIDIMDS1/"), std::string::npos);
  EXPECT_EQ(r.headers["x-amz-security-token"], "imds-token");
  o.profile = "odd";
  EXPECT_TRUE(Has(Resolve(o).status(), "credential_source 'Moon'"));
  o.profile = "short";
  auto p = Resolve(o);
  EXPECT_TRUE(p.status().IsInvalidArgument());
  EXPECT_TRUE(Has(p.status(), "duration_seconds '60'")) << p.status().ToString();
}

TEST_F(CredentialsTest, WebIdentityFromEnvironment) {
  FakeSts sts;
  Set("AWS_ENDPOINT_URL_STS", sts.url());
  Set("AWS_WEB_IDENTITY_TOKEN_FILE", Write("web-token", "web-TOKEN-1\n"));
  Set("AWS_ROLE_ARN", "arn:aws:iam::1:role/pod");
  Set("AWS_ROLE_SESSION_NAME", "pod-session");
  auto c = Fetch();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key, "AKIDSTS1");
  auto r = sts.server().requests().at(0);
  EXPECT_EQ(r.headers.count("authorization"), 0u);  // web identity is not signed
  EXPECT_NE(r.body.find("RoleSessionName=pod-session"), std::string::npos) << r.body;
  sts.deny_with = "bad token web-TOKEN-1";
  c = Fetch();
  EXPECT_TRUE(c.status().IsAuth());
  EXPECT_FALSE(Has(c.status(), "web-TOKEN-1")) << c.status().ToString();
  ::unlink((home_.path() + "/web-token").c_str());
  c = Fetch();
  EXPECT_TRUE(c.status().IsAuth());
  EXPECT_TRUE(Has(c.status(), "web identity token file")) << c.status().ToString();
}

TEST_F(CredentialsTest, WebIdentityFromProfile) {
  FakeSts sts;
  Config("[default]\nrole_arn = arn:aws:iam::1:role/p\nweb_identity_token_file = " +
         Write("tok", "web-TOKEN-1") + "\nservices = local\n[services local]\nsts =\n" +
         "  endpoint_url = " + sts.url() + "\n");
  auto c = Fetch();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->access_key, "AKIDSTS1");
  EXPECT_EQ(sts.server().count(), 1u);  // reached through [services local] sts endpoint_url
}

// ------------------------------------------------------- cache / refresh ---

// A provider that counts fetches and hands out credentials living `life`.
class CountingProvider : public CredentialsProvider {
 public:
  explicit CountingProvider(std::chrono::seconds life) : life_(life) {}
  Result<Credentials> Fetch() override {
    int n = ++count;
    if (fail) return Status::Transient("counting: down (secret-never-shown)");
    return Credentials{"AKID" + std::to_string(n), "s", "t", Now() + life_};
  }
  std::string Describe() const override { return "counting"; }
  std::atomic<int> count{0};
  std::atomic<bool> fail{false};

 private:
  std::chrono::seconds life_;
};

struct TestClock {
  TestClock() {
    SetClockForTesting([this] {
      std::lock_guard<std::mutex> lock(mu);
      return now;
    });
  }
  void Advance(Clock::duration d) {
    std::lock_guard<std::mutex> lock(mu);
    now += d;
  }
  std::mutex mu;
  Clock::time_point now = Clock::from_time_t(2'000'000'000);
};

TEST_F(CredentialsTest, CacheRefreshesFiveMinutesBeforeExpiry) {
  TestClock clock;
  auto owned = std::make_unique<CountingProvider>(1h);
  CountingProvider* p = owned.get();
  CachedCredentials cache(std::move(owned));
  for (int i = 0; i < 5; i++) EXPECT_EQ(cache.Get()->access_key, "AKID1");
  EXPECT_EQ(p->count, 1);
  clock.Advance(54min);
  EXPECT_EQ(cache.Get()->access_key, "AKID1");
  clock.Advance(1min + 1s);  // 4:59 before expiry
  EXPECT_EQ(cache.Get()->access_key, "AKID2");
  EXPECT_EQ(p->count, 2);
  EXPECT_EQ(cache.fetches(), 2u);
}

TEST_F(CredentialsTest, CacheKeepsValidCredentialsWhenARefreshFails) {
  TestClock clock;
  auto owned = std::make_unique<CountingProvider>(1h);
  CountingProvider* p = owned.get();
  CachedCredentials cache(std::move(owned));
  ASSERT_TRUE(cache.Get().ok());
  clock.Advance(56min);
  p->fail = true;
  EXPECT_EQ(cache.Get()->access_key, "AKID1");  // still valid for 4 min
  EXPECT_EQ(cache.Get()->access_key, "AKID1");  // no new attempt within 10 s
  EXPECT_EQ(p->count, 2);
  clock.Advance(11s);
  EXPECT_EQ(cache.Get()->access_key, "AKID1");
  EXPECT_EQ(p->count, 3);
  clock.Advance(5min);  // expired
  auto r = cache.Get();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsTransient());
  p->fail = false;
  clock.Advance(11s);
  EXPECT_EQ(cache.Get()->access_key, "AKID5");
}

TEST_F(CredentialsTest, CacheShortLivedCredentialsRefreshHalfway) {
  TestClock clock;
  auto owned = std::make_unique<CountingProvider>(60s);
  CountingProvider* p = owned.get();
  CachedCredentials cache(std::move(owned));
  ASSERT_TRUE(cache.Get().ok());
  clock.Advance(29s);
  EXPECT_EQ(cache.Get()->access_key, "AKID1");
  clock.Advance(2s);
  EXPECT_EQ(cache.Get()->access_key, "AKID2");
  EXPECT_EQ(p->count, 2);
}

// While one caller refreshes, the others keep the still-valid credentials
// instead of waiting (a hook holds the refresh; no sleeps).
TEST_F(CredentialsTest, CacheOthersDoNotWaitForARefresh) {
  TestClock clock;
  struct Blocking : CredentialsProvider {
    Result<Credentials> Fetch() override {
      int n = ++count;
      if (n == 2) {
        std::unique_lock<std::mutex> lock(mu);
        entered = true;
        cv.notify_all();
        cv.wait(lock, [&] { return release; });
      }
      return Credentials{"AKID" + std::to_string(n), "s", "", Now() + 1h};
    }
    std::string Describe() const override { return "blocking"; }
    std::atomic<int> count{0};
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false, release = false;
  };
  auto owned = std::make_unique<Blocking>();
  Blocking* b = owned.get();
  CachedCredentials cache(std::move(owned));
  ASSERT_TRUE(cache.Get().ok());
  clock.Advance(56min);
  std::thread refresher([&] { EXPECT_EQ(cache.Get()->access_key, "AKID2"); });
  {
    std::unique_lock<std::mutex> lock(b->mu);
    b->cv.wait(lock, [&] { return b->entered; });
  }
  EXPECT_EQ(cache.Get()->access_key, "AKID1");  // not blocked by the refresh
  EXPECT_EQ(b->count, 2);
  {
    std::lock_guard<std::mutex> lock(b->mu);
    b->release = true;
  }
  b->cv.notify_all();
  refresher.join();
  EXPECT_EQ(cache.Get()->access_key, "AKID2");
  EXPECT_EQ(b->count, 2);
}

// Callers waiting for a fetch that fails get its error; they do not each
// fetch again (a failing metadata service is asked once, not once per
// waiting request).
TEST_F(CredentialsTest, CacheWaitersShareAFailedFetch) {
  struct FailingOnce : CredentialsProvider {
    Result<Credentials> Fetch() override {
      ++count;
      std::unique_lock<std::mutex> lock(mu);
      entered = true;
      cv.notify_all();
      cv.wait(lock, [&] { return release; });
      return Status::Transient("failing: down");
    }
    std::string Describe() const override { return "failing"; }
    std::atomic<int> count{0};
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false, release = false;
  };
  auto owned = std::make_unique<FailingOnce>();
  FailingOnce* f = owned.get();
  CachedCredentials cache(std::move(owned));
  std::thread first([&] { EXPECT_TRUE(cache.Get().status().IsTransient()); });
  {
    std::unique_lock<std::mutex> lock(f->mu);
    f->cv.wait(lock, [&] { return f->entered; });
  }
  std::thread second([&] { EXPECT_TRUE(cache.Get().status().IsTransient()); });
  while (cache.waiting() != 1) std::this_thread::yield();  // the second is waiting
  {
    std::lock_guard<std::mutex> lock(f->mu);
    f->release = true;
  }
  f->cv.notify_all();
  first.join();
  second.join();
  EXPECT_EQ(f->count, 1);
}

TEST_F(CredentialsTest, Iso8601) {
  auto t = ParseIso8601("2026-12-01T16:20:00Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(Clock::to_time_t(*t), 1796142000);
  EXPECT_EQ(ParseIso8601("2026-12-01T16:20:00.123Z"), t);
  EXPECT_EQ(ParseIso8601("2026-12-01T17:20:00+01:00"), t);
  for (const char* bad : {"", "2026-12-01", "2026-13-01T00:00:00Z", "2026-12-01T16:20:00",
                          "2026-12-01T16:20:00Zjunk", "soon"}) {
    EXPECT_FALSE(ParseIso8601(bad)) << bad;
  }
}

// ------------------------------------------------------ the S3 store ---

TEST_F(CredentialsTest, StoreOpenWithEnvironmentKeysSendsNothing) {
  FakeS3 s3;
  FakeImds imds;
  ::unsetenv("AWS_EC2_METADATA_DISABLED");
  Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url());
  Set("AWS_ACCESS_KEY_ID", "AKIDENV");
  Set("AWS_SECRET_ACCESS_KEY", "env-secret");
  auto store = OpenStore("s3://bucket/p", FakeS3Options(s3.url()));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(s3.server().count(), 0u);
  EXPECT_EQ(imds.server().count(), 0u);
  ASSERT_TRUE((*store)->Put("k", "v").ok());
  EXPECT_EQ(s3.server().count(), 1u);  // the PUT alone
  EXPECT_EQ(imds.server().count(), 0u);
  EXPECT_EQ(SignedKeyId(s3.server().requests().at(0)), "AKIDENV");
}

TEST_F(CredentialsTest, StoreRefreshesImdsCredentialsBeforeExpiry) {
  TestClock clock;
  FakeS3 s3;
  FakeImds imds(1h);
  ::unsetenv("AWS_EC2_METADATA_DISABLED");
  Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url());
  auto store = OpenStore("s3://bucket", FakeS3Options(s3.url()));
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(imds.fetched(), 1);  // at open: fail early when there are none
  EXPECT_EQ(imds.server().count(), 3u);
  for (int i = 0; i < 3; i++) ASSERT_TRUE((*store)->Put("k" + std::to_string(i), "v").ok());
  EXPECT_EQ(imds.fetched(), 1);
  clock.Advance(56min);
  ASSERT_TRUE((*store)->Put("later", "v").ok());
  EXPECT_EQ(imds.fetched(), 2);  // asked again 4 min before expiry
  auto reqs = s3.server().requests();
  ASSERT_EQ(reqs.size(), 4u);
  EXPECT_EQ(SignedKeyId(reqs[0]), "AKIDIMDS1");
  EXPECT_EQ(SignedKeyId(reqs[3]), "AKIDIMDS2");
  EXPECT_EQ(reqs[3].headers["x-amz-security-token"], "imds-token");
}

TEST_F(CredentialsTest, StoreWithNoCredentialsListsTheChain) {
  FakeHttp* gone = new FakeHttp([](const HttpRequest&) { return HttpReply{}; });
  std::string url = gone->url();
  delete gone;
  ::unsetenv("AWS_EC2_METADATA_DISABLED");
  Set("AWS_EC2_METADATA_SERVICE_ENDPOINT", url);
  auto start = std::chrono::steady_clock::now();
  auto store = OpenStore("s3://bucket", FakeS3Options("http://127.0.0.1:9"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(store.status().IsAuth()) << store.status().ToString();
  EXPECT_TRUE(Has(store.status(), "no AWS credentials found")) << store.status().ToString();
  EXPECT_TRUE(Has(store.status(), "AWS_ACCESS_KEY_ID")) << store.status().ToString();
  EXPECT_TRUE(Has(store.status(), "instance metadata (" + url + ")")) << store.status().ToString();
}

TEST_F(CredentialsTest, StoreFollowsRegionRedirectOnceAndRemembers) {
  for (bool in_body : {false, true}) {
    FakeS3 s3("eu-west-1", in_body);
    StoreOptions o = FakeS3Options(s3.url());
    o.access_key_id = "AKID";
    o.secret_access_key = "s";
    o.region = "us-east-1";
    auto store = OpenStore("s3://bucket", o);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)->Put("k", "v").ok()) << in_body;
    EXPECT_EQ(s3.server().count(), 2u);  // refused, then re-signed for eu-west-1
    std::string got;
    ASSERT_TRUE((*store)->Get("k", &got).ok());
    EXPECT_EQ(got, "v");
    ObjectInfo info;
    ASSERT_TRUE((*store)->Head("k", &info).ok());
    auto reqs = s3.server().requests();
    ASSERT_EQ(reqs.size(), 4u);  // remembered: no more redirects
    EXPECT_EQ(SignedRegion(reqs[0]), "us-east-1");
    for (size_t i = 1; i < reqs.size(); i++) EXPECT_EQ(SignedRegion(reqs[i]), "eu-west-1");
  }
}

TEST_F(CredentialsTest, StoreRedirectWithoutRegionAndTransportErrorsNameTheEndpoint) {
  FakeHttp moved([](const HttpRequest&) -> HttpReply {
    return {301, "<Error><Code>PermanentRedirect</Code></Error>", {}};
  });
  StoreOptions o = FakeS3Options(moved.url());
  o.access_key_id = "AKID";
  o.secret_access_key = "s";
  auto store = OpenStore("s3://bucket", o);
  ASSERT_TRUE(store.ok());
  Status st = (*store)->Put("k", "v");
  EXPECT_TRUE(Has(st, "another region")) << st.ToString();
  EXPECT_TRUE(Has(st, moved.url())) << st.ToString();
  EXPECT_EQ(moved.count(), 1u);

  FakeHttp* gone = new FakeHttp([](const HttpRequest&) { return HttpReply{}; });
  std::string url = gone->url();
  delete gone;
  o.endpoint = url;
  store = OpenStore("s3://bucket", o);
  ASSERT_TRUE(store.ok());
  st = (*store)->Put("k", "v");
  EXPECT_TRUE(st.IsTransient()) << st.ToString();
  EXPECT_TRUE(Has(st, "endpoint " + url)) << st.ToString();
}

TEST_F(CredentialsTest, StoreErrorsEchoingTheSessionTokenAreRedacted) {
  FakeHttp echo([](const HttpRequest& r) -> HttpReply {
    auto t = r.headers.find("x-amz-security-token");
    return {403,
            "<Error><Code>InvalidToken</Code><Message>token " +
                (t == r.headers.end() ? std::string("none") : t->second) +
                " is not valid</Message></Error>",
            {}};
  });
  StoreOptions o = FakeS3Options(echo.url());
  o.access_key_id = "AKID";
  o.secret_access_key = "s-secret";
  o.session_token = "SESSION-token-0123456789";
  auto store = OpenStore("s3://bucket", o);
  ASSERT_TRUE(store.ok());
  Status st = (*store)->Put("k", "v");
  EXPECT_TRUE(st.IsAuth()) << st.ToString();
  EXPECT_TRUE(Has(st, "InvalidToken")) << st.ToString();
  EXPECT_TRUE(Has(st, "<redacted>")) << st.ToString();
  EXPECT_FALSE(Has(st, "SESSION-token")) << st.ToString();
}

// Redaction keeps the code of every status (a 412 stays PreconditionFailed).
TEST_F(CredentialsTest, RedactKeepsTheCode) {
  Credentials c{"AKID", "SECRET-value-1", "TOKEN-value-2", {}};
  for (const Status& st :
       {Status::NotFound("x SECRET-value-1"), Status::AlreadyExists("x TOKEN-value-2"),
        Status::PreconditionFailed("x SECRET-value-1"), Status::Conflict("x SECRET-value-1"),
        Status::Throttled("x SECRET-value-1"), Status::Transient("x SECRET-value-1"),
        Status::Auth("x SECRET-value-1"), Status::InvalidArgument("x SECRET-value-1"),
        Status::Corrupt("x SECRET-value-1"), Status::IOError("x SECRET-value-1"),
        Status::ReadOnly("x SECRET-value-1"), Status::NotSupported("x SECRET-value-1"),
        Status::OutOfRange("x SECRET-value-1"), Status::PreconditionFailed("nothing secret")}) {
    Status r = Redact(st, c);
    EXPECT_EQ(r.code(), st.code()) << st.ToString();
    EXPECT_FALSE(Has(r, "SECRET-value") || Has(r, "TOKEN-value")) << r.ToString();
  }
  EXPECT_TRUE(Redact(Status::OK(), c).ok());
}

TEST_F(CredentialsTest, StoreEndpointRegionAndKeysFromAProfile) {
  FakeS3 s3("ap-northeast-1");
  Config(
      "[profile ceph]\nregion = ap-northeast-1\nservices = lab\n"
      "aws_access_key_id = AKIDCEPH\naws_secret_access_key = ceph-secret\n"
      "[services lab]\ns3 =\n  endpoint_url = " +
      s3.url() + "\n");
  StoreOptions o;
  o.profile = "ceph";
  o.retry = false;
  // As a clone's origin is opened: through MakeStoreOpener with the same options.
  StoreOpener open = MakeStoreOpener(o);
  auto store = open("s3://bucket/origin");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->Put("k", "v").ok());
  auto reqs = s3.server().requests();
  ASSERT_EQ(reqs.size(), 1u);  // the profile's region: no redirect
  EXPECT_EQ(SignedKeyId(reqs[0]), "AKIDCEPH");
  EXPECT_EQ(reqs[0].path, "/bucket/origin/k");  // a configured endpoint: path style
}

TEST_F(CredentialsTest, StoreCaBundleIsUsed) {
  // An unreadable CA bundle makes every HTTPS request fail: proof that it
  // reaches curl (CURLOPT_CAINFO). Nothing listens: the handshake never
  // starts, so the bundle is checked by the TLS setup of the request.
  Set("AWS_CA_BUNDLE", home_.path() + "/missing-ca.pem");
  FakeHttp tls_less([](const HttpRequest&) { return HttpReply{}; });
  StoreOptions o = FakeS3Options("https://127.0.0.1:" + tls_less.url().substr(17));
  o.access_key_id = "AKID";
  o.secret_access_key = "s";
  auto store = OpenStore("s3://bucket", o);
  ASSERT_TRUE(store.ok());
  Status with_bad_bundle = (*store)->Put("k", "v");
  EXPECT_FALSE(with_bad_bundle.ok());
  EXPECT_TRUE(Has(with_bad_bundle, "missing-ca.pem") || Has(with_bad_bundle, "CA"))
      << with_bad_bundle.ToString();
}

// --------------------------------------------------- the real gateway ---

TEST_F(CredentialsTest, LocalGatewayThroughProfileAndCredentialProcess) {
  if (!s3_) {
    if (testing::S3Required()) FAIL() << "HYPERFILE_REQUIRE_S3=1 but S3 is not configured";
    GTEST_SKIP() << "S3 not configured";
  }
  ASSERT_FALSE(s3_->access_key_id.empty());
  std::string script =
      Write("ceph-creds.sh",
            "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"" + s3_->access_key_id +
                "\", \"SecretAccessKey\": \"" + s3_->secret_access_key + "\"}'\n",
            true);
  CredentialsFile("[keys]\naws_access_key_id = " + s3_->access_key_id +
                  "\naws_secret_access_key = " + s3_->secret_access_key + "\n");
  Config("[profile keys]\nregion = " + s3_->region + "\nendpoint_url = " + s3_->endpoint +
         "\n[profile proc]\ncredential_process = " + script + "\nregion = " + s3_->region +
         "\nservices = gw\n[services gw]\ns3 =\n  endpoint_url = " + s3_->endpoint + "\n");
  for (const char* profile : {"keys", "proc"}) {
    StoreOptions o;
    o.profile = profile;
    std::string uri = testing::UniqueS3Uri(std::string("credentials-") + profile);
    auto store = OpenStore(uri, o);
    ASSERT_TRUE(store.ok()) << profile << ": " << store.status().ToString();
    ASSERT_TRUE((*store)->Put("obj", "payload").ok()) << profile;
    std::string got;
    ASSERT_TRUE((*store)->Get("obj", &got).ok()) << profile;
    EXPECT_EQ(got, "payload");
    EXPECT_TRUE((*store)->Delete("obj").ok());
  }
  // A wrong secret from the process: the gateway refuses (Auth), and the
  // secret is not in the message.
  Write("ceph-creds.sh",
        "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"" + s3_->access_key_id +
            "\", \"SecretAccessKey\": \"WRONG-secret-value-0123\"}'\n",
        true);
  StoreOptions o;
  o.profile = "proc";
  auto store = OpenStore(testing::UniqueS3Uri("credentials-wrong"), o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  Status st = (*store)->Put("obj", "x");
  EXPECT_TRUE(st.IsAuth()) << st.ToString();
  EXPECT_FALSE(Has(st, "WRONG-secret")) << st.ToString();
}

}  // namespace
}  // namespace hyperfile::aws
