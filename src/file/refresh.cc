// SPDX-License-Identifier: Apache-2.0
// Following the head: File::Refresh on a read-only handle of the latest
// state, and the background refresh (docs/design/0007-follow-the-head.md).
//
// A refresh finds the newest checkpoint with the open path's head lookup
// (one LIST); when it is the handle's own, that is all it costs. Otherwise it
// reads the new head's header (one GET, which also brings the root and upper
// index levels), checks that the new head descends from the handle's state
// (same file id, block size and origins; the handle's checkpoint is in the
// new head's history, with the same commit time, size and root), collects
// the sizes of the checkpoints in between from the header's recent
// descriptors (and, for gaps of more than 64, a few older headers), and
// installs the new state under mu_ in one step. Caches stay: every object
// is immutable, and a segment id of a descendant is never reused.
#include <algorithm>

#include "file/file_impl.h"
#include "file/segment_io.h"

namespace hyperfile::file {

namespace {

// Headers read beyond the new head to learn the sizes of a long gap: each
// covers 65 checkpoints (itself and its recent descriptors). Past that the
// result says history_complete = false.
constexpr int kMaxHistoryHeaders = 7;

bool SameState(const format::Descriptor& a, const format::Descriptor& b) {
  return a.id == b.id && a.time_ms == b.time_ms && a.size == b.size && a.root == b.root &&
         a.height == b.height && a.allocated_blocks == b.allocated_blocks;
}

bool SameOrigins(const std::vector<format::Origin>& a, const std::vector<format::Origin>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (a[i].max_id != b[i].max_id || a[i].uri != b[i].uri) return false;
  }
  return true;
}

// Takes from `h` (itself, then its recent descriptors, descending) the
// descriptors of ids *next, *next - 1, ... down to stop + 1, lowering *next
// past each, and points *at_stop at the descriptor of `stop` if `h` has it.
// Returns false if the header's ids are not consecutive where they should
// be (an untrusted header: the caller then trusts nothing of the gap).
bool TakeDescriptors(const format::SegmentHeader& h, uint64_t stop, uint64_t* next,
                     std::vector<format::Descriptor>* out, const format::Descriptor** at_stop) {
  auto take = [&](const format::Descriptor& d) {
    if (d.id > *next) return true;    // already known
    if (d.id != *next) return false;  // a gap in the ids
    if (d.id == stop) {
      *at_stop = &d;
      return true;
    }
    out->push_back(d);
    (*next)--;
    return true;
  };
  if (!take(h.self)) return false;
  for (const format::Descriptor& d : h.recent) {
    if (*at_stop || d.id < stop) break;
    if (!take(d)) return false;
  }
  return true;
}

}  // namespace

void FileImpl::StartFollowing() {
  followable_ = true;
  if (options_.refresh_interval_ms > 0) refresher_ = std::thread([this] { RefresherLoop(); });
}

void FileImpl::RefresherLoop() {
  const auto interval = std::chrono::milliseconds(options_.refresh_interval_ms);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    refresh_cv_.wait_for(lock, interval, [&] { return stopping_ || closed_; });
    if (stopping_ || closed_) return;
    lock.unlock();
    Result<RefreshResult> r = Refresh();
    if (!r.ok()) {
      std::lock_guard<std::mutex> check(mu_);
      if (stopping_ || closed_) return;  // the handle closed under the refresh: not news
    }
    if (options_.on_refresh) {
      if (!r.ok()) {
        options_.on_refresh(r.status(), RefreshResult{});
      } else if (r->changed || r->removed || r->went_backwards || r->replaced) {
        options_.on_refresh(Status::OK(), *r);
      }
    }
    lock.lock();
  }
}

void FileImpl::StopRefresher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  refresh_cv_.notify_all();
  if (refresher_.joinable() && std::this_thread::get_id() != refresher_.get_id()) {
    refresher_.join();
  }
}

Result<RefreshResult> FileImpl::Refresh() {
  std::lock_guard<std::mutex> serial(refresh_mu_);
  RefreshResult r;
  format::SegmentHeader old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    HF_RETURN_IF_ERROR(CheckUsable(false));
    if (!followable_) {
      return Status::InvalidArgument(
          store_->Name() + ": refresh: " +
          (read_only_ ? "this handle is pinned at checkpoint " + std::to_string(head_.self.id) +
                            " (open the latest state read-only to follow the head)"
                      : std::string("a writable handle is the head; there is nothing to follow")));
    }
    old = head_;
    r.old_size = r.new_size = size_;
  }
  r.old_checkpoint = r.new_checkpoint = old.self.id;
  r.new_bytes_from = r.old_size;

  Result<uint64_t> latest = LatestCheckpointId(store_.get());
  if (!latest.ok()) {
    if (!latest.status().IsNotFound()) return latest.status().WithContext("refresh");
    r.removed = true;
    return r;
  }
  if (*latest == old.self.id) return r;  // the common case: one LIST
  if (*latest < old.self.id) {
    r.went_backwards = true;
    r.new_checkpoint = *latest;
    return r;
  }
  Result<HeaderRead> read = ReadHeader(store_.get(), *latest);
  if (!read.ok()) {
    // A removal marker reads as NotFound ("partly removed"), and so does a
    // head deleted between the LIST and the GET (a removal under way).
    if (!read.status().IsNotFound()) return read.status().WithContext("refresh");
    r.removed = true;
    return r;
  }
  const format::SegmentHeader& h = read->header;
  r.new_checkpoint = h.self.id;
  if (h.file_id != old.file_id || h.block_shift != old.block_shift ||
      !SameOrigins(h.origins, old.origins)) {
    r.replaced = true;
    return r;
  }

  // The checkpoints in (old, new], newest first, from the new head's header
  // and, for a long gap, older headers.
  std::vector<format::Descriptor> between;
  uint64_t next = h.self.id;
  const format::Descriptor* at_old = nullptr;
  bool consistent = TakeDescriptors(h, old.self.id, &next, &between, &at_old);
  std::vector<HeaderRead> older;  // keeps the descriptors' headers alive
  older.reserve(kMaxHistoryHeaders);
  for (int hop = 0; consistent && next > old.self.id && hop < kMaxHistoryHeaders; hop++) {
    Result<HeaderRead> more = ReadHeader(store_.get(), next);
    if (!more.ok()) {
      if (!more.status().IsNotFound()) return more.status().WithContext("refresh");
      r.removed = true;  // history deleted under us: a removal under way
      return r;
    }
    older.push_back(std::move(more).value());
    consistent = TakeDescriptors(older.back().header, old.self.id, &next, &between, &at_old);
  }
  if (!consistent) {
    r.replaced = true;  // a header whose history does not line up
    return r;
  }
  if (next > old.self.id) r.history_complete = false;  // too long a gap to read every size
  if (at_old) {
    if (!SameState(*at_old, old.self)) {
      r.replaced = true;  // our checkpoint is not in the new head's history
      return r;
    }
  } else {
    // Descent checked directly: the checkpoint right after ours names ours
    // (and its header's CRC) as its parent.
    const format::SegmentHeader* child = h.self.id == old.self.id + 1 ? &h : nullptr;
    for (const HeaderRead& o : older) {
      if (o.header.self.id == old.self.id + 1) child = &o.header;
    }
    Result<HeaderRead> read_child = Status::NotFound("");
    if (!child) {
      read_child = ReadHeader(store_.get(), old.self.id + 1);
      if (!read_child.ok()) {
        if (!read_child.status().IsNotFound()) return read_child.status().WithContext("refresh");
        r.removed = true;
        return r;
      }
      child = &read_child->header;
    }
    if (child->parent != old.self.id || child->parent_crc != old.crc) {
      r.replaced = true;
      return r;
    }
  }

  // Oldest first: truncations lower where new bytes start, a restore sets it.
  uint64_t from = r.old_size, prev = r.old_size;
  for (auto it = between.rbegin(); it != between.rend(); ++it) {
    if (it->restored_from != 0) {
      r.restored = true;
      r.restored_from = it->restored_from;
      r.restored_size = it->size;
      from = it->size;
    } else if (it->size < prev) {
      r.truncated = true;
      from = std::min(from, it->size);
    }
    prev = it->size;
  }
  if (!r.history_complete && h.self.size < r.old_size && !r.restored) r.truncated = true;
  r.new_size = h.self.size;
  r.new_bytes_from = std::min(from, r.new_size);
  r.changed = true;

  // The root and upper index levels arrived with the header, and so did a
  // small flush's inline data.
  nodes_->Seed(*read);
  chunks_->SeedPrefix(h.self.id, std::make_shared<const std::string>(read->bytes));
  if (test_hook_) test_hook_("refresh:install");
  std::lock_guard<std::mutex> lock(mu_);
  HF_RETURN_IF_ERROR(CheckUsable(false));
  head_ = h;
  root_.ref = h.self.root;
  root_.height = h.self.height;
  root_.blocks = h.self.allocated_blocks;
  size_ = h.self.size;
  mtime_ms_ = h.self.time_ms;
  return r;
}

}  // namespace hyperfile::file
