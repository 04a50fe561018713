// SPDX-License-Identifier: Apache-2.0
// File: random read, write, append and truncate on a file kept in an object
// store, with a checkpoint at every flush.
//
// A hyperfile is all the objects under the root of an ObjectStore (open the
// store at "s3://bucket/myfile" or "file:///data/myfile"; the file owns every
// key below that root). Content lives in immutable segments; each successful
// Flush() writes exactly one new segment with a create-only put, which is the
// commit point, and returns its checkpoint id. After a crash the file is
// exactly as of its last successful flush.
//
// One writer per file, enforced by the store: if another writer committed
// since this handle last did, Flush() fails with Conflict and nothing is
// damaged. Any number of readers may open any checkpoint on any machine.
//
// Thread-safety: all methods may be called concurrently on one handle.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hyperfile/export.h"
#include "hyperfile/object_store.h"
#include "hyperfile/options.h"
#include "hyperfile/status.h"

namespace hyperfile {

// Which state of a file to open: the latest, a checkpoint id, the newest
// checkpoint at or before a wall-clock time, or a named snapshot.
struct HYPERFILE_EXPORT At {
  enum class Kind : uint8_t { kLatest, kCheckpoint, kTime, kSnapshot };
  Kind kind = Kind::kLatest;
  uint64_t checkpoint = 0;
  int64_t time_ms = 0;  // milliseconds since the Unix epoch
  std::string snapshot;

  static At Latest() { return {}; }
  static At Checkpoint(uint64_t id) { return {Kind::kCheckpoint, id, 0, {}}; }
  static At Time(int64_t ms) { return {Kind::kTime, 0, ms, {}}; }
  static At Snapshot(std::string name) { return {Kind::kSnapshot, 0, 0, std::move(name)}; }
  // Parses what users type. The first character decides (one rule, shared
  // with snapshot creation, so every valid snapshot name parses as itself):
  //   "latest" / "HEAD"                 the head
  //   digits only: "42"                 a checkpoint id (1 .. 2^62)
  //   another digit first:              a UTC time, strictly
  //     "2026-11-25", "2026-11-25T10:00", "2026-11-25T10:00:00[.123][Z]"
  //     (a space may replace the T)
  //   "@1764064800"                     Unix seconds
  //   a letter first                    a snapshot name (IsSnapshotName)
  // Anything else is InvalidArgument.
  static Result<At> Parse(std::string_view text);
  std::string ToString() const;
};

// A snapshot name: 1-128 characters of [A-Za-z0-9._-] starting with a
// letter, other than "latest" and "HEAD". (A leading letter is what tells a
// name from a checkpoint id or a time in At::Parse.)
HYPERFILE_EXPORT bool IsSnapshotName(std::string_view name);

struct FileStat {
  uint64_t size = 0;             // logical size in bytes
  uint64_t allocated_bytes = 0;  // bytes of blocks that hold data (holes excluded)
  uint32_t block_size = 0;
  // The codec this handle writes new blocks with (a read-only handle: the
  // one its checkpoint was written with). Blocks stored earlier may use
  // others; hyperfile::MeasureStorage counts stored bytes.
  Compression compression = {};
  // The cipher of the file's frames and nodes: 0 = not encrypted, 1 =
  // XChaCha20-Poly1305 (CipherName in encryption.h).
  uint8_t cipher = 0;
  uint64_t checkpoint = 0;     // id of the checkpoint this handle is based on
  int64_t create_time_ms = 0;  // when the file was created
  int64_t mtime_ms = 0;        // last change (committed or in memory)
  int64_t checkpoint_time_ms = 0;
  bool read_only = false;
  uint64_t dirty_bytes = 0;  // written but not yet flushed
  // Memory held by this handle's caches (each within its OpenOptions budget).
  uint64_t block_cache_bytes = 0;
  uint64_t index_cache_bytes = 0;
  uint64_t disk_cache_bytes = 0;  // of the disk tier (shared by the handles using it)
  // Lookups in this handle's memory caches since it was opened: data chunks
  // (4 KiB pieces of blocks) and index nodes. A miss goes to the disk tier
  // (if any) or the store.
  uint64_t block_cache_hits = 0, block_cache_misses = 0;
  uint64_t index_cache_hits = 0, index_cache_misses = 0;
};

// What File::Refresh found. The "between" fields describe the checkpoints in
// (old_checkpoint, new_checkpoint], read from the new head's header (its
// recent checkpoints) and, for a longer gap, a few older headers.
struct RefreshResult {
  bool changed = false;  // the handle moved to new_checkpoint
  uint64_t old_checkpoint = 0, new_checkpoint = 0;
  uint64_t old_size = 0, new_size = 0;
  // Between the two states:
  bool restored = false;       // a checkpoint was a restore (point-in-time recovery)
  uint64_t restored_from = 0;  // ... of this checkpoint (the newest such restore)
  uint64_t restored_size = 0;  // ... and the size it restored
  bool truncated = false;      // a checkpoint was smaller than the one before it
  // Where bytes that are new to a reader of a log (a file that only grows,
  // except for truncations and restores) start: old_size, lowered to every
  // truncation's size; a restore sets it to the restored size (later
  // truncations lower it again). At most new_size. A follower that showed
  // [0, old_size) shows [new_bytes_from, new_size) next.
  uint64_t new_bytes_from = 0;
  // False when the gap was too long to read every checkpoint's size (more
  // than 512 checkpoints): the flags above then consider the newest 512 and
  // the two ends only.
  bool history_complete = true;
  // The handle did NOT move (it keeps serving old_checkpoint) when:
  bool removed = false;         // the file was removed (or a removal is under way)
  bool went_backwards = false;  // the newest checkpoint is older than the handle's
  bool replaced = false;        // the head is not a descendant of the handle's state
                                // (another file was created there, or segments were
                                // deleted and rewritten): reopen to read it
};

// A byte range that holds data or is a hole (reads as zeros, stores nothing).
struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool data = false;
};

class HYPERFILE_EXPORT File {
 public:
  virtual ~File() = default;

  // Creates a new, empty file at the store's root and opens it read-write.
  // AlreadyExists if the root already holds a file. InvalidArgument for a bad
  // block size.
  static Result<std::unique_ptr<File>> Create(std::shared_ptr<ObjectStore> store,
                                              const CreateOptions& create = {},
                                              const OpenOptions& options = {});

  // Opens the latest checkpoint (read-write unless options.read_only).
  // NotFound if there is no file at the store's root.
  static Result<std::unique_ptr<File>> Open(std::shared_ptr<ObjectStore> store,
                                            const OpenOptions& options = {});

  // Opens an older state read-only (time travel). NotFound if the checkpoint,
  // time or snapshot does not exist.
  static Result<std::unique_ptr<File>> OpenAt(std::shared_ptr<ObjectStore> store, const At& at,
                                              OpenOptions options = {});

  // Reads up to len bytes at offset; returns the number read (short only at
  // end of file, 0 at or past it). Holes read as zeros.
  virtual Result<size_t> PRead(uint64_t offset, void* buf, size_t len) = 0;

  // Writes len bytes at any offset; writing past the end grows the file (the
  // gap is a hole). Buffered until Flush().
  virtual Status PWrite(uint64_t offset, const void* buf, size_t len) = 0;

  // Writes at the current end of file; returns the offset written at.
  virtual Result<uint64_t> Append(const void* buf, size_t len) = 0;

  // Sets the size. Growing adds a hole; shrinking drops the blocks past the
  // end and zeroes the tail of the last kept block.
  virtual Status Truncate(uint64_t size) = 0;

  // Makes [offset, offset+len) read as zeros without storing data. Extends
  // the file if the range ends past it (like writing zeros).
  virtual Status WriteZeroes(uint64_t offset, uint64_t len) = 0;

  // Like WriteZeroes but never changes the size (the part past EOF is ignored).
  virtual Status PunchHole(uint64_t offset, uint64_t len) = 0;

  // Commits everything written so far as a new checkpoint and returns its id.
  // If nothing changed, returns the current checkpoint id without writing.
  // On failure every dirty byte is kept and a later Flush() can succeed;
  // Conflict means another writer committed (this handle can only be closed).
  virtual Result<uint64_t> Flush() = 0;

  virtual Result<FileStat> Stat() = 0;
  virtual uint64_t Size() const = 0;

  // The first offset >= offset that holds data (SEEK_DATA) or is in a hole
  // (SEEK_HOLE; the end of file counts as a hole). NotFound for SEEK_DATA when
  // no data follows; InvalidArgument if offset >= size.
  virtual Result<uint64_t> SeekData(uint64_t offset) = 0;
  virtual Result<uint64_t> SeekHole(uint64_t offset) = 0;
  // Data and hole ranges covering [offset, offset+len) clipped to the size,
  // adjacent ranges of the same kind merged.
  virtual Result<std::vector<Extent>> Extents(uint64_t offset, uint64_t len) = 0;

  // Moves a read-only handle opened at the latest state (File::Open with
  // read_only, or OpenAt(At::Latest()) read-only) to the newest checkpoint
  // and reports what changed. When nothing changed it costs one LIST (the
  // head lookup of Open); when something did, one more GET (the new head's
  // header with the upper index levels), and more headers only for a gap of
  // more than 64 checkpoints. Caches are kept: segments are immutable.
  //
  // Atomic for readers: every other call sees either the whole old state or
  // the whole new one (size, content, checkpoint), never a mix; a read that
  // started before the switch finishes on the old state. Calls are
  // serialized with each other (and with the background refresh).
  //
  // Returns OK with changed=false when the head is the same; OK with removed,
  // went_backwards or replaced set (the handle stays where it is) in those
  // cases; InvalidArgument on a writable handle or one opened at an older
  // state; store errors as they come (the handle stays where it is).
  virtual Result<RefreshResult> Refresh() = 0;

  // Flushes (if writable) and releases the handle. Other calls fail after it.
  // Stops the background refresh (waiting for a running on_refresh callback;
  // so it must not be called from that callback).
  virtual Status Close() = 0;
};

}  // namespace hyperfile
