// SPDX-License-Identifier: Apache-2.0
#include "store/s3/aws_config.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace hyperfile::aws {
namespace {

constexpr size_t kMaxIniBytes = 1 << 20;

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) b++;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) {
    e--;
  }
  return std::string(s.substr(b, e - b));
}

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::string Pick(std::initializer_list<std::string> values) {
  for (const std::string& v : values) {
    if (!v.empty()) return v;
  }
  return "";
}

}  // namespace

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

Result<IniFile> ParseIni(std::string_view text, const std::string& path) {
  IniFile out;
  out.path = path;
  std::map<std::string, std::string>* section = nullptr;
  std::string nested;  // the key whose indented sub-keys follow ("s3")
  size_t line_no = 0;
  auto bad = [&](const char* why) {
    return Status::InvalidArgument("AWS config file " + path + " line " + std::to_string(line_no) +
                                   ": " + why);
  };
  while (!text.empty()) {
    line_no++;
    size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    std::string line = Trim(raw);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    bool indented = raw[0] == ' ' || raw[0] == '\t';
    if (line.front() == '[') {
      if (line.back() != ']') return bad("a section header without ']'");
      section = &out.sections[Trim(std::string_view(line).substr(1, line.size() - 2))];
      nested.clear();
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos) return bad("expected 'key = value'");
    if (section == nullptr) return bad("a 'key = value' line before any [section]");
    std::string key = Lower(Trim(std::string_view(line).substr(0, eq)));
    std::string value = Trim(std::string_view(line).substr(eq + 1));
    if (key.empty()) return bad("a line with no key before '='");
    if (indented && !nested.empty()) {
      (*section)[nested + "." + key] = value;
      continue;
    }
    (*section)[key] = value;
    nested = value.empty() ? key : "";
  }
  return out;
}

Result<IniFile> ReadIniFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT || errno == ENOTDIR) {
      IniFile empty;
      empty.path = path;
      return empty;
    }
    return Status::IOError("AWS config file " + path + ": " + std::strerror(errno));
  }
  std::string text;
  char buf[8192];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxIniBytes) {
      return Status::InvalidArgument("AWS config file " + path + ": larger than " +
                                     std::to_string(kMaxIniBytes) + " bytes");
    }
  }
  if (in.bad()) return Status::IOError("AWS config file " + path + ": read error");
  return ParseIni(text, path);
}

Result<SharedConfig> SharedConfig::Load() {
  std::string home = Env("HOME");
  std::string config_path = Env("AWS_CONFIG_FILE");
  if (config_path.empty() && !home.empty()) config_path = home + "/.aws/config";
  std::string cred_path = Env("AWS_SHARED_CREDENTIALS_FILE");
  if (cred_path.empty() && !home.empty()) cred_path = home + "/.aws/credentials";
  IniFile config, credentials;
  if (!config_path.empty()) {
    HF_ASSIGN_OR_RETURN(config, ReadIniFile(config_path));
  }
  if (!cred_path.empty()) {
    HF_ASSIGN_OR_RETURN(credentials, ReadIniFile(cred_path));
  }
  return FromFiles(std::move(config), std::move(credentials));
}

SharedConfig SharedConfig::FromFiles(IniFile config, IniFile credentials) {
  SharedConfig c;
  c.config_ = std::move(config);
  c.credentials_ = std::move(credentials);
  return c;
}

const std::map<std::string, std::string>* SharedConfig::ConfigSection(
    const std::string& profile) const {
  auto it = config_.sections.find("profile " + profile);
  if (it == config_.sections.end() && profile == "default") it = config_.sections.find("default");
  return it == config_.sections.end() ? nullptr : &it->second;
}

bool SharedConfig::HasProfile(const std::string& profile) const {
  return ConfigSection(profile) != nullptr || credentials_.sections.count(profile) != 0;
}

std::string SharedConfig::Value(const std::string& profile, const std::string& key) const {
  if (auto it = credentials_.sections.find(profile); it != credentials_.sections.end()) {
    if (auto v = it->second.find(key); v != it->second.end() && !v->second.empty()) {
      return v->second;
    }
  }
  if (const auto* section = ConfigSection(profile)) {
    if (auto v = section->find(key); v != section->end()) return v->second;
  }
  return "";
}

std::string SharedConfig::ServiceValue(const std::string& profile, const std::string& service,
                                       const std::string& key) const {
  std::string name = Value(profile, "services");
  if (name.empty()) return "";
  auto it = config_.sections.find("services " + name);
  if (it == config_.sections.end()) return "";
  auto v = it->second.find(service + "." + key);
  return v == it->second.end() ? "" : v->second;
}

std::string SharedConfig::Files() const {
  std::string a = config_.path.empty() ? "(no config file)" : config_.path;
  std::string b = credentials_.path.empty() ? "(no credentials file)" : credentials_.path;
  return a + " or " + b;
}

ProfileChoice ChooseProfile(const StoreOptions& options) {
  if (!options.profile.empty()) return {options.profile, true};
  std::string env = Env("AWS_PROFILE");
  if (!env.empty()) return {env, true};
  return {"default", false};
}

Result<S3Settings> ResolveS3Settings(const StoreOptions& options, const SharedConfig& config) {
  ProfileChoice profile = ChooseProfile(options);
  if (profile.named && !config.HasProfile(profile.name)) {
    return Status::InvalidArgument("AWS profile '" + profile.name + "' is not in " +
                                   config.Files());
  }
  const std::string& p = profile.name;
  S3Settings s;
  s.profile = p;
  s.region = Pick({options.region, Env("AWS_REGION"), Env("AWS_DEFAULT_REGION"),
                   config.Value(p, "region"), "us-east-1"});
  s.endpoint =
      Pick({options.endpoint, Env("AWS_ENDPOINT_URL_S3"), Env("AWS_ENDPOINT_URL"),
            config.ServiceValue(p, "s3", "endpoint_url"), config.Value(p, "endpoint_url")});
  while (!s.endpoint.empty() && s.endpoint.back() == '/') s.endpoint.pop_back();
  s.ca_bundle = Pick({options.ca_bundle, Env("AWS_CA_BUNDLE"), config.Value(p, "ca_bundle")});
  return s;
}

std::string StsEndpoint(const SharedConfig& config, const std::string& profile,
                        const std::string& region) {
  std::string e =
      Pick({Env("AWS_ENDPOINT_URL_STS"), Env("AWS_ENDPOINT_URL"),
            config.ServiceValue(profile, "sts", "endpoint_url"),
            config.Value(profile, "endpoint_url"), "https://sts." + region + ".amazonaws.com"});
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e;
}

}  // namespace hyperfile::aws
