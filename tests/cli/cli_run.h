// SPDX-License-Identifier: Apache-2.0
// Runs the built `hyperfile` binary for the end-to-end tests of the command.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace hyperfile::testing {

struct CliRun {
  int code = -1;
  std::string out, err;
  // The error output is exactly one line (the "hyperfile: error: ..." line).
  bool OneLineError() const {
    return std::count(err.begin(), err.end(), '\n') == 1 && err.back() == '\n';
  }
};

// Runs `<shell_prefix> hyperfile <args>` through /bin/sh (args are
// shell-quoted by the caller), stdin from `input`, output captured.
// shell_prefix may set variables ("AWS_REGION=x") or limits ("ulimit -f 64;").
inline CliRun RunHyperfile(const std::string& args, const std::string& input = "",
                           const std::string& shell_prefix = "") {
  static int serial = 0;
  std::string base = std::filesystem::temp_directory_path().string() + "/hfcli." +
                     std::to_string(getpid()) + "." + std::to_string(serial++);
  std::ofstream(base + ".in") << input;
  std::string cmd = shell_prefix + " " + std::string(HYPERFILE_BUILD_DIR) + "/hyperfile " + args +
                    " <" + base + ".in >" + base + ".out 2>" + base + ".err";
  CliRun r;
  int status = std::system(cmd.c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream o(base + ".out"), e(base + ".err");
  r.out.assign(std::istreambuf_iterator<char>(o), {});
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  for (const char* ext : {".in", ".out", ".err"}) std::filesystem::remove(base + ext);
  return r;
}

}  // namespace hyperfile::testing
