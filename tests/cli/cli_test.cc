// SPDX-License-Identifier: Apache-2.0
// End-to-end tests of the `hyperfile` command on the local-directory store.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_run.h"

namespace {

using hyperfile::testing::CliRun;

CliRun Hyperfile(const std::string& args, const std::string& input = "") {
  return hyperfile::testing::RunHyperfile(args, input);
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path().string() + "/hfcli-" + std::to_string(getpid());
    std::filesystem::remove_all(dir_);
    uri_ = dir_ + "/file";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_, uri_;
};

TEST_F(Cli, WriteReadTimeTravelSnapshotsRestoreClone) {
  ASSERT_EQ(Hyperfile("create " + uri_ + " --block-size 4K --size 1M").code, 0);
  CliRun w = Hyperfile("write " + uri_ + " --offset 4096 -", "hello");
  ASSERT_EQ(w.code, 0) << w.err;
  EXPECT_NE(w.out.find("checkpoint 2"), std::string::npos) << w.out;
  ASSERT_EQ(Hyperfile("write " + uri_ + " --offset 4096 -", "HELLO").code, 0);
  EXPECT_EQ(Hyperfile("read " + uri_ + " --offset 4096 --length 5").out, "HELLO");
  EXPECT_EQ(Hyperfile("read " + uri_ + " --offset 4096 --length 5 --at 2").out, "hello");
  ASSERT_EQ(Hyperfile("snapshot create " + uri_ + " first --at 2").code, 0);
  EXPECT_NE(Hyperfile("snapshot list " + uri_).out.find("first"), std::string::npos);
  EXPECT_EQ(Hyperfile("read " + uri_ + " --offset 4096 --length 5 --at first").out, "hello");
  CliRun log = Hyperfile("--json log " + uri_);
  ASSERT_EQ(log.code, 0);
  EXPECT_NE(log.out.find("\"first\""), std::string::npos);
  ASSERT_EQ(Hyperfile("restore " + uri_ + " --to first").code, 0);
  EXPECT_EQ(Hyperfile("read " + uri_ + " --offset 4096 --length 5").out, "hello");
  ASSERT_EQ(Hyperfile("clone " + uri_ + "@3 " + dir_ + "/copy").code, 0);
  EXPECT_EQ(Hyperfile("read " + dir_ + "/copy --offset 4096 --length 5").out, "HELLO");
  CliRun diff = Hyperfile("diff " + uri_ + " 1 2");
  EXPECT_EQ(diff.out, "4096\t4096\n");
  CliRun stat = Hyperfile("--json stat " + uri_);
  EXPECT_NE(stat.out.find("\"size\": 1048576"), std::string::npos) << stat.out;
  EXPECT_EQ(Hyperfile("verify " + uri_ + " --deep").code, 0);
  ASSERT_EQ(Hyperfile("truncate " + uri_ + " 10").code, 0);
  EXPECT_EQ(Hyperfile("read " + uri_).out, std::string(10, '\0'));
  CliRun a = Hyperfile("append " + uri_ + " -", "tail");
  ASSERT_EQ(a.code, 0);
  EXPECT_EQ(Hyperfile("read " + uri_ + " --offset 10").out, "tail");
}

// create --compression, cp --compression, and stat's codec and stored bytes.
TEST_F(Cli, CompressionAtCreateAndCopyShowsInStat) {
  std::string text;
  while (text.size() < (1 << 20)) text += "compressible line " + std::to_string(text.size()) + "\n";
  text.resize(1 << 20);
  const std::string input = dir_ + "-input";
  { std::ofstream(input, std::ios::binary) << text; }
  ASSERT_EQ(Hyperfile("create " + uri_ + " --compression lz4").code, 0);
  ASSERT_EQ(Hyperfile("write " + uri_ + " --offset 0 " + input).code, 0);
  CliRun stat = Hyperfile("--json stat " + uri_);
  ASSERT_EQ(stat.code, 0) << stat.err;
  EXPECT_NE(stat.out.find("\"compression\": \"lz4\""), std::string::npos) << stat.out;
  EXPECT_NE(stat.out.find("\"logical_bytes\": 1048576"), std::string::npos) << stat.out;
  auto json = nlohmann::json::parse(stat.out);
  EXPECT_LT(json["stored_bytes"].get<uint64_t>(), 1048576u / 2);
  EXPECT_GT(json["ratio"].get<double>(), 2.0);
  ASSERT_EQ(Hyperfile("cp -q " + input + " file://" + dir_ + "/raw --compression none").code, 0);
  CliRun raw = Hyperfile("stat file://" + dir_ + "/raw");
  EXPECT_NE(raw.out.find("codec:       none"), std::string::npos) << raw.out;
  EXPECT_NE(raw.out.find("ratio 1.00"), std::string::npos) << raw.out;
  ASSERT_EQ(Hyperfile("cp -q " + input + " file://" + dir_ + "/z --compression zstd:5").code, 0);
  EXPECT_NE(Hyperfile("stat file://" + dir_ + "/z").out.find("codec:       zstd:5"),
            std::string::npos);
  EXPECT_EQ(Hyperfile("read file://" + dir_ + "/z").out, text);
  EXPECT_EQ(Hyperfile("verify file://" + dir_ + "/z --deep").code, 0);
  EXPECT_NE(Hyperfile("create " + dir_ + "/bad --compression gzip").code, 0);
  EXPECT_NE(Hyperfile("cp -q " + input + " file://" + dir_ + "/bad2 --compression zstd:99").code,
            0);
  std::filesystem::remove(input);
}

TEST_F(Cli, ErrorsAreOneLineAndNonZero) {
  CliRun missing = Hyperfile("read " + uri_);
  EXPECT_NE(missing.code, 0);
  EXPECT_EQ(missing.err.rfind("hyperfile: error: NotFound", 0), 0u) << missing.err;
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1);
  EXPECT_NE(Hyperfile("stat ftp://x").code, 0);
  ASSERT_EQ(Hyperfile("create " + uri_).code, 0);
  EXPECT_NE(Hyperfile("create " + uri_).code, 0);
  CliRun nock = Hyperfile("read " + uri_ + " --at 99");
  EXPECT_NE(nock.code, 0);
  EXPECT_NE(nock.err.find("checkpoint 99"), std::string::npos);
  EXPECT_NE(Hyperfile("create " + dir_ + "/x --block-size 3000").code, 0);
  CliRun rm = Hyperfile("rm " + uri_);  // stdin is not a terminal: refuse
  EXPECT_NE(rm.code, 0);
  EXPECT_EQ(Hyperfile("rm " + uri_ + " --yes").code, 0);
  EXPECT_NE(Hyperfile("stat " + uri_).code, 0);
}

TEST_F(Cli, DemoRuns) {
  CliRun d = Hyperfile("demo " + dir_ + "/demo");
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_NE(d.out.find("verify: healthy"), std::string::npos) << d.out;
}

}  // namespace
