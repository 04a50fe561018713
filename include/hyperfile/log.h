// SPDX-License-Identifier: Apache-2.0
// A logging hook: the library calls it for events an application may want to
// see or record (retries, throttling, slow requests). hyperfile never writes
// to stdout or stderr on its own; without a handler these events are dropped.
#pragma once

#include <functional>
#include <string_view>

#include "hyperfile/export.h"

namespace hyperfile {

enum class LogLevel : int {
  kDebug = 0,
  kInfo = 1,
  kWarning = 2,  // a retried request, throttling, a slow request
  kError = 3,    // a request that failed after its retries
};

// "debug", "info", "warning", "error".
HYPERFILE_EXPORT std::string_view LogLevelName(LogLevel level);

// The handler is called on the thread that saw the event, possibly from
// many threads at once (it must be thread-safe), and must not call back into
// hyperfile. The message is one line without a trailing newline, naming the
// store, the key and the error; it never contains credentials.
using LogHandler = std::function<void(LogLevel level, std::string_view message)>;

// Installs the process-wide handler (an empty function removes it) and
// returns the previous one. Thread-safe: a call in progress on another
// thread may still reach the previous handler, which stays alive until that
// call returns.
HYPERFILE_EXPORT LogHandler SetLogHandler(LogHandler handler);

}  // namespace hyperfile
