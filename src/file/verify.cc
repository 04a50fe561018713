// Diff and Verify: walking a checkpoint's index (and with --deep its data).
#include <algorithm>

#include "file/file_impl.h"
#include "file/interval_set.h"
#include "file/open_internal.h"
#include "hyperfile/checkpoints.h"

namespace hyperfile {

namespace {

struct MappedRange {
  uint64_t start, end, segment, offset;
};

Result<std::vector<MappedRange>> MapAll(const std::shared_ptr<ObjectStore>& store, const At& at,
                                        uint64_t* size, uint32_t* block_size) {
  HF_ASSIGN_OR_RETURN(file::ResolvedState s, file::ResolveState(store, at, OpenOptions{}));
  OpenOptions options;
  options.read_only = true;
  file::Lineage lineage(s.store, s.read.header.origins, file::DefaultResolver(options));
  file::NodeLoader nodes(&lineage, 16 << 20);
  index::Tree tree(&nodes, s.read.header.block_size());
  index::TreeRoot root;
  root.ref = s.self().root;
  root.height = s.self().height;
  std::vector<MappedRange> out;
  HF_RETURN_IF_ERROR(tree.Visit(root, 0, ~uint64_t{0}, [&](const format::ExtentEntry& e) {
    out.push_back({e.start, e.end(), e.segment, e.offset});
    return Status::OK();
  }));
  *size = s.self().size;
  *block_size = s.read.header.block_size();
  return out;
}

}  // namespace

Result<std::vector<ByteRange>> Diff(std::shared_ptr<ObjectStore> store, const At& from,
                                    const At& to) {
  uint64_t size_a, size_b;
  uint32_t bs_a, bs_b;
  HF_ASSIGN_OR_RETURN(auto a, MapAll(store, from, &size_a, &bs_a));
  HF_ASSIGN_OR_RETURN(auto b, MapAll(store, to, &size_b, &bs_b));
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

Result<VerifyReport> Verify(std::shared_ptr<ObjectStore> store, const At& at, bool deep) {
  VerifyReport report;
  auto resolved = file::ResolveState(store, at, OpenOptions{});
  if (!resolved.ok()) {
    if (!resolved.status().IsCorrupt()) return resolved.status();
    report.problems.push_back(resolved.status().message());
    return report;
  }
  file::ResolvedState& s = *resolved;
  report.checkpoint = s.self().id;
  OpenOptions options;
  file::Lineage lineage(s.store, s.read.header.origins, file::DefaultResolver(options));
  file::NodeLoader nodes(&lineage, 4 << 20);
  file::ChunkReader chunks(&lineage, s.read.header.block_size(), 0);
  index::Tree tree(&nodes, s.read.header.block_size());
  index::TreeRoot root;
  root.ref = s.self().root;
  root.height = s.self().height;
  const uint64_t bs = s.read.header.block_size();
  std::string buf;
  auto visited = tree.VisitNodes(root, [&](const index::Node& node) {
    if (node.data.level != 0 || !deep) return Status::OK();
    for (const format::ExtentEntry& e : node.data.extents) {
      for (uint64_t b = e.start; b < e.end(); b += 256) {
        uint64_t n = std::min<uint64_t>(256, e.end() - b);
        format::ExtentEntry piece = e;
        piece.start = b;
        piece.count = static_cast<uint32_t>(n);
        piece.offset =
            e.offset + (b - e.start) * format::StoredBlockSize(static_cast<uint32_t>(bs));
        buf.resize(n * bs);
        Status st = chunks.Read(piece, b * bs, (b + n) * bs, buf.data());
        if (!st.ok()) {
          if (!st.IsCorrupt()) return st;
          report.problems.push_back(st.message());
        } else {
          report.blocks_checked += n;
          report.bytes_checked += n * bs;
        }
      }
    }
    return Status::OK();
  });
  if (!visited.ok()) {
    if (!visited.status().IsCorrupt()) return visited.status();
    report.problems.push_back(visited.status().message());
  } else {
    report.nodes_checked = *visited;
  }
  return report;
}

}  // namespace hyperfile
