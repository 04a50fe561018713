// SPDX-License-Identifier: Apache-2.0
// Internal side of the logging hook (hyperfile/log.h).
#pragma once

#include <string_view>

#include "hyperfile/log.h"

namespace hyperfile {

// Whether a handler is installed (cheap: one atomic load), so callers can
// skip building a message nobody reads.
bool LogEnabled();

// Passes the message to the installed handler, if any. Exceptions thrown by
// the handler are swallowed (a log line must never fail an operation).
void Log(LogLevel level, std::string_view message);

}  // namespace hyperfile
