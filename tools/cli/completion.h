// SPDX-License-Identifier: Apache-2.0
// The bash completion script of `hyperfile`, made from the CLI11 definition
// of its subcommands and options (so it never falls behind them). The build
// runs `hyperfile --print-bash-completion` and installs the result.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace hyperfile::cli {

// A bash script that defines and registers the completion function.
std::string BashCompletion(CLI::App& app);

}  // namespace hyperfile::cli
