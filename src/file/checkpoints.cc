// SPDX-License-Identifier: Apache-2.0
// Checkpoint tools: list, restore, snapshots, clone, diff, verify, remove,
// and parsing of At.
#include "hyperfile/checkpoints.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <map>

#include "crypto/key_record.h"
#include "file/file_impl.h"
#include "file/interval_set.h"
#include "file/open_internal.h"
#include "file/sealing.h"
#include "format/gc_records.h"
#include "format/removal_marker.h"
#include "util/coding.h"

namespace hyperfile {

using file::HeaderRead;

// ---------------------------------------------------------------- At -----

namespace {

// Parses "YYYY-MM-DD[(T| )HH:MM[:SS[.mmm]]][Z]" strictly: every character is
// consumed and every field is in range.
bool ParseIsoTime(std::string_view s, int64_t* ms_out) {
  size_t pos = 0;
  auto number = [&](size_t digits, int* v) {
    if (pos + digits > s.size()) return false;
    int x = 0;
    for (size_t i = 0; i < digits; i++) {
      char c = s[pos + i];
      if (c < '0' || c > '9') return false;
      x = x * 10 + (c - '0');
    }
    pos += digits;
    *v = x;
    return true;
  };
  auto expect = [&](char c) {
    if (pos < s.size() && s[pos] == c) {
      pos++;
      return true;
    }
    return false;
  };
  int year, mon, day, hour = 0, min = 0, sec = 0, ms = 0;
  if (!number(4, &year) || !expect('-') || !number(2, &mon) || !expect('-') || !number(2, &day)) {
    return false;
  }
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == ' ')) {
    pos++;
    if (!number(2, &hour) || !expect(':') || !number(2, &min)) return false;
    if (expect(':')) {
      if (!number(2, &sec)) return false;
      if (expect('.') && !number(3, &ms)) return false;
    }
  }
  expect('Z');
  if (pos != s.size()) return false;
  if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
      sec > 60) {
    return false;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  *ms_out = static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
  return true;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

bool IsSnapshotName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  if (!std::isalpha(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  }
  return name != "latest" && name != "HEAD";
}

// One rule decides what a selector is, by its first character: a letter
// starts a snapshot name (or latest/HEAD), '@' Unix seconds, a digit a
// checkpoint id (all digits) or an ISO 8601 time. So every name that
// CreateSnapshot accepts parses back as that name.
Result<At> At::Parse(std::string_view text) {
  if (text.empty()) return Status::InvalidArgument("empty checkpoint selector");
  if (text == "latest" || text == "HEAD") return At::Latest();
  const std::string s(text);
  if (AllDigits(text)) {
    if (text.size() > 19) return Status::InvalidArgument("checkpoint id too large: " + s);
    uint64_t id = std::stoull(s);
    if (id == 0 || id > format::kMaxCheckpointId) {
      return Status::InvalidArgument("checkpoint id out of range: " + s);
    }
    return At::Checkpoint(id);
  }
  if (text[0] == '@') {
    if (!AllDigits(text.substr(1)) || text.size() > 12) {
      return Status::InvalidArgument("bad time '" + s + "': @ takes Unix seconds");
    }
    return At::Time(std::stoll(s.substr(1)) * 1000);
  }
  if (std::isdigit(static_cast<unsigned char>(text[0]))) {
    int64_t ms = 0;
    if (!ParseIsoTime(text, &ms)) {
      return Status::InvalidArgument("bad time '" + s +
                                     "': use YYYY-MM-DD[THH:MM[:SS[.mmm]]][Z] (UTC)");
    }
    return At::Time(ms);
  }
  if (!IsSnapshotName(text)) {
    return Status::InvalidArgument("not a checkpoint id, time or snapshot name: '" + s + "'");
  }
  return At::Snapshot(s);
}

std::string At::ToString() const {
  switch (kind) {
    case Kind::kLatest:
      return "latest";
    case Kind::kCheckpoint:
      return std::to_string(checkpoint);
    case Kind::kSnapshot:
      return snapshot;
    case Kind::kTime: {
      std::time_t secs = static_cast<std::time_t>(time_ms / 1000);
      std::tm tm{};
      gmtime_r(&secs, &tm);
      char buf[64];
      std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                    static_cast<int>(time_ms % 1000));
      return buf;
    }
  }
  return "?";
}

namespace {

CheckpointInfo InfoFrom(const format::Descriptor& d) {
  CheckpointInfo c;
  c.id = d.id;
  c.parent = d.id > 1 ? d.id - 1 : 0;
  c.time_ms = d.time_ms;
  c.size = d.size;
  c.bytes_changed = d.bytes_changed;
  c.restored_from = d.restored_from;
  return c;
}

// Writes a new head segment whose state is `target` (restore and clone).
Result<uint64_t> WriteStateSegment(ObjectStore* store, const format::SegmentHeader* parent,
                                   const format::SegmentHeader& lineage_header,
                                   const format::Descriptor& target, uint64_t new_id,
                                   std::vector<format::Origin> origins, uint64_t restored_from,
                                   uint64_t new_file_id = 0) {
  format::SegmentHeader h = lineage_header;
  h.self = target;
  h.self.id = new_id;
  h.self.time_ms = std::max(file::NowMs(), parent ? parent->self.time_ms : 0);
  h.self.bytes_changed = 0;
  h.self.restored_from = restored_from;
  h.origins = std::move(origins);
  h.writer_epoch = file::RandomU64();
  h.writer = "restore";
  if (parent) {
    h.parent = parent->self.id;
    h.parent_crc = parent->crc;
    h.first_id = parent->first_id;
    h.file_id = parent->file_id;
    h.create_time_ms = parent->create_time_ms;
    format::CarryHistory(*parent, &h);
  } else {  // a clone's first segment starts a new history
    h.parent = 0;
    h.parent_crc = 0;
    h.first_id = new_id;
    h.file_id = new_file_id != 0 ? new_file_id : file::RandomU64();
    h.create_time_ms = h.self.time_ms;
    h.writer = "clone";
    h.recent.clear();
    h.sample_ids.clear();
    h.sample_times.clear();
  }
  size_t len = format::EncodeHeader(h).size();
  h.node_area_offset = h.data_area_offset = len;
  h.node_area_length = h.data_area_length = 0;
  std::string bytes = format::EncodeHeader(h);
  Status st = file::CreateOnce(store, format::SegmentKey(new_id), {bytes}, bytes);
  if (st.IsPreconditionFailed()) {
    return Status::Conflict(store->Name() + ": file was changed by another writer (checkpoint " +
                            std::to_string(new_id) + " already exists)");
  }
  HF_RETURN_IF_ERROR(st);
  return new_id;
}

}  // namespace

Result<uint64_t> ResolveAt(std::shared_ptr<ObjectStore> store, const At& at) {
  HF_ASSIGN_OR_RETURN(file::ResolvedState s, file::ResolveState(store, at, OpenOptions{}));
  return s.self().id;
}

namespace {
Result<std::vector<SnapshotInfo>> ListSnapshotRecords(ObjectStore* store);
}  // namespace

Result<std::vector<CheckpointInfo>> ListCheckpoints(std::shared_ptr<ObjectStore> store,
                                                    size_t limit) {
  HF_ASSIGN_OR_RETURN(uint64_t latest, file::LatestCheckpointId(store.get()));
  // Checkpoints a collection expired are not listed; their headers may be
  // gone, so below its horizon the walk goes from kept id to kept id.
  HF_ASSIGN_OR_RETURN(std::shared_ptr<const format::KeptState> kept,
                      file::ReadKeptState(store.get()));
  auto expired = [&](uint64_t id) { return kept && kept->Expired(id); };
  std::vector<CheckpointInfo> out;
  uint64_t next = latest;
  // Each header describes itself and the 64 checkpoints before it.
  while (next != 0 && (limit == 0 || out.size() < limit)) {
    if (expired(next)) {
      // The largest kept id below `next` (ids below kept->first were not judged).
      auto it = std::lower_bound(kept->kept.begin(), kept->kept.end(), next,
                                 [](const format::KeptEntry& e, uint64_t v) { return e.id < v; });
      if (it != kept->kept.begin()) {
        next = std::prev(it)->id;
      } else {
        break;  // nothing kept below: the older checkpoints all expired
      }
    }
    HF_ASSIGN_OR_RETURN(HeaderRead read, file::ReadHeader(store.get(), next));
    const format::SegmentHeader& h = read.header;
    CheckpointInfo self = InfoFrom(h.self);
    self.parent = h.parent;
    self.writer = h.writer;
    out.push_back(self);
    uint64_t oldest = h.self.id;
    for (const format::Descriptor& d : h.recent) {
      if (limit != 0 && out.size() >= limit) break;
      oldest = d.id;
      if (!expired(d.id)) out.push_back(InfoFrom(d));
    }
    next = oldest > h.first_id ? oldest - 1 : 0;
  }
  if (limit != 0 && out.size() > limit) out.resize(limit);
  auto snaps = ListSnapshotRecords(store.get());  // the head was found above
  if (snaps.ok()) {
    for (CheckpointInfo& c : out) {
      for (const SnapshotInfo& s : *snaps) {
        if (s.checkpoint == c.id) c.snapshots.push_back(s.name);
      }
    }
  }
  return out;
}

Result<uint64_t> Restore(std::shared_ptr<ObjectStore> store, const At& at) {
  HF_ASSIGN_OR_RETURN(file::ResolvedState target, file::ResolveState(store, at, OpenOptions{}));
  HF_ASSIGN_OR_RETURN(uint64_t latest, file::LatestCheckpointId(store.get()));
  HF_ASSIGN_OR_RETURN(HeaderRead head, file::ReadHeader(store.get(), latest));
  if (target.store != store) {
    return Status::InvalidArgument("restore: checkpoint " + std::to_string(target.self().id) +
                                   " predates this clone; clone it again instead");
  }
  // Hold the target with a lease while the restore commits, then check it
  // is still kept: a collection that expired it meanwhile either wrote its
  // decision before our check (we see it and stop) or sees our lease when
  // it looks again before deleting (docs/design/0006-space-reclamation.md).
  const uint64_t target_id = target.self().id;
  const std::string lease_key = format::LeaseKey(file::RandomU64());
  const std::string lease =
      format::EncodeLease({target_id, 10 * 60 * 1000, "restore " + std::to_string(target_id)});
  HF_RETURN_IF_ERROR(store->Put(lease_key, {lease}, PutOptions{}).WithContext("restore: lease"));
  Status kept = file::CheckNotExpired(store.get(), target_id);
  Result<uint64_t> id =
      kept.ok() ? WriteStateSegment(store.get(), &head.header, head.header, target.self(),
                                    latest + 1, head.header.origins, target_id)
                : Result<uint64_t>(kept);
  (void)store->Delete(lease_key);
  return id;
}

Status CreateSnapshot(std::shared_ptr<ObjectStore> store, const std::string& name, const At& at) {
  if (!IsSnapshotName(name)) {
    return Status::InvalidArgument("bad snapshot name '" + name +
                                   "': use 1-128 of [A-Za-z0-9._-] starting with a letter");
  }
  HF_ASSIGN_OR_RETURN(uint64_t id, ResolveAt(store, at));
  format::SnapshotRecord rec{id, file::NowMs()};
  const std::string bytes = format::EncodeSnapshot(rec);
  const std::string key = std::string(format::kSnapshotPrefix) + name;
  // The creation time (ms) in the record is what makes a landed retry ours.
  Status st = file::CreateOnce(store.get(), key, {bytes}, bytes);
  if (st.IsPreconditionFailed()) {
    return Status::AlreadyExists("snapshot '" + name + "' already exists in " + store->Name());
  }
  return st;
}

namespace {

// The snapshot records of a file already known to exist.
Result<std::vector<SnapshotInfo>> ListSnapshotRecords(ObjectStore* store) {
  std::vector<ObjectInfo> objects;
  HF_RETURN_IF_ERROR(store->List(format::kSnapshotPrefix, "", 0, &objects));
  std::vector<SnapshotInfo> out;
  for (const ObjectInfo& o : objects) {
    std::string name = o.key.substr(format::kSnapshotPrefix.size());
    if (!IsSnapshotName(name)) continue;  // not a key of the format (e.g. snap/.DS_Store)
    HF_ASSIGN_OR_RETURN(format::SnapshotRecord rec, file::ReadSnapshot(store, name));
    out.push_back({std::move(name), rec.checkpoint, rec.created_ms});
  }
  return out;
}

}  // namespace

Result<std::vector<SnapshotInfo>> ListSnapshots(std::shared_ptr<ObjectStore> store) {
  // A missing file has no snapshots to list: NotFound, like every command.
  HF_RETURN_IF_ERROR(file::LatestCheckpointId(store.get()).status());
  return ListSnapshotRecords(store.get());
}

Status DeleteSnapshot(std::shared_ptr<ObjectStore> store, const std::string& name) {
  if (!IsSnapshotName(name)) return Status::InvalidArgument("bad snapshot name '" + name + "'");
  std::string key = std::string(format::kSnapshotPrefix) + name;
  ObjectInfo info;
  Status st = store->Head(key, &info);
  if (st.IsNotFound()) {
    return Status::NotFound("snapshot '" + name + "' does not exist in " + store->Name());
  }
  HF_RETURN_IF_ERROR(st);
  return store->Delete(key);
}

Result<uint64_t> Clone(std::shared_ptr<ObjectStore> source, const At& at,
                       std::shared_ptr<ObjectStore> destination, const CloneOptions& options) {
  if (!source || !destination) return Status::InvalidArgument("clone: no store");
  std::vector<ObjectInfo> existing;
  HF_RETURN_IF_ERROR(destination->List(format::kSegmentPrefix, "", 1, &existing));
  if (!existing.empty()) {
    return Status::AlreadyExists("clone: a hyperfile already exists at " + destination->Name());
  }
  HF_ASSIGN_OR_RETURN(file::ResolvedState target, file::ResolveState(source, at, OpenOptions{}));
  const format::Descriptor& d = target.self();
  // An encrypted source is unlocked first: a wrong or missing key fails
  // before anything is written.
  std::shared_ptr<const file::FileSealer> sealer;
  if (target.read.header.cipher != format::kCipherNone) {
    file::Lineage lineage(target.store, target.read.header.origins,
                          file::DefaultResolver(OpenOptions{}));
    HF_ASSIGN_OR_RETURN(sealer,
                        file::UnlockFile(&lineage, target.read.header, options.source_key.get()));
  }
  std::vector<format::Origin> origins = target.read.header.origins;
  origins.push_back({d.id, target.store->Name()});
  // Pin the checkpoint in the file that holds it, before the clone exists,
  // so no collection of the source can take what the clone will borrow
  // (a failed clone leaves a pin, which only keeps a checkpoint longer).
  uint64_t clone_file_id = file::RandomU64() | 1;
  const std::string pin = format::EncodePin({d.id, clone_file_id, destination->Name()});
  HF_RETURN_IF_ERROR(target.store->Put(format::PinKey(clone_file_id), {pin}, PutOptions{})
                         .WithContext("clone: pin checkpoint " + std::to_string(d.id) + " in " +
                                      target.store->Name()));
  // A collection that decided before the pin was visible may have expired
  // the checkpoint meanwhile: look again (it sees the pin from now on).
  HF_RETURN_IF_ERROR(file::CheckNotExpired(target.store.get(), d.id));
  if (sealer) {
    // The clone's own record: the same data key under the clone's file id.
    const KeySource& kek = options.key ? *options.key : *options.source_key;
    auto fk = crypto::CreateFileKey(destination.get(), clone_file_id, kek.impl().kek,
                                    &sealer->data_key());
    if (!fk.ok()) return fk.status().WithContext("clone to " + destination->Name());
  }
  return WriteStateSegment(destination.get(), nullptr, target.read.header, d, d.id + 1,
                           std::move(origins), 0, clone_file_id);
}

namespace {

// The keys of a file that RemoveFile may delete, from one listing.
struct FileKeys {
  std::vector<uint64_t> segments;  // ascending ids (markers included)
  std::vector<std::string> other;  // snapshots, data objects, gc/*, leases, pins, key/
  std::vector<std::string> pins;   // pin/ keys (also in other)
  std::vector<std::string> foreign;
  uint64_t foreign_count = 0;
};

constexpr size_t kRemoveListPage = 1000;
constexpr size_t kForeignShown = 3;

bool IsFormatKey(std::string_view key, uint64_t* segment) {
  *segment = 0;
  if (key.starts_with(format::kSegmentPrefix)) {
    auto id = format::ParseSegmentKey(key);
    if (id && *id >= 1 && *id <= format::kMaxCheckpointId) {
      *segment = *id;
      return true;
    }
    return false;
  }
  if (key.starts_with(format::kSnapshotPrefix)) {
    return IsSnapshotName(key.substr(format::kSnapshotPrefix.size()));
  }
  if (key.starts_with(format::kDataObjectPrefix)) {
    return format::ParseDataObjectKey(key).has_value();
  }
  if (key.starts_with(format::kLeasePrefix)) return format::ParseLeaseKey(key).has_value();
  if (key.starts_with(format::kPinPrefix)) return format::ParsePinKey(key).has_value();
  if (key.starts_with(format::kWriterLeasePrefix)) {
    return format::ParseWriterLeaseKey(key).has_value();
  }
  if (key.starts_with(crypto::kKeyRecordPrefix)) return crypto::ParseKeyRecordKey(key).has_value();
  return key == format::kHorizonKey || key == format::kKeptKey || key == format::kPolicyKey ||
         key == format::kLedgerKey;
}

// Lists the root page by page. Without keep_foreign the listing stops at the
// first page that shows a foreign key: nothing will be deleted anyway.
Status ListFileKeys(ObjectStore* store, bool keep_foreign, FileKeys* out) {
  std::string after;
  for (;;) {
    std::vector<ObjectInfo> page;
    HF_RETURN_IF_ERROR(store->List("", after, kRemoveListPage, &page));
    for (const ObjectInfo& o : page) {
      uint64_t id = 0;
      if (!IsFormatKey(o.key, &id)) {
        if (out->foreign.size() < kForeignShown) out->foreign.push_back(o.key);
        out->foreign_count++;
      } else if (id != 0) {
        out->segments.push_back(id);
      } else {
        if (o.key.starts_with(format::kPinPrefix)) out->pins.push_back(o.key);
        out->other.push_back(o.key);
      }
    }
    if (page.size() < kRemoveListPage) break;
    if (page.back().key <= after) {
      return Status::Corrupt("remove " + store->Name() + ": the listing does not advance");
    }
    after = page.back().key;
    if (!keep_foreign && out->foreign_count > 0) break;
  }
  std::sort(out->segments.begin(), out->segments.end());
  return Status::OK();
}

}  // namespace

namespace file {
bool PinnedCloneExists(const format::PinRecord& pin, const StoreResolver& resolver) {
  auto clone = resolver(pin.clone_uri);
  if (!clone.ok()) return true;
  auto head = file::LatestCheckpointId(clone->get());
  if (!head.ok()) return !head.status().IsNotFound();
  auto read = file::ReadHeader(clone->get(), *head);
  if (!read.ok()) return !read.status().IsNotFound();
  return read->header.file_id == pin.clone_file_id;
}
}  // namespace file

namespace {
using file::PinnedCloneExists;

// The head is a removal marker already (an earlier removal was interrupted)?
Result<bool> HeadIsMarker(ObjectStore* store, uint64_t id) {
  std::string bytes;
  Status st = store->Get(format::SegmentKey(id), 0, format::kRemovalMarkerBytes, &bytes, nullptr);
  if (st.IsNotFound()) return false;
  HF_RETURN_IF_ERROR(st);
  return format::LooksLikeRemovalMarker(bytes);
}

}  // namespace

Status RemoveFile(std::shared_ptr<ObjectStore> store, const RemoveOptions& options) {
  if (!store) return Status::InvalidArgument("remove: no store");
  const std::string name = store->Name();
  // 1. Is there a hyperfile here at all? (One LIST; a directory of ordinary
  // files or a parent of hyperfiles is NotFound and never listed further.)
  HF_RETURN_IF_ERROR(file::LatestCheckpointId(store.get()).status());
  FileKeys keys;
  HF_RETURN_IF_ERROR(ListFileKeys(store.get(), options.keep_foreign, &keys));
  if (keys.segments.empty()) return Status::NotFound("no hyperfile at " + name);
  if (keys.foreign_count > 0 && !options.keep_foreign) {
    std::string shown;
    for (const std::string& k : keys.foreign) shown += (shown.empty() ? "'" : ", '") + k + "'";
    return Status::InvalidArgument(
        "remove " + name + ": it holds " + std::to_string(keys.foreign_count) +
        (keys.foreign_count == 1 ? " object" : " or more objects") +
        " that are not part of a hyperfile (" + shown +
        (keys.foreign_count > kForeignShown ? ", ..." : "") +
        "); nothing was deleted (keep_foreign removes only the hyperfile)");
  }
  // A clone borrows this file's data: removing it would break the clone.
  // A pin whose clone is gone (removed without reaching us, or never
  // created) is stale and does not count.
  OpenOptions resolve_with;
  resolve_with.store_resolver = options.store_resolver;
  const file::StoreResolver resolver = file::DefaultResolver(resolve_with);
  if (!keys.pins.empty() && !options.force) {
    std::vector<std::string> live;
    size_t live_count = 0;
    for (const std::string& key : keys.pins) {
      std::string body;
      Status st = store->Get(key, 0, format::kMaxPinBytes + 1, &body, nullptr);
      if (st.IsNotFound()) continue;
      auto pin =
          st.ok() ? format::DecodePin(body, name + "/" + key) : Result<format::PinRecord>(st);
      if (pin.ok() && !PinnedCloneExists(*pin, resolver)) continue;
      live_count++;
      if (live.size() < kForeignShown) {
        live.push_back(pin.ok() ? pin->clone_uri + " (from checkpoint " +
                                      std::to_string(pin->checkpoint) + ")"
                                : key);
      }
    }
    if (live_count > 0) {
      std::string clones;
      for (const std::string& c : live) clones += (clones.empty() ? "" : ", ") + c;
      return Status::InvalidArgument(
          "remove " + name + ": " + std::to_string(live_count) +
          (live_count == 1 ? " clone borrows" : " clones borrow") + " its data: " + clones +
          (live_count > kForeignShown ? ", ..." : "") +
          "; flatten or remove the clones first, or force the removal (the clones break)");
    }
  }
  // If this file is a clone, its pin in the file it borrows from goes last.
  std::optional<std::pair<std::string, uint64_t>> own_pin;
  if (auto head_read = file::ReadHeader(store.get(), keys.segments.back());
      head_read.ok() && !head_read->header.origins.empty()) {
    own_pin.emplace(head_read->header.origins.back().uri, head_read->header.file_id);
  }
  // 2. Commit the removal marker as the newest checkpoint, unless an
  // interrupted removal left one. A writer that commits meanwhile takes the
  // id first: look again (bounded).
  uint64_t marker_id = 0;
  uint64_t head = keys.segments.back();  // from the listing; later attempts look again
  for (int attempt = 0; marker_id == 0; attempt++) {
    if (attempt > 0) {
      HF_ASSIGN_OR_RETURN(head, file::LatestCheckpointId(store.get()));
    }
    HF_ASSIGN_OR_RETURN(bool is_marker, HeadIsMarker(store.get(), head));
    if (is_marker) {
      marker_id = head;
      break;
    }
    if (attempt >= 8) {
      return Status::Conflict("remove " + name + ": a writer keeps committing; stop it first");
    }
    if (head >= format::kMaxCheckpointId) return Status::OutOfRange("checkpoint ids exhausted");
    const std::string bytes = format::EncodeRemovalMarker({head + 1, file::NowMs()});
    Status st = file::CreateOnce(store.get(), format::SegmentKey(head + 1), {bytes}, bytes);
    if (st.ok()) {
      marker_id = head + 1;
    } else if (!st.IsPreconditionFailed()) {
      return st.WithContext("remove " + name + ": commit the removal marker");
    }
  }
  // 3. No checkpoint can be committed after the marker now. List again so
  // that what a writer committed before it is included, then delete the
  // snapshots, the data objects and the horizon, the segments oldest first,
  // the marker last.
  FileKeys final_keys;
  HF_RETURN_IF_ERROR(ListFileKeys(store.get(), /*keep_foreign=*/true, &final_keys));
  HF_RETURN_IF_ERROR(store->DeleteMany(final_keys.other).WithContext("remove " + name));
  std::vector<std::string> segments;
  for (uint64_t id : final_keys.segments) {
    if (id != marker_id) segments.push_back(format::SegmentKey(id));
  }
  HF_RETURN_IF_ERROR(store->DeleteMany(segments).WithContext("remove " + name));
  HF_RETURN_IF_ERROR(store->Delete(format::SegmentKey(marker_id)).WithContext("remove " + name));
  if (own_pin) {
    auto source = resolver(own_pin->first);
    Status st =
        source.ok() ? source.value()->Delete(format::PinKey(own_pin->second)) : source.status();
    if (!st.ok() && !st.IsNotFound()) {
      return st.WithContext(
          "removed " + name + ", but its pin in " + own_pin->first +
          " (which keeps the checkpoint it was cloned from) could not be deleted");
    }
  }
  return Status::OK();
}

bool IsHyperfileKey(std::string_view key) {
  uint64_t segment = 0;
  return IsFormatKey(key, &segment);
}

}  // namespace hyperfile
