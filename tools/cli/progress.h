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
  // Draws only when enabled (the caller decides: a terminal, not --quiet).
  ProgressBar(bool enabled, uint64_t total_bytes);

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
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_{};
  bool drawn_ = false;
};

}  // namespace hyperfile::cli
