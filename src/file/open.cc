// SPDX-License-Identifier: Apache-2.0
// Creating and opening files, and resolving At (time travel) to a state.
#include <algorithm>
#include <future>

#include "file/file_impl.h"
#include "file/open_internal.h"
#include "file/sealing.h"
#include "file/writer_lease.h"
#include "format/frame.h"
#include "util/coding.h"

namespace hyperfile {

using file::FileImpl;
using file::HeaderRead;

namespace file {

Result<format::SnapshotRecord> ReadSnapshot(ObjectStore* store, const std::string& name) {
  if (!IsSnapshotName(name)) {
    return Status::InvalidArgument("bad snapshot name '" + name + "' in " + store->Name());
  }
  const std::string key = std::string(format::kSnapshotPrefix) + name;
  const std::string where = store->Name() + "/" + key;
  std::string body;
  // One byte more than a record: a longer object is reported, never read whole.
  Status st = store->Get(key, 0, format::kSnapshotRecordBytes + 1, &body, nullptr);
  if (st.IsNotFound()) {
    return Status::NotFound("snapshot '" + name + "' does not exist in " + store->Name());
  }
  HF_RETURN_IF_ERROR(st);
  if (body.size() != format::kSnapshotRecordBytes) {
    return Status::Corrupt(where + ": not a snapshot record (" +
                           (body.size() > format::kSnapshotRecordBytes
                                ? std::string("longer than")
                                : std::to_string(body.size()) + " bytes, expected") +
                           " " + std::to_string(format::kSnapshotRecordBytes) + " bytes)");
  }
  return format::DecodeSnapshot(body, where);
}

Result<std::shared_ptr<const format::KeptState>> ReadKeptState(ObjectStore* store) {
  std::string body;
  // Small states (up to ~2,700 kept checkpoints) come in one GET of 64 KiB;
  // a larger one is read again up to one byte more than the largest state
  // can be, so a longer object is reported, never read whole.
  constexpr uint64_t kFirstRead = 64 * 1024;
  Status st = store->Get(format::kKeptKey, 0, kFirstRead, &body, nullptr);
  if (st.IsNotFound()) return std::shared_ptr<const format::KeptState>();
  HF_RETURN_IF_ERROR(st);
  if (body.size() == kFirstRead) {
    std::string rest;
    st = store->Get(format::kKeptKey, kFirstRead, format::kMaxKeptBytes + 1 - kFirstRead, &rest,
                    nullptr);
    if (!st.ok() && !st.IsNotFound()) return st;
    body += rest;
  }
  HF_ASSIGN_OR_RETURN(
      format::KeptState state,
      format::DecodeKeptState(body, store->Name() + "/" + std::string(format::kKeptKey)));
  return std::shared_ptr<const format::KeptState>(
      std::make_shared<format::KeptState>(std::move(state)));
}

Status ExpiredError(ObjectStore* store, uint64_t id) {
  return Status::NotFound("checkpoint " + std::to_string(id) + " of " + store->Name() +
                          " expired by the retention policy");
}

Status CheckNotExpired(ObjectStore* store, uint64_t id) {
  HF_ASSIGN_OR_RETURN(std::shared_ptr<const format::KeptState> kept, ReadKeptState(store));
  if (kept && kept->Expired(id)) return ExpiredError(store, id);
  return Status::OK();
}

Result<ResolvedState> ResolveState(const std::shared_ptr<ObjectStore>& store, const At& at,
                                   const OpenOptions& options) {
  ResolvedState out;
  out.store = store;
  auto from_id = [&](uint64_t id) -> Status {
    // An old checkpoint may have expired (its segment may still exist while
    // other checkpoints use its nodes or data): the collector's decision
    // says. By id we do not know the head, so it is always asked, in
    // parallel with the header's GET (one more request, no more latency).
    auto expired = std::async(std::launch::async, [&] { return CheckNotExpired(store.get(), id); });
    auto read = ReadHeader(store.get(), id);
    HF_RETURN_IF_ERROR(expired.get());
    if (read.ok()) {
      out.read = std::move(read).value();
      return Status::OK();
    }
    if (!read.status().IsNotFound()) return read.status();
    // Not ours: it may be a checkpoint of the file this one was cloned from.
    auto latest = LatestCheckpointId(store.get());
    if (!latest.ok()) return latest.status();
    HF_ASSIGN_OR_RETURN(HeaderRead head, ReadHeader(store.get(), *latest));
    for (const format::Origin& o : head.header.origins) {
      if (id <= o.max_id) {
        HF_ASSIGN_OR_RETURN(out.store, DefaultResolver(options)(o.uri));
        HF_RETURN_IF_ERROR(CheckNotExpired(out.store.get(), id));
        HF_ASSIGN_OR_RETURN(out.read, ReadHeader(out.store.get(), id));
        return Status::OK();
      }
    }
    return read.status();
  };
  switch (at.kind) {
    case At::Kind::kLatest: {
      HF_ASSIGN_OR_RETURN(uint64_t id, LatestCheckpointId(store.get()));
      HF_ASSIGN_OR_RETURN(out.read, ReadHeader(store.get(), id));
      return out;
    }
    case At::Kind::kCheckpoint:
      if (at.checkpoint == 0) return Status::InvalidArgument("checkpoint id 0 does not exist");
      HF_RETURN_IF_ERROR(from_id(at.checkpoint));
      return out;
    case At::Kind::kSnapshot: {
      HF_ASSIGN_OR_RETURN(format::SnapshotRecord rec, ReadSnapshot(store.get(), at.snapshot));
      HF_RETURN_IF_ERROR(from_id(rec.checkpoint));
      return out;
    }
    case At::Kind::kTime:
      return ResolveTime(store, at.time_ms);
  }
  return Status::InvalidArgument("bad At");
}

// Finds the newest checkpoint committed at or before time_ms: one LIST, the
// head's header (recent descriptors and sampled times), and at most one more
// header whose recent descriptors cover the target.
Result<ResolvedState> ResolveTime(const std::shared_ptr<ObjectStore>& store, int64_t time_ms) {
  ResolvedState out;
  out.store = store;
  // The collector's decision, read in parallel with the walk (one more
  // request, no more latency): the answer may have expired.
  auto kept_future = std::async(std::launch::async, [&] { return ReadKeptState(store.get()); });
  HF_ASSIGN_OR_RETURN(uint64_t latest, LatestCheckpointId(store.get()));
  HF_ASSIGN_OR_RETURN(HeaderRead read, ReadHeader(store.get(), latest));
  auto not_found = [&] {
    return Status::NotFound("no checkpoint of " + store->Name() + " at or before " +
                            At::Time(time_ms).ToString());
  };
  // The answer, if it is not the head, may have expired; and below the
  // collector's horizon the headers the walk would read may be gone: then
  // the kept list (with each kept checkpoint's successor's time) answers.
  std::optional<Result<std::shared_ptr<const format::KeptState>>> kept_state;
  auto kept = [&]() -> Result<const format::KeptState*> {
    if (!kept_state) kept_state.emplace(kept_future.get());
    if (!kept_state->ok()) return kept_state->status();
    return kept_state->value().get();
  };
  auto answer = [&](uint64_t id) -> Status {
    if (id == latest) return Status::OK();
    HF_ASSIGN_OR_RETURN(const format::KeptState* k, kept());
    if (k && k->Expired(id)) return ExpiredError(store.get(), id);
    return Status::OK();
  };
  for (int hop = 0; hop < 64; hop++) {
    const format::SegmentHeader& h = read.header;
    if (h.self.time_ms <= time_ms) {
      HF_RETURN_IF_ERROR(answer(h.self.id));
      out.read = std::move(read);
      return out;
    }
    for (const format::Descriptor& d : h.recent) {
      if (d.time_ms <= time_ms) {
        HF_RETURN_IF_ERROR(answer(d.id));
        out.read = std::move(read);
        out.descriptor = d;
        return out;
      }
    }
    uint64_t oldest_known = h.recent.empty() ? h.self.id : h.recent.back().id;
    if (oldest_known <= h.first_id) return not_found();
    // Bracket with the sampled times: target is in [m, m + stride) for the
    // newest sample m at or before the time (or before the oldest sample).
    uint64_t next = 0;
    for (size_t i = 0; i < h.sample_ids.size(); i++) {
      if (h.sample_times[i] <= time_ms) {
        next = std::min(h.sample_ids[i] + format::kSampleStride - 1, oldest_known - 1);
        break;
      }
    }
    if (next == 0) {
      if (!h.sample_ids.empty()) {
        next = h.sample_ids.back() - 1;  // older than every sample
      } else {
        next = oldest_known - 1;
      }
    }
    if (next < h.first_id) return not_found();
    auto older = ReadHeader(store.get(), next);
    if (!older.ok() && older.status().IsNotFound()) {
      HF_ASSIGN_OR_RETURN(const format::KeptState* k, kept());
      if (!k || next > k->horizon || next < k->first) return older.status();
      if (k->kept.empty() || time_ms < k->kept.front().time_ms) {
        return time_ms < h.create_time_ms ? not_found()
                                          : Status::NotFound("the checkpoint of " + store->Name() +
                                                             " at " + At::Time(time_ms).ToString() +
                                                             " expired by the retention policy");
      }
      const format::KeptEntry* e = k->ForTime(time_ms);
      if (!e) {
        return Status::NotFound("the checkpoint of " + store->Name() + " at " +
                                At::Time(time_ms).ToString() + " expired by the retention policy");
      }
      HF_ASSIGN_OR_RETURN(out.read, ReadHeader(store.get(), e->id));
      return out;
    }
    HF_ASSIGN_OR_RETURN(read, std::move(older));
  }
  return not_found();
}

Status ValidateCompression(const Compression& c, const std::string& what) {
  switch (c.codec) {
    case Codec::kNone:
    case Codec::kLz4:
      if (c.level != 0) {
        return Status::InvalidArgument(what + ": level " + std::to_string(c.level) +
                                       " given for a codec without levels (must be 0)");
      }
      return Status::OK();
    case Codec::kZstd:
      if (c.level < 1 || c.level > format::kMaxZstdLevel) {
        return Status::InvalidArgument(what + ": zstd level " + std::to_string(c.level) +
                                       " must be from 1 to " +
                                       std::to_string(format::kMaxZstdLevel));
      }
      return Status::OK();
  }
  return Status::InvalidArgument(what + ": unknown codec " +
                                 std::to_string(static_cast<int>(c.codec)));
}

Status ValidateOpenOptions(const OpenOptions& o, const std::string& where) {
  auto bad = [&](const std::string& what) {
    return Status::InvalidArgument("open " + where + ": " + what);
  };
  constexpr uint64_t kMaxMemory = 1ull << 40;  // 1 TiB: anything above is a typo
  if (o.block_cache_bytes > kMaxMemory) return bad("block_cache_bytes must be at most 1 TiB");
  if (o.index_cache_bytes > kMaxMemory) return bad("index_cache_bytes must be at most 1 TiB");
  if (o.dirty_budget_bytes < format::kChunkSize || o.dirty_budget_bytes > kMaxMemory) {
    return bad("dirty_budget_bytes " + std::to_string(o.dirty_budget_bytes) +
               " must be from 4 KiB (and at least one block) to 1 TiB");
  }
  if (o.flush_dirty_bytes > o.dirty_budget_bytes) {
    return bad("flush_dirty_bytes " + std::to_string(o.flush_dirty_bytes) +
               " exceeds dirty_budget_bytes " + std::to_string(o.dirty_budget_bytes) +
               " (0 = half the budget)");
  }
  if (o.io_parallelism < 1 || o.io_parallelism > 256) {
    return bad("io_parallelism " + std::to_string(o.io_parallelism) + " must be from 1 to 256");
  }
  if (o.max_read_request_bytes < format::kChunkSize || o.max_read_request_bytes > (1ull << 30)) {
    return bad("max_read_request_bytes " + std::to_string(o.max_read_request_bytes) +
               " must be from 4 KiB to 1 GiB");
  }
  if (o.disk_cache_dir.empty() != (o.disk_cache_bytes == 0)) {
    return bad("disk_cache_dir and disk_cache_bytes go together (both set, or neither)");
  }
  if (o.refresh_interval_ms != 0 &&
      (o.refresh_interval_ms < 10 || o.refresh_interval_ms > 86'400'000)) {
    return bad("refresh_interval_ms " + std::to_string(o.refresh_interval_ms) +
               " must be 0 (off) or from 10 to 86400000 (one day)");
  }
  if (o.refresh_interval_ms != 0 && !o.read_only) {
    return bad(
        "refresh_interval_ms needs read_only (a writer is the head; it has nothing to follow)");
  }
  if (o.on_refresh && o.refresh_interval_ms == 0) {
    return bad("on_refresh needs refresh_interval_ms (it is called by the background refresh)");
  }
  if (o.compression) {
    HF_RETURN_IF_ERROR(ValidateCompression(*o.compression, "open " + where + ": compression"));
  }
  if (o.writer_name.size() > 255) return bad("writer_name is longer than 255 bytes");
  for (unsigned char c : o.writer_name) {
    if (c < 0x20 || c == 0x7f) return bad("writer_name contains a control character");
  }
  return Status::OK();
}

Result<std::unique_ptr<File>> OpenWriter(std::shared_ptr<ObjectStore> store,
                                         const OpenOptions& options,
                                         std::unique_ptr<file::WriterLease> lease) {
  HF_ASSIGN_OR_RETURN(ResolvedState state, ResolveState(store, At::Latest(), options));
  // The file exists: now our writer lease, then the handle (docs/design/0015).
  if (!lease) {
    HF_ASSIGN_OR_RETURN(
        lease, file::AcquireWriterLease(store, file::LeaseHolderName(options.writer_name)));
  }
  HF_ASSIGN_OR_RETURN(std::unique_ptr<FileImpl> f,
                      FileImpl::Make(state.store, options, state.read, nullptr));
  f->AdoptWriterLease(std::move(lease));
  return std::unique_ptr<File>(std::move(f));
}

}  // namespace file

Result<std::unique_ptr<File>> File::Create(std::shared_ptr<ObjectStore> store,
                                           const CreateOptions& create,
                                           const OpenOptions& options) {
  if (!store) return Status::InvalidArgument("create: no store");
  HF_RETURN_IF_ERROR(file::ValidateOpenOptions(options, store->Name()));
  uint32_t bs = create.block_size;
  if (bs < (1u << format::kMinBlockShift) || bs > (1u << format::kMaxBlockShift) ||
      (bs & (bs - 1)) != 0) {
    return Status::InvalidArgument("create " + store->Name() + ": block size " +
                                   std::to_string(bs) +
                                   " must be a power of two from 4 KiB to 4 MiB");
  }
  if (create.initial_size > format::kMaxFileSize) {
    return Status::OutOfRange("create " + store->Name() + ": size exceeds 2^60 bytes");
  }
  if (options.read_only) return Status::InvalidArgument("create: cannot create read-only");
  HF_RETURN_IF_ERROR(
      file::ValidateCompression(create.compression, "create " + store->Name() + ": compression"));
  std::vector<ObjectInfo> existing;
  HF_RETURN_IF_ERROR(store->List(format::kSegmentPrefix, "", 1, &existing));
  if (!existing.empty()) {
    return Status::AlreadyExists("create: a hyperfile already exists at " + store->Name());
  }
  // The writer lease comes before the file (docs/design/0015): a compaction
  // that could see the new file sees the lease, or we see its lease and
  // create nothing. It goes again if the create fails.
  HF_ASSIGN_OR_RETURN(std::unique_ptr<file::WriterLease> lease,
                      file::AcquireWriterLease(store, file::LeaseHolderName(options.writer_name)));
  HeaderRead read;
  format::SegmentHeader& h = read.header;
  h.self.id = 1;
  h.self.time_ms = file::NowMs();
  h.self.size = create.initial_size;
  h.first_id = 1;
  h.file_id = file::RandomU64();
  h.writer_epoch = file::RandomU64();
  h.create_time_ms = h.self.time_ms;
  h.block_shift = static_cast<uint8_t>(__builtin_ctz(bs));
  h.writer = options.writer_name.substr(0, 255);
  // The handle's own codec (OpenOptions) wins over the one created with, as
  // it does for every later write of that handle.
  const Compression codec = options.compression.value_or(create.compression);
  h.codec = static_cast<uint8_t>(codec.codec);
  h.codec_level = static_cast<uint8_t>(codec.level);
  if (create.encryption_key) {
    // The key record comes first: an open finds the cipher in the header and
    // needs the record then. A create that fails after it leaves only the
    // record (rm removes it).
    h.cipher = format::kCipherXChaCha20Poly1305;
    auto fk = crypto::CreateFileKey(store.get(), h.file_id, create.encryption_key->impl().kek);
    if (!fk.ok()) return fk.status().WithContext("create " + store->Name());
  }
  size_t len = format::EncodeHeader(h).size();
  h.node_area_offset = h.data_area_offset = len;
  read.bytes = format::EncodeHeader(h);
  h.crc = DecodeFixed32(read.bytes.data() + read.bytes.size() - 4);
  Status st = file::CreateOnce(store.get(), format::SegmentKey(1), {read.bytes}, read.bytes);
  if (st.IsPreconditionFailed()) {
    return Status::AlreadyExists("create: a hyperfile already exists at " + store->Name());
  }
  HF_RETURN_IF_ERROR(st.WithContext("create " + store->Name()));
  OpenOptions with_key = options;
  if (create.encryption_key && !with_key.key) with_key.key = create.encryption_key;
  HF_ASSIGN_OR_RETURN(std::unique_ptr<FileImpl> f,
                      FileImpl::Make(std::move(store), with_key, read, nullptr));
  f->AdoptWriterLease(std::move(lease));
  return std::unique_ptr<File>(std::move(f));
}

Result<std::unique_ptr<File>> File::Open(std::shared_ptr<ObjectStore> store,
                                         const OpenOptions& options) {
  if (!store) return Status::InvalidArgument("open: no store");
  HF_RETURN_IF_ERROR(file::ValidateOpenOptions(options, store->Name()));
  if (options.read_only) {
    HF_ASSIGN_OR_RETURN(file::ResolvedState state,
                        file::ResolveState(store, At::Latest(), options));
    HF_ASSIGN_OR_RETURN(std::unique_ptr<FileImpl> f,
                        FileImpl::Make(state.store, options, state.read, nullptr));
    f->StartFollowing();
    return std::unique_ptr<File>(std::move(f));
  }
  return file::OpenWriter(store, options, nullptr);
}

Result<std::unique_ptr<File>> File::OpenAt(std::shared_ptr<ObjectStore> store, const At& at,
                                           OpenOptions options) {
  if (!store) return Status::InvalidArgument("open: no store");
  HF_RETURN_IF_ERROR(file::ValidateOpenOptions(options, store->Name()));
  // The latest state is Open's (writable unless read_only; a read-only one
  // can follow the head).
  if (at.kind == At::Kind::kLatest) return Open(store, options);
  if (options.refresh_interval_ms != 0) {
    return Status::InvalidArgument("open " + store->Name() + " at " + at.ToString() +
                                   ": refresh_interval_ms follows the head; an older state "
                                   "never changes (open At::Latest() to follow)");
  }
  options.read_only = true;
  HF_ASSIGN_OR_RETURN(file::ResolvedState state, file::ResolveState(store, at, options));
  HF_ASSIGN_OR_RETURN(std::unique_ptr<FileImpl> f,
                      FileImpl::Make(state.store, options, state.read,
                                     state.descriptor ? &*state.descriptor : nullptr));
  return std::unique_ptr<File>(std::move(f));
}

Result<Compression> ParseCompression(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument("compression '" + std::string(text) +
                                   "': expected none, lz4, zstd or zstd:LEVEL (1.." +
                                   std::to_string(format::kMaxZstdLevel) + ")");
  };
  if (text == "none") return Compression{Codec::kNone, 0};
  if (text == "lz4") return Compression{Codec::kLz4, 0};
  if (text == "zstd") return Compression{Codec::kZstd, 1};
  if (text.substr(0, 5) != "zstd:" || text.size() < 6 || text.size() > 7) return bad();
  int level = 0;
  for (char c : text.substr(5)) {
    if (c < '0' || c > '9') return bad();
    level = level * 10 + (c - '0');
  }
  if (level < 1 || level > format::kMaxZstdLevel) return bad();
  return Compression{Codec::kZstd, level};
}

std::string CompressionName(const Compression& c) {
  switch (c.codec) {
    case Codec::kNone:
      return "none";
    case Codec::kLz4:
      return "lz4";
    case Codec::kZstd:
      return "zstd:" + std::to_string(c.level);
  }
  return "unknown";
}

}  // namespace hyperfile
