// SPDX-License-Identifier: Apache-2.0
// Writer leases (docs/design/0015-writer-leases.md, docs/format.md "Writer
// leases"): `writer/<16 hex>` objects that say a handle is open for writing
// (kind kWriter) or that a compaction by a process other than the writer is
// running (kind kCompaction). Both sides write their own lease first and list
// `writer/` after it, so of a writer and a compaction that start at the same
// time at least one sees the other: a compaction refuses while any other
// lease is active, a writer refuses to open while a compaction lease is.
// Times are the store's (object modification times), never a local clock.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "format/gc_records.h"
#include "hyperfile/object_store.h"

namespace hyperfile::file {

// A lease lives this long after its last write; its holder rewrites it every
// ttl/3 while it is open.
inline constexpr int64_t kWriterLeaseTtlMs = 2 * 60 * 1000;
// A compaction's lease is shorter: one that crashed keeps writers from
// opening for this + kWriterLeaseGraceMs at most.
inline constexpr int64_t kCompactionLeaseTtlMs = 30 * 1000;
// How long after a compaction lease lapsed a writer still honours it.
inline constexpr int64_t kWriterLeaseGraceMs = 60 * 1000;
// At most this many objects under writer/ are looked at; more is an error
// (fail closed: neither a writer nor a compaction goes on).
inline constexpr size_t kMaxWriterLeases = 1000;
// A compaction deletes other writer leases that lapsed longer ago than
// ttl + grace + this (crashed holders), so they do not pile up.
inline constexpr int64_t kStaleWriterLeaseMs = 60 * 60 * 1000;

// Another lease found under writer/.
struct OtherWriter {
  std::string key;
  std::optional<format::WriterLeaseRecord> record;  // absent: damaged
  Status damage;                                    // why it is damaged (Corrupt naming the object)
  int64_t age_ms = 0;   // store time since it was last written (-1: unknown)
  bool active = false;  // unexpired (ttl + grace) by the store's clock, or damaged
  // "writer/… (a writer, holder H, renewed 12 s ago)" for messages.
  std::string Describe() const;
};

class WriterLease {
 public:
  // Writes a new lease writer/<random> of `kind` (one put). holder: at most
  // 255 bytes (longer is cut); ttl_ms: 1 s .. 1 day.
  static Result<std::unique_ptr<WriterLease>> Write(std::shared_ptr<ObjectStore> store,
                                                    format::WriterKind kind, std::string holder,
                                                    int64_t ttl_ms = kWriterLeaseTtlMs);
  // Lists writer/ (bounded: OutOfRange past kMaxWriterLeases objects) and
  // reads every other lease of the format (foreign keys are ignored and
  // never touched). *store_now_ms receives the store's time: our own
  // lease's modification time in that listing (a Head of it if the listing
  // missed it; the local clock only if the store tells no times, and then
  // no lease ever lapses). A lease counts as active while its time + ttl +
  // grace_ms is after that time; a damaged one (bad size, checksum, kind)
  // always does.
  Result<std::vector<OtherWriter>> Others(int64_t grace_ms, int64_t* store_now_ms);
  // Starts the thread that rewrites the lease every ttl/3 until Release
  // (file/lease_renewer.h: a failed renewal is kept for status(), renewing
  // goes on). Once; nothing after Release.
  void StartRenewing();
  // Stops renewing and deletes the lease (once; later calls answer OK).
  Status Release();
  ~WriterLease();
  WriterLease(const WriterLease&) = delete;
  WriterLease& operator=(const WriterLease&) = delete;

  const std::string& key() const;
  // The last renewal's error, if any (the lease may have lapsed).
  Status status() const;

  struct State;

 private:
  explicit WriterLease(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// "<host>/<pid>" and, if given, " <name>": who holds a lease, for messages.
std::string LeaseHolderName(const std::string& name);

// The two sides' rules over what Others found: a writer may open unless a
// compaction lease is active (Conflict) or a lease is damaged (Corrupt); a
// compaction may run unless a writer's lease is active or any lease is
// damaged (another compaction's is no obstacle: compactions write back only
// what they read, and the second to commit gets Conflict). `what`
// starts the message ("open X for writing", "compact X").
Status WriterMayOpen(const std::vector<OtherWriter>& others, const std::string& what);
Status CompactionMayRun(const std::vector<OtherWriter>& others, const std::string& what);

// For a handle opening for writing: writes a kWriter lease, lists the
// others, and refuses (Conflict naming the lease and its age; Corrupt for a
// damaged one) while a compaction lease is active, deleting its own lease
// again. On success the lease is being renewed; the handle releases it at
// close, after its last commit.
Result<std::unique_ptr<WriterLease>> AcquireWriterLease(std::shared_ptr<ObjectStore> store,
                                                        const std::string& holder);

// For a compaction by a process that is not the writer: writes a
// kCompaction lease, lists the others, and refuses (Conflict naming the
// active lease and its age; Corrupt naming a damaged one) while a writer's
// lease is active (ttl + grace_ms). Deletes other leases that lapsed more
// than kStaleWriterLeaseMs ago. On success the lease is being renewed.
Result<std::unique_ptr<WriterLease>> AcquireCompactionLease(std::shared_ptr<ObjectStore> store,
                                                            int64_t grace_ms,
                                                            const std::string& holder);

}  // namespace hyperfile::file
