// SPDX-License-Identifier: Apache-2.0
#include "cli/stop_signals.h"

#include <limits.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "cli/conventions.h"

namespace hyperfile::cli {
namespace {

std::atomic<int> g_signals{0};
static_assert(std::atomic<int>::is_always_lock_free);
char g_unlink_on_second_signal[PATH_MAX];
std::atomic<bool> g_unlink_armed{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void OnStopSignal(int) {
  if (g_signals.fetch_add(1) == 0) return;
  if (g_unlink_armed.load()) ::unlink(g_unlink_on_second_signal);
  ::_exit(kExitInterrupted);
}

}  // namespace

bool StopRequested() { return g_signals.load() > 0; }

StopSignals::StopSignals() {
  struct sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // the library's I/O carries on; workers poll the flag
  for (size_t i = 0; i < kSignals.size(); i++) sigaction(kSignals[i], &action, &previous_[i]);
  // Past RLIMIT_FSIZE a write should fail (and be cleaned up), not kill us.
  previous_xfsz_ = ::signal(SIGXFSZ, SIG_IGN);
}

StopSignals::~StopSignals() {
  g_unlink_armed.store(false);
  for (size_t i = 0; i < kSignals.size(); i++) sigaction(kSignals[i], &previous_[i], nullptr);
  ::signal(SIGXFSZ, previous_xfsz_);
}

void StopSignals::ArmUnlink(const std::string& path) {
  if (path.empty() || path.size() >= sizeof g_unlink_on_second_signal) return;
  std::memcpy(g_unlink_on_second_signal, path.c_str(), path.size() + 1);
  g_unlink_armed.store(true);
}

}  // namespace hyperfile::cli
