// SPDX-License-Identifier: Apache-2.0
// FrameBuffers: the flush pipeline's frame buffers, kept between flights of
// a busy handle instead of being freed and mapped afresh for every flush.
//
// A flush of a compressed or encrypted file writes its frames into one
// buffer per part (flush_pipeline.cc, CompressBlocks), each tens of MiB:
// far above glibc's mmap threshold, so every flight used to map fresh pages
// and fault each 4 KiB of them in again (65,536 page faults and about as
// much kernel time as the cipher itself per 256 MiB written; issue 12).
// A stream of flights now reuses the same resident pages.
//
// Memory: buffers are kept only while the handle is busy. The pipeline
// calls Drop() when it goes idle (no flight left), so an idle handle holds
// none, and the peak is what the flights in the pipeline need anyway (at
// most `max_kept` buffers are kept; more are freed on Give).
//
// Thread-safety: every method may be called from any thread (own mutex).
// Contents are never shared: a buffer is owned by whoever took it.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace hyperfile::file {

class FrameBuffers {
 public:
  // Keeps at most max_kept buffers (0 keeps none: Take always allocates).
  explicit FrameBuffers(size_t max_kept) : max_kept_(max_kept) {}
  FrameBuffers(const FrameBuffers&) = delete;
  FrameBuffers& operator=(const FrameBuffers&) = delete;

  // An empty string with capacity() >= `capacity`: the smallest kept buffer
  // that is large enough, else the largest kept one grown (or a new one).
  std::string Take(size_t capacity);
  // Returns a buffer (its contents are discarded; its pages stay mapped).
  // Freed at once if max_kept buffers are kept already or it is smaller
  // than kMinKeptBytes (not worth keeping).
  static constexpr size_t kMinKeptBytes = size_t{64} << 10;
  void Give(std::string buffer);
  // Frees every kept buffer.
  void Drop();
  // What is kept now (tests and metrics).
  size_t kept() const;
  size_t kept_bytes() const;

 private:
  const size_t max_kept_;
  mutable std::mutex mu_;
  std::vector<std::string> kept_;  // guarded by mu_
};

}  // namespace hyperfile::file
