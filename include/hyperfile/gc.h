// SPDX-License-Identifier: Apache-2.0
// Space reclamation: retention policies, garbage collection, compaction,
// space accounting, reader leases. (docs/design/0006-space-reclamation.md
// explains why each deletion is safe.)
//
// Nothing is freed unless a collection runs. A collection
//   1. decides which checkpoints stay openable: the head, every named
//      snapshot, every checkpoint a clone was made from (its pin), every
//      checkpoint held by an unexpired reader lease, and whatever the
//      retention policy keeps; every other checkpoint expires for good;
//   2. records that decision in `gc/kept` (opening an expired checkpoint by
//      id, time or name is then NotFound "expired by the retention policy",
//      and `ListCheckpoints` lists only kept ones);
//   3. deletes the segments and data objects no kept checkpoint references,
//      once the grace period has passed (the store's clock). Which those
//      are comes from the collector's ledger, updated with only the
//      checkpoints committed since the last run (a node they share with
//      their parent is never read); a periodic full sweep walks the index
//      of every kept checkpoint and lists every object instead.
// A crash at any point loses nothing kept: deleting is the last step and only
// of objects a complete pass proved unreferenced; the next run finishes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hyperfile/checkpoints.h"
#include "hyperfile/export.h"
#include "hyperfile/file.h"
#include "hyperfile/object_store.h"
#include "hyperfile/status.h"

namespace hyperfile {

// Which checkpoints a collection keeps besides the always-kept ones (head,
// snapshots, clone pins, leases). Rules combine (a checkpoint kept by any
// rule is kept), as in restic and borg. All zero = keep nothing more.
struct HYPERFILE_EXPORT RetentionPolicy {
  uint32_t keep_last = 0;      // the N newest checkpoints
  int64_t keep_within_ms = 0;  // every checkpoint committed within this long
                               // before the newest one
  // The newest checkpoint of each of the N newest UTC hours / days / ISO
  // weeks (Monday first) / months that have checkpoints.
  uint32_t keep_hourly = 0;
  uint32_t keep_daily = 0;
  uint32_t keep_weekly = 0;
  uint32_t keep_monthly = 0;

  bool operator==(const RetentionPolicy&) const = default;
  // Parses rules separated by spaces, commas or newlines:
  //   keep-last=N keep-within=DURATION keep-hourly=N keep-daily=N
  //   keep-weekly=N keep-monthly=N
  // N is 0..1000000; a rule may appear once. Empty text is the empty policy.
  static Result<RetentionPolicy> Parse(std::string_view text);
  // The canonical text (Parse(ToString()) == *this); "" for the empty policy.
  std::string ToString() const;
  // "7d", "36h", "90m", "45s", "2w", or sums like "1d12h" (at most 100 years).
  static Result<int64_t> ParseDuration(std::string_view text);
};

// The ids a policy keeps out of a history (any order; each CheckpointInfo
// needs id and time_ms). The always-kept ones are not added here.
HYPERFILE_EXPORT std::vector<uint64_t> SelectByPolicy(const RetentionPolicy& policy,
                                                      const std::vector<CheckpointInfo>& history);

// The policy stored with the file (`gc/policy`), applied by every collection
// that is not given one. Get: nullopt if none is stored.
HYPERFILE_EXPORT Status SetRetentionPolicy(std::shared_ptr<ObjectStore> store,
                                           const RetentionPolicy& policy);
HYPERFILE_EXPORT Result<std::optional<RetentionPolicy>> GetRetentionPolicy(
    std::shared_ptr<ObjectStore> store);

struct GcProgress {
  std::string phase;  // "list", "mark", "delete"
  uint64_t done = 0;
  uint64_t total = 0;
};

struct GcOptions {
  // Overrides the stored policy. With neither, no checkpoint expires and a
  // collection only deletes what no checkpoint references (orphans).
  std::optional<RetentionPolicy> policy;
  // Decide and report, delete and write nothing.
  bool dry_run = false;
  // Objects younger than this (by the store's modification time) are never
  // deleted, and a reader lease protects its checkpoint for this long after
  // it expired. Protects a writer that stalled (docs/design/0002: it checks
  // gc/horizon when its parent is older than half of this). 0 .. 30 days.
  int64_t grace_ms = 20 * 60 * 1000;
  // Data objects above the head are uploads whose commit has not happened
  // yet (or never will: a crashed writer). They are deleted only when older
  // than this. >= grace_ms, at most 30 days.
  int64_t upload_grace_ms = 24ll * 3600 * 1000;
  // Called as the collection advances (from the calling thread).
  std::function<void(const GcProgress&)> progress;
  // Opens a clone's store to check that a pin is still needed (a clone whose
  // prefix was deleted by hand, not with `rm`, leaves its pin behind).
  // Default: OpenStore(uri) with default StoreOptions. A pin older than
  // upload_grace_ms whose clone's store answers but holds no such file is
  // stale: it keeps nothing and is deleted. A clone that cannot be checked
  // (no credentials, an error) keeps its pin.
  std::function<Result<std::shared_ptr<ObjectStore>>(const std::string& uri)> store_resolver;
  // A run normally starts from the collector's ledger (`gc/ledger`): it
  // applies only the checkpoints committed since the last run and lists
  // nothing but snapshots, pins and leases (docs/design/0006). A full sweep
  // instead lists every segment and data object and marks every kept
  // checkpoint: it also finds orphans no commit names (uploads of crashed
  // writers, objects of fenced ones) and rebuilds the ledger. A sweep runs
  // when `sweep` is set, when there is no usable ledger, and when the last
  // one is older than sweep_interval_ms (the collector's clock; 0 = only
  // when forced or needed).
  bool sweep = false;
  int64_t sweep_interval_ms = 24ll * 3600 * 1000;
  // The key of an encrypted file: marking reads its sealed index nodes
  // (Auth without it). Data frames are never decrypted by a collection.
  std::shared_ptr<const KeySource> key = nullptr;
};

struct GcReport {
  bool dry_run = false;
  uint64_t head = 0;
  uint64_t checkpoints = 0;                      // openable before this run
  uint64_t kept = 0;                             // openable after it
  std::vector<uint64_t> expired;                 // ids that expired in this run (ascending)
  uint64_t snapshots = 0, pins = 0, leases = 0;  // always-kept reasons found
  uint64_t stale_pins = 0;    // pins of clones that no longer exist (deleted; not in `pins`)
  uint64_t objects = 0;       // segments + data objects listed
  uint64_t stored_bytes = 0;  // their total size before the run
  uint64_t live_objects = 0;  // referenced by a kept checkpoint
  uint64_t live_bytes = 0;    // size of those objects
  uint64_t deleted_objects = 0;
  uint64_t deleted_bytes = 0;
  uint64_t orphans_deleted = 0;      // data objects and segments no commit references
  uint64_t held_by_grace = 0;        // unreferenced, but too young to delete yet
  uint64_t nodes_visited = 0;        // index nodes read by the mark or the ledger's walk
  bool swept = false;                // a full sweep (else an incremental run)
  uint64_t checkpoints_applied = 0;  // new checkpoints an incremental run accounted
  uint64_t recounts = 0;             // of those, counted whole (restores)
  // Requests this run made, by kind.
  uint64_t gets = 0, heads = 0, lists = 0, puts = 0, deletes = 0;
  std::string note;  // why nothing was deleted, when that happened
};

// Runs one collection on the file at the root of `store`. Safe to run while
// a writer works and readers read (anywhere): it never writes a segment. Two
// collections at once do not damage the file, but run one at a time. A
// damaged or unreadable object stops the run before anything is deleted.
HYPERFILE_EXPORT Result<GcReport> Collect(std::shared_ptr<ObjectStore> store,
                                          const GcOptions& options = {});

// Where a file's bytes are (from one pass over the index of every kept
// checkpoint; nothing is written).
struct SpaceUsage {
  uint64_t logical_size = 0;     // the head's size
  uint64_t allocated_bytes = 0;  // the head's blocks that hold data
  uint64_t stored_bytes = 0;     // every segment and data object
  uint64_t objects = 0;
  uint64_t head_bytes = 0;         // stored bytes the head references (data + index)
  uint64_t history_bytes = 0;      // objects only older kept checkpoints reference
  uint64_t snapshot_bytes = 0;     // ... of those, objects only snapshots reference
  uint64_t clone_bytes = 0;        // ... of those, objects only clone pins reference
  uint64_t reclaimable_bytes = 0;  // objects no kept checkpoint references
  uint64_t checkpoints = 0;
};
// An encrypted file needs its key (the index nodes are sealed).
HYPERFILE_EXPORT Result<SpaceUsage> DiskUsage(std::shared_ptr<ObjectStore> store,
                                              const KeySource* key = nullptr);

// Compaction: live blocks of the head that sit in mostly-dead objects are
// rewritten into a new checkpoint (by a writer handle of this process), so
// that once older checkpoints expire those objects die whole. Victims are
// objects that only the head references, whose live share is at most
// max_live_ratio, chosen by benefit (dead bytes) first, rewritten in
// logical-offset order. At 0.65 a uniform random overwrite workload settles
// at 1.27x stored/live while rewriting 0.59 bytes per byte freed (gc_bench,
// 1 GiB, 10 passes).
struct CompactOptions {
  // What the next collection will keep (as GcOptions::policy: default the
  // stored policy). Only objects no other kept checkpoint uses are victims:
  // rewriting the others would free nothing.
  std::optional<RetentionPolicy> policy;
  double max_live_ratio = 0.65;    // 0 < r < 1 (measured: see README, Space)
  uint64_t max_rewrite_bytes = 0;  // stop after this much (0 = no limit)
  // Compact refuses (Conflict naming the lease and its age) while another
  // handle, in this process or any other, holds the file open for writing
  // (Corrupt if a lease is damaged: it counts as active). Every writable
  // handle keeps a
  // writer lease (`writer/<16 hex>`, renewed while open, deleted at close;
  // docs/design/0015). A lease whose holder crashed counts as active for its
  // time to live (2 min) plus this grace, by the store's clock. 0 .. 1 day.
  int64_t writer_grace_ms = 60 * 1000;
  OpenOptions open_options;  // for the writer handle
  // Asked before each rewrite call (by the compacting thread): true stops
  // the rewrite there. What was rewritten so far is still committed (the
  // same bytes, so any prefix of the work is a valid compaction), the lease
  // is released, and the report says `stopped`. For a CLI's first SIGINT
  // and a server's shutdown: a compaction that is killed instead keeps
  // writers from opening until its lease lapses (up to 90 s). May be empty.
  std::function<bool()> stop;
};
struct CompactReport {
  uint64_t victims = 0;
  uint64_t bytes_rewritten = 0;  // logical bytes written again
  uint64_t victim_bytes = 0;     // stored size of the victims (freed by a later Collect)
  uint64_t checkpoint = 0;       // the compaction commit (0 if nothing to do)
  bool stopped = false;          // CompactOptions::stop ended the rewrite early
};
HYPERFILE_EXPORT Result<CompactReport> Compact(std::shared_ptr<ObjectStore> store,
                                               const CompactOptions& options = {});
// Compaction through the caller's own writer handle `writer` of the file at
// `store` (an nbdkit export compacts in its own process, never fencing
// itself): plans from the committed head, then calls rewrite(offset, length)
// for each range (whole blocks, at most 256 KiB and one extent: a
// compressed block is one call), which must read the range through the
// handle and write it back atomically with respect to the handle's other
// writers (hold the lock they take); then flushes. Ranges ascend, except
// that within a run of extents that touch they go last first: no call
// starts where an earlier one ended, so the handle's readahead never takes
// a compaction for a sequential read. options.writer_grace_ms
// and open_options are ignored (the handle's own writer lease stands).
HYPERFILE_EXPORT Result<CompactReport> CompactThrough(
    File* writer, std::shared_ptr<ObjectStore> store, const CompactOptions& options,
    const std::function<Status(uint64_t offset, uint64_t length)>& rewrite);

// Locks for CompactThrough's rewrite callback when other threads write
// through the same handle: every write holds its blocks' stripes shared, a
// rewrite holds its range's stripes exclusively, so a rewrite can never put
// back bytes a client overwrote between its read and its write, while
// writes elsewhere go on. Stripes are taken in ascending order (no deadlock).
class HYPERFILE_EXPORT RangeLocks {
 public:
  // block_size: the file's; stripes: 1 .. 65536.
  explicit RangeLocks(uint32_t block_size, size_t stripes = 1024);
  ~RangeLocks();
  class HYPERFILE_EXPORT Guard {
   public:
    Guard(Guard&& other) noexcept;
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    friend class RangeLocks;
    Guard(RangeLocks* owner, std::vector<size_t> stripes, bool exclusive);
    RangeLocks* owner_;
    std::vector<size_t> stripes_;
    bool exclusive_;
  };
  Guard Shared(uint64_t offset, uint64_t length);
  Guard Exclusive(uint64_t offset, uint64_t length);

 private:
  std::vector<size_t> StripesOf(uint64_t offset, uint64_t length) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint32_t block_size_;
};

// Makes a clone independent of the file it was cloned from: copies every
// block its head still borrows into a new checkpoint, expires the clone's
// older checkpoints (they still borrow), and deletes its pin in the source.
// InvalidArgument if `clone` is not a clone, or it has snapshots or clones of
// its own (they borrow through it). Returns the new checkpoint id.
HYPERFILE_EXPORT Result<uint64_t> Flatten(std::shared_ptr<ObjectStore> clone,
                                          const OpenOptions& options = {});

// A reader lease keeps checkpoint `at` from expiring while it is held
// (`lease/<16 hex>` in the file: the checkpoint, a time to live). Acquire
// writes it, then checks the checkpoint is still kept (so a collection that
// decided before the lease was visible is seen, and one that decides after
// sees the lease); a renewal thread rewrites it every ttl/3; the destructor
// stops renewing and deletes it. A lease whose holder died expires after
// ttl (+ the collector's grace). Hold one while reading an old checkpoint
// on a machine other than the collector's.
class HYPERFILE_EXPORT Lease {
 public:
  // ttl_ms: 10 s .. 1 day.
  static Result<std::unique_ptr<Lease>> Acquire(std::shared_ptr<ObjectStore> store, const At& at,
                                                int64_t ttl_ms = 10 * 60 * 1000,
                                                std::string holder = "");
  ~Lease();
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  uint64_t checkpoint() const;
  // Rewrites the lease now (the thread does this by itself).
  Status Renew();
  // The last renewal's error, if any (the lease may have lapsed).
  Status status() const;

  struct State;

 private:
  explicit Lease(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace hyperfile
