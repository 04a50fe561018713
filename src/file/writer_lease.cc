// SPDX-License-Identifier: Apache-2.0
// Writer leases (gc/writer_lease.h, docs/design/0015-writer-leases.md).
#include "file/writer_lease.h"

#include <unistd.h>

#include <algorithm>
#include <mutex>

#include "file/file_impl.h"  // NowMs, RandomU64
#include "file/lease_renewer.h"

namespace hyperfile::file {

struct WriterLease::State {
  std::shared_ptr<ObjectStore> store;
  std::string key;
  std::string bytes;
  int64_t ttl_ms = 0;
  mutable std::mutex mu;  // guards released and renewer (set once)
  bool released = false;
  std::unique_ptr<LeaseRenewer> renewer;
};

namespace {

std::string KindName(format::WriterKind k) {
  return k == format::WriterKind::kCompaction ? "a compaction" : "a writer";
}

}  // namespace

std::string OtherWriter::Describe() const {
  std::string s = key;
  if (!record) return s + " (damaged: " + damage.message() + ")";
  s += " (" + KindName(record->kind);
  if (!record->holder.empty()) s += ", holder " + record->holder;
  if (age_ms >= 0) {
    s += ", renewed " + std::to_string(age_ms / 1000) + " s ago";
  } else {
    s += ", the store tells no time";
  }
  s += ", lease " + std::to_string(record->ttl_ms / 1000) + " s)";
  return s;
}

std::string LeaseHolderName(const std::string& name) {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::string s = std::string(host) + "/" + std::to_string(getpid());
  if (!name.empty()) s += " " + name;
  s.resize(std::min<size_t>(s.size(), 255));
  return s;
}

Result<std::unique_ptr<WriterLease>> WriterLease::Write(std::shared_ptr<ObjectStore> store,
                                                        format::WriterKind kind, std::string holder,
                                                        int64_t ttl_ms) {
  if (!store) return Status::InvalidArgument("writer lease: no store");
  if (ttl_ms < 1000 || ttl_ms > 86400000) {
    return Status::InvalidArgument("writer lease: ttl_ms " + std::to_string(ttl_ms) +
                                   " must be 1 s .. 1 day");
  }
  for (char& c : holder) {
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  auto state = std::make_unique<State>();
  state->store = std::move(store);
  state->ttl_ms = ttl_ms;
  state->key = format::WriterLeaseKey(file::RandomU64());
  state->bytes =
      format::EncodeWriterLease({kind, static_cast<uint64_t>(ttl_ms), holder.substr(0, 255)});
  HF_RETURN_IF_ERROR(
      state->store->Put(state->key, {state->bytes}, PutOptions{})
          .WithContext("write the writer lease " + state->store->Name() + "/" + state->key));
  return std::unique_ptr<WriterLease>(new WriterLease(std::move(state)));
}

WriterLease::WriterLease(std::unique_ptr<State> state) : state_(std::move(state)) {}

WriterLease::~WriterLease() { (void)Release(); }

const std::string& WriterLease::key() const { return state_->key; }

Status WriterLease::status() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->renewer ? state_->renewer->status() : Status::OK();
}

void WriterLease::StartRenewing() {
  State* s = state_.get();
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->renewer || s->released) return;
  s->renewer = std::make_unique<LeaseRenewer>(
      s->ttl_ms, [s] { return s->store->Put(s->key, {s->bytes}, PutOptions{}); });
}

Status WriterLease::Release() {
  State* s = state_.get();
  LeaseRenewer* renewer = nullptr;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->released) return Status::OK();
    s->released = true;
    renewer = s->renewer.get();
  }
  // The renewer's put (if one is under way) ends before the delete starts,
  // so the lease cannot come back after it.
  if (renewer) renewer->Stop();
  return s->store->Delete(s->key).WithContext("delete the writer lease " + s->store->Name() + "/" +
                                              s->key);
}

Result<std::vector<OtherWriter>> WriterLease::Others(int64_t grace_ms, int64_t* store_now_ms) {
  ObjectStore* store = state_->store.get();
  std::vector<ObjectInfo> objects;
  HF_RETURN_IF_ERROR(store->List(format::kWriterLeasePrefix, "", kMaxWriterLeases + 1, &objects)
                         .WithContext("list the writer leases of " + store->Name()));
  if (objects.size() > kMaxWriterLeases) {
    return Status::OutOfRange(store->Name() + ": more than " + std::to_string(kMaxWriterLeases) +
                              " objects under " + std::string(format::kWriterLeasePrefix) +
                              " (remove foreign ones; nothing was written)");
  }
  int64_t now = 0;
  for (const ObjectInfo& o : objects) {
    if (!o.key.starts_with(format::kWriterLeasePrefix)) {
      return Status::Corrupt(store->Name() + ": listing of " +
                             std::string(format::kWriterLeasePrefix) + " returned " + o.key);
    }
    if (o.key == state_->key) now = o.mtime_ms;
  }
  if (now <= 0) {
    ObjectInfo own;
    HF_RETURN_IF_ERROR(store->Head(state_->key, &own)
                           .WithContext("the writer lease " + store->Name() + "/" + state_->key));
    now = own.mtime_ms;
  }
  const bool store_has_times = now > 0;
  if (!store_has_times) now = file::NowMs();
  *store_now_ms = now;
  std::vector<OtherWriter> out;
  for (ObjectInfo& o : objects) {
    if (o.key == state_->key || !format::ParseWriterLeaseKey(o.key)) continue;  // ours; foreign
    if (o.mtime_ms <= 0 && store_has_times) {
      // Some listings carry no times (or none we parse): ask the object.
      ObjectInfo info;
      Status hs = store->Head(o.key, &info);
      if (hs.IsNotFound()) continue;  // released meanwhile
      HF_RETURN_IF_ERROR(hs.WithContext("the writer lease " + store->Name() + "/" + o.key));
      o.mtime_ms = info.mtime_ms;
    }
    OtherWriter w;
    w.key = o.key;
    const std::string where = store->Name() + "/" + o.key;
    std::string body;
    Status st = Status::OK();
    if (o.size > format::kMaxWriterLeaseBytes) {
      st = Status::Corrupt(where + ": not a writer lease (" + std::to_string(o.size) + " bytes)");
    } else {
      ObjectInfo info;
      st = store->Get(o.key, 0, format::kMaxWriterLeaseBytes + 1, &body, &info);
      if (st.IsNotFound()) continue;  // released meanwhile
    }
    HF_RETURN_IF_ERROR(st.ok() || st.IsCorrupt() ? Status::OK() : st);
    if (st.ok()) {
      auto rec = format::DecodeWriterLease(body, where);
      if (rec.ok()) {
        w.record = std::move(rec).value();
      } else {
        st = rec.status();
      }
    }
    if (!w.record) {
      w.damage = st;
      w.age_ms = o.mtime_ms > 0 && store_has_times ? now - o.mtime_ms : -1;
      w.active = true;
      out.push_back(std::move(w));
      continue;
    }
    if (o.mtime_ms <= 0 || !store_has_times) {
      w.age_ms = -1;
      w.active = true;  // no time: it never lapses
    } else {
      w.age_ms = now - o.mtime_ms;
      const int64_t ttl = static_cast<int64_t>(std::min<uint64_t>(w.record->ttl_ms, 1ull << 40));
      w.active = o.mtime_ms + ttl + grace_ms > now;
    }
    out.push_back(std::move(w));
  }
  return out;
}

Status WriterMayOpen(const std::vector<OtherWriter>& others, const std::string& what) {
  for (const OtherWriter& w : others) {
    if (!w.record) {
      return Status::Corrupt(what + ": the writer lease " + w.Describe() +
                             " counts as an active compaction");
    }
    if (w.active && w.record->kind == format::WriterKind::kCompaction) {
      return Status::Conflict(what + ": " + w.Describe() +
                              " is running; its commit would fence this writer (retry when "
                              "it finishes)");
    }
  }
  return Status::OK();
}

Status CompactionMayRun(const std::vector<OtherWriter>& others, const std::string& what) {
  for (const OtherWriter& w : others) {
    if (!w.record) {
      return Status::Corrupt(what + ": the writer lease " + w.Describe() +
                             " counts as an active writer");
    }
  }
  // Another compaction's lease does not stop us: compactions only write
  // back the bytes they read, so the one that commits second merely gets
  // Conflict (and a crashed one cannot hold compaction off).
  for (const OtherWriter& w : others) {
    if (w.active && w.record->kind == format::WriterKind::kWriter) {
      return Status::Conflict(what + ": " + w.Describe() +
                              " is active, and a compaction commit would fence it (compact in "
                              "the writer's process, or after it closes)");
    }
  }
  return Status::OK();
}

Result<std::unique_ptr<WriterLease>> AcquireWriterLease(std::shared_ptr<ObjectStore> store,
                                                        const std::string& holder) {
  HF_ASSIGN_OR_RETURN(std::unique_ptr<WriterLease> lease,
                      WriterLease::Write(store, format::WriterKind::kWriter, holder));
  const std::string what = "open " + store->Name() + " for writing";
  int64_t now = 0;
  auto others = lease->Others(kWriterLeaseGraceMs, &now);
  if (!others.ok()) return others.status().WithContext(what);
  HF_RETURN_IF_ERROR(WriterMayOpen(*others, what));
  lease->StartRenewing();
  return lease;
}

Result<std::unique_ptr<WriterLease>> AcquireCompactionLease(std::shared_ptr<ObjectStore> store,
                                                            int64_t grace_ms,
                                                            const std::string& holder) {
  HF_ASSIGN_OR_RETURN(
      std::unique_ptr<WriterLease> lease,
      WriterLease::Write(store, format::WriterKind::kCompaction, holder, kCompactionLeaseTtlMs));
  const std::string what = "compact " + store->Name();
  int64_t now = 0;
  auto others = lease->Others(grace_ms, &now);
  if (!others.ok()) return others.status().WithContext(what);
  HF_RETURN_IF_ERROR(CompactionMayRun(*others, what));
  // Leases of holders that crashed long ago: delete them so they do not
  // pile up (a holder that was only stalled rewrites its lease when it
  // renews, and a compaction it then meets refuses).
  for (const OtherWriter& w : *others) {
    const int64_t ttl = static_cast<int64_t>(std::min<uint64_t>(w.record->ttl_ms, 1ull << 40));
    if (w.age_ms > ttl + grace_ms + kStaleWriterLeaseMs) (void)store->Delete(w.key);
  }
  lease->StartRenewing();
  return lease;
}

}  // namespace hyperfile::file
