// SPDX-License-Identifier: Apache-2.0
#include "file/write_buffer.h"

#include <cstring>

namespace hyperfile::file {

namespace {
constexpr uint64_t kNoEnd = ~uint64_t{0};
}  // namespace

void Batch::Write(uint64_t b, uint64_t lo, uint64_t hi, const char* data, uint64_t bs) {
  if (lo >= hi) return;
  if (!data && lo == 0 && hi == bs) {  // a whole block of zeros: a hole, no data
    blocks.erase(b);
    punched.Add(b, b + 1);
    return;
  }
  auto it = blocks.find(b);
  if (it == blocks.end()) {
    it = blocks.emplace(b, DirtyBlock{std::string(bs, '\0'), {}}).first;
    // Punched in this batch: the block below is known to be zeros.
    if (punched.Contains(b)) it->second.valid.Add(0, bs);
  }
  if (data)
    std::memcpy(it->second.data.data() + lo, data, hi - lo);
  else
    std::memset(it->second.data.data() + lo, 0, hi - lo);
  it->second.valid.Add(lo, hi);
}

void Batch::TruncateTo(uint64_t size, uint64_t bs) {
  const uint64_t keep = (size + bs - 1) / bs;
  if (size % bs != 0) {
    const uint64_t tail = size / bs;
    // A tail block this batch punched is zeros already.
    if (blocks.count(tail) || !punched.Contains(tail)) Write(tail, size % bs, bs, nullptr, bs);
  }
  blocks.erase(blocks.lower_bound(keep), blocks.end());
  punched.Add(keep, kNoEnd);
}

void LayerOver(Batch&& newer, Batch* older, uint64_t bs) {
  for (const auto& [s, e] : newer.punched.ranges()) {
    older->blocks.erase(older->blocks.lower_bound(s), older->blocks.lower_bound(e));
    older->punched.Add(s, e);
  }
  for (auto& entry : newer.blocks) {
    const uint64_t b = entry.first;
    DirtyBlock& block = entry.second;
    auto it = older->blocks.find(b);
    if (block.full(bs) || (it == older->blocks.end() && !older->punched.Contains(b))) {
      older->blocks[b] = std::move(block);  // nothing below it in `older` to keep
      continue;
    }
    if (it == older->blocks.end()) {
      // The older batch punched it (a newer punch of b would have erased the
      // partial block): the base is zeros, and `data` is zero outside `valid`.
      block.valid.Add(0, bs);
      older->blocks[b] = std::move(block);
      continue;
    }
    block.valid.ForEachIn(0, bs, [&](uint64_t x, uint64_t y) {
      std::memcpy(it->second.data.data() + x, block.data.data() + x, y - x);
      it->second.valid.Add(x, y);
    });
  }
}

Status ReadThroughLayers(const std::vector<Window>& windows, const std::vector<Layer>& layers,
                         uint64_t bs, const ReadBelow& read_below) {
  // Where the search for each block of each window stopped: the index of
  // the layer that covers the window part (it punched the block, its
  // written bytes cover it, or it has the merged block), or kBelow.
  constexpr int kBelow = -1;
  std::vector<std::vector<int>> stops(windows.size());
  std::vector<BelowRead> below;
  for (size_t w = 0; w < windows.size(); w++) {
    const Window& win = windows[w];
    if (win.len == 0) continue;
    const uint64_t end = win.offset + win.len;
    const uint64_t b0 = win.offset / bs, b1 = (end - 1) / bs + 1;
    std::vector<int>& stop = stops[w];
    stop.assign(b1 - b0, kBelow);
    bool coalesce = false;
    for (uint64_t b = b0; b < b1; b++) {
      const uint64_t base = b * bs;
      const uint64_t ws = std::max(win.offset, base), we = std::min(end, base + bs);
      for (size_t i = 0; i < layers.size(); i++) {
        const Layer& layer = layers[i];
        if (layer.merged && layer.merged->count(b)) {
          stop[b - b0] = static_cast<int>(i);
          break;
        }
        auto f = layer.batch->blocks.find(b);
        if (f != layer.batch->blocks.end()) {
          if (f->second.valid.Covers(ws - base, we - base)) {
            stop[b - b0] = static_cast<int>(i);
            break;
          }
          continue;  // partial: overlaid on what lies below
        }
        if (layer.batch->punched.Contains(b)) {
          stop[b - b0] = static_cast<int>(i);
          break;
        }
      }
      if (stop[b - b0] != kBelow) {
        coalesce = false;
        continue;
      }
      if (coalesce) {
        below.back().b1 = b + 1;
        below.back().len = we - below.back().offset;
      } else {
        below.push_back({b, b + 1, ws, we - ws, win.buf + (ws - win.offset)});
      }
      coalesce = true;
    }
  }
  if (!below.empty()) HF_RETURN_IF_ERROR(read_below(below));
  for (size_t w = 0; w < windows.size(); w++) {
    const Window& win = windows[w];
    if (win.len == 0) continue;
    const uint64_t end = win.offset + win.len;
    const uint64_t b0 = win.offset / bs, b1 = (end - 1) / bs + 1;
    for (uint64_t b = b0; b < b1; b++) {
      const uint64_t base = b * bs;
      const uint64_t ws = std::max(win.offset, base), we = std::min(end, base + bs);
      char* dst = win.buf + (ws - win.offset);
      const int stop = stops[w][b - b0];
      // Oldest layer first, so newer bytes land on top.
      for (int i = stop == kBelow ? static_cast<int>(layers.size()) - 1 : stop; i >= 0; i--) {
        const Layer& layer = layers[static_cast<size_t>(i)];
        if (i == stop && layer.merged) {
          auto m = layer.merged->find(b);
          if (m != layer.merged->end()) {
            std::memcpy(dst, m->second.data() + (ws - base), we - ws);
            continue;
          }
        }
        auto f = layer.batch->blocks.find(b);
        if (f != layer.batch->blocks.end()) {
          f->second.valid.ForEachIn(ws - base, we - base, [&](uint64_t x, uint64_t y) {
            std::memcpy(win.buf + (base + x - win.offset), f->second.data.data() + x, y - x);
          });
        } else if (i == stop) {
          std::memset(dst, 0, we - ws);  // punched in this layer
        }
      }
    }
  }
  return Status::OK();
}

}  // namespace hyperfile::file
