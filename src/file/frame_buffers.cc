// SPDX-License-Identifier: Apache-2.0
#include "file/frame_buffers.h"

#include <utility>

namespace hyperfile::file {

std::string FrameBuffers::Take(size_t capacity) {
  std::string out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    size_t best = kept_.size(), largest = kept_.size();
    for (size_t i = 0; i < kept_.size(); i++) {
      const size_t c = kept_[i].capacity();
      if (c >= capacity && (best == kept_.size() || c < kept_[best].capacity())) best = i;
      if (largest == kept_.size() || c > kept_[largest].capacity()) largest = i;
    }
    const size_t pick = best != kept_.size() ? best : largest;
    if (pick != kept_.size()) {
      out = std::move(kept_[pick]);
      kept_[pick] = std::move(kept_.back());
      kept_.pop_back();
    }
  }
  // Growing (or the first allocation) happens outside the lock.
  out.clear();
  out.reserve(capacity);
  return out;
}

void FrameBuffers::Give(std::string buffer) {
  if (buffer.capacity() < kMinKeptBytes) return;
  buffer.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (kept_.size() < max_kept_) {
      kept_.push_back(std::move(buffer));
      return;
    }
  }
  // `buffer` is freed here, outside the lock.
}

void FrameBuffers::Drop() {
  std::vector<std::string> freed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    freed.swap(kept_);
  }
}

size_t FrameBuffers::kept() const {
  std::lock_guard<std::mutex> lock(mu_);
  return kept_.size();
}

size_t FrameBuffers::kept_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const std::string& s : kept_) n += s.capacity();
  return n;
}

}  // namespace hyperfile::file
