// ObjectStore: the one interface through which hyperfile touches storage.
//
// A store is rooted at a base location (a bucket and prefix, or a directory);
// every key passed to it is relative to that root. Keys are UTF-8 strings;
// '/' separates levels (a sub-directory in the local backend).
//
// Backends: memory (tests), local directory (file:///path, the embedded
// default) and S3 (s3://bucket/prefix). Layers that add behaviour (retry,
// metrics, fault injection; see store_layers.h) implement the same interface
// and wrap another store, so they can be stacked freely.
//
// Thread-safety: every method may be called concurrently from many threads.
// Callers obtain parallelism by calling from several threads; a backend bounds
// the number of requests it has in flight (StoreOptions::max_in_flight).
//
// Errors: every non-OK Status names the operation, the store and the key, and
// is classified (NotFound, PreconditionFailed, Throttled, Transient, Auth,
// InvalidArgument, Corrupt, IOError) so callers can act on it.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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

class ObjectStore {
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

// Options for opening a store from a URI.
struct StoreOptions {
  // --- S3 -----------------------------------------------------------------
  // Empty fields fall back to the AWS conventions: AWS_ACCESS_KEY_ID,
  // AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION,
  // AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3), AWS_PROFILE with
  // ~/.aws/credentials and ~/.aws/config.
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  std::string region;
  std::string endpoint;  // e.g. "http://127.0.0.1:7480"; empty = AWS
  std::string profile;
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
  enum class PayloadSigning { kUnsignedCrc32c, kSha256 } payload_signing =
      PayloadSigning::kUnsignedCrc32c;

  // --- Layers added by OpenStore ----------------------------------------
  // OpenStore refuses (InvalidArgument) attempts < 1 and negative delays.
  bool retry = true;               // wrap in the retry layer
  int retry_max_attempts = 6;      // including the first; >= 1
  int retry_base_delay_ms = 50;    // >= 0
  int retry_max_delay_ms = 5000;   // >= 0
  int retry_max_total_ms = 60000;  // >= 0
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
// Unless options.retry is false the backend is wrapped in the retry layer.
Result<std::shared_ptr<ObjectStore>> OpenStore(std::string_view uri,
                                               const StoreOptions& options = {});

// Backends, for callers that assemble their own stack.
std::shared_ptr<ObjectStore> NewMemoryStore(std::string name = "memory");
Result<std::shared_ptr<ObjectStore>> NewLocalStore(const std::string& directory);
Result<std::shared_ptr<ObjectStore>> NewS3Store(std::string_view bucket, std::string_view prefix,
                                                const StoreOptions& options);

}  // namespace hyperfile
