// Compaction (hyperfile/gc.h): rewrite the head's live blocks out of
// mostly-dead objects so that a later collection can delete them whole.
#include <algorithm>

#include "file/file_impl.h"
#include "format/gc_records.h"
#include "gc/gc_internal.h"
#include "gc/mark.h"
#include "hyperfile/gc.h"

namespace hyperfile {

Result<CompactReport> Compact(std::shared_ptr<ObjectStore> store, const CompactOptions& options) {
  if (!store) return Status::InvalidArgument("compact: no store");
  if (!(options.max_live_ratio > 0 && options.max_live_ratio < 1)) {
    return Status::InvalidArgument("compact: max_live_ratio must be between 0 and 1");
  }
  if (options.idle_ms < 0) return Status::InvalidArgument("compact: idle_ms must be >= 0");
  if (options.open_options.read_only) {
    return Status::InvalidArgument("compact: needs a writable handle (open_options.read_only)");
  }
  const int64_t now = file::NowMs();
  HF_ASSIGN_OR_RETURN(gc::FileView v, gc::LoadView(store, std::nullopt, now, 0));
  const uint32_t block_size = uint32_t{1} << v.head_header.block_shift;
  if (options.idle_ms > 0) {
    ObjectInfo info;
    HF_RETURN_IF_ERROR(store->Head(format::SegmentKey(v.head), &info));
    if (info.mtime_ms > 0 && info.mtime_ms + options.idle_ms > now) {
      return Status::Conflict("compact " + store->Name() + ": checkpoint " +
                              std::to_string(v.head) + " was committed " +
                              std::to_string((now - info.mtime_ms) / 1000) +
                              " s ago; a writer may be active, and a compaction commit would "
                              "fence it (compact in the writer's process, or wait)");
    }
  }
  gc::Marker marker(store, v.head_header.origins, block_size);
  HF_RETURN_IF_ERROR(gc::MarkKept(v, &marker, nullptr));
  std::vector<ObjectInfo> objects;
  HF_RETURN_IF_ERROR(gc::ListAll(store.get(), format::kSegmentPrefix, &objects));
  HF_RETURN_IF_ERROR(gc::ListAll(store.get(), format::kDataObjectPrefix, &objects));

  // Victims: objects only the head uses, mostly dead; most dead bytes first.
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
  CompactReport report;
  std::vector<format::ExtentEntry> extents;
  uint64_t planned = 0;
  for (const Victim& vic : victims) {
    if (options.max_rewrite_bytes != 0 && planned >= options.max_rewrite_bytes) break;
    const auto& ex = marker.head_extents().at(vic.key);
    extents.insert(extents.end(), ex.begin(), ex.end());
    for (const auto& e : ex) planned += uint64_t{e.count} * block_size;
    report.victims++;
    report.victim_bytes += vic.size;
  }
  if (extents.empty()) return report;
  std::sort(
      extents.begin(), extents.end(),
      [](const format::ExtentEntry& a, const format::ExtentEntry& b) { return a.start < b.start; });

  // One writer handle of our own: nobody else writes through it, so reading
  // a block and writing the same bytes back cannot undo anyone's write. A
  // writer in another process that commits first makes our flush Conflict.
  HF_ASSIGN_OR_RETURN(std::unique_ptr<File> f, File::Open(store, options.open_options));
  HF_ASSIGN_OR_RETURN(FileStat st, f->Stat());
  if (st.checkpoint != v.head) {
    (void)f->Close();
    return Status::Conflict("compact " + store->Name() +
                            ": the file changed while compaction planned");
  }
  constexpr uint64_t kChunk = 8ull << 20;
  std::string buf;
  for (const format::ExtentEntry& e : extents) {
    uint64_t lo = e.start * block_size;
    uint64_t hi = std::min<uint64_t>((e.start + e.count) * block_size, st.size);
    for (uint64_t off = lo; off < hi; off += kChunk) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, hi - off));
      buf.resize(n);
      HF_ASSIGN_OR_RETURN(size_t got, f->PRead(off, buf.data(), n));
      if (got != n) {
        (void)f->Close();
        return Status::Corrupt("compact " + store->Name() + ": short read at " +
                               std::to_string(off));
      }
      HF_RETURN_IF_ERROR(f->PWrite(off, buf.data(), n));
      report.bytes_rewritten += n;
    }
  }
  HF_ASSIGN_OR_RETURN(report.checkpoint, f->Flush());
  HF_RETURN_IF_ERROR(f->Close());
  return report;
}

}  // namespace hyperfile
