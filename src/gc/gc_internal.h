// SPDX-License-Identifier: Apache-2.0
// What Collect, DiskUsage, Compact and Lease share inside the gc layer.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "format/format.h"
#include "format/gc_records.h"
#include "gc/mark.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/gc.h"

namespace hyperfile::gc {

// Everything a collection decides from, read before anything is written.
struct FileView {
  uint64_t head = 0;
  format::SegmentHeader head_header;
  std::shared_ptr<const format::KeptState> prior;  // the last collection's decision
  std::vector<CheckpointInfo> history;             // openable checkpoints, newest first
  std::vector<SnapshotInfo> snapshots;
  std::vector<std::pair<ObjectInfo, format::PinRecord>> pins;
  std::vector<std::pair<ObjectInfo, format::PinRecord>> stale_pins;
  std::vector<std::pair<ObjectInfo, format::LeaseRecord>> leases;
  std::optional<RetentionPolicy> policy;  // the override, else the stored one
  std::map<uint64_t, uint8_t> kept;       // id -> Reason bits
};

// Pins for which `pin_is_stale` answers true keep nothing: they go to
// FileView::stale_pins instead of pins.
using PinFilter = std::function<bool(const ObjectInfo&, const format::PinRecord&)>;
// What an incremental run already knows (the ledger's walk read the head and
// the new headers; the history comes from gc/kept and them): LoadView then
// lists nothing but snapshots, pins and leases.
struct KnownHead {
  uint64_t head = 0;
  format::SegmentHeader header;
  std::shared_ptr<const format::KeptState> prior;
  std::vector<CheckpointInfo> history;  // any order, ids <= head
};
Result<FileView> LoadView(const std::shared_ptr<ObjectStore>& store,
                          const std::optional<RetentionPolicy>& override_policy, int64_t now_ms,
                          int64_t grace_ms, const PinFilter& pin_is_stale = nullptr,
                          const KnownHead* known = nullptr);
// Marks every kept checkpoint of `v`, the head first.
Status MarkKept(const FileView& v, Marker* marker,
                const std::function<void(uint64_t, uint64_t)>& tick);
Status ListAll(ObjectStore* store, std::string_view prefix, std::vector<ObjectInfo>* out);
Status ReadLeases(ObjectStore* store, std::vector<std::pair<ObjectInfo, format::LeaseRecord>>* out);
Status ReadPins(ObjectStore* store, std::vector<std::pair<ObjectInfo, format::PinRecord>>* out);
// Whether a lease (written at info.mtime_ms by the store's clock) still
// holds at now_ms, allowing grace_ms after it lapsed.
bool LeaseHolds(const ObjectInfo& info, const format::LeaseRecord& lease, int64_t now_ms,
                int64_t grace_ms);

}  // namespace hyperfile::gc
