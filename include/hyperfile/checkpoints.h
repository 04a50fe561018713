// SPDX-License-Identifier: Apache-2.0
// Checkpoints, snapshots, restore, clone, diff, verify and remove.
//
// Every successful flush is a checkpoint. These functions work on a file
// (the root of an ObjectStore) without a File handle.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hyperfile/encryption.h"
#include "hyperfile/export.h"
#include "hyperfile/file.h"
#include "hyperfile/object_store.h"
#include "hyperfile/status.h"

namespace hyperfile {

struct CheckpointInfo {
  uint64_t id = 0;
  uint64_t parent = 0;                 // 0 for the first checkpoint
  int64_t time_ms = 0;                 // when it was committed (writer's clock, monotonic per file)
  uint64_t size = 0;                   // logical file size at this checkpoint
  uint64_t bytes_changed = 0;          // data bytes written by this checkpoint's segment
  uint64_t restored_from = 0;          // non-zero if this checkpoint is a restore of that id
  std::string writer;                  // the writer's name
  std::vector<std::string> snapshots;  // names of snapshots pinning it
};

struct SnapshotInfo {
  std::string name;
  uint64_t checkpoint = 0;
  int64_t created_ms = 0;
};

// Newest first. `limit` = 0 lists all.
HYPERFILE_EXPORT Result<std::vector<CheckpointInfo>> ListCheckpoints(
    std::shared_ptr<ObjectStore> store, size_t limit = 0);

// Resolves an At to a checkpoint id (NotFound if it does not exist).
HYPERFILE_EXPORT Result<uint64_t> ResolveAt(std::shared_ptr<ObjectStore> store, const At& at);

// Point-in-time recovery: makes the state at `at` the head again by writing
// one new checkpoint that points at its index. No data is copied and history
// is kept. Returns the new checkpoint id. A writer that has the file open
// gets Conflict at its next flush.
HYPERFILE_EXPORT Result<uint64_t> Restore(std::shared_ptr<ObjectStore> store, const At& at);

// Named snapshots pin a checkpoint (names: see IsSnapshotName in file.h —
// a letter first, then [A-Za-z0-9._-], at most 128). AlreadyExists if the
// name is taken by another snapshot (a retried create whose first attempt
// landed is recognised as ours). ListSnapshots reads each record with one
// bounded GET; NotFound if the root holds no hyperfile; keys under snap/
// that are not valid names are not snapshots and are skipped.
HYPERFILE_EXPORT Status CreateSnapshot(std::shared_ptr<ObjectStore> store, const std::string& name,
                                       const At& at = At::Latest());
HYPERFILE_EXPORT Result<std::vector<SnapshotInfo>> ListSnapshots(
    std::shared_ptr<ObjectStore> store);
HYPERFILE_EXPORT Status DeleteSnapshot(std::shared_ptr<ObjectStore> store, const std::string& name);

// Creates a new writable file at `destination` whose first checkpoint shares
// the source's data and index (nothing copied). The source gets one small
// pin/ record (so its collections keep that checkpoint; removing the clone
// deletes it) and nothing else.
// Returns the clone's first checkpoint id. AlreadyExists if the destination
// holds a file.
//
// An encrypted source needs `options.source_key` (Auth without, or with a
// wrong one, before anything is written). The clone shares the source's data
// key (so it reads the borrowed frames) under its own key record, wrapped
// under `options.key` (default: the source's key); it is encrypted too.
struct CloneOptions {
  std::shared_ptr<const KeySource> source_key = nullptr;
  std::shared_ptr<const KeySource> key = nullptr;
};
HYPERFILE_EXPORT Result<uint64_t> Clone(std::shared_ptr<ObjectStore> source, const At& at,
                                        std::shared_ptr<ObjectStore> destination,
                                        const CloneOptions& options = {});

// Byte ranges whose content may differ between two states, computed from the
// index alone (no data read). Sorted, non-overlapping, merged.
struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};
// `options.store_resolver` opens a clone's origins (default: OpenStore with
// default StoreOptions) and `options.key` unlocks an encrypted file, as for
// Verify and MeasureStorage; the other fields are not used.
HYPERFILE_EXPORT Result<std::vector<ByteRange>> Diff(std::shared_ptr<ObjectStore> store,
                                                     const At& from, const At& to,
                                                     const OpenOptions& options = {});

// What a checkpoint's data costs in the store, from its index alone (every
// leaf is read; no data): the codec its writer used (the header's), the
// logical bytes of the blocks that hold data, and the bytes they occupy in
// segments and data objects (frames, or chunks with their CRCs). Blocks
// shared with other checkpoints count in each.
struct StorageUse {
  uint64_t checkpoint = 0;
  Compression compression = {};
  uint64_t logical_bytes = 0;
  uint64_t stored_bytes = 0;
  uint64_t framed_blocks = 0;  // blocks stored as frames (the rest: chunk form)
};
HYPERFILE_EXPORT Result<StorageUse> MeasureStorage(std::shared_ptr<ObjectStore> store, const At& at,
                                                   const OpenOptions& options = {});

// Walks every index node reachable from the checkpoint (and with deep, every
// data block) and checks checksums. A clone's origins are opened with
// `options.store_resolver` (default: OpenStore with default StoreOptions).
struct VerifyReport {
  uint64_t checkpoint = 0;
  uint64_t nodes_checked = 0;
  uint64_t blocks_checked = 0;
  uint64_t bytes_checked = 0;
  std::vector<std::string> problems;  // empty = healthy; each names object and offset
  bool ok() const { return problems.empty(); }
};
// An encrypted file needs its key in `options.key` (Diff, MeasureStorage
// and Verify read index nodes; Auth without it, before any node is read);
// deep verify then also authenticates every frame.
HYPERFILE_EXPORT Result<VerifyReport> Verify(std::shared_ptr<ObjectStore> store, const At& at,
                                             bool deep, const OpenOptions& options = {});

// Removes a file: deletes exactly the keys the format defines (segments,
// data objects, snapshot records, the collector's gc/ objects, leases and
// clone pins) and nothing else. Irreversible.
//
// - NotFound if the root holds no hyperfile (no segment), whatever else it
//   holds: a directory of ordinary files or a parent of hyperfiles is never
//   touched.
// - Objects under the root that are not the format's keys (a user's files, a
//   nested hyperfile) make it refuse with InvalidArgument naming them, unless
//   `keep_foreign`: then they are left exactly as they are and only the
//   file's own keys go.
// - Crash-safe order: a removal marker is first committed as the newest
//   checkpoint (a create-only put, so a concurrent writer is fenced), then
//   snapshots and segments are deleted, the marker last. An interrupted
//   removal leaves a file that fails to open with "partly removed" (never an
//   older, healthy-looking state); RemoveFile again finishes the job.
// - A file that clones borrow from (pin/ records) is refused with
//   InvalidArgument naming the clones, unless `force` (the clones break).
// - Removing a clone deletes its pin in the file it was cloned from (opened
//   with `store_resolver`, default OpenStore of the URI the clone records).
struct RemoveOptions {
  bool keep_foreign = false;
  bool force = false;
  std::function<Result<std::shared_ptr<ObjectStore>>(const std::string& uri)> store_resolver = {};
};
HYPERFILE_EXPORT Status RemoveFile(std::shared_ptr<ObjectStore> store,
                                   const RemoveOptions& options = {});

// Whether `key` (relative to a file's root) is one of the keys the format
// defines (docs/format.md, "Keys"); everything else under a root is foreign.
HYPERFILE_EXPORT bool IsHyperfileKey(std::string_view key);

}  // namespace hyperfile
