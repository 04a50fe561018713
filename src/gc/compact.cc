// SPDX-License-Identifier: Apache-2.0
// Compaction (hyperfile/gc.h): rewrite the head's live blocks out of
// mostly-dead objects so that a later collection can delete them whole.
#include <algorithm>
#include <shared_mutex>
#include <span>

#include "file/file_impl.h"
#include "file/open_internal.h"
#include "file/sealing.h"
#include "file/writer_lease.h"
#include "format/gc_records.h"
#include "gc/gc_internal.h"
#include "gc/mark.h"
#include "hyperfile/gc.h"
#include "index/btree.h"

namespace hyperfile {

namespace {

struct Plan {
  gc::FileView view;
  uint32_t block_size = 0;
  std::vector<format::ExtentEntry> extents;  // of the head, in victims, by logical block
  CompactReport report;
};

// Victims: objects only the head uses, mostly dead; most dead bytes first.
Result<Plan> MakePlan(const std::shared_ptr<ObjectStore>& store, const CompactOptions& options) {
  if (!(options.max_live_ratio > 0 && options.max_live_ratio < 1)) {
    return Status::InvalidArgument("compact: max_live_ratio must be between 0 and 1");
  }
  Plan plan;
  HF_ASSIGN_OR_RETURN(plan.view, gc::LoadView(store, options.policy, file::NowMs(), 0));
  const gc::FileView& v = plan.view;
  plan.block_size = uint32_t{1} << v.head_header.block_shift;
  gc::Marker marker(store, v.head_header.origins, plan.block_size);
  HF_RETURN_IF_ERROR(marker.Unlock(v.head_header, options.open_options.key.get()));
  HF_RETURN_IF_ERROR(gc::MarkKept(v, &marker, nullptr));
  std::vector<ObjectInfo> objects;
  HF_RETURN_IF_ERROR(gc::ListAll(store.get(), format::kSegmentPrefix, &objects));
  HF_RETURN_IF_ERROR(gc::ListAll(store.get(), format::kDataObjectPrefix, &objects));
  struct Victim {
    std::string key;
    uint64_t size, live;
  };
  std::vector<Victim> victims;
  for (const ObjectInfo& o : objects) {
    auto it = marker.uses().find(o.key);
    if (it == marker.uses().end() || it->second.reasons != gc::kHead || o.size == 0) continue;
    uint64_t live = std::min<uint64_t>(it->second.head_bytes, o.size);
    if (!marker.head_extents().count(o.key)) continue;  // only index nodes: rewritten anyway
    if (static_cast<double>(live) > options.max_live_ratio * static_cast<double>(o.size)) continue;
    victims.push_back({o.key, o.size, live});
  }
  std::sort(victims.begin(), victims.end(),
            [](const Victim& a, const Victim& b) { return a.size - a.live > b.size - b.live; });
  uint64_t planned = 0;
  for (const Victim& vic : victims) {
    if (options.max_rewrite_bytes != 0 && planned >= options.max_rewrite_bytes) break;
    const auto& ex = marker.head_extents().at(vic.key);
    plan.extents.insert(plan.extents.end(), ex.begin(), ex.end());
    for (const auto& e : ex) planned += uint64_t{e.count} * plan.block_size;
    plan.report.victims++;
    plan.report.victim_bytes += vic.size;
  }
  std::sort(
      plan.extents.begin(), plan.extents.end(),
      [](const format::ExtentEntry& a, const format::ExtentEntry& b) { return a.start < b.start; });
  return plan;
}

// One rewrite call: logical bytes [offset, offset+length) of plan.extents[extent].
struct Call {
  uint64_t offset, length;
  size_t extent;
};

// The rewrite calls for every planned extent, in pieces of at most 256 KiB
// (at least one block), clipped to `size`. Within a run of extents that
// touch, the pieces go last first: so no call starts where an earlier one
// ended, and the handle's read planner never takes the rewrite for a
// sequential stream (its readahead fetched up to 32 MiB past each run, most
// of it blocks that are not rewritten: gc_bench's 256 MiB x 4 run took 25
// minutes). The calls stay as small as the extents (a compressed block is
// an extent of its own): a caller's rewrite holds its range's locks
// exclusively, and longer holds delay its writers (merging the pieces of a
// run into 256 KiB calls made the gc_bench write p99 7.8x that without).
std::vector<Call> PlanCalls(const Plan& plan, uint64_t size) {
  const uint64_t bs = plan.block_size;
  const uint64_t kPiece = std::max<uint64_t>(256 * 1024 / bs, 1) * bs;
  std::vector<Call> calls;
  size_t run_begin = 0;  // the current run's first call
  auto end_run = [&] {
    std::reverse(calls.begin() + static_cast<std::ptrdiff_t>(run_begin), calls.end());
    run_begin = calls.size();
  };
  for (size_t i = 0; i < plan.extents.size(); i++) {
    const format::ExtentEntry& e = plan.extents[i];
    const uint64_t lo = e.start * bs;
    const uint64_t hi = std::min<uint64_t>((e.start + e.count) * bs, size);
    if (lo >= hi) continue;
    if (calls.size() > run_begin) {
      // The run's first call is its last piece until end_run reverses it.
      const Call& last = calls.back();
      if (last.offset + last.length != lo) end_run();
    }
    for (uint64_t off = lo; off < hi; off += kPiece) {
      calls.push_back({off, std::min<uint64_t>(kPiece, hi - off), i});
    }
  }
  end_run();
  return calls;
}

// Makes the calls in order. Before a call whose extent is not fetched yet,
// the extents of the calls from there on, up to `window` decoded bytes, are
// prefetched together (prefetch: FileImpl::PrefetchStored, each object's
// extents in few GETs), so a victim's scattered live blocks do not cost a
// GET each; the calls' own reads then find them cached.
Status RewritePlanned(const Plan& plan, uint64_t size, CompactReport* report, uint64_t window,
                      const std::function<bool()>& stop,
                      const std::function<void(std::span<const format::ExtentEntry>)>& prefetch,
                      const std::function<Status(uint64_t, uint64_t)>& rewrite) {
  const std::vector<Call> calls = PlanCalls(plan, size);
  const uint64_t bs = plan.block_size;
  std::vector<bool> fetched(plan.extents.size(), false);
  std::vector<format::ExtentEntry> batch;
  size_t ahead = 0;  // calls before this one have had their extents prefetched
  for (size_t i = 0; i < calls.size(); i++) {
    if (stop && stop()) {
      report->stopped = true;
      return Status::OK();
    }
    if (prefetch && i >= ahead) {
      batch.clear();
      uint64_t bytes = 0;
      for (ahead = i; ahead < calls.size(); ahead++) {
        const size_t x = calls[ahead].extent;
        if (fetched[x]) continue;
        const uint64_t b = uint64_t{plan.extents[x].count} * bs;
        if (b > window) {  // would not stay cached: its call reads it itself
          fetched[x] = true;
          continue;
        }
        if (bytes + b > window) break;
        fetched[x] = true;
        batch.push_back(plan.extents[x]);
        bytes += b;
      }
      if (!batch.empty()) prefetch(batch);
    }
    HF_RETURN_IF_ERROR(rewrite(calls[i].offset, calls[i].length));
    report->bytes_rewritten += calls[i].length;
  }
  return Status::OK();
}

// The handle's prefetch for RewritePlanned (none for a File that is not ours).
std::function<void(std::span<const format::ExtentEntry>)> PrefetchOf(File* f, uint64_t* window) {
  auto* impl = dynamic_cast<file::FileImpl*>(f);
  if (!impl || impl->PrefetchBudget() == 0) return nullptr;
  *window = impl->PrefetchBudget();
  return [impl](std::span<const format::ExtentEntry> extents) { impl->PrefetchStored(extents); };
}

// Reads [offset, offset+length) through `f` and writes the same bytes back.
Status CopyBack(File* f, uint64_t offset, uint64_t length, std::string* buf) {
  buf->resize(static_cast<size_t>(length));
  HF_ASSIGN_OR_RETURN(size_t got, f->PRead(offset, buf->data(), buf->size()));
  // A range past a shrunk end has nothing left to keep.
  return f->PWrite(offset, buf->data(), got);
}

}  // namespace

Result<CompactReport> CompactThrough(File* writer, std::shared_ptr<ObjectStore> store,
                                     const CompactOptions& options,
                                     const std::function<Status(uint64_t, uint64_t)>& rewrite) {
  if (!writer || !store || !rewrite) return Status::InvalidArgument("compact: null argument");
  HF_ASSIGN_OR_RETURN(Plan plan, MakePlan(store, options));
  CompactReport report = plan.report;
  if (plan.extents.empty()) return report;
  uint64_t window = 0;
  auto prefetch = PrefetchOf(writer, &window);
  HF_RETURN_IF_ERROR(
      RewritePlanned(plan, writer->Size(), &report, window, options.stop, prefetch, rewrite));
  HF_ASSIGN_OR_RETURN(report.checkpoint, writer->Flush());
  if (report.bytes_rewritten == 0) report.checkpoint = 0;  // stopped before the first call
  return report;
}

Result<CompactReport> Compact(std::shared_ptr<ObjectStore> store, const CompactOptions& options) {
  if (!store) return Status::InvalidArgument("compact: no store");
  if (options.writer_grace_ms < 0 || options.writer_grace_ms > 86400000) {
    return Status::InvalidArgument("compact: writer_grace_ms must be 0 .. 1 day");
  }
  if (options.open_options.read_only) {
    return Status::InvalidArgument("compact: needs a writable handle (open_options.read_only)");
  }
  HF_RETURN_IF_ERROR(file::ValidateOpenOptions(options.open_options, store->Name()));
  // The file exists (nothing is written into a prefix that holds none).
  HF_RETURN_IF_ERROR(file::LatestCheckpointId(store.get()).status());
  // Our compaction lease first, then the others (docs/design/0015): a writer
  // whose lease we do not see lists after ours exists and refuses to open.
  HF_ASSIGN_OR_RETURN(
      std::unique_ptr<file::WriterLease> lease,
      file::AcquireCompactionLease(store, options.writer_grace_ms,
                                   file::LeaseHolderName(options.open_options.writer_name)));
  HF_ASSIGN_OR_RETURN(Plan plan, MakePlan(store, options));
  CompactReport report = plan.report;
  if (plan.extents.empty()) {
    HF_RETURN_IF_ERROR(lease->Release());
    return report;
  }
  // One writer handle of our own, holding our lease: nobody else writes
  // through it, so reading a block and writing the same bytes back cannot
  // undo anyone's write. A writer whose lease lapsed (stalled) and that
  // commits first makes our flush Conflict; one that commits after us gets
  // Conflict on its flush (docs/design/0002): nothing committed is lost.
  HF_ASSIGN_OR_RETURN(std::unique_ptr<File> f,
                      file::OpenWriter(store, options.open_options, std::move(lease)));
  HF_ASSIGN_OR_RETURN(FileStat st, f->Stat());
  if (st.checkpoint != plan.view.head) {
    (void)f->Close();
    return Status::Conflict("compact " + store->Name() +
                            ": the file changed while compaction planned");
  }
  std::string buf;
  uint64_t window = 0;
  auto prefetch = PrefetchOf(f.get(), &window);
  Status rs =
      RewritePlanned(plan, st.size, &report, window, options.stop, prefetch,
                     [&](uint64_t off, uint64_t len) { return CopyBack(f.get(), off, len, &buf); });
  if (!rs.ok()) {
    (void)f->Close();
    return rs;
  }
  HF_ASSIGN_OR_RETURN(report.checkpoint, f->Flush());
  if (report.bytes_rewritten == 0) report.checkpoint = 0;  // stopped before the first call
  HF_RETURN_IF_ERROR(f->Close());
  return report;
}

Result<uint64_t> Flatten(std::shared_ptr<ObjectStore> clone, const OpenOptions& options) {
  if (!clone) return Status::InvalidArgument("flatten: no store");
  if (options.read_only) return Status::InvalidArgument("flatten: needs a writable handle");
  HF_ASSIGN_OR_RETURN(uint64_t head, file::LatestCheckpointId(clone.get()));
  HF_ASSIGN_OR_RETURN(file::HeaderRead read, file::ReadHeader(clone.get(), head));
  const format::SegmentHeader& h = read.header;
  if (h.origins.empty()) {
    return Status::InvalidArgument("flatten " + clone->Name() +
                                   ": not a clone (it borrows nothing)");
  }
  HF_ASSIGN_OR_RETURN(std::vector<SnapshotInfo> snaps, ListSnapshots(clone));
  if (!snaps.empty()) {
    return Status::InvalidArgument("flatten " + clone->Name() + ": it has " +
                                   std::to_string(snaps.size()) +
                                   " snapshot(s), which borrow from the source; delete them first");
  }
  std::vector<std::pair<ObjectInfo, format::PinRecord>> pins;
  HF_RETURN_IF_ERROR(gc::ReadPins(clone.get(), &pins));
  if (!pins.empty()) {
    return Status::InvalidArgument(
        "flatten " + clone->Name() + ": " + pins.front().second.clone_uri +
        " was cloned from it and borrows through it; flatten that first");
  }
  const uint64_t own_first = h.origins.back().max_id + 1;
  const uint32_t block_size = uint32_t{1} << h.block_shift;
  // The head's extents that live in an origin, from its index.
  file::Lineage lineage(clone, h.origins, file::DefaultResolver(options));
  HF_ASSIGN_OR_RETURN(auto sealer, file::UnlockFile(&lineage, h, options.key.get()));
  lineage.SetSealer(std::move(sealer));
  file::NodeLoader loader(&lineage, 64ull << 20);
  index::Tree tree(&loader, block_size);
  index::TreeRoot root;
  root.ref = h.self.root;
  root.height = h.self.height;
  root.blocks = h.self.allocated_blocks;
  std::vector<std::pair<uint64_t, uint64_t>> borrowed;  // logical byte ranges
  HF_RETURN_IF_ERROR(
      tree.Visit(root, 0, format::MaxBlocks(block_size), [&](const format::ExtentEntry& e) {
        if (e.segment < own_first)
          borrowed.push_back({e.start * block_size, uint64_t{e.count} * block_size});
        return Status::OK();
      }));
  HF_ASSIGN_OR_RETURN(std::unique_ptr<File> f, File::Open(clone, options));
  std::string buf;
  for (const auto& [off, len] : borrowed) {
    for (uint64_t p = off; p < off + len; p += 1ull << 20) {
      Status st = CopyBack(f.get(), p, std::min<uint64_t>(1ull << 20, off + len - p), &buf);
      if (!st.ok()) {
        (void)f->Close();
        return st;
      }
    }
  }
  // (Nothing borrowed: Flush answers the head, which is then the one kept.)
  Result<uint64_t> id = f->Flush();
  if (!id.ok()) {
    (void)f->Close();
    return id.status();
  }
  HF_RETURN_IF_ERROR(f->Close());
  // Older checkpoints still borrow: expire them (keep only the new head).
  GcOptions gco;
  RetentionPolicy keep_head;
  gco.policy = keep_head;
  HF_RETURN_IF_ERROR(Collect(clone, gco).status());
  // Nothing of ours borrows any more: drop our pin in the source.
  HF_ASSIGN_OR_RETURN(std::shared_ptr<ObjectStore> source,
                      file::DefaultResolver(options)(h.origins.back().uri));
  Status del = source->Delete(format::PinKey(h.file_id));
  if (!del.ok() && !del.IsNotFound()) {
    return del.WithContext("flatten: drop the pin in " + source->Name());
  }
  return *id;
}

struct RangeLocks::Impl {
  std::vector<std::shared_mutex> stripes;
  explicit Impl(size_t n) : stripes(n) {}
};

RangeLocks::RangeLocks(uint32_t block_size, size_t stripes)
    : impl_(std::make_unique<Impl>(std::clamp<size_t>(stripes, 1, 65536))),
      block_size_(std::max<uint32_t>(block_size, 1)) {}
RangeLocks::~RangeLocks() = default;

std::vector<size_t> RangeLocks::StripesOf(uint64_t offset, uint64_t length) const {
  const size_t n = impl_->stripes.size();
  std::vector<size_t> out;
  if (length == 0) return out;
  uint64_t first = offset / block_size_;
  uint64_t last = (offset + length - 1) / block_size_;
  if (last - first + 1 >= n) {
    out.resize(n);
    for (size_t i = 0; i < n; i++) out[i] = i;
    return out;
  }
  for (uint64_t b = first; b <= last; b++) out.push_back(static_cast<size_t>(b % n));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

RangeLocks::Guard::Guard(RangeLocks* owner, std::vector<size_t> stripes, bool exclusive)
    : owner_(owner), stripes_(std::move(stripes)), exclusive_(exclusive) {
  for (size_t i : stripes_) {
    if (exclusive_) {
      owner_->impl_->stripes[i].lock();
    } else {
      owner_->impl_->stripes[i].lock_shared();
    }
  }
}

RangeLocks::Guard::Guard(Guard&& other) noexcept
    : owner_(other.owner_), stripes_(std::move(other.stripes_)), exclusive_(other.exclusive_) {
  other.stripes_.clear();
}

RangeLocks::Guard::~Guard() {
  for (auto it = stripes_.rbegin(); it != stripes_.rend(); ++it) {
    if (exclusive_) {
      owner_->impl_->stripes[*it].unlock();
    } else {
      owner_->impl_->stripes[*it].unlock_shared();
    }
  }
}

RangeLocks::Guard RangeLocks::Shared(uint64_t offset, uint64_t length) {
  return Guard(this, StripesOf(offset, length), false);
}
RangeLocks::Guard RangeLocks::Exclusive(uint64_t offset, uint64_t length) {
  return Guard(this, StripesOf(offset, length), true);
}

}  // namespace hyperfile
