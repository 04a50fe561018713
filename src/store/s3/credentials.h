// SPDX-License-Identifier: Apache-2.0
// AWS credentials for the S3 backend: the standard provider chain, and a
// cache that refreshes credentials before they expire, so that a
// long-running process (nbdkit) keeps working when session credentials
// rotate. The S3 store asks the cache before signing each request.
//
// The chain, first match wins (as aws-cli, botocore):
//   1. StoreOptions access_key_id + secret_access_key (+ session_token)
//   2. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
//      (+ AWS_SESSION_TOKEN); skipped when StoreOptions::profile is set
//   3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
//      (+ AWS_ROLE_SESSION_NAME) -> STS AssumeRoleWithWebIdentity
//   4. the profile (StoreOptions::profile, AWS_PROFILE or "default") in the
//      shared files (aws_config.h), in this order within it:
//        role_arn + source_profile | credential_source |
//                   web_identity_token_file     -> STS AssumeRole(WithWebIdentity)
//        aws_access_key_id + aws_secret_access_key (+ aws_session_token),
//                   from the credentials file or the config file
//        credential_process                     -> run it, parse its JSON
//   5. container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (on 169.254.170.2)
//      or AWS_CONTAINER_CREDENTIALS_FULL_URI, with
//      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or _TOKEN as Authorization
//   6. EC2 instance metadata, IMDSv2 (AWS_EC2_METADATA_SERVICE_ENDPOINT,
//      default http://169.254.169.254; off with
//      AWS_EC2_METADATA_DISABLED=true); tried last, with short timeouts
// Choosing a provider costs no request: 1-5 look at the options, the
// environment and the files; only 6 is chosen because nothing else was
// configured. A provider that is configured but fails is an error (the
// chain does not fall through to the next one).
//
// Secrets (secret keys, session tokens, web identity tokens, container
// authorization tokens) never appear in a Status message or Describe(): a
// message from a server or a process is scrubbed of every secret known to
// the provider, and the output of a credential process is never quoted.
//
// Every answer is untrusted and bounded: HTTP bodies 64 KiB, headers 16 KiB,
// a credential process's output 64 KiB (and 60 s).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "hyperfile/object_store.h"
#include "hyperfile/status.h"
#include "store/s3/aws_config.h"

namespace hyperfile::aws {

using Clock = std::chrono::system_clock;

struct Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;                    // empty for long-term keys
  std::optional<Clock::time_point> expiration;  // nullopt: never expires
};

// One source of credentials. Fetch is called by CachedCredentials, under its
// refresh discipline (one fetch at a time per cache).
class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Fresh credentials from the source: Auth when the source refuses or is
  // misconfigured, Transient when it cannot be reached, Corrupt when its
  // answer is malformed. The message names the provider and never contains
  // a secret.
  virtual Result<Credentials> Fetch() = 0;
  // For messages: "environment", "profile 'ci' (credential_process)", ...
  virtual std::string Describe() const = 0;
};

// Now, for the cache: the system clock, unless a test replaced it
// (SetClockForTesting; nullptr restores the system clock). Not for
// concurrent use with running stores.
Clock::time_point Now();
void SetClockForTesting(std::function<Clock::time_point()> clock);

// Caches one provider's credentials. Get returns the cached ones until their
// refresh time, which is kRefreshAhead (5 min) before expiry, or halfway
// through their lifetime for credentials that live less than 10 min; then
// one caller refreshes while the others keep using the cached credentials
// as long as they have not expired (and wait for the refresh when they
// have; if that fetch fails, they all get its error). A failed refresh
// while the cached credentials are still valid
// keeps them and tries again after kRetryAfterFailure (10 s), so a flaky
// source neither stalls nor floods; once they have expired, Get returns
// the error. Thread-safe.
class CachedCredentials {
 public:
  static constexpr std::chrono::minutes kRefreshAhead{5};
  static constexpr std::chrono::seconds kRetryAfterFailure{10};

  explicit CachedCredentials(std::unique_ptr<CredentialsProvider> provider);
  Result<Credentials> Get();
  std::string Describe() const { return provider_->Describe(); }
  uint64_t fetches() const;  // calls to the provider's Fetch so far
  size_t waiting() const;    // callers waiting for a fetch now (a test hook)

 private:
  std::unique_ptr<CredentialsProvider> provider_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Credentials> cached_;
  Clock::time_point refresh_at_{};
  Clock::time_point next_try_{};  // after a failed refresh
  bool refreshing_ = false;
  uint64_t generation_ = 0;  // fetches completed
  Status last_error_;        // of the last fetch
  uint64_t fetches_ = 0;
  size_t waiting_ = 0;
};

// Where the chain looks, beyond the environment and the files; tests point
// the metadata services at 127.0.0.1.
struct ChainOptions {
  std::string region;     // the S3 region: STS's when the profile has none
  std::string ca_bundle;  // for HTTPS to STS and a container FULL_URI
  bool verify_tls = true;
  std::string container_host = "http://169.254.170.2";   // for RELATIVE_URI
  std::string imds_endpoint = "http://169.254.169.254";  // unless the env sets one
  int metadata_connect_timeout_ms = 500;                 // IMDS and container: link-local
  int metadata_timeout_ms = 2000;
  int sts_timeout_ms = 10000;
  int process_timeout_ms = 60000;
};

// The provider the chain (above) chooses for these options, without any
// request. InvalidArgument for a broken configuration (a profile that is
// not there, a source_profile cycle, a role without a source); Auth when
// nothing is configured and instance metadata is disabled. When the chain
// falls through to instance metadata, `*looked_at` (if non-null) gets a
// summary of what was looked at, for the message if that then fails; it is
// empty when any other provider was chosen.
Result<std::unique_ptr<CredentialsProvider>> ResolveCredentialChain(const StoreOptions& options,
                                                                    const SharedConfig& config,
                                                                    const ChainOptions& chain,
                                                                    std::string* looked_at);

// The individual providers, for tests and for callers that assemble their
// own. `secret`s given to a provider are scrubbed from its messages.
std::unique_ptr<CredentialsProvider> NewStaticProvider(Credentials credentials,
                                                       std::string describe);
std::unique_ptr<CredentialsProvider> NewProcessProvider(std::string command, std::string describe,
                                                        int timeout_ms);
std::unique_ptr<CredentialsProvider> NewContainerProvider(std::string url, std::string token,
                                                          std::string token_file,
                                                          const ChainOptions& chain);
std::unique_ptr<CredentialsProvider> NewImdsProvider(std::string endpoint,
                                                     const ChainOptions& chain);
struct RoleOptions {
  std::string role_arn;
  std::string session_name;  // default "hyperfile-<time>"
  std::string external_id;
  int duration_seconds = 0;  // 0: STS's default (1 h)
  std::string sts_endpoint;  // e.g. https://sts.us-east-1.amazonaws.com
  std::string sts_region;
  std::string describe;
};
// AssumeRole, signed with the source's credentials.
std::unique_ptr<CredentialsProvider> NewAssumeRoleProvider(
    RoleOptions role, std::shared_ptr<CachedCredentials> source, const ChainOptions& chain);
// AssumeRoleWithWebIdentity with the token read from `token_file` at each
// fetch (it rotates).
std::unique_ptr<CredentialsProvider> NewWebIdentityProvider(RoleOptions role,
                                                            std::string token_file,
                                                            const ChainOptions& chain);

// `st` with every occurrence of the credentials' secret key and session
// token replaced by "<redacted>" (for messages that quote a server).
Status Redact(const Status& st, const Credentials& credentials);

// Parses an ISO 8601 UTC time as AWS writes it ("2026-12-01T16:20:00Z",
// with optional fractional seconds, or a "+00:00" offset).
std::optional<Clock::time_point> ParseIso8601(std::string_view text);

}  // namespace hyperfile::aws
