// SPDX-License-Identifier: Apache-2.0
// The small objects of space reclamation (docs/format.md, "Garbage
// collection"): the collector's state `gc/kept`, the stored retention policy
// `gc/policy`, reader leases `lease/<16 hex>` and clone pins `pin/<16 hex>`.
// Decoders treat their input as untrusted (bounded sizes and counts, a
// CRC32C over everything) and return Corrupt naming the object.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hyperfile/status.h"
#include "util/coding.h"

namespace hyperfile::format {

inline constexpr std::string_view kKeptKey = "gc/kept";
inline constexpr std::string_view kPolicyKey = "gc/policy";
inline constexpr std::string_view kLeasePrefix = "lease/";
inline constexpr std::string_view kPinPrefix = "pin/";
inline constexpr std::string_view kWriterLeasePrefix = "writer/";

// What the last collection decided: every checkpoint id <= horizon that is not
// listed has expired (its segment may be gone). Ids above the horizon were
// never judged and are all kept. Each kept entry carries its commit time and
// the commit time of the checkpoint after it (INT64_MAX for the newest), so
// time travel can tell "the newest checkpoint at or before T is kept" from
// "it has expired" without the expired headers.
inline constexpr std::string_view kKeptMagic = "HFGCKEPT";
inline constexpr uint32_t kKeptVersion = 1;
inline constexpr uint32_t kMaxKeptEntries = 1u << 20;
inline constexpr uint64_t kMaxKeptBytes =
    8 + 4 + 8 + 8 + 8 + 4 + uint64_t{kMaxKeptEntries} * 24 + 4;
struct KeptEntry {
  uint64_t id = 0;
  int64_t time_ms = 0;
  int64_t next_time_ms = 0;  // commit time of id + 1 (INT64_MAX: none)
  bool operator==(const KeptEntry&) const = default;
};
struct KeptState {
  uint64_t horizon = 0;         // the head when the collection ran
  uint64_t first = 1;           // ids below this were not judged (a clone's origin's)
  int64_t collected_ms = 0;     // when (collector's clock; informational)
  std::vector<KeptEntry> kept;  // ascending ids, all <= horizon, the horizon included
  // True if `id` has expired by this state.
  bool Expired(uint64_t id) const;
  // The kept entry that answers "newest checkpoint at or before time_ms"
  // among ids <= horizon, if that checkpoint is kept.
  const KeptEntry* ForTime(int64_t time_ms) const;
};
std::string EncodeKeptState(const KeptState& state);
Result<KeptState> DecodeKeptState(std::string_view bytes, std::string_view where);

// The strict reading of one sealed record (magic, fields, CRC32C of every
// byte before it) that the lease, writer lease and pin decoders share, so
// that each bounds its input the same way and names the object in every
// error. `where` names the object ("store/key"), `what` the record ("reader
// lease"); every error is Corrupt and starts with "<where>: ".
class SealedRecordReader {
 public:
  SealedRecordReader(std::string_view bytes, std::string_view where, std::string_view what);
  // Checks that the record is min_size..max_size bytes, starts with `magic`
  // and ends with the CRC of the rest ("<where>: not a <what> (N bytes)",
  // "<where>: <what> checksum mismatch"). On success the fields between
  // the magic and the CRC are read in order; before it (or after a failed
  // Open) there are none.
  Status Open(std::string_view magic, size_t min_size, size_t max_size);
  // The next field (bounded: past the fields' end they read 0 and the
  // record's LastString16 fails).
  uint8_t U8() { return fields_.U8(); }
  uint64_t U64() { return fields_.U64(); }
  // The last field: a u16 length (<= max_len) and that many bytes, which
  // must end exactly where the CRC starts; otherwise "<where>: <what> has a
  // bad <name> length".
  Result<std::string> LastString16(size_t max_len, std::string_view name);
  // Corrupt "<where>: <what> <says>" (says: "has unknown kind 9").
  Status Corrupt(std::string_view says) const;

 private:
  std::string_view bytes_;
  std::string_view where_;
  std::string_view what_;
  Decoder fields_{std::string_view()};
};

// A reader lease: checkpoint `checkpoint` is in use until the object's
// modification time (the store's clock) + ttl_ms. Renewing rewrites it.
inline constexpr std::string_view kLeaseMagic = "HFLEASE1";
inline constexpr size_t kMaxLeaseBytes = 8 + 8 + 8 + 2 + 255 + 4;
struct LeaseRecord {
  uint64_t checkpoint = 0;
  uint64_t ttl_ms = 0;
  std::string holder;  // who (host/process), at most 255 bytes
};
std::string EncodeLease(const LeaseRecord& lease);
Result<LeaseRecord> DecodeLease(std::string_view bytes, std::string_view where);
std::string LeaseKey(uint64_t lease_id);
std::optional<uint64_t> ParseLeaseKey(std::string_view key);

// A writer lease (docs/design/0015-writer-leases.md): a handle open for
// writing (kind kWriter) or a compaction by a process that is not the
// writer (kind kCompaction) is active until the object's modification time
// (the store's clock) + ttl_ms. Renewing rewrites it.
inline constexpr std::string_view kWriterLeaseMagic = "HFWRITR1";
inline constexpr size_t kMaxWriterLeaseBytes = 8 + 1 + 8 + 2 + 255 + 4;
enum class WriterKind : uint8_t { kWriter = 1, kCompaction = 2 };
struct WriterLeaseRecord {
  WriterKind kind = WriterKind::kWriter;
  uint64_t ttl_ms = 0;
  std::string holder;  // who (host/process), at most 255 bytes
};
std::string EncodeWriterLease(const WriterLeaseRecord& lease);
Result<WriterLeaseRecord> DecodeWriterLease(std::string_view bytes, std::string_view where);
std::string WriterLeaseKey(uint64_t lease_id);
std::optional<uint64_t> ParseWriterLeaseKey(std::string_view key);

// A clone pin in the source file: the clone (file id `clone_file_id`, at
// `clone_uri`) borrows checkpoint `checkpoint`'s index and data.
inline constexpr std::string_view kPinMagic = "HFPIN001";
inline constexpr size_t kMaxPinBytes = 8 + 8 + 8 + 2 + 4096 + 4;
struct PinRecord {
  uint64_t checkpoint = 0;
  uint64_t clone_file_id = 0;
  std::string clone_uri;  // at most 4096 bytes
};
std::string EncodePin(const PinRecord& pin);
Result<PinRecord> DecodePin(std::string_view bytes, std::string_view where);
std::string PinKey(uint64_t clone_file_id);
std::optional<uint64_t> ParsePinKey(std::string_view key);

// The stored retention policy is text (one `rule=value` per line, see
// hyperfile/gc.h), at most this long.
inline constexpr size_t kMaxPolicyBytes = 4096;

}  // namespace hyperfile::format

namespace hyperfile::format {

// The collector's ledger `gc/ledger` (docs/format.md "The ledger"): every own
// object the collector knows, with the checkpoints that reference it, as of
// checkpoint `processed`. A run reads it, applies only the checkpoints
// committed since (docs/design/0006), and rewrites it; without it (or when
// it does not fit the file) a run lists and marks everything (a sweep).
inline constexpr std::string_view kLedgerKey = "gc/ledger";
inline constexpr std::string_view kLedgerMagic = "HFGCLEDG";
inline constexpr uint32_t kLedgerVersion = 1;
inline constexpr uint32_t kMaxLedgerObjects = 1u << 22;
inline constexpr size_t kMaxLedgerKeyBytes = 64;
inline constexpr size_t kMaxLedgerSpans = 32;
inline constexpr uint64_t kMaxLedgerBytes = 256ull << 20;
inline constexpr uint64_t kOpenSpan = ~uint64_t{0};
struct LedgerObject {
  std::string key;    // seg/... or dat/... (<= 64 bytes)
  uint64_t born = 0;  // the checkpoint that wrote it
  uint64_t size = 0;  // stored bytes
  // References from the index of checkpoint `processed` (nodes stored in
  // it, extents in it, 1 for a segment that is that checkpoint).
  uint64_t refs = 0;
  // The store time of the first run that found no kept checkpoint using it
  // (0: none yet); deleted once grace has passed since.
  int64_t unkept_since_ms = 0;
  // Checkpoint ids [from, to) whose index references it, ascending and
  // disjoint; the last is open (to == kOpenSpan) iff refs > 0. May cover
  // more than the truth (never less).
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  bool operator==(const LedgerObject&) const = default;
};
struct Ledger {
  uint64_t file_id = 0;
  uint64_t processed = 0;             // the last checkpoint applied
  uint32_t processed_crc = 0;         // its header CRC
  int64_t swept_ms = 0;               // when the last full sweep ran (the collector's clock)
  std::vector<LedgerObject> objects;  // ascending keys, unique
  std::vector<std::string> pending;   // keys being deleted (a crash left them)
  bool operator==(const Ledger&) const = default;
};
std::string EncodeLedger(const Ledger& ledger);
Result<Ledger> DecodeLedger(std::string_view bytes, std::string_view where);

}  // namespace hyperfile::format
