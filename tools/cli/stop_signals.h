// SPDX-License-Identifier: Apache-2.0
// Stopping a long command cleanly on SIGINT, SIGTERM or SIGHUP (cp, gc).
//
// While a StopSignals guard is alive, the first such signal only sets a flag
// (StopRequested()): the command stops at its next safe point, cleans up and
// exits 130 itself (a compaction commits what it rewrote and releases its
// lease; a copy removes its temporary file). A second signal exits at once
// with 130, removing the one file armed with ArmUnlink (the only cleanup that
// is async-signal-safe). Outside a guard the default handler
// (conventions.cc) exits at once. One guard at a time.
#pragma once

#include <signal.h>

#include <array>
#include <string>

namespace hyperfile::cli {

bool StopRequested();

class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Remembers a temporary file for the second-signal exit (paths of
  // PATH_MAX bytes or more are not armed).
  void ArmUnlink(const std::string& path);

 private:
  static constexpr std::array<int, 3> kSignals = {SIGINT, SIGTERM, SIGHUP};
  std::array<struct sigaction, 3> previous_{};
  sighandler_t previous_xfsz_ = SIG_DFL;
};

}  // namespace hyperfile::cli
