// SPDX-License-Identifier: Apache-2.0
// Resolving At (latest, checkpoint id, snapshot, time) to the header a
// handle starts from. Shared by File::OpenAt and the checkpoint tools.
#pragma once

#include <memory>
#include <optional>

#include "file/segment_io.h"
#include "format/gc_records.h"
#include "hyperfile/file.h"
#include "hyperfile/options.h"

namespace hyperfile::file {

class WriterLease;

// Opens the latest state for writing (options.read_only is false): with
// `lease` (a compaction's, already written and checked) or, if null, a
// writer lease of its own (AcquireWriterLease: Conflict while a
// compaction by another process runs). The handle releases it at Close.
Result<std::unique_ptr<File>> OpenWriter(std::shared_ptr<ObjectStore> store,
                                         const OpenOptions& options,
                                         std::unique_ptr<WriterLease> lease);

struct ResolvedState {
  std::shared_ptr<ObjectStore> store;  // where the header lives (origin for clones)
  HeaderRead read;
  // Set when the state is a recent checkpoint described inside read.header
  // rather than read.header itself.
  std::optional<format::Descriptor> descriptor;
  const format::Descriptor& self() const { return descriptor ? *descriptor : read.header.self; }
};

Result<ResolvedState> ResolveState(const std::shared_ptr<ObjectStore>& store, const At& at,
                                   const OpenOptions& options);
// Checks every OpenOptions field (InvalidArgument naming the field and its
// accepted range). The block-size dependent rule (the dirty budget holds at
// least one block) is checked by FileImpl::Make once the block size is known.
Status ValidateOpenOptions(const OpenOptions& options, const std::string& where);
// Checks a codec and level (InvalidArgument "<what>: ...").
Status ValidateCompression(const Compression& c, const std::string& what);
// Reads snap/<name> with one bounded GET (NotFound names the snapshot;
// anything but a 28-byte record is Corrupt naming the object).
Result<format::SnapshotRecord> ReadSnapshot(ObjectStore* store, const std::string& name);
// The collector's last decision (gc/kept), read with one bounded GET;
// null if no collection has run.
Result<std::shared_ptr<const format::KeptState>> ReadKeptState(ObjectStore* store);
// NotFound "checkpoint N of X expired by the retention policy" if a
// collection expired `id` (one GET of gc/kept); OK otherwise.
Status CheckNotExpired(ObjectStore* store, uint64_t id);
Status ExpiredError(ObjectStore* store, uint64_t id);
Result<ResolvedState> ResolveTime(const std::shared_ptr<ObjectStore>& store, int64_t time_ms);
// Whether the clone a pin names still exists and is that clone (its file
// id). Unreadable counts as existing (a store that cannot be opened, a
// transport error, a damaged header): a pin is only ignored when proven
// stale — the clone's store answers and holds no such file.
bool PinnedCloneExists(const format::PinRecord& pin, const StoreResolver& resolver);

}  // namespace hyperfile::file
