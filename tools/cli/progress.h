// SPDX-License-Identifier: Apache-2.0
// A one-line progress bar on stderr for long copies.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace hyperfile::cli {

// "1.5 GiB", "512.0 MiB", "12 B".
std::string HumanBytes(double bytes);

class ProgressBar {
 public:
  // What is counted: bytes (sizes and a rate in bytes) or items (objects).
  enum class Unit { kBytes, kCount };
  // A total not known in advance (a pipe): the bar shows what was done and
  // the rate, without a percentage or ETA.
  static constexpr uint64_t kUnknownTotal = UINT64_MAX;

  // Draws only when enabled (the caller decides: a terminal, not --quiet).
  ProgressBar(bool enabled, uint64_t total, Unit unit = Unit::kBytes);

  // Redraws with `done` bytes finished, at most ten times a second.
  void Update(uint64_t done);
  // Replaces the bar with a short status ("flushing ...").
  void Note(const std::string& text);
  // Erases the line, leaving the cursor at its start.
  void Clear();
  // Seconds since the bar was made.
  double Elapsed() const;

 private:
  void Draw(const std::string& line);

  bool enabled_;
  uint64_t total_;
  Unit unit_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_{};
  bool drawn_ = false;
};

}  // namespace hyperfile::cli
