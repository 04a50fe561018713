// SPDX-License-Identifier: Apache-2.0
// The write buffer: dirty blocks that have not been committed yet, and the
// one statement of which dirty data wins over which.
//
// A handle's unflushed state is a stack of batches over the committed tree:
// the current batch (takes new writes) on top, then the frozen batches of
// the flushes in flight, newest first. A write never reads: it records the
// bytes it wrote as ranges over a base it has not seen. Whoever needs the
// bytes (a reader, or a flush that must store whole blocks) reads through
// the stack with ReadThroughLayers: for each block the newest layer that
// covers the bytes wins, partial layers above it are overlaid oldest first,
// and only what no layer covers is read from below (the committed tree), in
// one call so its GETs can run in parallel. Nothing here touches a store or
// a lock: FileImpl owns the locking, the flush pipeline owns the layers.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "file/interval_set.h"
#include "hyperfile/status.h"

namespace hyperfile::file {

// One dirty block of a batch: the bytes written to it since the batch
// began, over a base (the block's content in the layers below) that was never
// read. `valid` holds the written byte ranges (offsets inside the block);
// `data` is block_size bytes, zero outside `valid`. A block whose `valid`
// covers all of it is full and needs no base.
struct DirtyBlock {
  std::string data;
  IntervalSet valid;
  bool full(uint64_t block_size) const { return valid.Covers(0, block_size); }
};

// The mutations of one batch. Invariants: a block in `blocks` wins over a
// punch of it (a write after a punch starts from known zeros and is full; a
// punch after a write erases the block), so a partial block is never also
// punched.
struct Batch {
  std::map<uint64_t, DirtyBlock> blocks;
  IntervalSet punched;  // block ranges that became holes
  bool empty() const { return blocks.empty() && punched.empty(); }

  // Writes bytes [lo, hi) of block b (offsets inside the block, lo < hi <=
  // block_size): `data` (hi - lo bytes) or zeros when data is null. A whole
  // block of zeros becomes a punch (a hole, no data).
  void Write(uint64_t b, uint64_t lo, uint64_t hi, const char* data, uint64_t block_size);
  // The batch's part of a truncate to `size` bytes: blocks from
  // ceil(size / block_size) on become a hole, and the tail of the last kept
  // block is written as zeros (a range over its unread base) so a later
  // grow reads zeros there.
  void TruncateTo(uint64_t size, uint64_t block_size);
};

// Lays `newer` over `older` (newer punches erase older blocks; a newer full
// block replaces; a newer partial block is overlaid on the older one's
// bytes, or on known zeros when the older batch punched it). Used when a
// failed flush puts its batches back under the writes that arrived since.
void LayerOver(Batch&& newer, Batch* older, uint64_t block_size);

// One layer of the stack for reading: a batch and, for a frozen batch whose
// flush has fetched its bases, the full content of its partial blocks
// (`merged`, may be null), which then count as full.
struct Layer {
  const Batch* batch = nullptr;
  const std::map<uint64_t, std::string>* merged = nullptr;
};

// Bytes [offset, offset+len) of the file, to be read into buf.
struct Window {
  uint64_t offset = 0, len = 0;
  char* buf = nullptr;
};
// A read from below the layers: logical bytes [offset, offset+len) inside
// blocks [b0, b1) into buf.
struct BelowRead {
  uint64_t b0, b1, offset, len;
  char* buf;
};
using ReadBelow = std::function<Status(const std::vector<BelowRead>&)>;

// Fills every window from `layers` (newest first) over what `read_below`
// returns. read_below is called at most once, with every piece no layer
// covers completely (adjacent blocks of one window coalesced); it is not
// called when the layers cover everything.
Status ReadThroughLayers(const std::vector<Window>& windows, const std::vector<Layer>& layers,
                         uint64_t block_size, const ReadBelow& read_below);

}  // namespace hyperfile::file
