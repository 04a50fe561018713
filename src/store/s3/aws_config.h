// SPDX-License-Identifier: Apache-2.0
// The AWS shared configuration files (~/.aws/config and ~/.aws/credentials)
// and the S3 settings taken from them and from the environment: region,
// endpoint and CA bundle. The credentials are in credentials.h.
//
// Precedence, for every setting: StoreOptions (explicit) > environment >
// the profile. Endpoints follow the AWS "service-specific endpoints" rules:
//   StoreOptions::endpoint > AWS_ENDPOINT_URL_S3 > AWS_ENDPOINT_URL >
//   the profile's `services` section (`s3 =` then `  endpoint_url = ...`) >
//   the profile's own `endpoint_url`
// Region: StoreOptions::region > AWS_REGION > AWS_DEFAULT_REGION > the
// profile's `region` > us-east-1.
// CA bundle: StoreOptions::ca_bundle > AWS_CA_BUNDLE > the profile's
// `ca_bundle` (empty: the system's certificates).
#pragma once

#include <map>
#include <string>

#include "hyperfile/object_store.h"
#include "hyperfile/status.h"

namespace hyperfile::aws {

// The value of an environment variable, "" when unset.
std::string Env(const char* name);

// One INI file as the AWS tools read it: `[section]` headers, `key = value`
// lines (keys lower-cased, values trimmed), full-line comments starting with
// '#' or ';', and nested values (`s3 =` followed by indented `key = value`
// lines, stored as "s3.key"). Values keep everything after the '='
// (no inline comments), as aws-cli does.
struct IniFile {
  std::string path;
  std::map<std::string, std::map<std::string, std::string>> sections;
};

// Parses an INI file. A missing file is an empty IniFile (not an error); a
// file that cannot be read, larger than 1 MiB, or with a line that is no
// header, comment, assignment or nested assignment is InvalidArgument or
// IOError naming the file and the line number (never the line's text: it
// may hold a secret).
Result<IniFile> ReadIniFile(const std::string& path);
// The same from text, for tests; `path` is used in messages only.
Result<IniFile> ParseIni(std::string_view text, const std::string& path);

// Both shared files.
class SharedConfig {
 public:
  // AWS_CONFIG_FILE (default ~/.aws/config) and AWS_SHARED_CREDENTIALS_FILE
  // (default ~/.aws/credentials); HOME unset means no files.
  static Result<SharedConfig> Load();
  static SharedConfig FromFiles(IniFile config, IniFile credentials);

  // The profile's section exists in either file: [profile NAME] (or [NAME]
  // for "default") in the config file, [NAME] in the credentials file.
  bool HasProfile(const std::string& profile) const;
  // A key of the profile: the credentials file's value if it has one (as
  // aws-cli), else the config file's; "" when neither has it.
  std::string Value(const std::string& profile, const std::string& key) const;
  // `KEY` of service `service` (e.g. "s3", "sts") in the [services NAME]
  // section named by the profile's `services` key; "" when absent.
  std::string ServiceValue(const std::string& profile, const std::string& service,
                           const std::string& key) const;
  // "FILE or FILE", for messages.
  std::string Files() const;

 private:
  const std::map<std::string, std::string>* ConfigSection(const std::string& profile) const;
  IniFile config_, credentials_;
};

// The profile in effect: StoreOptions::profile, else AWS_PROFILE, else
// "default"; `explicit_profile` tells whether one was named (then it must
// exist: see ResolveS3Settings).
struct ProfileChoice {
  std::string name;
  bool named = false;
};
ProfileChoice ChooseProfile(const StoreOptions& options);

struct S3Settings {
  std::string profile;    // the profile the other settings were read from
  std::string region;     // never empty
  std::string endpoint;   // without trailing '/'; empty = AWS (from the region)
  std::string ca_bundle;  // a file for CURLOPT_CAINFO; empty = the system's
};

// The S3 settings, by the precedence above. A named profile (StoreOptions::
// profile or AWS_PROFILE) that neither file has is InvalidArgument naming
// the profile and the files.
Result<S3Settings> ResolveS3Settings(const StoreOptions& options, const SharedConfig& config);

// The STS endpoint for a profile: AWS_ENDPOINT_URL_STS > AWS_ENDPOINT_URL >
// the profile's services `sts` endpoint_url > its endpoint_url >
// https://sts.REGION.amazonaws.com.
std::string StsEndpoint(const SharedConfig& config, const std::string& profile,
                        const std::string& region);

}  // namespace hyperfile::aws
