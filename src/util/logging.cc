// SPDX-License-Identifier: Apache-2.0
#include "util/logging.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <utility>

namespace hyperfile {
namespace {

std::mutex log_mu;
std::shared_ptr<const LogHandler> log_handler;  // guarded by log_mu
std::atomic<bool> log_enabled{false};

}  // namespace

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

LogHandler SetLogHandler(LogHandler handler) {
  std::shared_ptr<const LogHandler> next;
  if (handler) next = std::make_shared<const LogHandler>(std::move(handler));
  std::shared_ptr<const LogHandler> previous;
  {
    std::lock_guard<std::mutex> lock(log_mu);
    previous = std::exchange(log_handler, next);
    log_enabled.store(next != nullptr, std::memory_order_release);
  }
  return previous ? *previous : LogHandler{};
}

bool LogEnabled() { return log_enabled.load(std::memory_order_acquire); }

void Log(LogLevel level, std::string_view message) {
  if (!LogEnabled()) return;
  std::shared_ptr<const LogHandler> handler;
  {
    std::lock_guard<std::mutex> lock(log_mu);
    handler = log_handler;
  }
  if (!handler) return;
  try {
    (*handler)(level, message);
  } catch (...) {
    // A failing log handler must not fail the operation that logged.
  }
}

}  // namespace hyperfile
