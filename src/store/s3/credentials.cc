// SPDX-License-Identifier: Apache-2.0
// The AWS credential providers and their cache (contracts in credentials.h).
// HTTP to the metadata services and STS over libcurl, JSON answers with
// nlohmann-json (never with exceptions: a parse error's text would quote the
// input), STS's XML with tinyxml2, credential processes with posix_spawn.
#include "store/s3/credentials.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <tinyxml2.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "store/s3/sigv4.h"

extern char** environ;

namespace hyperfile::aws {
namespace {

constexpr size_t kMaxAnswerBytes = 64 << 10;
constexpr size_t kMaxHeaderBytes = 16 << 10;
constexpr size_t kMaxProcessOutput = 64 << 10;
constexpr size_t kMaxTokenFileBytes = 64 << 10;

std::mutex clock_mu;
std::function<Clock::time_point()>* test_clock = nullptr;

// Replaces every occurrence of each non-empty secret by "<redacted>".
std::string Scrub(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& s : secrets) {
    if (s.size() < 4) continue;  // too short to be a secret; would mangle text
    for (size_t pos; (pos = text.find(s)) != std::string::npos;) {
      text.replace(pos, s.size(), "<redacted>");
    }
  }
  return text;
}

Status ScrubStatus(const Status& st, const std::vector<std::string>& secrets) {
  if (st.ok()) return st;
  std::string msg = Scrub(st.message(), secrets);
  if (msg == st.message()) return st;
  using C = Status::Code;
  switch (st.code()) {
    case C::kOk:
      return st;
    case C::kNotFound:
      return Status::NotFound(msg);
    case C::kAlreadyExists:
      return Status::AlreadyExists(msg);
    case C::kPreconditionFailed:
      return Status::PreconditionFailed(msg);
    case C::kConflict:
      return Status::Conflict(msg);
    case C::kThrottled:
      return Status::Throttled(msg);
    case C::kTransient:
      return Status::Transient(msg);
    case C::kAuth:
      return Status::Auth(msg);
    case C::kInvalidArgument:
      return Status::InvalidArgument(msg);
    case C::kCorrupt:
      return Status::Corrupt(msg);
    case C::kIOError:
      return Status::IOError(msg);
    case C::kReadOnly:
      return Status::ReadOnly(msg);
    case C::kNotSupported:
      return Status::NotSupported(msg);
    case C::kOutOfRange:
      return Status::OutOfRange(msg);
  }
  return Status::IOError(msg);
}

// scheme://host[:port] of a URL: what messages name (never a path, a query
// or user information).
std::string Origin(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "(bad URL)";
  size_t end = url.find_first_of("/?#", scheme + 3);
  std::string authority = url.substr(scheme + 3, end - (scheme + 3));
  if (size_t at = authority.rfind('@'); at != std::string::npos)
    authority = authority.substr(at + 1);
  return url.substr(0, scheme + 3) + authority;
}

std::string HostPort(const std::string& url) {
  std::string o = Origin(url);
  return o.substr(o.find("://") + 3);
}

bool HasControl(std::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// ------------------------------------------------------------------ HTTP ---

struct HttpCall {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  int connect_timeout_ms = 500;
  int timeout_ms = 2000;
  std::string ca_bundle;
  bool verify_tls = true;
  bool no_proxy = false;  // metadata services are link-local: never via a proxy
};

struct HttpAnswer {
  long status = 0;
  std::string body;
};

struct Sink {
  std::string* out;
  size_t limit;
  bool overflow = false;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  if (s->out->size() + size * n > s->limit) {
    s->overflow = true;
    return 0;
  }
  s->out->append(data, size * n);
  return size * n;
}

size_t OnHeader(char*, size_t size, size_t n, void* user) {
  auto* s = static_cast<Sink*>(user);
  s->limit += size * n;  // bytes of headers so far
  if (s->limit > kMaxHeaderBytes) {
    s->overflow = true;
    return 0;
  }
  return size * n;
}

// One HTTP request. `who` names the provider in messages.
Result<HttpAnswer> Http(const HttpCall& call, const std::string& who) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  const std::string origin = Origin(call.url);
  CURL* h = curl_easy_init();
  if (h == nullptr) return Status::IOError(who + ": curl_easy_init failed");
  HttpAnswer answer;
  Sink body{&answer.body, kMaxAnswerBytes};
  Sink head{nullptr, 0};
  curl_slist* headers = nullptr;
  for (const std::string& line : call.headers) headers = curl_slist_append(headers, line.c_str());
  headers = curl_slist_append(headers, "Expect:");
  char error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(h, CURLOPT_URL, call.url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(call.connect_timeout_ms));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(call.timeout_ms));
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, call.verify_tls ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, call.verify_tls ? 2L : 0L);
  if (!call.ca_bundle.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, call.ca_bundle.c_str());
  if (call.no_proxy) curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &head);
  if (call.method == "POST" || call.method == "PUT") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, call.method.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, call.body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(call.body.size()));
  }
  CURLcode rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &answer.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  if (body.overflow) {
    return Status::Corrupt(who + ": the answer from " + origin + " is larger than " +
                           std::to_string(kMaxAnswerBytes) + " bytes");
  }
  if (head.overflow) {
    return Status::Corrupt(who + ": the headers from " + origin + " are larger than " +
                           std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    return Status::Transient(who + ": no answer from " + origin + " within " +
                             std::to_string(call.timeout_ms) + " ms");
  }
  if (rc != CURLE_OK) {
    std::string detail = error[0] ? error : curl_easy_strerror(rc);
    if (rc == CURLE_SSL_CACERT || rc == CURLE_PEER_FAILED_VERIFICATION ||
        rc == CURLE_SSL_CACERT_BADFILE) {
      return Status::Auth(who + ": " + origin + ": " + detail + " (certificate verification)");
    }
    return Status::Transient(who + ": cannot reach " + origin + ": " + detail);
  }
  return answer;
}

// The message of a non-2xx answer (only its status: a metadata service's
// body is not worth quoting and may echo what was sent).
Status HttpError(const std::string& who, const std::string& url, long status) {
  std::string msg = who + ": " + Origin(url) + " answered HTTP " + std::to_string(status);
  if (status == 429) return Status::Throttled(msg);
  if (status >= 500) return Status::Transient(msg);
  return Status::Auth(msg);
}

// ------------------------------------------------------------------ JSON ---

// {AccessKeyId, SecretAccessKey, <token_field>, Expiration}: what container
// credentials, IMDS and credential processes answer.
Result<Credentials> CredentialsFromJson(std::string_view text, const std::string& who,
                                        const char* token_field, bool process) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corrupt(who + ": the answer is not a JSON object");
  }
  if (process) {
    auto v = j.find("Version");
    if (v == j.end() || !v->is_number_integer() || v->get<int64_t>() != 1) {
      return Status::Corrupt(who + ": the output needs \"Version\": 1");
    }
  }
  auto text_field = [&](const char* name, bool required, std::string* out) -> Status {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) {
      if (required) return Status::Corrupt(who + ": the answer has no \"" + name + "\"");
      return Status::OK();
    }
    if (!it->is_string()) return Status::Corrupt(who + ": \"" + name + "\" is not a string");
    *out = it->get<std::string>();
    if (required && out->empty()) return Status::Corrupt(who + ": \"" + name + "\" is empty");
    if (HasControl(*out)) {
      return Status::Corrupt(who + ": \"" + name + "\" contains a control character");
    }
    return Status::OK();
  };
  Credentials c;
  HF_RETURN_IF_ERROR(text_field("AccessKeyId", true, &c.access_key));
  HF_RETURN_IF_ERROR(text_field("SecretAccessKey", true, &c.secret_key));
  HF_RETURN_IF_ERROR(text_field(token_field, false, &c.session_token));
  std::string expiration;
  HF_RETURN_IF_ERROR(text_field("Expiration", false, &expiration));
  if (!expiration.empty()) {
    c.expiration = ParseIso8601(expiration);
    if (!c.expiration) {
      return Status::Corrupt(who + ": \"Expiration\" is not an ISO 8601 time: '" + expiration +
                             "'");
    }
  }
  return c;
}

// ----------------------------------------------------------- providers ---

class StaticProvider : public CredentialsProvider {
 public:
  StaticProvider(Credentials c, std::string describe)
      : c_(std::move(c)), describe_(std::move(describe)) {}
  Result<Credentials> Fetch() override { return c_; }
  std::string Describe() const override { return describe_; }

 private:
  Credentials c_;
  std::string describe_;
};

// Reads a small file (a token); `what` names it in messages.
Result<std::string> ReadSmallFile(const std::string& path, const std::string& who,
                                  const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::Auth(who + ": cannot read the " + what + " file " + path + ": " +
                        std::strerror(errno));
  }
  std::string text;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxTokenFileBytes) {
      return Status::Auth(who + ": the " + what + " file " + path + " is larger than " +
                          std::to_string(kMaxTokenFileBytes) + " bytes");
    }
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  if (text.empty()) return Status::Auth(who + ": the " + what + " file " + path + " is empty");
  if (HasControl(text)) {
    return Status::Auth(who + ": the " + what + " file " + path + " contains a control character");
  }
  return text;
}

class ProcessProvider : public CredentialsProvider {
 public:
  ProcessProvider(std::string command, std::string describe, int timeout_ms)
      : command_(std::move(command)), describe_(std::move(describe)), timeout_ms_(timeout_ms) {}
  std::string Describe() const override { return describe_; }

  Result<Credentials> Fetch() override {
    std::string output;
    HF_RETURN_IF_ERROR(Run(&output));
    return CredentialsFromJson(output, describe_, "SessionToken", /*process=*/true);
  }

 private:
  // Runs the command with /bin/sh -c, stdin from /dev/null, stderr
  // inherited (the command's own messages reach the user, as with aws-cli),
  // stdout collected up to kMaxProcessOutput within timeout_ms_.
  Status Run(std::string* output) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      return Status::IOError(describe_ + ": pipe: " + std::strerror(errno));
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    std::string command = command_;
    char sh[] = "/bin/sh", dash_c[] = "-c";
    char* argv[] = {sh, dash_c, command.data(), nullptr};
    pid_t pid = 0;
    int rc = ::posix_spawn(&pid, "/bin/sh", &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (rc != 0) {
      ::close(fds[0]);
      return Status::Auth(describe_ + ": cannot start /bin/sh: " + std::strerror(rc));
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
    std::string problem;
    char buf[4096];
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      if (left <= 0) {
        problem = "did not finish within " + std::to_string(timeout_ms_) + " ms";
        break;
      }
      pollfd p{fds[0], POLLIN, 0};
      int ready = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
      if (ready < 0 && errno != EINTR) {
        problem = std::string("poll: ") + std::strerror(errno);
        break;
      }
      if (ready <= 0) continue;
      ssize_t n = ::read(fds[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // EOF (or an error: the exit status tells)
      output->append(buf, static_cast<size_t>(n));
      if (output->size() > kMaxProcessOutput) {
        problem = "wrote more than " + std::to_string(kMaxProcessOutput) + " bytes";
        break;
      }
    }
    ::close(fds[0]);
    if (!problem.empty()) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!problem.empty()) return Status::Auth(describe_ + ": the command " + problem);
    if (WIFSIGNALED(status)) {
      return Status::Auth(describe_ + ": the command was killed by signal " +
                          std::to_string(WTERMSIG(status)));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return Status::Auth(describe_ + ": the command exited with status " +
                          std::to_string(WEXITSTATUS(status)));
    }
    return Status::OK();
  }

  std::string command_, describe_;
  int timeout_ms_;
};

class ContainerProvider : public CredentialsProvider {
 public:
  ContainerProvider(std::string url, std::string token, std::string token_file,
                    const ChainOptions& chain)
      : url_(std::move(url)),
        token_(std::move(token)),
        token_file_(std::move(token_file)),
        chain_(chain) {}
  std::string Describe() const override { return "container credentials (" + Origin(url_) + ")"; }

  Result<Credentials> Fetch() override {
    std::string who = Describe();
    std::string token = token_;
    if (!token_file_.empty()) {
      HF_ASSIGN_OR_RETURN(token, ReadSmallFile(token_file_, who, "authorization token"));
    }
    if (HasControl(token)) {
      return Status::Auth(who + ": AWS_CONTAINER_AUTHORIZATION_TOKEN contains a control character");
    }
    HttpCall call;
    call.url = url_;
    if (!token.empty()) call.headers.push_back("Authorization: " + token);
    call.connect_timeout_ms = chain_.metadata_connect_timeout_ms;
    call.timeout_ms = chain_.metadata_timeout_ms;
    call.ca_bundle = chain_.ca_bundle;
    call.verify_tls = chain_.verify_tls;
    call.no_proxy = true;
    Result<HttpAnswer> a = Http(call, who);
    if (!a.ok()) return ScrubStatus(a.status(), {token});
    if (a->status != 200) return HttpError(who, url_, a->status);
    Result<Credentials> c = CredentialsFromJson(a->body, who, "Token", false);
    if (!c.ok()) return ScrubStatus(c.status(), {token});
    return c;
  }

 private:
  std::string url_, token_, token_file_;
  ChainOptions chain_;
};

class ImdsProvider : public CredentialsProvider {
 public:
  ImdsProvider(std::string endpoint, const ChainOptions& chain)
      : endpoint_(std::move(endpoint)), chain_(chain) {
    while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  }
  std::string Describe() const override { return "instance metadata (" + Origin(endpoint_) + ")"; }

  Result<Credentials> Fetch() override {
    std::string who = Describe();
    HttpCall put = Call("/latest/api/token");
    put.method = "PUT";
    put.headers.push_back("X-aws-ec2-metadata-token-ttl-seconds: 21600");
    HF_ASSIGN_OR_RETURN(HttpAnswer token, Http(put, who));
    if (token.status != 200) return HttpError(who + " (IMDSv2 token)", put.url, token.status);
    if (token.body.empty() || HasControl(token.body)) {
      return Status::Corrupt(who + ": the IMDSv2 token is empty or has a control character");
    }
    const std::vector<std::string> secrets = {token.body};
    const std::string header = "X-aws-ec2-metadata-token: " + token.body;
    const std::string base = "/latest/meta-data/iam/security-credentials/";
    HttpCall list = Call(base);
    list.headers.push_back(header);
    Result<HttpAnswer> roles = Http(list, who);
    if (!roles.ok()) return ScrubStatus(roles.status(), secrets);
    if (roles->status == 404) {
      return Status::Auth(who + ": this instance has no IAM role (instance profile)");
    }
    if (roles->status != 200) return HttpError(who, list.url, roles->status);
    std::string role = roles->body.substr(0, roles->body.find('\n'));
    while (!role.empty() && (role.back() == '\r' || role.back() == ' ')) role.pop_back();
    if (role.empty() || role.size() > 128 || role.find('/') != std::string::npos ||
        HasControl(role) || role.find("..") != std::string::npos) {
      return Status::Corrupt(who + ": the IAM role name it answered is empty or malformed");
    }
    HttpCall get = Call(base + sigv4::UriEncode(role, true));
    get.headers.push_back(header);
    Result<HttpAnswer> creds = Http(get, who);
    if (!creds.ok()) return ScrubStatus(creds.status(), secrets);
    if (creds->status != 200)
      return HttpError(who + " (role " + role + ")", get.url, creds->status);
    nlohmann::json j = nlohmann::json::parse(creds->body, nullptr, false);
    if (j.is_object()) {
      auto code = j.find("Code");
      if (code != j.end() && code->is_string() && code->get<std::string>() != "Success") {
        return Status::Auth(who + ": role " + role + ": Code is '" +
                            Scrub(code->get<std::string>(), secrets) + "'");
      }
    }
    Result<Credentials> c =
        CredentialsFromJson(creds->body, who + " (role " + role + ")", "Token", false);
    if (!c.ok()) return ScrubStatus(c.status(), secrets);
    return c;
  }

 private:
  HttpCall Call(const std::string& path) const {
    HttpCall c;
    c.url = endpoint_ + path;
    c.connect_timeout_ms = chain_.metadata_connect_timeout_ms;
    c.timeout_ms = chain_.metadata_timeout_ms;
    c.no_proxy = true;
    return c;
  }
  std::string endpoint_;
  ChainOptions chain_;
};

std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [k, v] : fields) {
    if (!out.empty()) out += "&";
    out += sigv4::UriEncode(k, true) + "=" + sigv4::UriEncode(v, true);
  }
  return out;
}

std::string XmlText(const tinyxml2::XMLElement* e, const char* name) {
  const tinyxml2::XMLElement* c = e ? e->FirstChildElement(name) : nullptr;
  return c && c->GetText() ? c->GetText() : "";
}

// An STS answer: <ACTIONResponse><ACTIONResult><Credentials>... or an
// <ErrorResponse><Error><Code/><Message/>.
Result<Credentials> ParseStsAnswer(const HttpAnswer& a, const std::string& who,
                                   const std::string& action, const std::string& url,
                                   const std::vector<std::string>& secrets) {
  tinyxml2::XMLDocument doc;
  bool parsed = doc.Parse(a.body.data(), a.body.size()) == tinyxml2::XML_SUCCESS &&
                doc.RootElement() != nullptr;
  if (a.status != 200) {
    std::string code, message;
    if (parsed) {
      const tinyxml2::XMLElement* err = doc.RootElement()->FirstChildElement("Error");
      if (err == nullptr && std::string(doc.RootElement()->Name()) == "Error") {
        err = doc.RootElement();
      }
      code = XmlText(err, "Code");
      message = XmlText(err, "Message");
      if (message.size() > 512) message = message.substr(0, 512) + "...";
      if (HasControl(message)) message = "(a message with control characters)";
    }
    std::string msg = Scrub(who + ": " + action + " at " + Origin(url) + " answered HTTP " +
                                std::to_string(a.status) + (code.empty() ? "" : " " + code) +
                                (message.empty() ? "" : " (" + message + ")"),
                            secrets);
    if (a.status == 429 || code == "Throttling") return Status::Throttled(msg);
    if (a.status >= 500) return Status::Transient(msg);
    return Status::Auth(msg);
  }
  if (!parsed) return Status::Corrupt(who + ": " + action + ": the answer is not XML");
  const tinyxml2::XMLElement* creds =
      doc.RootElement()->FirstChildElement((action + "Result").c_str());
  if (creds) creds = creds->FirstChildElement("Credentials");
  if (creds == nullptr) {
    return Status::Corrupt(who + ": " + action + ": the answer has no " + action +
                           "Result/Credentials");
  }
  Credentials c;
  c.access_key = XmlText(creds, "AccessKeyId");
  c.secret_key = XmlText(creds, "SecretAccessKey");
  c.session_token = XmlText(creds, "SessionToken");
  std::string expiration = XmlText(creds, "Expiration");
  if (c.access_key.empty() || c.secret_key.empty() || c.session_token.empty() ||
      HasControl(c.access_key) || HasControl(c.secret_key) || HasControl(c.session_token)) {
    return Status::Corrupt(
        who + ": " + action +
        ": AccessKeyId, SecretAccessKey or SessionToken is missing or malformed");
  }
  c.expiration = ParseIso8601(expiration);
  if (!c.expiration) {
    return Status::Corrupt(who + ": " + action + ": Expiration is not an ISO 8601 time");
  }
  return c;
}

std::string SessionName(const RoleOptions& r) {
  if (!r.session_name.empty()) return r.session_name;
  return "hyperfile-" + std::to_string(std::time(nullptr));
}

HttpCall StsCall(const RoleOptions& r, const ChainOptions& chain, std::string body) {
  HttpCall call;
  call.method = "POST";
  call.url = r.sts_endpoint + "/";
  call.body = std::move(body);
  call.connect_timeout_ms = std::min(chain.sts_timeout_ms, 5000);
  call.timeout_ms = chain.sts_timeout_ms;
  call.ca_bundle = chain.ca_bundle;
  call.verify_tls = chain.verify_tls;
  return call;
}

std::vector<std::pair<std::string, std::string>> RoleFields(const char* action,
                                                            const RoleOptions& r) {
  std::vector<std::pair<std::string, std::string>> f = {{"Action", action},
                                                        {"Version", "2011-06-15"},
                                                        {"RoleArn", r.role_arn},
                                                        {"RoleSessionName", SessionName(r)}};
  if (r.duration_seconds > 0) f.emplace_back("DurationSeconds", std::to_string(r.duration_seconds));
  return f;
}

class AssumeRoleProvider : public CredentialsProvider {
 public:
  AssumeRoleProvider(RoleOptions role, std::shared_ptr<CachedCredentials> source,
                     const ChainOptions& chain)
      : role_(std::move(role)), source_(std::move(source)), chain_(chain) {}
  std::string Describe() const override { return role_.describe; }

  Result<Credentials> Fetch() override {
    Result<Credentials> src = source_->Get();
    if (!src.ok()) return src.status().WithContext(Describe() + ": the source credentials");
    auto fields = RoleFields("AssumeRole", role_);
    if (!role_.external_id.empty()) fields.emplace_back("ExternalId", role_.external_id);
    HttpCall call = StsCall(role_, chain_, FormEncode(fields));
    std::map<std::string, std::string> headers = {
        {"content-type", "application/x-www-form-urlencoded; charset=utf-8"}};
    sigv4::Signed sig = sigv4::Sign({src->access_key, src->secret_key, src->session_token},
                                    role_.sts_region, "POST", HostPort(role_.sts_endpoint), "/", "",
                                    headers, Payload{call.body}, std::time(nullptr), "", "sts");
    for (const auto& [name, value] : sig.headers) {
      if (name != "host") call.headers.push_back(name + ": " + value);
    }
    const std::vector<std::string> secrets = {src->secret_key, src->session_token};
    Result<HttpAnswer> a = Http(call, Describe());
    if (!a.ok()) return ScrubStatus(a.status(), secrets);
    return ParseStsAnswer(*a, Describe(), "AssumeRole", call.url, secrets);
  }

 private:
  RoleOptions role_;
  std::shared_ptr<CachedCredentials> source_;
  ChainOptions chain_;
};

class WebIdentityProvider : public CredentialsProvider {
 public:
  WebIdentityProvider(RoleOptions role, std::string token_file, const ChainOptions& chain)
      : role_(std::move(role)), token_file_(std::move(token_file)), chain_(chain) {}
  std::string Describe() const override { return role_.describe; }

  Result<Credentials> Fetch() override {
    HF_ASSIGN_OR_RETURN(std::string token,
                        ReadSmallFile(token_file_, Describe(), "web identity token"));
    auto fields = RoleFields("AssumeRoleWithWebIdentity", role_);
    fields.emplace_back("WebIdentityToken", token);
    HttpCall call = StsCall(role_, chain_, FormEncode(fields));
    call.headers.push_back("Content-Type: application/x-www-form-urlencoded; charset=utf-8");
    const std::vector<std::string> secrets = {token, sigv4::UriEncode(token, true)};
    Result<HttpAnswer> a = Http(call, Describe());
    if (!a.ok()) return ScrubStatus(a.status(), secrets);
    return ParseStsAnswer(*a, Describe(), "AssumeRoleWithWebIdentity", call.url, secrets);
  }

 private:
  RoleOptions role_;
  std::string token_file_;
  ChainOptions chain_;
};

// ---------------------------------------------------------------- chain ---

bool IsTrue(std::string v) {
  for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return v == "true" || v == "1";
}

// http is allowed for a container FULL_URI only on loopback and the
// container agents' link-local addresses (as the AWS SDKs).
bool ContainerUrlAllowed(const std::string& url) {
  if (url.starts_with("https://")) return true;
  if (!url.starts_with("http://")) return false;
  std::string host = HostPort(url);
  if (host.starts_with("[")) return host.starts_with("[::1]");
  host = host.substr(0, host.find(':'));
  return host == "localhost" || host.starts_with("127.") || host == "169.254.170.2" ||
         host == "169.254.170.23";
}

class Chain {
 public:
  Chain(const StoreOptions& o, const SharedConfig& c, const ChainOptions& ch)
      : options_(o), config_(c), chain_(ch) {}

  Result<std::unique_ptr<CredentialsProvider>> Resolve(std::string* looked_at) {
    auto provider = ResolveInner();
    if (looked_at) {
      *looked_at = "";
      if (fell_through_) {
        for (const std::string& s : seen_) *looked_at += (looked_at->empty() ? "" : "; ") + s;
      }
    }
    return provider;
  }

 private:
  Result<std::unique_ptr<CredentialsProvider>> ResolveInner() {
    const StoreOptions& o = options_;
    if (!o.access_key_id.empty() || !o.secret_access_key.empty()) {
      if (o.access_key_id.empty() || o.secret_access_key.empty()) {
        return Status::InvalidArgument(
            "StoreOptions: access_key_id and secret_access_key are given together or not at all");
      }
      return NewStaticProvider({o.access_key_id, o.secret_access_key, o.session_token, {}},
                               "StoreOptions keys");
    }
    ProfileChoice profile = ChooseProfile(o);
    if (o.profile.empty()) {
      std::string id = Env("AWS_ACCESS_KEY_ID"), secret = Env("AWS_SECRET_ACCESS_KEY");
      if (!id.empty() && !secret.empty()) {
        return NewStaticProvider({id, secret, Env("AWS_SESSION_TOKEN"), {}},
                                 "environment (AWS_ACCESS_KEY_ID)");
      }
      if (!id.empty() || !secret.empty()) {
        return Status::InvalidArgument(std::string("environment: ") +
                                       (id.empty() ? "AWS_SECRET_ACCESS_KEY is set but "
                                                     "AWS_ACCESS_KEY_ID is not"
                                                   : "AWS_ACCESS_KEY_ID is set but "
                                                     "AWS_SECRET_ACCESS_KEY is not"));
      }
      seen_.push_back("environment: AWS_ACCESS_KEY_ID not set");
    } else {
      seen_.push_back("environment: skipped (a profile was named)");
    }
    std::string token_file = Env("AWS_WEB_IDENTITY_TOKEN_FILE"), role = Env("AWS_ROLE_ARN");
    if (!token_file.empty() && !role.empty()) {
      RoleOptions r = Role(profile.name, role);
      r.session_name = Env("AWS_ROLE_SESSION_NAME");
      r.describe = "web identity (AWS_ROLE_ARN " + role + ")";
      return NewWebIdentityProvider(std::move(r), token_file, chain_);
    }
    seen_.push_back("web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN not both set");
    if (config_.HasProfile(profile.name)) {
      std::vector<std::string> visiting;
      HF_ASSIGN_OR_RETURN(std::unique_ptr<CredentialsProvider> p,
                          FromProfile(profile.name, &visiting));
      if (p) return p;
      seen_.push_back("profile '" + profile.name + "': no credentials in it");
    } else if (profile.named) {
      return Status::InvalidArgument("AWS profile '" + profile.name + "' is not in " +
                                     config_.Files());
    } else {
      seen_.push_back("profile 'default': not in " + config_.Files());
    }
    if (auto container = Container("container credentials")) return container;
    if (!container_error_.ok()) return container_error_;
    seen_.push_back("container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI not set");
    if (IsTrue(Env("AWS_EC2_METADATA_DISABLED"))) {
      seen_.push_back("instance metadata: disabled by AWS_EC2_METADATA_DISABLED");
      std::string all;
      for (const std::string& s : seen_) all += (all.empty() ? "" : "; ") + s;
      return Status::Auth("no AWS credentials found (" + all + ")");
    }
    std::string endpoint = Env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (endpoint.empty()) endpoint = chain_.imds_endpoint;
    fell_through_ = true;
    return NewImdsProvider(endpoint, chain_);
  }

  RoleOptions Role(const std::string& profile, const std::string& arn) const {
    RoleOptions r;
    r.role_arn = arn;
    r.sts_region = config_.Value(profile, "region");
    if (r.sts_region.empty()) r.sts_region = chain_.region.empty() ? "us-east-1" : chain_.region;
    r.sts_endpoint = StsEndpoint(config_, profile, r.sts_region);
    return r;
  }

  std::unique_ptr<CredentialsProvider> Container(const std::string& what) {
    std::string rel = Env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    std::string full = Env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    std::string url;
    if (!rel.empty()) {
      if (!rel.starts_with("/") || HasControl(rel)) {
        container_error_ = Status::InvalidArgument(
            what + ": AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with '/'");
        return nullptr;
      }
      url = chain_.container_host + rel;
    } else if (!full.empty()) {
      if (!ContainerUrlAllowed(full) || HasControl(full)) {
        container_error_ = Status::InvalidArgument(
            what +
            ": AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http on a loopback "
            "address or 169.254.170.2 / 169.254.170.23; it is " +
            Origin(full));
        return nullptr;
      }
      url = full;
    } else {
      return nullptr;
    }
    return NewContainerProvider(url, Env("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
                                Env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), chain_);
  }

  // The profile's own provider; nullptr when it has no credentials at all.
  Result<std::unique_ptr<CredentialsProvider>> FromProfile(const std::string& name,
                                                           std::vector<std::string>* visiting) {
    std::string where = "profile '" + name + "'";
    for (const std::string& v : *visiting) {
      if (v == name) {
        std::string path;
        for (const std::string& p : *visiting) path += p + " -> ";
        return Status::InvalidArgument(where + ": source_profile cycle: " + path + name);
      }
    }
    if (visiting->size() >= 8) {
      return Status::InvalidArgument(where + ": source_profile chain longer than 8 profiles");
    }
    if (!config_.HasProfile(name)) {
      return Status::InvalidArgument(where + " (a source_profile) is not in " + config_.Files());
    }
    visiting->push_back(name);
    std::string arn = config_.Value(name, "role_arn");
    if (!arn.empty()) {
      RoleOptions r = Role(name, arn);
      r.session_name = config_.Value(name, "role_session_name");
      r.external_id = config_.Value(name, "external_id");
      std::string duration = config_.Value(name, "duration_seconds");
      if (!duration.empty()) {
        char* end = nullptr;
        long d = std::strtol(duration.c_str(), &end, 10);
        if (*end != '\0' || d < 900 || d > 43200) {
          return Status::InvalidArgument(where + ": duration_seconds '" + duration +
                                         "': accepted 900..43200");
        }
        r.duration_seconds = static_cast<int>(d);
      }
      std::string web = config_.Value(name, "web_identity_token_file");
      std::string source = config_.Value(name, "source_profile");
      std::string credential_source = config_.Value(name, "credential_source");
      if (!web.empty()) {
        r.describe = where + " (role_arn " + arn + " with web_identity_token_file)";
        return NewWebIdentityProvider(std::move(r), web, chain_);
      }
      if (!source.empty() && !credential_source.empty()) {
        return Status::InvalidArgument(where +
                                       ": role_arn with both source_profile and credential_source");
      }
      std::unique_ptr<CredentialsProvider> src;
      if (!source.empty()) {
        r.describe = where + " (role_arn " + arn + " via source_profile '" + source + "')";
        if (source == name) {
          src = StaticKeys(name);
        } else {
          HF_ASSIGN_OR_RETURN(src, FromProfile(source, visiting));
        }
        if (!src) {
          return Status::InvalidArgument(where + ": its source_profile '" + source +
                                         "' has no credentials");
        }
      } else if (!credential_source.empty()) {
        r.describe =
            where + " (role_arn " + arn + " via credential_source " + credential_source + ")";
        if (credential_source == "Environment") {
          std::string id = Env("AWS_ACCESS_KEY_ID"), secret = Env("AWS_SECRET_ACCESS_KEY");
          if (id.empty() || secret.empty()) {
            return Status::InvalidArgument(
                where +
                ": credential_source Environment, but AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY are not set");
          }
          src = NewStaticProvider({id, secret, Env("AWS_SESSION_TOKEN"), {}},
                                  "environment (AWS_ACCESS_KEY_ID)");
        } else if (credential_source == "Ec2InstanceMetadata") {
          if (IsTrue(Env("AWS_EC2_METADATA_DISABLED"))) {
            return Status::InvalidArgument(where +
                                           ": credential_source Ec2InstanceMetadata, but "
                                           "AWS_EC2_METADATA_DISABLED is true");
          }
          std::string endpoint = Env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
          src = NewImdsProvider(endpoint.empty() ? chain_.imds_endpoint : endpoint, chain_);
        } else if (credential_source == "EcsContainer") {
          src = Container(where + ": credential_source EcsContainer");
          if (!container_error_.ok()) return container_error_;
          if (!src) {
            return Status::InvalidArgument(where +
                                           ": credential_source EcsContainer, but "
                                           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI "
                                           "are not set");
          }
        } else {
          return Status::InvalidArgument(where + ": credential_source '" + credential_source +
                                         "': expected Environment, Ec2InstanceMetadata or "
                                         "EcsContainer");
        }
      } else {
        return Status::InvalidArgument(where +
                                       ": role_arn needs source_profile, credential_source or "
                                       "web_identity_token_file");
      }
      visiting->pop_back();
      return NewAssumeRoleProvider(std::move(r),
                                   std::make_shared<CachedCredentials>(std::move(src)), chain_);
    }
    std::string id = config_.Value(name, "aws_access_key_id");
    std::string secret = config_.Value(name, "aws_secret_access_key");
    if (id.empty() != secret.empty()) {
      return Status::InvalidArgument(where + ": aws_access_key_id and aws_secret_access_key " +
                                     "go together (one is missing)");
    }
    visiting->pop_back();
    if (!id.empty()) return StaticKeys(name);
    std::string process = config_.Value(name, "credential_process");
    if (!process.empty()) {
      std::string program = process.substr(0, process.find(' '));
      return NewProcessProvider(process, where + " (credential_process " + program + ")",
                                chain_.process_timeout_ms);
    }
    return std::unique_ptr<CredentialsProvider>();
  }

  std::unique_ptr<CredentialsProvider> StaticKeys(const std::string& name) {
    std::string id = config_.Value(name, "aws_access_key_id");
    std::string secret = config_.Value(name, "aws_secret_access_key");
    if (id.empty() || secret.empty()) return nullptr;
    return NewStaticProvider({id, secret, config_.Value(name, "aws_session_token"), {}},
                             "profile '" + name + "' (keys in " + config_.Files() + ")");
  }

  const StoreOptions& options_;
  const SharedConfig& config_;
  const ChainOptions& chain_;
  std::vector<std::string> seen_;
  bool fell_through_ = false;  // to instance metadata: nothing else configured
  Status container_error_;
};

}  // namespace

Clock::time_point Now() {
  std::lock_guard<std::mutex> lock(clock_mu);
  return test_clock ? (*test_clock)() : Clock::now();
}

void SetClockForTesting(std::function<Clock::time_point()> clock) {
  std::lock_guard<std::mutex> lock(clock_mu);
  delete test_clock;
  test_clock = clock ? new std::function<Clock::time_point()>(std::move(clock)) : nullptr;
}

Status Redact(const Status& st, const Credentials& credentials) {
  return ScrubStatus(st, {credentials.secret_key, credentials.session_token});
}

std::optional<Clock::time_point> ParseIso8601(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00|-00:00|+HH:MM)
  auto digits = [&](size_t pos, size_t n, int* out) {
    if (pos + n > t.size()) return false;
    int v = 0;
    for (size_t i = pos; i < pos + n; i++) {
      if (t[i] < '0' || t[i] > '9') return false;
      v = v * 10 + (t[i] - '0');
    }
    *out = v;
    return true;
  };
  std::tm tm{};
  int year, mon, day, hour, min, sec;
  if (!digits(0, 4, &year) || t.size() < 19 || t[4] != '-' || !digits(5, 2, &mon) || t[7] != '-' ||
      !digits(8, 2, &day) || (t[10] != 'T' && t[10] != 't' && t[10] != ' ') ||
      !digits(11, 2, &hour) || t[13] != ':' || !digits(14, 2, &min) || t[16] != ':' ||
      !digits(17, 2, &sec)) {
    return std::nullopt;
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return std::nullopt;
  }
  size_t pos = 19;
  if (pos < t.size() && t[pos] == '.') {
    pos++;
    size_t start = pos;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') pos++;
    if (pos == start) return std::nullopt;
  }
  int offset_s = 0;
  std::string_view zone = t.substr(pos);
  if (zone == "Z" || zone == "z") {
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int oh, om;
    if (!digits(pos + 1, 2, &oh) || !digits(pos + 4, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_s = (oh * 3600 + om * 60) * (zone[0] == '+' ? 1 : -1);
  } else {
    return std::nullopt;
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  std::time_t utc = timegm(&tm) - offset_s;
  return Clock::from_time_t(utc);
}

CachedCredentials::CachedCredentials(std::unique_ptr<CredentialsProvider> provider)
    : provider_(std::move(provider)) {}

size_t CachedCredentials::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

uint64_t CachedCredentials::fetches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fetches_;
}

Result<Credentials> CachedCredentials::Get() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    Clock::time_point now = Now();
    bool valid = cached_ && (!cached_->expiration || now < *cached_->expiration);
    if (valid && (!cached_->expiration || now < refresh_at_)) return *cached_;
    if (refreshing_) {
      // Another caller is fetching: the cached credentials serve until they
      // expire; after that, wait for the fetch.
      if (valid) return *cached_;
      // Wait for that fetch; if it failed, its error is ours too (no
      // stampede of one fetch per waiting request against a failing source).
      const uint64_t generation = generation_;
      waiting_++;
      cv_.wait(lock, [&] { return !refreshing_; });
      waiting_--;
      if (generation_ != generation && !last_error_.ok()) {
        now = Now();
        if (!(cached_ && (!cached_->expiration || now < *cached_->expiration))) return last_error_;
      }
      continue;
    }
    if (valid && now < next_try_) return *cached_;  // the last refresh failed
    refreshing_ = true;
    fetches_++;
    lock.unlock();
    Result<Credentials> fresh = provider_->Fetch();
    lock.lock();
    refreshing_ = false;
    generation_++;
    last_error_ = fresh.ok() ? Status::OK() : fresh.status();
    cv_.notify_all();
    now = Now();
    if (!fresh.ok()) {
      next_try_ = now + kRetryAfterFailure;
      if (cached_ && (!cached_->expiration || now < *cached_->expiration)) return *cached_;
      return fresh.status();
    }
    cached_ = *fresh;
    if (cached_->expiration) {
      auto life = *cached_->expiration - now;
      auto ahead = std::chrono::duration_cast<Clock::duration>(kRefreshAhead);
      refresh_at_ = *cached_->expiration - (life < 2 * ahead ? life / 2 : ahead);
    }
    return *cached_;
  }
}

Result<std::unique_ptr<CredentialsProvider>> ResolveCredentialChain(const StoreOptions& options,
                                                                    const SharedConfig& config,
                                                                    const ChainOptions& chain,
                                                                    std::string* looked_at) {
  Chain c(options, config, chain);
  return c.Resolve(looked_at);
}

std::unique_ptr<CredentialsProvider> NewStaticProvider(Credentials credentials,
                                                       std::string describe) {
  return std::make_unique<StaticProvider>(std::move(credentials), std::move(describe));
}
std::unique_ptr<CredentialsProvider> NewProcessProvider(std::string command, std::string describe,
                                                        int timeout_ms) {
  return std::make_unique<ProcessProvider>(std::move(command), std::move(describe), timeout_ms);
}
std::unique_ptr<CredentialsProvider> NewContainerProvider(std::string url, std::string token,
                                                          std::string token_file,
                                                          const ChainOptions& chain) {
  return std::make_unique<ContainerProvider>(std::move(url), std::move(token),
                                             std::move(token_file), chain);
}
std::unique_ptr<CredentialsProvider> NewImdsProvider(std::string endpoint,
                                                     const ChainOptions& chain) {
  return std::make_unique<ImdsProvider>(std::move(endpoint), chain);
}
std::unique_ptr<CredentialsProvider> NewAssumeRoleProvider(
    RoleOptions role, std::shared_ptr<CachedCredentials> source, const ChainOptions& chain) {
  return std::make_unique<AssumeRoleProvider>(std::move(role), std::move(source), chain);
}
std::unique_ptr<CredentialsProvider> NewWebIdentityProvider(RoleOptions role,
                                                            std::string token_file,
                                                            const ChainOptions& chain) {
  return std::make_unique<WebIdentityProvider>(std::move(role), std::move(token_file), chain);
}

}  // namespace hyperfile::aws
