// SPDX-License-Identifier: Apache-2.0
// Collect (retention + garbage collection) and DiskUsage.
// docs/design/0006-space-reclamation.md explains the order of the steps and
// why each deletion is safe.
#include <algorithm>
#include <limits>
#include <map>
#include <set>

#include "file/file_impl.h"
#include "file/open_internal.h"
#include "format/gc_records.h"
#include "gc/gc_internal.h"
#include "gc/ledger.h"
#include "gc/mark.h"
#include "hyperfile/gc.h"
#include "hyperfile/store_layers.h"

namespace hyperfile {

namespace gc {

namespace {
constexpr size_t kListPage = 1000;
constexpr size_t kMaxRecords = 100000;         // leases or pins one file may hold
constexpr uint64_t kMaxNewCheckpoints = 4096;  // committed while a run marks
constexpr int64_t kMaxGraceMs = 30ll * 86400 * 1000;
}  // namespace

// Every object under `prefix`, page by page; the listing must advance.
Status ListAll(ObjectStore* store, std::string_view prefix, std::vector<ObjectInfo>* out) {
  std::string after;
  for (;;) {
    std::vector<ObjectInfo> page;
    HF_RETURN_IF_ERROR(store->List(prefix, after, kListPage, &page));
    for (ObjectInfo& o : page) {
      if (!o.key.starts_with(prefix)) {
        return Status::Corrupt(store->Name() + ": listing of " + std::string(prefix) +
                               " returned " + o.key);
      }
      out->push_back(std::move(o));
    }
    if (page.size() < kListPage) return Status::OK();
    if (out->back().key <= after) {
      return Status::Corrupt(store->Name() + ": the listing of " + std::string(prefix) +
                             " does not advance");
    }
    after = out->back().key;
    if (out->size() > (64u << 20)) {
      return Status::OutOfRange(store->Name() + ": more than 64M objects under " +
                                std::string(prefix));
    }
  }
}

namespace {

template <typename Record>
Status ReadRecords(ObjectStore* store, std::string_view prefix, size_t max_bytes,
                   std::optional<uint64_t> (*parse_key)(std::string_view),
                   Result<Record> (*decode)(std::string_view, std::string_view),
                   std::vector<std::pair<ObjectInfo, Record>>* out) {
  std::vector<ObjectInfo> objects;
  HF_RETURN_IF_ERROR(ListAll(store, prefix, &objects));
  if (objects.size() > kMaxRecords) {
    return Status::OutOfRange(store->Name() + ": more than " + std::to_string(kMaxRecords) +
                              " objects under " + std::string(prefix));
  }
  for (ObjectInfo& o : objects) {
    if (!parse_key(o.key)) continue;  // not a key of the format: foreign, ignored
    std::string body;
    Status st = store->Get(o.key, 0, max_bytes + 1, &body, nullptr);
    if (st.IsNotFound()) continue;  // released meanwhile
    HF_RETURN_IF_ERROR(st);
    HF_ASSIGN_OR_RETURN(Record r, decode(body, store->Name() + "/" + o.key));
    out->emplace_back(std::move(o), std::move(r));
  }
  return Status::OK();
}

}  // namespace

Status ReadLeases(ObjectStore* store,
                  std::vector<std::pair<ObjectInfo, format::LeaseRecord>>* out) {
  return ReadRecords<format::LeaseRecord>(store, format::kLeasePrefix, format::kMaxLeaseBytes,
                                          format::ParseLeaseKey, format::DecodeLease, out);
}

Status ReadPins(ObjectStore* store, std::vector<std::pair<ObjectInfo, format::PinRecord>>* out) {
  return ReadRecords<format::PinRecord>(store, format::kPinPrefix, format::kMaxPinBytes,
                                        format::ParsePinKey, format::DecodePin, out);
}

bool LeaseHolds(const ObjectInfo& info, const format::LeaseRecord& lease, int64_t now_ms,
                int64_t grace_ms) {
  // An object time of 0 (a store that does not say) never lets a lease lapse.
  if (info.mtime_ms <= 0) return true;
  int64_t ttl = static_cast<int64_t>(std::min<uint64_t>(lease.ttl_ms, uint64_t{1} << 40));
  return info.mtime_ms + ttl + grace_ms > now_ms;
}

Result<FileView> LoadView(const std::shared_ptr<ObjectStore>& store,
                          const std::optional<RetentionPolicy>& override_policy, int64_t now_ms,
                          int64_t grace_ms, const PinFilter& pin_is_stale, const KnownHead* known) {
  FileView v;
  if (known) {
    v.head = known->head;
    v.head_header = known->header;
    v.prior = known->prior;
    v.history = known->history;
  } else {
    HF_ASSIGN_OR_RETURN(v.head, file::LatestCheckpointId(store.get()));
    HF_ASSIGN_OR_RETURN(file::HeaderRead head, file::ReadHeader(store.get(), v.head));
    v.head_header = head.header;
    HF_ASSIGN_OR_RETURN(v.prior, file::ReadKeptState(store.get()));
    HF_ASSIGN_OR_RETURN(v.history, ListCheckpoints(store));
  }
  // The view is the state at v.head: a checkpoint committed since it was
  // read (the listing comes later) is newer than the decision's horizon, is
  // never expired or deleted by this run, and is marked in step 5.
  std::erase_if(v.history, [&](const CheckpointInfo& c) { return c.id > v.head; });
  if (known) {
    // The file exists (its head was read): list the records alone.
    std::vector<ObjectInfo> objects;
    HF_RETURN_IF_ERROR(ListAll(store.get(), format::kSnapshotPrefix, &objects));
    for (const ObjectInfo& o : objects) {
      std::string name = o.key.substr(format::kSnapshotPrefix.size());
      if (!IsSnapshotName(name)) continue;  // not a key of the format
      HF_ASSIGN_OR_RETURN(format::SnapshotRecord rec, file::ReadSnapshot(store.get(), name));
      v.snapshots.push_back({std::move(name), rec.checkpoint, rec.created_ms});
    }
  } else {
    HF_ASSIGN_OR_RETURN(v.snapshots, ListSnapshots(store));
  }
  HF_RETURN_IF_ERROR(ReadPins(store.get(), &v.pins));
  if (pin_is_stale) {
    std::vector<std::pair<ObjectInfo, format::PinRecord>> live;
    for (auto& pin : v.pins)
      (pin_is_stale(pin.first, pin.second) ? v.stale_pins : live).push_back(pin);
    v.pins = std::move(live);
  }
  HF_RETURN_IF_ERROR(ReadLeases(store.get(), &v.leases));
  if (override_policy) {
    v.policy = override_policy;
  } else {
    HF_ASSIGN_OR_RETURN(v.policy, GetRetentionPolicy(store));
  }
  std::set<uint64_t> exists;
  for (const CheckpointInfo& c : v.history) exists.insert(c.id);
  auto keep = [&](uint64_t id, uint8_t reason) {
    if (exists.count(id)) v.kept[id] |= reason;
  };
  keep(v.head, kHead);
  if (v.policy) {
    for (uint64_t id : SelectByPolicy(*v.policy, v.history)) keep(id, kHistory);
  } else {
    for (const CheckpointInfo& c : v.history) keep(c.id, kHistory);  // nothing expires
  }
  for (const SnapshotInfo& s : v.snapshots) keep(s.checkpoint, kSnapshot);
  for (const auto& [info, pin] : v.pins) keep(pin.checkpoint, kPin);
  for (const auto& [info, lease] : v.leases) {
    if (LeaseHolds(info, lease, now_ms, grace_ms)) keep(lease.checkpoint, kHistory);
  }
  return v;
}

Status MarkKept(const FileView& v, Marker* marker,
                const std::function<void(uint64_t, uint64_t)>& tick) {
  uint64_t done = 0;
  // The head first, so that what it shares with older checkpoints counts as
  // the head's.
  // Each checkpoint is walked once, for its strongest reason (head, then
  // policy or lease, then snapshot, then pin), so "only snapshots use it"
  // means no checkpoint kept for another reason does.
  for (uint8_t reason : {kHead, kHistory, kSnapshot, kPin}) {
    for (const auto& [id, reasons] : v.kept) {
      if ((reasons & reason) == 0 || (reasons & (reason - 1)) != 0) continue;
      if (id < marker->own_first_id()) continue;
      HF_RETURN_IF_ERROR(marker->MarkCheckpoint(id, static_cast<Reason>(reason)));
      if (tick) tick(++done, v.kept.size());
    }
  }
  return Status::OK();
}

}  // namespace gc

using gc::FileView;

namespace gc {
namespace {

constexpr uint64_t kMaxAppliedPerRun = 100000;  // checkpoints one run applies

// Records v's decision in gc/kept (ids <= v.head that are not listed expire).
Status WriteKept(ObjectStore* store, const FileView& v, int64_t local_now) {
  format::KeptState state;
  state.horizon = v.head;
  state.first = v.head_header.first_id;
  state.collected_ms = local_now;
  std::map<uint64_t, int64_t> times;
  for (const CheckpointInfo& c : v.history) times[c.id] = c.time_ms;
  for (const auto& [id, reasons] : v.kept) {
    if (id < state.first) continue;
    format::KeptEntry e{id, times[id], std::numeric_limits<int64_t>::max()};
    if (id != v.head) {
      auto next = times.find(id + 1);
      if (next != times.end()) {
        e.next_time_ms = next->second;
      } else if (v.prior) {
        // id + 1 expired in an earlier run: that run recorded its time.
        for (const format::KeptEntry& old : v.prior->kept) {
          if (old.id == id) e.next_time_ms = old.next_time_ms;
        }
      }
      if (e.next_time_ms == std::numeric_limits<int64_t>::max()) {
        auto above = times.upper_bound(id);
        if (above != times.end()) e.next_time_ms = above->second;
      }
      e.next_time_ms = std::max(e.next_time_ms, e.time_ms);
    }
    state.kept.push_back(e);
  }
  // Keep the times consistent for the decoder (each entry starts at or
  // after the previous entry's successor).
  for (size_t i = 1; i < state.kept.size(); i++) {
    auto& prev = state.kept[i - 1];
    prev.next_time_ms = std::max(std::min(prev.next_time_ms, state.kept[i].time_ms), prev.time_ms);
  }
  if (state.kept.size() > format::kMaxKeptEntries) {
    return Status::OutOfRange("gc " + store->Name() + ": more than " +
                              std::to_string(format::kMaxKeptEntries) + " kept checkpoints");
  }
  const std::string bytes = format::EncodeKeptState(state);
  // Never record a decision that readers would refuse (and that would
  // stop every later run): check it as they will.
  auto check = format::DecodeKeptState(bytes, "gc " + store->Name() + ": new gc/kept");
  if (!check.ok()) {
    return Status::IOError("internal error: " + check.status().message() +
                           " (nothing written or deleted)");
  }
  return store->Put(format::kKeptKey, {bytes}, PutOptions{})
      .WithContext("gc " + store->Name() + ": record the kept checkpoints");
}

// Writes the decision and the horizon; returns the store's time (the
// modification time it gave gc/kept; `local_now` if it does not say).
Result<int64_t> RecordDecision(ObjectStore* store, const FileView& v, int64_t local_now) {
  HF_RETURN_IF_ERROR(WriteKept(store, v, local_now));
  int64_t now = local_now;
  ObjectInfo info;
  HF_RETURN_IF_ERROR(store->Head(format::kKeptKey, &info));
  if (info.mtime_ms > 0) now = info.mtime_ms;
  const std::string horizon = std::to_string(v.head);
  HF_RETURN_IF_ERROR(store->Put(format::kHorizonKey, {horizon}, PutOptions{})
                         .WithContext("gc " + store->Name() + ": write the horizon"));
  return now;
}

// A lease or a pin that appeared while we decided, on a checkpoint we
// expired: its holder checked gc/kept before we wrote it and goes on using
// the checkpoint. Keep it after all (nothing was deleted yet) and record the
// corrected decision. A holder that checks from now on sees one of the two
// decisions; both keep what it checked. Returns the revived ids.
Result<std::map<uint64_t, uint8_t>> Revive(ObjectStore* store, FileView* v, int64_t now,
                                           int64_t grace_ms,
                                           const std::set<std::pair<std::string, int64_t>>& stale,
                                           int64_t local_now, GcReport* r) {
  std::vector<std::pair<ObjectInfo, format::LeaseRecord>> leases;
  HF_RETURN_IF_ERROR(ReadLeases(store, &leases));
  std::vector<std::pair<ObjectInfo, format::PinRecord>> pins;
  HF_RETURN_IF_ERROR(ReadPins(store, &pins));
  std::set<uint64_t> expired(r->expired.begin(), r->expired.end());
  std::map<uint64_t, uint8_t> revived;
  for (const auto& [info, lease] : leases) {
    if (expired.count(lease.checkpoint) && LeaseHolds(info, lease, now, grace_ms)) {
      revived[lease.checkpoint] |= kHistory;
    }
  }
  for (const auto& [info, pin] : pins) {
    if (stale.count({info.key, info.mtime_ms})) continue;
    if (expired.count(pin.checkpoint)) revived[pin.checkpoint] |= kPin;
  }
  if (revived.empty()) return revived;
  for (const auto& [id, reasons] : revived) {
    v->kept[id] |= reasons;
    expired.erase(id);
    r->note += (r->note.empty() ? "" : "; ") + std::string("checkpoint ") + std::to_string(id) +
               " got a lease or a clone during the run and is kept";
  }
  r->expired.assign(expired.begin(), expired.end());
  r->kept = v->kept.size();
  HF_RETURN_IF_ERROR(WriteKept(store, *v, local_now));
  return revived;
}

void ReportView(const FileView& v, int64_t local_now, int64_t grace_ms, GcReport* r) {
  r->stale_pins = v.stale_pins.size();
  r->head = v.head;
  r->checkpoints = v.history.size();
  r->snapshots = v.snapshots.size();
  r->pins = v.pins.size();
  r->leases = 0;
  for (const auto& [info, lease] : v.leases) {
    if (LeaseHolds(info, lease, local_now, grace_ms)) r->leases++;
  }
  r->kept = v.kept.size();
  r->expired.clear();
  for (const CheckpointInfo& c : v.history) {
    if (!v.kept.count(c.id)) r->expired.push_back(c.id);
  }
  std::sort(r->expired.begin(), r->expired.end());
}

Result<std::optional<format::Ledger>> ReadLedger(ObjectStore* store) {
  std::string body;
  Status st = store->Get(format::kLedgerKey, 0, format::kMaxLedgerBytes + 1, &body, nullptr);
  if (st.IsNotFound()) return std::optional<format::Ledger>();
  HF_RETURN_IF_ERROR(st);
  HF_ASSIGN_OR_RETURN(
      format::Ledger l,
      format::DecodeLedger(body, store->Name() + "/" + std::string(format::kLedgerKey)));
  return std::optional<format::Ledger>(std::move(l));
}

Status WriteLedger(ObjectStore* store, const format::Ledger& l) {
  if (l.objects.size() > format::kMaxLedgerObjects ||
      l.pending.size() > format::kMaxLedgerObjects) {
    return Status::OutOfRange("gc " + store->Name() + ": more than " +
                              std::to_string(format::kMaxLedgerObjects) + " objects to account");
  }
  return store->Put(format::kLedgerKey, {format::EncodeLedger(l)}, PutOptions{})
      .WithContext("gc " + store->Name() + ": write the ledger");
}

// Writes `ledger` with `doomed` pending, deletes them, writes it again
// without: a crash in between leaves them pending, and the next run deletes
// them first (deleting a missing key is fine).
Status DeleteThroughLedger(ObjectStore* store, format::Ledger* ledger,
                           const std::vector<std::string>& doomed) {
  ledger->pending = doomed;
  HF_RETURN_IF_ERROR(WriteLedger(store, *ledger));
  if (doomed.empty()) return Status::OK();
  HF_RETURN_IF_ERROR(store->DeleteMany(doomed).WithContext("gc " + store->Name()));
  ledger->pending.clear();
  return WriteLedger(store, *ledger);
}

uint64_t BornOf(std::string_view key) {
  if (auto id = format::ParseSegmentKey(key)) return *id;
  if (auto d = format::ParseDataObjectKey(key)) return d->first;
  return 0;
}

// The incremental run (docs/design/0006, "The ledger"). Returns false, with
// the reason in *why, when a sweep must run instead; nothing was written or
// deleted then, except the deletions a crashed run left pending.
Result<bool> CollectFromLedger(const std::shared_ptr<ObjectStore>& store, const GcOptions& options,
                               int64_t local_now, const PinFilter& pin_is_stale, GcReport* r,
                               std::string* why) {
  auto read = ReadLedger(store.get());
  if (!read.ok()) {
    if (!read.status().IsCorrupt() && !read.status().IsNotSupported()) return read.status();
    *why = read.status().message() + "; a full sweep rebuilt the ledger";
    return false;
  }
  if (!*read) {
    *why = "no ledger yet: a full sweep built it";
    return false;
  }
  format::Ledger ledger = std::move(**read);
  if (options.sweep_interval_ms > 0 && ledger.swept_ms + options.sweep_interval_ms <= local_now) {
    *why = "periodic orphan sweep";
    return false;
  }
  auto at = file::ReadHeader(store.get(), ledger.processed);
  if (!at.ok() && !at.status().IsNotFound()) return at.status();
  if (!at.ok() || at->header.file_id != ledger.file_id || at->header.crc != ledger.processed_crc) {
    *why = "the ledger's checkpoint " + std::to_string(ledger.processed) +
           " is not this file's; a full sweep rebuilt the ledger";
    return false;
  }
  if (!ledger.pending.empty() && !options.dry_run) {
    // A crashed run proved these dead and recorded them before deleting.
    HF_RETURN_IF_ERROR(store->DeleteMany(ledger.pending).WithContext("gc " + store->Name()));
    r->deleted_objects += ledger.pending.size();
    ledger.pending.clear();
  }
  // 1. Apply the checkpoints committed since the ledger's (probing the next
  // id: ids above the horizon are never deleted, so there is no gap).
  const uint64_t start = ledger.processed;
  file::HeaderRead head = std::move(at).value();
  std::vector<CheckpointInfo> fresh;
  Accountant accountant(store, head.header.origins, &ledger);
  HF_RETURN_IF_ERROR(accountant.Unlock(head.header, options.key.get()));
  for (uint64_t id = start + 1; id - start <= kMaxAppliedPerRun; id++) {
    auto next = file::ReadHeader(store.get(), id);
    if (next.status().IsNotFound()) break;
    HF_RETURN_IF_ERROR(next.status());
    const format::SegmentHeader& h = next->header;
    if (h.file_id != ledger.file_id || h.parent != id - 1 || h.parent_crc != ledger.processed_crc) {
      *why = format::SegmentKey(id) + " does not continue the ledger's checkpoint " +
             std::to_string(id - 1) + "; a full sweep rebuilt the ledger";
      return false;
    }
    HF_RETURN_IF_ERROR(accountant.Apply(*next, head.header.self));
    CheckpointInfo c;
    c.id = id;
    c.parent = h.parent;
    c.time_ms = h.self.time_ms;
    c.size = h.self.size;
    c.restored_from = h.self.restored_from;
    fresh.push_back(c);
    head = std::move(next).value();
  }
  r->checkpoints_applied = fresh.size();
  r->recounts = accountant.recounts();
  r->nodes_visited = accountant.nodes_read();

  // 2. The history from the last decision and the new headers.
  KnownHead known;
  known.head = ledger.processed;
  known.header = head.header;
  HF_ASSIGN_OR_RETURN(known.prior, file::ReadKeptState(store.get()));
  if (!known.prior || known.prior->horizon < start || known.prior->horizon > known.head) {
    *why = "gc/kept does not match the ledger; a full sweep rebuilt it";
    return false;
  }
  for (const format::KeptEntry& e : known.prior->kept) {
    if (e.id < head.header.first_id) continue;
    CheckpointInfo c;
    c.id = e.id;
    c.time_ms = e.time_ms;
    known.history.push_back(c);
  }
  for (const CheckpointInfo& c : fresh) {
    if (c.id > known.prior->horizon) known.history.push_back(c);
  }
  std::sort(known.history.begin(), known.history.end(),
            [](const CheckpointInfo& a, const CheckpointInfo& b) { return a.id > b.id; });
  HF_ASSIGN_OR_RETURN(FileView v, LoadView(store, options.policy, local_now, options.grace_ms,
                                           pin_is_stale, &known));
  std::set<std::pair<std::string, int64_t>> stale;
  for (const auto& [info, pin] : v.stale_pins) stale.insert({info.key, info.mtime_ms});
  ReportView(v, local_now, options.grace_ms, r);

  // 3. Decide, record, re-check (as a sweep does).
  int64_t now = local_now;
  bool hold = false;
  if (!options.dry_run) {
    HF_ASSIGN_OR_RETURN(now, RecordDecision(store.get(), v, local_now));
    HF_RETURN_IF_ERROR(
        Revive(store.get(), &v, now, options.grace_ms, stale, local_now, r).status());
    // A restore committed during the run points at an older state: it
    // holds a lease on it (kept), but delete nothing until the next run
    // has applied it.
    for (uint64_t id = v.head + 1;; id++) {
      if (id > v.head + kMaxNewCheckpoints) {
        r->note = "the file is changing too fast to collect (more than " +
                  std::to_string(kMaxNewCheckpoints) + " checkpoints during the run)";
        hold = true;
        break;
      }
      auto next = file::ReadHeader(store.get(), id);
      if (next.status().IsNotFound()) break;
      HF_RETURN_IF_ERROR(next.status());
      if (next->header.self.restored_from != 0) {
        r->note = "checkpoint " + std::to_string(id) +
                  " restored an older state during the run; nothing deleted until the next run";
        hold = true;
        break;
      }
    }
  }

  // 4. An object is dead when no kept checkpoint lies in its spans (every
  // span is closed at or below the horizon; an open span is the head's).
  std::vector<uint64_t> kept_ids;
  for (const auto& [id, reasons] : v.kept) kept_ids.push_back(id);
  auto kept_in = [&](uint64_t from, uint64_t to) {
    auto it = std::lower_bound(kept_ids.begin(), kept_ids.end(), from);
    return it != kept_ids.end() && *it < to;
  };
  std::set<std::string> dead;
  for (format::LedgerObject& o : ledger.objects) {
    r->objects++;
    r->stored_bytes += o.size;
    bool live = o.refs > 0;
    for (const auto& [from, to] : o.spans) live = live || kept_in(from, to);
    if (live) {
      o.unkept_since_ms = 0;
      r->live_objects++;
      r->live_bytes += o.size;
      continue;
    }
    if (o.unkept_since_ms == 0) o.unkept_since_ms = now;
    if (hold || (options.grace_ms > 0 && o.unkept_since_ms + options.grace_ms > now)) {
      r->held_by_grace++;
      continue;
    }
    dead.insert(o.key);
  }
  // A segment stays while any of its data objects does (docs/format.md).
  std::set<uint64_t> keep_segment;
  for (const format::LedgerObject& o : ledger.objects) {
    if (o.key.starts_with(format::kDataObjectPrefix) && !dead.count(o.key)) {
      keep_segment.insert(o.born);
    }
  }
  std::vector<std::string> doomed;
  std::vector<format::LedgerObject> survivors;
  for (format::LedgerObject& o : ledger.objects) {
    bool go = dead.count(o.key) &&
              !(o.key.starts_with(format::kSegmentPrefix) && keep_segment.count(o.born));
    if (!go) {
      if (dead.count(o.key)) {  // a segment whose data object lives on
        r->live_objects++;
        r->live_bytes += o.size;
      }
      survivors.push_back(std::move(o));
      continue;
    }
    doomed.push_back(o.key);
    r->deleted_objects++;
    r->deleted_bytes += o.size;
  }
  if (options.dry_run) return true;
  for (const auto& [info, pin] : v.stale_pins) doomed.push_back(info.key);
  ledger.objects = std::move(survivors);
  HF_RETURN_IF_ERROR(DeleteThroughLedger(store.get(), &ledger, doomed));
  return true;
}

}  // namespace
}  // namespace gc

Result<GcReport> Collect(std::shared_ptr<ObjectStore> base, const GcOptions& options) {
  if (!base) return Status::InvalidArgument("gc: no store");
  if (options.grace_ms < 0 || options.grace_ms > gc::kMaxGraceMs) {
    return Status::InvalidArgument("gc: grace_ms must be 0 .. 30 days");
  }
  if (options.upload_grace_ms < options.grace_ms || options.upload_grace_ms > gc::kMaxGraceMs) {
    return Status::InvalidArgument("gc: upload_grace_ms must be grace_ms .. 30 days");
  }
  if (options.sweep_interval_ms < 0) {
    return Status::InvalidArgument("gc: sweep_interval_ms must not be negative");
  }
  auto metrics = std::make_shared<MetricsStore>(base);
  std::shared_ptr<ObjectStore> store = metrics;
  GcReport r;
  r.dry_run = options.dry_run;
  auto progress = [&](const char* phase, uint64_t done, uint64_t total) {
    if (options.progress) options.progress({phase, done, total});
  };
  auto finish = [&]() {
    StoreMetricsSnapshot m = metrics->Snapshot();
    r.gets = m.count(StoreVerb::kGet);
    r.heads = m.count(StoreVerb::kHead);
    r.lists = m.count(StoreVerb::kList);
    r.puts = m.count(StoreVerb::kPut);
    r.deletes = m.count(StoreVerb::kDelete);
    return r;
  };

  progress("list", 0, 0);
  const int64_t local_now = file::NowMs();
  // A pin is stale when it is old (a clone writes its pin before its first
  // segment, so a young pin may belong to a clone being made) and its
  // clone's store proves the clone gone.
  const file::StoreResolver resolver =
      options.store_resolver ? options.store_resolver : file::DefaultResolver(OpenOptions{});
  auto pin_is_stale = [&](const ObjectInfo& info, const format::PinRecord& pin) {
    if (info.mtime_ms <= 0 || info.mtime_ms + options.upload_grace_ms > local_now) return false;
    return !file::PinnedCloneExists(pin, resolver);
  };

  // The incremental run, when the ledger fits the file.
  std::string why = "full sweep requested";
  if (!options.sweep) {
    HF_ASSIGN_OR_RETURN(bool done,
                        gc::CollectFromLedger(store, options, local_now, pin_is_stale, &r, &why));
    if (done) return finish();
  }
  const uint64_t finished_pending = r.deleted_objects;
  r = GcReport{};
  r.dry_run = options.dry_run;
  r.swept = true;
  r.deleted_objects = finished_pending;
  r.note = why;

  // The sweep. 1. What exists and what is kept.
  HF_ASSIGN_OR_RETURN(
      FileView v, gc::LoadView(store, options.policy, local_now, options.grace_ms, pin_is_stale));
  std::set<std::pair<std::string, int64_t>> stale;  // key, time: that very object
  for (const auto& [info, pin] : v.stale_pins) stale.insert({info.key, info.mtime_ms});
  gc::ReportView(v, local_now, options.grace_ms, &r);

  // 2. Mark what the kept checkpoints reference (fails closed on any damage).
  gc::Marker marker(store, v.head_header.origins, (uint32_t{1} << v.head_header.block_shift));
  HF_RETURN_IF_ERROR(marker.Unlock(v.head_header, options.key.get()));
  HF_RETURN_IF_ERROR(
      gc::MarkKept(v, &marker, [&](uint64_t d, uint64_t t) { progress("mark", d, t); }));

  std::vector<ObjectInfo> segments, data_objects;
  HF_RETURN_IF_ERROR(gc::ListAll(store.get(), format::kSegmentPrefix, &segments));
  HF_RETURN_IF_ERROR(gc::ListAll(store.get(), format::kDataObjectPrefix, &data_objects));

  // 3. Record the decision before anything is deleted: from now on an
  // expired checkpoint cannot be opened, restored, cloned or leased.
  int64_t now = local_now;
  if (!options.dry_run) {
    HF_ASSIGN_OR_RETURN(now, gc::RecordDecision(store.get(), v, local_now));
    // 4. Leases and pins that appeared meanwhile: mark what they revive.
    HF_ASSIGN_OR_RETURN(auto revived,
                        gc::Revive(store.get(), &v, now, options.grace_ms, stale, local_now, &r));
    for (const auto& [id, reasons] : revived) {
      HF_RETURN_IF_ERROR(marker.MarkCheckpoint(
          id, static_cast<gc::Reason>(reasons & gc::kPin ? gc::kPin : gc::kHistory)));
    }
    // 5. Checkpoints committed while we marked: a normal commit references
    // only its parent's objects and new ones, but a restore may point at
    // any older state: mark them all (they share nearly everything).
    HF_ASSIGN_OR_RETURN(uint64_t latest, file::LatestCheckpointId(store.get()));
    if (latest > v.head + gc::kMaxNewCheckpoints) {
      r.note = "the file is changing too fast to collect (" + std::to_string(latest - v.head) +
               " checkpoints during the run); nothing deleted";
      return finish();
    }
    for (uint64_t id = v.head + 1; id <= latest; id++) {
      HF_RETURN_IF_ERROR(marker.MarkCheckpoint(id, gc::kHistory));
    }
  }

  // 6. Delete what no kept checkpoint references, once it is old enough.
  std::set<uint64_t> segment_ids;
  for (const ObjectInfo& o : segments) {
    if (auto id = format::ParseSegmentKey(o.key)) segment_ids.insert(*id);
  }
  const auto& uses = marker.uses();
  const auto& head_refs = marker.head_refs();
  // The ledger the next runs start from: every own object up to the head
  // that survives this run (docs/design/0006, "The ledger").
  format::Ledger ledger;
  ledger.file_id = v.head_header.file_id;
  ledger.processed = v.head;
  ledger.processed_crc = v.head_header.crc;
  ledger.swept_ms = local_now;
  auto account = [&](const ObjectInfo& o, bool used) {
    uint64_t born = gc::BornOf(o.key);
    if (born > v.head || o.key.size() > format::kMaxLedgerKeyBytes) return;
    format::LedgerObject e;
    e.key = o.key;
    e.born = born;
    e.size = o.size;
    auto refs = head_refs.find(o.key);
    if (refs != head_refs.end() && refs->second > 0) {
      e.refs = refs->second;
      e.spans.emplace_back(born, format::kOpenSpan);
    } else if (used) {
      // Some kept checkpoint older than the head uses it: say all of them
      // from its birth on (more than the truth, never less).
      e.spans.emplace_back(born, std::max(v.head, born + 1));
    } else {
      e.unkept_since_ms = o.mtime_ms > 0 ? o.mtime_ms : now;
    }
    ledger.objects.push_back(std::move(e));
  };
  std::vector<std::string> delete_data, delete_segments;
  auto consider = [&](const ObjectInfo& o, int64_t grace, bool orphan,
                      std::vector<std::string>* out) {
    r.objects++;
    r.stored_bytes += o.size;
    if (uses.count(o.key)) {
      r.live_objects++;
      r.live_bytes += o.size;
      account(o, true);
      return;
    }
    // grace 0: no age requirement. Otherwise an object whose age the store
    // does not say (mtime 0) is never deleted.
    if (grace > 0 && (o.mtime_ms <= 0 || o.mtime_ms + grace > now)) {
      r.held_by_grace++;
      account(o, false);
      return;
    }
    out->push_back(o.key);
    r.deleted_objects++;
    r.deleted_bytes += o.size;
    if (orphan) r.orphans_deleted++;
  };
  for (const ObjectInfo& o : data_objects) {
    auto parsed = format::ParseDataObjectKey(o.key);
    if (!parsed) continue;  // foreign
    auto [id, epoch] = *parsed;
    if (id < v.head_header.first_id) continue;
    if (id > v.head) {
      consider(o, options.upload_grace_ms, true,
               &delete_data);  // an upload whose commit never came
    } else {
      // Its segment is gone or kept (then another epoch's): no commit uses it.
      bool orphan = !segment_ids.count(id) || v.kept.count(id);
      consider(o, options.grace_ms, orphan, &delete_data);
    }
  }
  for (const ObjectInfo& o : segments) {
    auto id = format::ParseSegmentKey(o.key);
    if (!id || *id < v.head_header.first_id || *id > format::kMaxCheckpointId) continue;
    if (*id >= v.head) {  // the head and anything committed since
      r.objects++;
      r.stored_bytes += o.size;
      r.live_objects++;
      r.live_bytes += o.size;
      account(o, true);
      continue;
    }
    consider(o, options.grace_ms, false, &delete_segments);
  }
  r.nodes_visited = marker.nodes_visited();
  if (options.dry_run) return finish();
  std::sort(
      ledger.objects.begin(), ledger.objects.end(),
      [](const format::LedgerObject& a, const format::LedgerObject& b) { return a.key < b.key; });
  // One batch (a multi-object DELETE per 1,000 keys). Their order does not
  // matter: none of them is referenced by anything kept.
  std::vector<std::string> doomed = std::move(delete_data);
  doomed.insert(doomed.end(), delete_segments.begin(), delete_segments.end());
  for (const auto& [info, pin] : v.stale_pins) doomed.push_back(info.key);
  progress("delete", 0, doomed.size());
  HF_RETURN_IF_ERROR(gc::DeleteThroughLedger(store.get(), &ledger, doomed));
  progress("delete", doomed.size(), doomed.size());
  return finish();
}

Result<SpaceUsage> DiskUsage(std::shared_ptr<ObjectStore> store, const KeySource* key) {
  if (!store) return Status::InvalidArgument("du: no store");
  const int64_t now = file::NowMs();
  HF_ASSIGN_OR_RETURN(FileView v, gc::LoadView(store, std::nullopt, now, 20 * 60 * 1000));
  gc::Marker marker(store, v.head_header.origins, (uint32_t{1} << v.head_header.block_shift));
  HF_RETURN_IF_ERROR(marker.Unlock(v.head_header, key));
  HF_RETURN_IF_ERROR(gc::MarkKept(v, &marker, nullptr));
  std::vector<ObjectInfo> objects;
  HF_RETURN_IF_ERROR(gc::ListAll(store.get(), format::kSegmentPrefix, &objects));
  HF_RETURN_IF_ERROR(gc::ListAll(store.get(), format::kDataObjectPrefix, &objects));
  SpaceUsage u;
  u.logical_size = v.head_header.self.size;
  u.allocated_bytes =
      v.head_header.self.allocated_blocks * (uint32_t{1} << v.head_header.block_shift);
  u.checkpoints = v.history.size();
  const auto& uses = marker.uses();
  for (const ObjectInfo& o : objects) {
    bool ours = o.key.starts_with(format::kSegmentPrefix)
                    ? format::ParseSegmentKey(o.key).has_value()
                    : format::ParseDataObjectKey(o.key).has_value();
    if (!ours) continue;
    u.objects++;
    u.stored_bytes += o.size;
    auto it = uses.find(o.key);
    if (it == uses.end()) {
      auto id = format::ParseSegmentKey(o.key);
      if (id && *id > v.head) continue;  // committed after we looked
      u.reclaimable_bytes += o.size;
      continue;
    }
    uint8_t reasons = it->second.reasons;
    if (reasons & gc::kHead) {
      u.head_bytes += std::min<uint64_t>(it->second.head_bytes, o.size);
      // The rest of an object the head uses is dead inside a live object:
      // compaction reclaims it.
      continue;
    }
    u.history_bytes += o.size;
    if (reasons == gc::kSnapshot) u.snapshot_bytes += o.size;
    if (reasons == gc::kPin) u.clone_bytes += o.size;
  }
  // A segment's header is part of its object; count the head's.
  return u;
}

}  // namespace hyperfile
