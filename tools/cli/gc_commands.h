// SPDX-License-Identifier: Apache-2.0
// The space-reclamation subcommands: gc, du, policy, ls, flatten.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>

namespace hyperfile::cli {

struct GcCommands;
// Adds the subcommands to `app`; the result holds their options.
std::shared_ptr<GcCommands> AddGcCommands(CLI::App& app);
// Runs the one of them that was given; -1 if none was. Prints JSON under
// --json; errors as conventions.h says (exit 1, or 2 for a bad value).
int RunGcCommands(GcCommands& commands);

}  // namespace hyperfile::cli
