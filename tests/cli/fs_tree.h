// SPDX-License-Identifier: Apache-2.0
// What a directory holds, to check that a command left a user's files alone.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

namespace hyperfile::testing {

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void WriteFileBytes(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

// Every regular file under `dir` (relative path -> content), skipping the
// local store's machinery (.hflock/, .hftmp/) at any depth.
inline std::map<std::string, std::string> Tree(const std::string& dir) {
  namespace fs = std::filesystem;
  std::map<std::string, std::string> files;
  if (!fs::exists(dir)) return files;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::end(it); ++it) {
    std::string name = it->path().filename().string();
    if (it->is_directory() && (name == ".hflock" || name == ".hftmp")) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) {
      files[fs::relative(it->path(), dir).generic_string()] = ReadFileBytes(it->path().string());
    }
  }
  return files;
}

// What changed from `before` to `after`, one path per line ("" = nothing):
// short enough to read in a failure message.
inline std::string TreeDiff(const std::map<std::string, std::string>& before,
                            const std::map<std::string, std::string>& after) {
  std::string diff;
  for (const auto& [path, content] : before) {
    auto found = after.find(path);
    if (found == after.end()) {
      diff += "deleted: " + path + "\n";
    } else if (found->second != content) {
      diff += "changed: " + path + "\n";
    }
  }
  for (const auto& [path, content] : after) {
    if (!before.contains(path)) diff += "added: " + path + "\n";
  }
  return diff;
}

}  // namespace hyperfile::testing
