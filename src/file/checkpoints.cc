// Checkpoint tools: list, restore, snapshots, clone, diff, verify, remove,
// and parsing of At.
#include "hyperfile/checkpoints.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <map>

#include "file/file_impl.h"
#include "file/interval_set.h"
#include "file/open_internal.h"
#include "util/coding.h"

namespace hyperfile {

using file::HeaderRead;

// ---------------------------------------------------------------- At -----

Result<At> At::Parse(std::string_view text) {
  if (text.empty()) return Status::InvalidArgument("empty checkpoint selector");
  if (text == "latest" || text == "HEAD") return At::Latest();
  if (std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(c); })) {
    if (text.size() > 19)
      return Status::InvalidArgument("checkpoint id too large: " + std::string(text));
    return At::Checkpoint(std::stoull(std::string(text)));
  }
  if (text[0] == '@' && text.size() > 1 &&
      std::all_of(text.begin() + 1, text.end(), [](char c) { return std::isdigit(c); })) {
    if (text.size() > 12) return Status::InvalidArgument("time out of range: " + std::string(text));
    return At::Time(std::stoll(std::string(text.substr(1))) * 1000);
  }
  // ISO 8601 UTC: YYYY-MM-DD[T ]HH:MM[:SS[.mmm]][Z]
  std::tm tm{};
  int ms = 0;
  std::string s(text);
  if (s.size() >= 16 && std::isdigit(s[0]) && s[4] == '-' && s[7] == '-' &&
      (s[10] == 'T' || s[10] == ' ')) {
    int sec = 0;
    int n = std::sscanf(s.c_str(), "%4d-%2d-%2d%*c%2d:%2d:%2d.%3d", &tm.tm_year, &tm.tm_mon,
                        &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &sec, &ms);
    if (n < 5) return Status::InvalidArgument("bad time: " + s);
    tm.tm_sec = n >= 6 ? sec : 0;
    if (n < 7) ms = 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60) {
      return Status::InvalidArgument("bad time: " + s);
    }
    return At::Time(static_cast<int64_t>(timegm(&tm)) * 1000 + ms);
  }
  if (s.size() > 128 || !std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
      })) {
    return Status::InvalidArgument("not a checkpoint id, time or snapshot name: " + s);
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

bool ValidSnapshotName(const std::string& name) {
  if (name.empty() || name.size() > 128) return false;
  bool all_digits = true;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
    if (!std::isdigit(static_cast<unsigned char>(c))) all_digits = false;
  }
  return !all_digits && name != "latest" && name != "HEAD";
}

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
                                   std::vector<format::Origin> origins, uint64_t restored_from) {
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
    h.file_id = file::RandomU64();
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
  PutOptions put;
  put.if_absent = true;
  std::string key = format::SegmentKey(new_id);
  Status st = store->Put(key, bytes, put, nullptr);
  if (st.IsPreconditionFailed()) {
    std::string back;
    if (store->Get(key, 0, bytes.size(), &back, nullptr).ok() && back == bytes) return new_id;
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

Result<std::vector<CheckpointInfo>> ListCheckpoints(std::shared_ptr<ObjectStore> store,
                                                    size_t limit) {
  HF_ASSIGN_OR_RETURN(uint64_t latest, file::LatestCheckpointId(store.get()));
  std::vector<CheckpointInfo> out;
  uint64_t next = latest;
  // Each header describes itself and the 64 checkpoints before it.
  while (next != 0 && (limit == 0 || out.size() < limit)) {
    HF_ASSIGN_OR_RETURN(HeaderRead read, file::ReadHeader(store.get(), next));
    const format::SegmentHeader& h = read.header;
    CheckpointInfo self = InfoFrom(h.self);
    self.parent = h.parent;
    self.writer = h.writer;
    out.push_back(self);
    for (const format::Descriptor& d : h.recent) {
      if (limit != 0 && out.size() >= limit) break;
      out.push_back(InfoFrom(d));
    }
    uint64_t oldest = out.back().id;
    next = oldest > h.first_id ? oldest - 1 : 0;
  }
  if (limit != 0 && out.size() > limit) out.resize(limit);
  auto snaps = ListSnapshots(store);
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
  return WriteStateSegment(store.get(), &head.header, head.header, target.self(), latest + 1,
                           head.header.origins, target.self().id);
}

Status CreateSnapshot(std::shared_ptr<ObjectStore> store, const std::string& name, const At& at) {
  if (!ValidSnapshotName(name)) {
    return Status::InvalidArgument("bad snapshot name '" + name +
                                   "': use 1-128 of [A-Za-z0-9._-], not all digits");
  }
  HF_ASSIGN_OR_RETURN(uint64_t id, ResolveAt(store, at));
  format::SnapshotRecord rec{id, file::NowMs()};
  PutOptions put;
  put.if_absent = true;
  Status st = store->Put(std::string(format::kSnapshotPrefix) + name, format::EncodeSnapshot(rec),
                         put, nullptr);
  if (st.IsPreconditionFailed()) {
    return Status::AlreadyExists("snapshot '" + name + "' already exists in " + store->Name());
  }
  return st;
}

Result<std::vector<SnapshotInfo>> ListSnapshots(std::shared_ptr<ObjectStore> store) {
  std::vector<ObjectInfo> objects;
  HF_RETURN_IF_ERROR(store->List(format::kSnapshotPrefix, "", 0, &objects));
  std::vector<SnapshotInfo> out;
  for (const ObjectInfo& o : objects) {
    std::string body;
    HF_RETURN_IF_ERROR(store->Get(o.key, &body));
    HF_ASSIGN_OR_RETURN(format::SnapshotRecord rec,
                        format::DecodeSnapshot(body, store->Name() + "/" + o.key));
    out.push_back({o.key.substr(format::kSnapshotPrefix.size()), rec.checkpoint, rec.created_ms});
  }
  return out;
}

Status DeleteSnapshot(std::shared_ptr<ObjectStore> store, const std::string& name) {
  if (!ValidSnapshotName(name)) return Status::InvalidArgument("bad snapshot name '" + name + "'");
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
                       std::shared_ptr<ObjectStore> destination) {
  std::vector<ObjectInfo> existing;
  HF_RETURN_IF_ERROR(destination->List(format::kSegmentPrefix, "", 1, &existing));
  if (!existing.empty()) {
    return Status::AlreadyExists("clone: a hyperfile already exists at " + destination->Name());
  }
  HF_ASSIGN_OR_RETURN(file::ResolvedState target, file::ResolveState(source, at, OpenOptions{}));
  const format::Descriptor& d = target.self();
  std::vector<format::Origin> origins = target.read.header.origins;
  origins.push_back({d.id, target.store->Name()});
  return WriteStateSegment(destination.get(), nullptr, target.read.header, d, d.id + 1,
                           std::move(origins), 0);
}

Status RemoveFile(std::shared_ptr<ObjectStore> store, const RemoveOptions& options) {
  (void)options;  // TODO(issue 9): replaced by the safe removal
  std::vector<ObjectInfo> objects;
  HF_RETURN_IF_ERROR(store->List("", "", 0, &objects));
  std::vector<std::string> keys;
  for (const ObjectInfo& o : objects) keys.push_back(o.key);
  if (keys.empty()) return Status::NotFound("no hyperfile at " + store->Name());
  // Delete segments newest first is not needed for safety: removal is not
  // atomic, and a half-removed file reports the gap as Corrupt, never data.
  return store->DeleteMany(keys);
}

}  // namespace hyperfile
