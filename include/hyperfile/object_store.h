// SPDX-License-Identifier: Apache-2.0
// ObjectStore: the one interface through which hyperfile touches storage.
//
// A store is rooted at a base location (a bucket and prefix, or a directory);
// every key passed to it is relative to that root. Keys are UTF-8 strings;
// '/' separates levels (a sub-directory in the local backend).
//
// Backends: memory (tests), local directory (file:///path, the embedded
// default) and S3 (s3://bucket/prefix). Layers that add behaviour (retry,
// latency, metrics, fault injection; see store_layers.h) implement the same
// interface and wrap another store, so they can be stacked freely. OpenStore
// assembles the one standard stack from StoreOptions.
//
// Thread-safety: every method may be called concurrently from many threads.
// Callers obtain parallelism by calling from several threads; a backend bounds
// the number of requests it has in flight (StoreOptions::max_in_flight).
//
// Errors: every non-OK Status names the operation, the store and the key, and
// is classified (NotFound, PreconditionFailed, Throttled, Transient, Auth,
// InvalidArgument, Corrupt, IOError) so callers can act on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hyperfile/export.h"
#include "hyperfile/status.h"

namespace hyperfile {

struct ObjectInfo {
  std::string key;       // relative to the store root
  uint64_t size = 0;     // bytes
  std::string etag;      // opaque, without surrounding quotes
  int64_t mtime_ms = 0;  // last modification, milliseconds since the Unix epoch
};

struct PutOptions {
  // Create only: fail with PreconditionFailed if the key already exists.
  // Atomic with respect to every other put on the same store. On S3 a
  // create-only put is always one PUT request with If-None-Match (never
  // multipart, whose completion some servers accept without honouring the
  // condition), so it is limited to 5 GiB.
  bool if_absent = false;
  // Replace only if the current object has this ETag (PreconditionFailed if
  // not, NotFound if absent). Empty = unconditional. Not every S3 server
  // honours it (Ceph Pacific does not); backends that cannot enforce it
  // return NotSupported rather than silently ignoring it.
  std::string if_match;
};

// A gather list: the object's content is the concatenation of the pieces.
// Lets callers upload data that lives in many buffers without copying it into
// one. The pieces must stay valid for the duration of the call.
using Payload = std::vector<std::string_view>;

inline constexpr uint64_t kToEnd = std::numeric_limits<uint64_t>::max();

class HYPERFILE_EXPORT ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Writes the whole object. On success fills *info (if non-null) with at
  // least key, size and etag.
  virtual Status Put(std::string_view key, const Payload& data, const PutOptions& options,
                     ObjectInfo* info) = 0;

  // Reads bytes [offset, offset + length) of the object, clamped to its size:
  // an offset at or past the end yields OK with an empty *out. length = kToEnd
  // reads to the end. NotFound if the object does not exist. Fills *info (if
  // non-null) with the object's size and etag when the backend knows them.
  virtual Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
                     ObjectInfo* info) = 0;

  // Size, ETag and modification time. NotFound if absent.
  virtual Status Head(std::string_view key, ObjectInfo* info) = 0;

  // Objects whose key starts with prefix and sorts strictly after start_after
  // (byte-wise order; empty = from the beginning), in ascending key order.
  // At most `limit` entries (0 = no limit); pagination is hidden. Appends to
  // *out.
  virtual Status List(std::string_view prefix, std::string_view start_after, size_t limit,
                      std::vector<ObjectInfo>* out) = 0;

  // Deletes one object. Deleting an absent key succeeds (S3 semantics).
  virtual Status Delete(std::string_view key) = 0;

  // Deletes many objects (batches of up to 1,000 on S3). Absent keys succeed.
  // On failure the message names the first key that could not be deleted.
  virtual Status DeleteMany(const std::vector<std::string>& keys) = 0;

  // Where this store lives, for messages: "s3://bucket/prefix", "file:///dir",
  // "memory://name". Never contains credentials.
  virtual std::string Name() const = 0;

  // Convenience forms.
  Status Put(std::string_view key, std::string_view data, const PutOptions& options = {},
             ObjectInfo* info = nullptr) {
    return Put(key, Payload{data}, options, info);
  }
  Status Get(std::string_view key, std::string* out, ObjectInfo* info = nullptr) {
    return Get(key, 0, kToEnd, out, info);
  }
};

// Simulated object-store latency, for the latency layer (NewLatencyStore in
// store_layers.h, where the timing contract is). The defaults are an
// "AWS-like" profile, S3 Standard seen from a machine in the same region, to
// an order of magnitude: 30 ms to the first byte of a GET, HEAD, LIST or
// DELETE, 60 ms for a PUT, 100 MiB/s per request (one connection).
struct LatencyOptions {
  std::chrono::microseconds get_ttfb{30000};
  std::chrono::microseconds put_ttfb{60000};
  std::chrono::microseconds head_ttfb{30000};
  std::chrono::microseconds list_ttfb{30000};    // per page of up to 1,000 keys
  std::chrono::microseconds delete_ttfb{30000};  // per Delete, per DeleteMany batch of 1,000
  // Transfer rate of one request, bytes per second; 0 = unlimited.
  uint64_t bandwidth_bytes_per_s = 100ull << 20;
  // Requests in flight at once through the layer; the rest wait for a slot.
  // 0 = unlimited (each request has its own connection).
  int max_in_flight = 0;
  // How the backend below uploads large objects, so a multipart put is
  // charged as on the wire (start, waves of parallel parts, completion)
  // rather than as one request at one connection's bandwidth. 0 = every put
  // is one request. OpenStoreStack fills these from the S3 options.
  uint64_t multipart_threshold = 0;
  uint64_t multipart_part_size = 0;
  int multipart_parallelism = 1;
};

// Parses a latency specification, the text of HYPERFILE_STORE_LATENCY:
//   "aws"                         the LatencyOptions defaults above
//   "get=30ms,put=60ms,bw=100MB"  comma-separated key=value items, starting
//                                 from no latency at all (every time 0,
//                                 bandwidth unlimited) ...
//   "aws,get=50ms,inflight=16"    ... or, with "aws" first, from the profile
// Keys: get, put, head, list, delete (time to first byte), all (all five),
// bw (bytes per second: digits with an optional binary unit, K, M or G
// with an optional "i" and/or "B", and an optional "/s": 100MB = 100 MiB/s;
// 0 = unlimited), inflight (0..4096; 0 = unlimited). A time is digits and a
// unit, us, ms or s ("0" alone is allowed), at most 60 s. Each key at most
// once. Anything else, including an empty item or spaces, is
// InvalidArgument naming the item and what was expected.
HYPERFILE_EXPORT Result<LatencyOptions> ParseLatencyOptions(std::string_view spec);

// Options for opening a store from a URI.
struct StoreOptions {
  // --- S3 -----------------------------------------------------------------
  // Empty fields fall back to the AWS conventions, as aws-cli: explicit
  // options > environment > the profile in the shared files (README,
  // "Credentials"; the chain is in src/store/s3/credentials.h):
  //   keys:     access_key_id + secret_access_key, else AWS_ACCESS_KEY_ID...,
  //             web identity, the profile (keys, role_arn, credential_process),
  //             container credentials, EC2 instance metadata (IMDSv2);
  //             credentials that expire are refreshed before they do
  //   region:   AWS_REGION, AWS_DEFAULT_REGION, the profile's region,
  //             us-east-1; a bucket in another region is followed (S3's
  //             x-amz-bucket-region) and remembered
  //   endpoint: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's
  //             [services] s3 endpoint_url, its endpoint_url
  //   profile:  AWS_PROFILE, "default". Naming one (here) skips the
  //             AWS_ACCESS_KEY_ID environment keys; a named profile (here or
  //             AWS_PROFILE) that the files do not have is InvalidArgument.
  //   ca_bundle: AWS_CA_BUNDLE, the profile's ca_bundle
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  std::string region;
  std::string endpoint;  // e.g. "http://127.0.0.1:7480"; empty = AWS
  std::string profile;
  std::string ca_bundle;  // a PEM file of CA certificates; empty = the system's
  // Path-style addressing (http://endpoint/bucket/key). Default: path style
  // for custom endpoints, virtual-hosted style for AWS.
  enum class Addressing { kAuto, kPath, kVirtualHosted } addressing = Addressing::kAuto;
  bool verify_tls = true;  // set false only for test endpoints
  // NewS3Store / OpenStore check these and refuse (InvalidArgument naming the
  // option and the accepted range) values outside the ranges below.
  int max_in_flight = 16;                      // concurrent requests, whole store; 1..4096
  uint64_t multipart_threshold = 64ull << 20;  // objects larger use multipart;
                                               // multipart_part_size..5 GiB
  uint64_t multipart_part_size = 16ull << 20;  // 5 MiB..5 GiB (S3's part limits)
  int connect_timeout_ms = 5000;               // > 0
  // Overall deadline of one HTTP request (connect, send, receive), > 0. Per
  // request, not per operation: each part of a multipart upload, each ranged
  // GET and each LIST page has its own. A timeout is Transient (retried by
  // the retry layer) and its message names the endpoint, key and limit.
  int request_timeout_ms = 120000;
  // Low-speed abort: a transfer slower than 1 KiB/s for this long is aborted.
  int low_speed_time_s = 30;  // > 0
  // The most bytes a whole-object Get (length kToEnd) may return: the server
  // is untrusted, so a larger Content-Length (or body) aborts the transfer
  // with Corrupt. A ranged Get may never return more than the length asked.
  uint64_t max_whole_object_bytes = 1ull << 30;  // >= 1
  // How the body of an object PUT (and of each multipart part) is protected.
  // Every other part of a request (method, key, headers, query) is always
  // signed with SigV4; only the body's digest differs:
  //   kUnsignedCrc32c (default): x-amz-content-sha256 is UNSIGNED-PAYLOAD
  //     (accepted by AWS S3 over HTTP and HTTPS, and by Ceph RGW), and the
  //     body's CRC32C goes in the signed x-amz-checksum-crc32c header
  //     (multipart: x-amz-checksum-algorithm CRC32C at the start, each
  //     part's CRC32C in the completion), which AWS S3 verifies before it
  //     stores anything. CRC32C runs on ISA-L at many GB/s; SHA-256 of the
  //     body cost about 1 CPU-s per GiB here, the largest single cost of a
  //     PUT.
  //     Why this is safe: against accidental corruption on the way, the
  //     CRC32C is as good a check as the SHA-256 (AWS verifies it; servers
  //     that ignore it, such as Ceph before Squid, leave TCP's and, above
  //     all, hyperfile's own CRC32C of every 4 KiB chunk, verified on every
  //     read, so corruption is never returned as data). Against an attacker
  //     on the path, HTTPS protects the body; over plain HTTP the signed
  //     payload hash only protected the upload direction (S3 answers are
  //     never signed, so such an attacker can already alter or read every
  //     GET), so unsigned payloads do not lower what plain HTTP offers.
  //   kSha256: the hex SHA-256 of the body is signed, as before, for
  //     servers or bucket policies that require a signed payload.
  // Bodies of other requests (delete batches, multipart completion) and
  // empty bodies are always signed with their SHA-256.
  enum class PayloadSigning {
    kUnsignedCrc32c,
    kSha256
  } payload_signing = PayloadSigning::kUnsignedCrc32c;

  // --- Layers added by OpenStore ----------------------------------------
  // OpenStore refuses (InvalidArgument) attempts < 1 and negative delays.
  bool retry = true;               // wrap in the retry layer
  int retry_max_attempts = 6;      // including the first; >= 1
  int retry_base_delay_ms = 50;    // >= 0
  int retry_max_delay_ms = 5000;   // >= 0
  int retry_max_total_ms = 60000;  // >= 0
  // Requests slower than this are reported to the log hook (hyperfile/log.h)
  // by the retry layer; 0 = never; >= 0.
  int slow_request_ms = 10000;
  // Simulated latency (the latency layer), off by default. When unset and
  // latency_from_environment is true, a non-empty environment variable
  // HYPERFILE_STORE_LATENCY (ParseLatencyOptions syntax, e.g. "aws") turns it
  // on; a bad value makes OpenStore fail with InvalidArgument naming the
  // variable. OpenStore refuses negative times and max_in_flight outside
  // 0..4096 (InvalidArgument naming the field).
  std::optional<LatencyOptions> latency;
  bool latency_from_environment = true;
  // Count requests in a MetricsStore; OpenStoreStack returns it.
  bool metrics = false;
};

// Opens a store from a URI:
//   s3://bucket[/prefix]   S3 or an S3-compatible server. The bucket must
//                          follow S3's naming rules (3-63 of a-z 0-9 . -);
//                          the prefix (one trailing '/' dropped) and every
//                          key must have no empty, '.' or '..' segment and
//                          no control character (InvalidArgument otherwise)
//   file:///abs/path       a local directory. The path is normalised
//                          lexically ('.', '..', repeated '/'); "/", paths
//                          inside /proc, /sys or /dev and an existing
//                          non-directory are refused (InvalidArgument).
//                          Opening creates nothing: the directory is made by
//                          the first Put; reading a missing one is an empty
//                          store (Get/Head NotFound, List OK with nothing).
//                          Only regular files are objects; symbolic links
//                          are never followed (see src/store/local_store.cc)
//   /abs/path or rel/path  same as file:// (relative to the working directory)
//   memory://name          a process-local in-memory store; the same name in
//                          one process returns the same contents
//
// The store returned is the top of the stack OpenStoreStack builds.
HYPERFILE_EXPORT Result<std::shared_ptr<ObjectStore>> OpenStore(std::string_view uri,
                                                                const StoreOptions& options = {});

class MetricsStore;  // store_layers.h

// The store stack, as OpenStore assembles it from the options, bottom up:
//
//   backend    memory, local or S3 (from the URI)
//   latency    if options.latency (or HYPERFILE_STORE_LATENCY): stands for
//              the network, so it sits on the backend and everything above
//              sees a slow wire
//   metrics    if options.metrics: below retry, so it counts every attempt
//              that goes on the wire (a retried GET is two GETs, as on the
//              S3 bill) and its latencies include the simulated ones
//   retry      if options.retry: on top, so each attempt pays the latency
//              again and is counted again, and callers see one call
//
// This is the one place where the stack is built: the CLI, the nbdkit plugin
// and the origins of a clone (MakeStoreOpener) all go through it, so they
// all get the same behaviour from the same options. Fault injection is not
// in it: tests insert FaultInjectionStore by hand where they need it.
struct StoreStack {
  std::shared_ptr<ObjectStore> store;     // the top of the stack: use this one
  std::shared_ptr<ObjectStore> backend;   // the bottom, without any layer
  std::shared_ptr<MetricsStore> metrics;  // null unless options.metrics
};
// Validates the options (InvalidArgument naming the field) before opening.
HYPERFILE_EXPORT Result<StoreStack> OpenStoreStack(std::string_view uri,
                                                   const StoreOptions& options = {});

// Opens a store by URI, e.g. the origin of a clone (OpenOptions::
// store_resolver has this type).
using StoreOpener = std::function<Result<std::shared_ptr<ObjectStore>>(const std::string& uri)>;
// An opener that calls OpenStore(uri, options) with a copy of these options,
// so that a clone's origins are opened with the same credentials, endpoint
// and layers as the clone itself. Each call opens a new stack (with its own
// metrics layer, if asked; not reachable through the opener). Thread-safe.
HYPERFILE_EXPORT StoreOpener MakeStoreOpener(StoreOptions options);

// Backends, for callers that assemble their own stack.
HYPERFILE_EXPORT std::shared_ptr<ObjectStore> NewMemoryStore(std::string name = "memory");
HYPERFILE_EXPORT Result<std::shared_ptr<ObjectStore>> NewLocalStore(const std::string& directory);
HYPERFILE_EXPORT Result<std::shared_ptr<ObjectStore>> NewS3Store(std::string_view bucket,
                                                                 std::string_view prefix,
                                                                 const StoreOptions& options);

}  // namespace hyperfile
