// SPDX-License-Identifier: Apache-2.0
// Options for creating and opening hyperfiles.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "hyperfile/object_store.h"

namespace hyperfile {

struct RefreshResult;  // file.h
class KeySource;       // encryption.h
class Executor;        // executor.h

// How new data blocks are stored (docs/format.md "Frames"). Each block is
// compressed on its own into one frame, so a random read fetches at most one
// block's frame; a block that does not shrink is stored raw inside its frame.
// kNone stores blocks in the uncompressed chunk form (readable by older
// builds).
enum class Codec : uint8_t { kNone = 0, kLz4 = 1, kZstd = 2 };
struct Compression {
  Codec codec = Codec::kZstd;
  // zstd: 1..19 (1 = fastest). lz4 and none: 0. Checked by File::Create /
  // File::Open (InvalidArgument naming the field).
  int level = 1;
  bool operator==(const Compression&) const = default;
};
// Parses "none", "lz4", "zstd" (level 1) or "zstd:N" (N in 1..19):
// InvalidArgument naming the text otherwise.
HYPERFILE_EXPORT Result<Compression> ParseCompression(std::string_view text);
// The inverse: "none", "lz4", "zstd:N".
HYPERFILE_EXPORT std::string CompressionName(const Compression& c);

struct CreateOptions {
  // Bytes per logical block: a power of two from 4 KiB to 4 MiB. Fixed for
  // the life of the file. Small blocks suit random I/O (less read-modify-write),
  // large blocks suit streaming.
  uint32_t block_size = 64 * 1024;
  // Initial logical size (a hole: reads as zeros, costs nothing).
  uint64_t initial_size = 0;
  // How the file's data is stored: zstd level 1 by default. Recorded in every
  // segment header; a handle opened with OpenOptions::compression writes
  // later blocks with another codec (blocks already stored keep theirs).
  Compression compression = {};
  // Set: the file is encrypted (encryption.h). A random data key is drawn
  // and stored wrapped under this key (key/0000000000000001, written before
  // the first segment); every frame and index node is sealed, and every
  // block is stored as a frame (codec none stores raw frames). Fixed for the
  // life of the file (a key change rewraps the data key: ChangeKey).
  std::shared_ptr<const KeySource> encryption_key = nullptr;
  // Fail with AlreadyExists if the file exists (otherwise also AlreadyExists:
  // create never truncates an existing file; open it instead).
};

// Every field is checked by File::Create, File::Open and File::OpenAt: a
// value outside its range is InvalidArgument naming the field (nothing is
// clamped silently). Ranges are given with each field.
struct OpenOptions {
  bool read_only = false;
  // The key of an encrypted file (encryption.h). Opening an encrypted file
  // without it is Auth "<file> is encrypted; no key was given", with a wrong
  // one Auth "wrong key for <file>", both before any index node or data is
  // read. Ignored for a file that is not encrypted. Used, not kept beyond
  // the open: the handle keeps only the unwrapped data key.
  std::shared_ptr<const KeySource> key = nullptr;
  // Memory budget for clean data blocks cached in memory (0 .. 1 TiB).
  uint64_t block_cache_bytes = 64ull << 20;
  // Memory budget for decoded index nodes (interior nodes kept
  // preferentially, in up to half of it; 0 .. 1 TiB).
  uint64_t index_cache_bytes = 16ull << 20;
  // Memory for dirty data: writers wait when this much is dirty and not yet
  // uploaded, instead of growing without bound. At least one block (and
  // 4 KiB), at most 1 TiB. A writer never waits when nothing is dirty, and
  // a writer waiting here is woken (with an error) when the file closes.
  uint64_t dirty_budget_bytes = 256ull << 20;
  // Background flush: a flush starts when the oldest dirty byte is this old
  // (0 = never by age) or when this many bytes are dirty (0 = half of
  // dirty_budget_bytes: one half uploads while writers fill the other).
  // flush_dirty_bytes may not exceed dirty_budget_bytes.
  uint32_t flush_interval_ms = 0;
  uint64_t flush_dirty_bytes = 0;
  // Parallel requests per file (reads and uploads): 1 .. 256. Ignored when
  // `executor` is set (its io_threads are shared by every handle using it).
  int io_parallelism = 8;
  // Threads shared with other handles (hyperfile/executor.h); null = this
  // handle starts its own (io_parallelism, plus two flush stage workers for
  // a writable handle). The handle holds a reference until it is destroyed.
  std::shared_ptr<Executor> executor;
  // Largest ranged GET the read planner issues when coalescing: 4 KiB .. 1 GiB.
  uint64_t max_read_request_bytes = 8ull << 20;
  // Optional local-disk cache of clean blocks: a directory and a byte budget
  // (both empty/0 = off; one without the other is an error).
  std::string disk_cache_dir;
  uint64_t disk_cache_bytes = 0;
  // Identifies this writer in segment headers (host/process by default);
  // at most 255 bytes, no control characters.
  std::string writer_name;
  // Codec for the blocks this handle writes (and records in the headers it
  // commits). Unset: the codec of the checkpoint it opened (none for files
  // written before compression existed). Ignored by read-only handles.
  std::optional<Compression> compression = std::nullopt;
  // Following the head (read-only handles opened at the latest state; see
  // File::Refresh). refresh_interval_ms > 0 refreshes in the background every
  // that many milliseconds (10 .. 86,400,000; 0 = only when File::Refresh is
  // called). Both fields require read_only, and OpenAt refuses them for any
  // state but At::Latest().
  uint32_t refresh_interval_ms = 0;
  // Called by the background refresh (never by File::Refresh) after a
  // refresh that moved the handle, found the file removed, gone backwards or
  // replaced, or failed (status not OK; the result is then empty and the next
  // interval tries again). Runs on the refresh thread with no lock held: it
  // may read the handle (the new state is installed) but must not Close or
  // destroy it. Requires refresh_interval_ms > 0.
  std::function<void(const Status& status, const RefreshResult& result)> on_refresh;
  // Opens the store of a clone's origin (a URI recorded in the clone).
  // Default: OpenStore(uri) with default StoreOptions (AWS environment).
  std::function<Result<std::shared_ptr<ObjectStore>>(const std::string& uri)> store_resolver;
};

}  // namespace hyperfile
