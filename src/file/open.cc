// Creating and opening files, and resolving At (time travel) to a state.
#include <algorithm>

#include "file/file_impl.h"
#include "file/open_internal.h"
#include "util/coding.h"

namespace hyperfile {

using file::FileImpl;
using file::HeaderRead;

namespace file {

Result<ResolvedState> ResolveState(const std::shared_ptr<ObjectStore>& store, const At& at,
                                   const OpenOptions& options) {
  ResolvedState out;
  out.store = store;
  auto from_id = [&](uint64_t id) -> Status {
    auto read = ReadHeader(store.get(), id);
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
      std::string body;
      std::string key = std::string(format::kSnapshotPrefix) + at.snapshot;
      Status st = store->Get(key, &body);
      if (st.IsNotFound()) {
        return Status::NotFound("snapshot '" + at.snapshot + "' does not exist in " +
                                store->Name());
      }
      HF_RETURN_IF_ERROR(st);
      HF_ASSIGN_OR_RETURN(format::SnapshotRecord rec,
                          format::DecodeSnapshot(body, store->Name() + "/" + key));
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
  HF_ASSIGN_OR_RETURN(uint64_t latest, LatestCheckpointId(store.get()));
  HF_ASSIGN_OR_RETURN(HeaderRead read, ReadHeader(store.get(), latest));
  auto not_found = [&] {
    return Status::NotFound("no checkpoint of " + store->Name() + " at or before " +
                            At::Time(time_ms).ToString());
  };
  for (int hop = 0; hop < 64; hop++) {
    const format::SegmentHeader& h = read.header;
    if (h.self.time_ms <= time_ms) {
      out.read = std::move(read);
      return out;
    }
    for (const format::Descriptor& d : h.recent) {
      if (d.time_ms <= time_ms) {
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
    HF_ASSIGN_OR_RETURN(read, ReadHeader(store.get(), next));
  }
  return not_found();
}

}  // namespace file

Result<std::unique_ptr<File>> File::Create(std::shared_ptr<ObjectStore> store,
                                           const CreateOptions& create,
                                           const OpenOptions& options) {
  if (!store) return Status::InvalidArgument("create: no store");
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
  std::vector<ObjectInfo> existing;
  HF_RETURN_IF_ERROR(store->List(format::kSegmentPrefix, "", 1, &existing));
  if (!existing.empty()) {
    return Status::AlreadyExists("create: a hyperfile already exists at " + store->Name());
  }
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
  size_t len = format::EncodeHeader(h).size();
  h.node_area_offset = h.data_area_offset = len;
  read.bytes = format::EncodeHeader(h);
  h.crc = DecodeFixed32(read.bytes.data() + read.bytes.size() - 4);
  PutOptions put;
  put.if_absent = true;
  Status st = store->Put(format::SegmentKey(1), read.bytes, put, nullptr);
  if (st.IsPreconditionFailed()) {
    std::string back;
    if (!store->Get(format::SegmentKey(1), &back).ok() || back != read.bytes) {
      return Status::AlreadyExists("create: a hyperfile already exists at " + store->Name());
    }
    st = Status::OK();
  }
  HF_RETURN_IF_ERROR(st.WithContext("create " + store->Name()));
  HF_ASSIGN_OR_RETURN(std::unique_ptr<FileImpl> f,
                      FileImpl::Make(std::move(store), options, read, nullptr));
  return std::unique_ptr<File>(std::move(f));
}

Result<std::unique_ptr<File>> File::Open(std::shared_ptr<ObjectStore> store,
                                         const OpenOptions& options) {
  if (!store) return Status::InvalidArgument("open: no store");
  HF_ASSIGN_OR_RETURN(file::ResolvedState state, file::ResolveState(store, At::Latest(), options));
  HF_ASSIGN_OR_RETURN(std::unique_ptr<FileImpl> f,
                      FileImpl::Make(state.store, options, state.read, nullptr));
  return std::unique_ptr<File>(std::move(f));
}

Result<std::unique_ptr<File>> File::OpenAt(std::shared_ptr<ObjectStore> store, const At& at,
                                           OpenOptions options) {
  if (!store) return Status::InvalidArgument("open: no store");
  if (at.kind == At::Kind::kLatest && !options.read_only) return Open(store, options);
  options.read_only = true;
  HF_ASSIGN_OR_RETURN(file::ResolvedState state, file::ResolveState(store, at, options));
  HF_ASSIGN_OR_RETURN(std::unique_ptr<FileImpl> f,
                      FileImpl::Make(state.store, options, state.read,
                                     state.descriptor ? &*state.descriptor : nullptr));
  return std::unique_ptr<File>(std::move(f));
}

}  // namespace hyperfile
