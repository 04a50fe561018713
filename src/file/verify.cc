// SPDX-License-Identifier: Apache-2.0
// Diff and Verify: walking a checkpoint's index (and with --deep its data).
//
// The store is untrusted: the tree walk checks every node against the key
// range its parent gives it (src/index/btree.h), extents past the file's size
// are Corrupt, and Verify checks every extent against the header of the
// segment it points into (read once per segment), reports at most one
// problem per extent and stops after kMaxProblems.
#include <algorithm>
#include <map>

#include "file/file_impl.h"
#include "file/interval_set.h"
#include "file/open_internal.h"
#include "file/sealing.h"
#include "hyperfile/checkpoints.h"

namespace hyperfile {

namespace {

struct MappedRange {
  uint64_t start, end, segment, offset;
};

Result<std::vector<MappedRange>> MapAll(const std::shared_ptr<ObjectStore>& store, const At& at,
                                        uint64_t* size, uint32_t* block_size,
                                        const OpenOptions& options) {
  HF_ASSIGN_OR_RETURN(file::ResolvedState s, file::ResolveState(store, at, OpenOptions{}));
  file::Lineage lineage(s.store, s.read.header.origins, file::DefaultResolver(options));
  HF_ASSIGN_OR_RETURN(auto sealer, file::UnlockFile(&lineage, s.read.header, options.key.get()));
  lineage.SetSealer(std::move(sealer));
  file::NodeLoader nodes(&lineage, 16 << 20);
  index::Tree tree(&nodes, s.read.header.block_size());
  index::TreeRoot root;
  root.ref = s.self().root;
  root.height = s.self().height;
  std::vector<MappedRange> out;
  const uint64_t bs = s.read.header.block_size();
  const uint64_t file_blocks = (s.self().size + bs - 1) / bs;
  HF_RETURN_IF_ERROR(tree.Visit(root, 0, ~uint64_t{0}, [&](const format::ExtentEntry& e) {
    if (e.end() > file_blocks) {
      return Status::Corrupt(lineage.Where(s.self().id) + ": index maps blocks [" +
                             std::to_string(e.start) + ", " + std::to_string(e.end()) +
                             ") past the file size (" + std::to_string(file_blocks) + " blocks)");
    }
    out.push_back({e.start, e.end(), e.segment, e.offset});
    return Status::OK();
  }));
  *size = s.self().size;
  *block_size = s.read.header.block_size();
  return out;
}

}  // namespace

Result<std::vector<ByteRange>> Diff(std::shared_ptr<ObjectStore> store, const At& from,
                                    const At& to, const OpenOptions& options) {
  uint64_t size_a, size_b;
  uint32_t bs_a, bs_b;
  HF_ASSIGN_OR_RETURN(auto a, MapAll(store, from, &size_a, &bs_a, options));
  HF_ASSIGN_OR_RETURN(auto b, MapAll(store, to, &size_b, &bs_b, options));
  const uint64_t sbs = format::StoredBlockSize(bs_a);
  // Sweep both extent lists; a block differs if its location differs.
  IntervalSet differ;
  std::vector<uint64_t> cuts;
  for (auto* v : {&a, &b}) {
    for (const MappedRange& r : *v) {
      cuts.push_back(r.start);
      cuts.push_back(r.end);
    }
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  auto locate = [&](const std::vector<MappedRange>& v, uint64_t blk, uint64_t* seg, uint64_t* off) {
    auto it = std::upper_bound(v.begin(), v.end(), blk,
                               [](uint64_t x, const MappedRange& r) { return x < r.start; });
    if (it == v.begin() || std::prev(it)->end <= blk) return false;
    --it;
    *seg = it->segment;
    *off = it->offset + (blk - it->start) * sbs;
    return true;
  };
  for (size_t i = 0; i + 1 < cuts.size(); i++) {
    uint64_t sa = 0, oa = 0, sb = 0, ob = 0;
    bool ha = locate(a, cuts[i], &sa, &oa), hb = locate(b, cuts[i], &sb, &ob);
    if (ha != hb || (ha && (sa != sb || oa != ob))) differ.Add(cuts[i], cuts[i + 1]);
  }
  std::vector<ByteRange> out;
  uint64_t min_size = std::min(size_a, size_b), max_size = std::max(size_a, size_b);
  IntervalSet bytes;
  for (const auto& [s, e] : differ.ranges()) {
    uint64_t bs = s * bs_a, be = std::min(e * uint64_t{bs_a}, max_size);
    if (bs < be) bytes.Add(bs, be);
  }
  if (max_size > min_size) bytes.Add(min_size, max_size);
  for (const auto& [s, e] : bytes.ranges()) out.push_back({s, e - s});
  return out;
}

Result<StorageUse> MeasureStorage(std::shared_ptr<ObjectStore> store, const At& at,
                                  const OpenOptions& options) {
  HF_ASSIGN_OR_RETURN(file::ResolvedState s, file::ResolveState(store, at, OpenOptions{}));
  file::Lineage lineage(s.store, s.read.header.origins, file::DefaultResolver(options));
  HF_ASSIGN_OR_RETURN(auto sealer, file::UnlockFile(&lineage, s.read.header, options.key.get()));
  lineage.SetSealer(std::move(sealer));
  file::NodeLoader nodes(&lineage, 16 << 20);
  nodes.Seed(s.read);
  const uint32_t bs = s.read.header.block_size();
  index::Tree tree(&nodes, bs);
  index::TreeRoot root;
  root.ref = s.self().root;
  root.height = s.self().height;
  StorageUse use;
  use.checkpoint = s.self().id;
  use.compression = {static_cast<Codec>(s.read.header.codec), s.read.header.codec_level};
  HF_RETURN_IF_ERROR(tree.Visit(root, 0, ~uint64_t{0}, [&](const format::ExtentEntry& e) {
    use.logical_bytes += uint64_t{e.count} * bs;
    use.stored_bytes += format::ExtentStoredBytes(e, bs);
    if (e.framed()) use.framed_blocks++;
    return Status::OK();
  }));
  return use;
}

Result<VerifyReport> Verify(std::shared_ptr<ObjectStore> store, const At& at, bool deep,
                            const OpenOptions& open_options) {
  constexpr size_t kMaxProblems = 100;
  VerifyReport report;
  auto resolved = file::ResolveState(store, at, OpenOptions{});
  if (!resolved.ok()) {
    if (!resolved.status().IsCorrupt()) return resolved.status();
    report.problems.push_back(resolved.status().message());
    return report;
  }
  file::ResolvedState& s = *resolved;
  report.checkpoint = s.self().id;
  file::Lineage lineage(s.store, s.read.header.origins, file::DefaultResolver(open_options));
  // Without the key nothing past the headers can be checked: Auth.
  HF_ASSIGN_OR_RETURN(auto sealer,
                      file::UnlockFile(&lineage, s.read.header, open_options.key.get()));
  lineage.SetSealer(std::move(sealer));
  file::NodeLoader nodes(&lineage, 4 << 20);
  file::ChunkReader chunks(&lineage, s.read.header.block_size(), 0);
  const uint32_t bs = s.read.header.block_size();
  const uint64_t sbs = format::StoredBlockSize(bs);
  const uint64_t file_blocks = (s.self().size + bs - 1) / bs;
  index::Tree tree(&nodes, bs);
  index::TreeRoot root;
  root.ref = s.self().root;
  root.height = s.self().height;

  // The header of every segment the index points into, read once.
  struct SegmentInfo {
    std::string problem;  // non-empty: the segment cannot hold data
    uint64_t data_begin = 0, data_end = 0, epoch = 0;
    uint64_t object_length = 0;  // its data object's length per the header
    bool object_checked = false;
    std::string object_problem;  // non-empty: the data object is missing or of another size
  };
  std::map<uint64_t, SegmentInfo> segments;
  auto segment_info = [&](uint64_t id) -> Result<const SegmentInfo*> {
    auto it = segments.find(id);
    if (it != segments.end()) return &it->second;
    SegmentInfo info;
    HF_ASSIGN_OR_RETURN(ObjectStore * seg_store, lineage.StoreFor(id));
    auto read = file::ReadHeader(seg_store, id);
    if (read.ok()) {
      info.data_begin = read->header.data_area_offset;
      info.data_end = read->header.data_area_offset + read->header.data_area_length;
      info.epoch = read->header.writer_epoch;
      info.object_length = read->header.data_object_length;
    } else if (read.status().IsNotFound()) {
      info.problem = lineage.Where(id) + ": segment referenced by the index is missing";
    } else if (read.status().IsCorrupt() || read.status().IsNotSupported()) {
      info.problem = read.status().message();
    } else {
      return read.status();
    }
    return &segments.emplace(id, std::move(info)).first->second;
  };

  bool stopped = false;  // the walk was stopped because the list is full

  std::string buf;
  auto check_extent = [&](const index::Node& node, size_t i,
                          const format::ExtentEntry& e) -> Result<std::string> {
    std::string where = nodes.Describe(node.ref) + ": extent " + std::to_string(i) + " [" +
                        std::to_string(e.start) + ", " + std::to_string(e.end()) + ")";
    if (e.end() > file_blocks) {
      return where + " past the file size (" + std::to_string(file_blocks) + " blocks)";
    }
    HF_ASSIGN_OR_RETURN(const SegmentInfo* seg, segment_info(e.segment));
    if (!seg->problem.empty()) return where + ": " + seg->problem;
    const uint64_t stored = format::ExtentStoredBytes(e, bs);  // no overflow: checked by the tree
    if (e.in_data_object()) {
      // The data object: one HEAD per segment, its size must be the header's.
      SegmentInfo& info = segments[e.segment];
      const std::string key = format::DataObjectKey(e.segment, e.epoch);
      if (!info.object_checked) {
        info.object_checked = true;
        HF_ASSIGN_OR_RETURN(ObjectStore * seg_store, lineage.StoreFor(e.segment));
        ObjectInfo oi;
        Status hs = seg_store->Head(key, &oi);
        if (hs.IsNotFound()) {
          info.object_problem =
              lineage.WhereKey(e.segment, key) + ": data object referenced by the index is missing";
        } else if (!hs.ok()) {
          return hs;
        } else if (oi.size != info.object_length) {
          info.object_problem = lineage.WhereKey(e.segment, key) + ": data object is " +
                                std::to_string(oi.size) + " bytes but its segment says " +
                                std::to_string(info.object_length);
        }
      }
      if (e.epoch == info.epoch && !info.object_problem.empty()) {
        return where + ": " + info.object_problem;
      }
      if (e.object_offset() > info.object_length ||
          stored > info.object_length - e.object_offset()) {
        return where + ": stored bytes [" + std::to_string(e.object_offset()) + ", +" +
               std::to_string(stored) + ") outside the data object (" +
               std::to_string(info.object_length) + " bytes) of " + lineage.Where(e.segment);
      }
    } else if (e.offset < seg->data_begin || e.offset > seg->data_end ||
               stored > seg->data_end - e.offset) {
      return where + ": stored bytes [" + std::to_string(e.offset) + ", +" +
             std::to_string(stored) + ") outside the data area [" +
             std::to_string(seg->data_begin) + ", " + std::to_string(seg->data_end) + ") of " +
             lineage.Where(e.segment);
    }
    if (e.epoch != seg->epoch) {
      return where + ": writer epoch " + std::to_string(e.epoch) + " differs from " +
             std::to_string(seg->epoch) + " in the header of " + lineage.Where(e.segment);
    }
    if (!deep) return std::string();
    for (uint64_t b = e.start; b < e.end(); b += 256) {
      uint64_t n = std::min<uint64_t>(256, e.end() - b);
      format::ExtentEntry piece = e;
      piece.start = b;
      piece.count = static_cast<uint32_t>(n);
      piece.offset = e.offset + (b - e.start) * sbs;
      buf.resize(n * bs);
      Status st = chunks.Read(piece, b * bs, (b + n) * bs, buf.data());
      if (!st.ok()) {
        if (!st.IsCorrupt()) return st;
        return st.message();  // one problem per extent
      }
      report.blocks_checked += n;
      report.bytes_checked += n * bs;
    }
    return std::string();
  };

  auto visited = tree.VisitNodes(root, [&](const index::Node& node) -> Status {
    if (node.data.level != 0) return Status::OK();
    for (size_t i = 0; i < node.data.extents.size(); i++) {
      HF_ASSIGN_OR_RETURN(std::string problem, check_extent(node, i, node.data.extents[i]));
      if (!problem.empty()) report.problems.push_back(std::move(problem));
      if (report.problems.size() >= kMaxProblems) {
        stopped = true;
        return Status::OutOfRange("verify: problem list full");
      }
    }
    return Status::OK();
  });
  if (!visited.ok()) {
    if (stopped) {
      report.problems.push_back("... and more problems (verify stops after " +
                                std::to_string(kMaxProblems) + ")");
    } else if (!visited.status().IsCorrupt()) {
      return visited.status();
    } else {
      report.problems.push_back(visited.status().message());
    }
  } else {
    report.nodes_checked = *visited;
  }
  return report;
}

}  // namespace hyperfile
