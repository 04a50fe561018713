// SPDX-License-Identifier: Apache-2.0
// End-to-end tests of the `hyperfile` command against an S3 server (skipped
// unless HYPERFILE_TEST_S3_URI is set; scripts/local-s3.sh starts one).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <string>

#include "cli/cli_run.h"
#include "cli/fs_tree.h"
#include "hyperfile/object_store.h"
#include "support/store_testing.h"

namespace hyperfile::testing {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A 4 MiB local file: random data with a 2 MiB hole in the middle.
std::string MakeLocalFile(const std::string& path) {
  std::mt19937_64 rng(42);
  std::string content(4 << 20, '\0');
  for (size_t i = 0; i < content.size(); i++) {
    if (i < (1 << 20) || i >= (3 << 20)) content[i] = static_cast<char>(rng());
  }
  std::ofstream(path, std::ios::binary) << content;
  return content;
}

class CliS3 : public ::testing::Test {
 protected:
  void SetUp() override {
    HF_REQUIRE_S3();
    uri_ = UniqueS3Uri("cli");
    clone_ = UniqueS3Uri("cli-clone");
    copy_ = UniqueS3Uri("cli-copy");
  }
  // Best effort: whatever a failed test left behind.
  void TearDown() override {
    if (uri_.empty()) return;
    for (const std::string& u : {uri_, clone_, copy_}) (void)RunHyperfile("rm " + u + " --yes");
  }
  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }

  TempDir dir_;
  std::string uri_, clone_, copy_;
};

TEST_F(CliS3, SubcommandsEndToEnd) {
  ASSERT_EQ(RunHyperfile("create " + uri_ + " --block-size 4K --size 1M").code, 0);
  CliRun w = RunHyperfile("write " + uri_ + " --offset 4096 -", "hello");
  ASSERT_EQ(w.code, 0) << w.err;
  EXPECT_NE(w.out.find("checkpoint 2"), std::string::npos) << w.out;
  ASSERT_EQ(RunHyperfile("write " + uri_ + " --offset 4096 -", "HELLO").code, 0);
  EXPECT_EQ(RunHyperfile("read " + uri_ + " --offset 4096 --length 5").out, "HELLO");
  EXPECT_EQ(RunHyperfile("read " + uri_ + " --offset 4096 --length 5 --at 2").out, "hello");
  CliRun log = RunHyperfile("--json log " + uri_);
  ASSERT_EQ(log.code, 0) << log.err;
  EXPECT_NE(log.out.find("\"id\": 3"), std::string::npos) << log.out;

  ASSERT_EQ(RunHyperfile("snapshot create " + uri_ + " first --at 2").code, 0);
  EXPECT_NE(RunHyperfile("snapshot list " + uri_).out.find("first"), std::string::npos);
  CliRun restored = RunHyperfile("restore " + uri_ + " --to first");
  ASSERT_EQ(restored.code, 0) << restored.err;
  EXPECT_EQ(RunHyperfile("read " + uri_ + " --offset 4096 --length 5").out, "hello");

  CliRun clone = RunHyperfile("clone " + uri_ + "@3 " + clone_);
  ASSERT_EQ(clone.code, 0) << clone.err;
  EXPECT_EQ(RunHyperfile("read " + clone_ + " --offset 4096 --length 5").out, "HELLO");
  EXPECT_EQ(RunHyperfile("diff " + uri_ + " 1 2").out, "4096\t4096\n");
  CliRun verify = RunHyperfile("verify " + uri_ + " --deep");
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;
  CliRun stat = RunHyperfile("--json stat " + uri_);
  EXPECT_NE(stat.out.find("\"size\": 1048576"), std::string::npos) << stat.out;
  EXPECT_NE(stat.out.find("\"block_size\": 4096"), std::string::npos) << stat.out;

  EXPECT_EQ(RunHyperfile("rm " + clone_ + " --yes").code, 0);
  EXPECT_EQ(RunHyperfile("rm " + uri_ + " --yes").code, 0);
  CliRun gone = RunHyperfile("stat " + uri_);
  EXPECT_NE(gone.code, 0);
  EXPECT_NE(gone.err.find("NotFound"), std::string::npos) << gone.err;
}

TEST_F(CliS3, CopyBothWaysAndFromAnOldCheckpoint) {
  std::string content = MakeLocalFile(Path("src.bin"));
  CliRun up = RunHyperfile("cp " + Path("src.bin") + " " + uri_ + " --block-size 256K");
  ASSERT_EQ(up.code, 0) << up.err;
  CliRun stat = RunHyperfile("--json stat " + uri_);
  EXPECT_NE(stat.out.find("\"allocated_bytes\": 2097152"), std::string::npos) << stat.out;
  ASSERT_EQ(RunHyperfile("write " + uri_ + " --offset 0 -", "newer").code, 0);

  CliRun down = RunHyperfile("cp " + uri_ + "@2 " + Path("back.bin"));
  ASSERT_EQ(down.code, 0) << down.err;
  EXPECT_TRUE(ReadAll(Path("back.bin")) == content);
  CliRun s3_to_s3 = RunHyperfile("cp " + uri_ + "@2 " + copy_);
  ASSERT_EQ(s3_to_s3.code, 0) << s3_to_s3.err;
  ASSERT_EQ(RunHyperfile("cp " + copy_ + " " + Path("copy.bin")).code, 0);
  EXPECT_TRUE(ReadAll(Path("copy.bin")) == content);
  EXPECT_EQ(RunHyperfile("read " + uri_ + " --length 5").out, "newer");

  CliRun again = RunHyperfile("cp " + Path("src.bin") + " " + copy_);
  EXPECT_NE(again.code, 0);
  EXPECT_TRUE(again.OneLineError()) << again.err;
  EXPECT_EQ(RunHyperfile("cp " + Path("src.bin") + " " + copy_ + " --force").code, 0);
}

TEST_F(CliS3, ErrorsAreOneLine) {
  CliRun missing = RunHyperfile("read " + uri_);
  EXPECT_NE(missing.code, 0);
  EXPECT_TRUE(missing.OneLineError()) << missing.err;
  EXPECT_EQ(missing.err.rfind("hyperfile: error: NotFound", 0), 0u) << missing.err;
  CliRun missing_cp = RunHyperfile("cp " + uri_ + " " + Path("x.bin"));
  EXPECT_NE(missing_cp.code, 0);
  EXPECT_TRUE(missing_cp.OneLineError()) << missing_cp.err;
  EXPECT_FALSE(std::filesystem::exists(Path("x.bin")));

  ASSERT_EQ(RunHyperfile("create " + uri_).code, 0);
  CliRun no_checkpoint = RunHyperfile("read " + uri_ + " --at 99");
  EXPECT_NE(no_checkpoint.code, 0);
  EXPECT_TRUE(no_checkpoint.OneLineError()) << no_checkpoint.err;
  EXPECT_NE(no_checkpoint.err.find("checkpoint 99"), std::string::npos) << no_checkpoint.err;
  CliRun no_snapshot = RunHyperfile("cp " + uri_ + "@nosuchsnap " + Path("x.bin"));
  EXPECT_NE(no_snapshot.code, 0);
  EXPECT_TRUE(no_snapshot.OneLineError()) << no_snapshot.err;
}

TEST_F(CliS3, BadCredentialsSayAuthAndNeverShowTheSecret) {
  ASSERT_EQ(RunHyperfile("create " + uri_).code, 0);
  const std::string secret = "WrongSecretKey0123456789abcdefXYZ";
  // No retries to wait out: an auth failure is not retried anyway.
  const std::string env = "AWS_SECRET_ACCESS_KEY=" + secret;
  MakeLocalFile(Path("src.bin"));
  for (const std::string& args : {"stat " + uri_, "log " + uri_, "cp " + uri_ + " " + Path("x.bin"),
                                  "cp " + Path("src.bin") + " " + copy_}) {
    CliRun r = RunHyperfile(args, "", env);
    EXPECT_NE(r.code, 0) << args;
    EXPECT_TRUE(r.OneLineError()) << args << ": " << r.err;
    EXPECT_EQ(r.err.rfind("hyperfile: error: Auth", 0), 0u) << args << ": " << r.err;
    EXPECT_EQ(r.err.find(secret), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find(secret), std::string::npos) << r.out;
  }
  EXPECT_FALSE(std::filesystem::exists(Path("x.bin")));
}

// Every object under `uri` (key -> content).
std::map<std::string, std::string> Objects(const std::string& uri) {
  std::map<std::string, std::string> objects;
  auto store = OpenStore(uri);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return objects;
  std::vector<ObjectInfo> list;
  EXPECT_TRUE((*store)->List("", "", 0, &list).ok());
  for (const ObjectInfo& o : list) {
    std::string content;
    EXPECT_TRUE((*store)->Get(o.key, &content).ok()) << o.key;
    objects[o.key] = content;
  }
  return objects;
}

// Cleanup after a failed copy into a bucket prefix that holds other objects
// and another hyperfile: the copy's own file goes, nothing else. The source
// (a local hyperfile with damaged data) fails mid-way. (Depends on
// RemoveFile honouring keep_foreign.)
TEST_F(CliS3, FailedCopyIntoAPrefixWithOtherObjectsLeavesThemAlone) {
  // The bad source: a local hyperfile whose biggest segment is damaged.
  std::mt19937_64 rng(5);
  std::string dense(8 << 20, '\0');
  for (char& c : dense) c = static_cast<char>(rng() | 1);
  std::ofstream(Path("dense.bin"), std::ios::binary) << dense;
  std::string bad = "file://" + Path("bad");
  ASSERT_EQ(RunHyperfile("cp " + Path("dense.bin") + " " + bad).code, 0);
  std::filesystem::path biggest;
  for (const auto& e : std::filesystem::directory_iterator(Path("bad") + "/seg")) {
    if (biggest.empty() || e.file_size() > std::filesystem::file_size(biggest)) biggest = e.path();
  }
  ASSERT_FALSE(biggest.empty());
  {
    std::fstream f(biggest, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(biggest) / 2));
    f.write("\xde\xad\xbe\xef\xde\xad\xbe\xef", 8);
  }
  // The destination prefix: a user's objects and another hyperfile below it.
  auto store = OpenStore(uri_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_TRUE((*store)->Put("report.pdf", std::string(100000, 'r')).ok());
  ASSERT_TRUE((*store)->Put("backups/2025/db.dump", "a database dump").ok());
  ASSERT_TRUE((*store)->Put("seg-notes.txt", "not a segment").ok());
  std::string content = MakeLocalFile(Path("small.bin"));
  ASSERT_EQ(RunHyperfile("cp " + Path("small.bin") + " " + uri_ + "/nested").code, 0);
  auto before = Objects(uri_);
  ASSERT_EQ(before.size(), 3 + Objects(uri_ + "/nested").size());

  CliRun r = RunHyperfile("cp " + bad + " " + uri_);
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(r.OneLineError()) << r.err;
  EXPECT_NE(r.err.find("Corrupt"), std::string::npos) << r.err;
  auto after = Objects(uri_);
  EXPECT_EQ(TreeDiff(before, after), "") << r.err;
  ASSERT_EQ(RunHyperfile("cp " + uri_ + "/nested " + Path("back.bin")).code, 0);
  EXPECT_TRUE(ReadAll(Path("back.bin")) == content);

  // The test's own prefix: take everything away.
  std::vector<std::string> keys;
  for (const auto& [key, value] : after) keys.push_back(key);
  EXPECT_TRUE((*store)->DeleteMany(keys).ok());
}

}  // namespace
}  // namespace hyperfile::testing
