// SPDX-License-Identifier: Apache-2.0
// The space-reclamation commands as a user runs them: gc (dry run, rules,
// grace, --json, --compact refusing while a writer is active), du, policy,
// ls, flatten, and rm of a source that a clone borrows from.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "cli/cli_run.h"
#include "hyperfile/file.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

using testing::RunHyperfile;

std::string Q(const std::string& s) { return "'" + s + "'"; }

// A local file rewritten `versions` times (4 MiB each).
std::string MakeFile(const testing::TempDir& dir, const std::string& name, int versions) {
  std::string uri = dir.uri() + "/" + name;
  EXPECT_EQ(RunHyperfile("create " + Q(uri)).code, 0);
  for (int v = 0; v < versions; v++) {
    std::string data(4 << 20, static_cast<char>('a' + v));
    auto w = RunHyperfile("write " + Q(uri) + " --offset 0", data);
    EXPECT_EQ(w.code, 0) << w.err;
  }
  return uri;
}

TEST(GcCli, DryRunThenCollectThenEveryReport) {
  testing::TempDir dir;
  std::string uri = MakeFile(dir, "f", 4);
  auto dry = RunHyperfile("gc " + Q(uri) + " --keep-last 1 --grace 0 --dry-run --json");
  ASSERT_EQ(dry.code, 0) << dry.err;
  auto dj = nlohmann::json::parse(dry.out);
  EXPECT_TRUE(dj["dry_run"].get<bool>());
  EXPECT_EQ(dj["expired"].size(), 4u);  // the created checkpoint and 3 rewrites
  EXPECT_GT(dj["deleted_objects"].get<uint64_t>(), 0u);
  // Nothing happened: every checkpoint still opens.
  EXPECT_EQ(RunHyperfile("read " + Q(uri) + " --at 2 --length 1").out, "a");
  auto gc = RunHyperfile("gc " + Q(uri) + " --keep-last 1 --grace 0 --json");
  ASSERT_EQ(gc.code, 0) << gc.err;
  auto gj = nlohmann::json::parse(gc.out);
  EXPECT_FALSE(gj["dry_run"].get<bool>());
  EXPECT_LE(gj["live_bytes"].get<double>(), 1.1 * (4 << 20));
  EXPECT_EQ(gj["requests"]["delete"].get<uint64_t>(), 1u) << gc.out;
  auto old = RunHyperfile("read " + Q(uri) + " --at 2");
  EXPECT_EQ(old.code, 1);
  EXPECT_NE(old.err.find("expired by the retention policy"), std::string::npos) << old.err;
  EXPECT_TRUE(old.OneLineError());
  auto log = RunHyperfile("log " + Q(uri));
  EXPECT_EQ(std::count(log.out.begin(), log.out.end(), '\n'), 1) << log.out;
  EXPECT_EQ(RunHyperfile("read " + Q(uri) + " --length 1").out, "d");
  auto du = RunHyperfile("du " + Q(uri) + " --json");
  ASSERT_EQ(du.code, 0) << du.err;
  auto uj = nlohmann::json::parse(du.out);
  EXPECT_EQ(uj["logical_size"].get<uint64_t>(), 4u << 20);
  EXPECT_EQ(uj["reclaimable_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(uj["checkpoints"].get<uint64_t>(), 1u);
  auto human = RunHyperfile("du " + Q(uri));
  EXPECT_NE(human.out.find("4.0 MiB"), std::string::npos) << human.out;
}

TEST(GcCli, PolicyIsStoredAndUsedAndBadRulesAreRefused) {
  testing::TempDir dir;
  std::string uri = MakeFile(dir, "f", 3);
  auto none = RunHyperfile("policy " + Q(uri));
  EXPECT_NE(none.out.find("no policy"), std::string::npos) << none.out;
  ASSERT_EQ(RunHyperfile("policy " + Q(uri) + " --keep-last 2 --keep-within 36h").code, 0);
  auto shown = RunHyperfile("policy " + Q(uri) + " --json");
  EXPECT_EQ(nlohmann::json::parse(shown.out)["policy"], "keep-last=2 keep-within=1d12h");
  // keep-within keeps everything written in the last 36 h: nothing expires.
  auto gc = RunHyperfile("gc " + Q(uri) + " --grace 0 --json");
  ASSERT_EQ(gc.code, 0) << gc.err;
  EXPECT_EQ(nlohmann::json::parse(gc.out)["expired"].size(), 0u);
  ASSERT_EQ(RunHyperfile("policy " + Q(uri) + " --keep-last 2").code, 0);
  auto gc2 = RunHyperfile("gc " + Q(uri) + " --grace 0 --json");
  EXPECT_EQ(nlohmann::json::parse(gc2.out)["expired"].size(), 2u) << gc2.out;
  for (const char* bad :
       {"--keep-last -1", "--keep-within 7", "--keep-daily lots", "--keep-within 0s"}) {
    auto r = RunHyperfile("gc " + Q(uri) + " " + bad);
    EXPECT_EQ(r.code, 2) << bad;  // a usage error
    EXPECT_TRUE(r.OneLineError()) << bad << ": " << r.err;
  }
  EXPECT_EQ(RunHyperfile("gc " + Q(uri) + " --grace soon").code, 2);
  auto missing = RunHyperfile("gc " + Q(dir.uri() + "/nothing"));
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("NotFound"), std::string::npos) << missing.err;
}

// A writer in another process (this test, through the library) holds the
// file open: the CLI's compaction names its writer lease and refuses, and
// still collects; once the writer closed, it compacts.
class GcCliWriterLease : public ::testing::TestWithParam<std::string> {};

TEST_P(GcCliWriterLease, CompactRefusesWhileAWriterIsOpenElsewhereButStillCollects) {
  HF_REQUIRE_BACKEND(GetParam());
  std::string uri;
  auto store = testing::MakeStoreForBackend(GetParam(), "gc-cli-writer", &uri);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  {
    auto f = File::Create(*store, CreateOptions{16 * 1024});
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    for (int v = 0; v < 3; v++) {
      std::string data(1 << 20, static_cast<char>('a' + v));
      ASSERT_TRUE((*f)->PWrite(0, data.data(), data.size()).ok());
      if (v == 2) {
        ASSERT_TRUE((*f)->PWrite(0, "z", 1).ok());
      }
      ASSERT_TRUE((*f)->Flush().ok());
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  OpenOptions named;
  named.writer_name = "vm-writer";
  auto writer = File::Open(*store, named);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  auto r = RunHyperfile("gc " + Q(uri) + " --keep-last 1 --grace 0 --compact");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("not compacting"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("writer/"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("vm-writer"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("expired"), std::string::npos) << r.out;
  ASSERT_TRUE((*writer)->PWrite(1, "y", 1).ok());
  ASSERT_TRUE((*writer)->Flush().ok()) << "the writer was fenced";
  ASSERT_TRUE((*writer)->Close().ok());
  auto after = RunHyperfile("gc " + Q(uri) + " --keep-last 1 --grace 0 --compact --json");
  ASSERT_EQ(after.code, 0) << after.err;
  auto j = nlohmann::json::parse(after.out);
  EXPECT_FALSE(j["compaction"].contains("skipped")) << after.out;
  EXPECT_EQ(RunHyperfile("read " + Q(uri) + " --length 2").out, "zy");
}

// Ctrl-C during `gc --compact`: the first SIGINT stops the compaction at
// its next rewrite call, commits what it rewrote, releases the compaction
// lease and exits 130 without collecting. Killed outright instead, its
// lease kept every writer out for up to 90 s ("a compaction is running").
// The CLI's GETs are slowed (HYPERFILE_STORE_LATENCY) so that the signal,
// sent once -v has logged the lease's put, lands while the lease is held.
TEST_P(GcCliWriterLease, FirstInterruptDuringCompactionReleasesTheLeaseAndExits130) {
  HF_REQUIRE_BACKEND(GetParam());
  std::string uri;
  auto store = testing::MakeStoreForBackend(GetParam(), "gc-cli-interrupt", &uri);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::string contents(4 << 20, 'a');
  {
    auto f = File::Create(*store, CreateOptions{16 * 1024});
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_TRUE((*f)->PWrite(0, contents.data(), contents.size()).ok());
    ASSERT_TRUE((*f)->Flush().ok());
    for (uint64_t off = 0; off < contents.size(); off += 64 * 1024) {  // 3 of every 4 blocks
      std::string b(48 * 1024, static_cast<char>('b' + off % 7));
      ASSERT_TRUE((*f)->PWrite(off, b.data(), b.size()).ok());
      contents.replace(off, b.size(), b);
    }
    ASSERT_TRUE((*f)->Close().ok());
  }
  const std::string errf = ::testing::TempDir() + "/gc-interrupt-" + GetParam() + ".err";
  std::remove(errf.c_str());  // a previous run's log would look like this one's
  pid_t pid = ::fork();
  if (pid == 0) {
    std::string cmd = "exec env HYPERFILE_STORE_LATENCY=get=300ms " +
                      std::string(HYPERFILE_BUILD_DIR) + "/hyperfile -v gc " + Q(uri) +
                      " --keep-last 1 --grace 0 --compact 2>" + Q(errf) + " >/dev/null";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto err = [&] {
    std::ifstream in(errf);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  for (int i = 0; i < 3000 && err().find("writer/") == std::string::npos; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_NE(err().find("writer/"), std::string::npos) << err();
  ::kill(pid, SIGINT);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << err();
  EXPECT_EQ(WEXITSTATUS(status), 130) << err();
  EXPECT_NE(err().find("interrupted"), std::string::npos) << err();
  // A writer opens at once: the compaction lease is gone.
  auto w = File::Open(*store);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::string back(contents.size(), '\0');
  auto n = (*w)->PRead(0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_TRUE(back == contents);
  ASSERT_TRUE((*w)->Close().ok());
  // And the next run does the whole job.
  auto again = RunHyperfile("gc " + Q(uri) + " --keep-last 1 --grace 0 --compact --json");
  ASSERT_EQ(again.code, 0) << again.err;
  auto j = nlohmann::json::parse(again.out);
  EXPECT_GT(j["compaction"]["bytes_rewritten"].get<uint64_t>(), 0u) << again.out;
}

INSTANTIATE_TEST_SUITE_P(All, GcCliWriterLease, ::testing::Values("local", "s3"));

TEST(GcCli, LsFlattenAndRmOfAPinnedSource) {
  testing::TempDir dir;
  std::string src = MakeFile(dir, "disks/a", 2);
  std::string other = MakeFile(dir, "disks/b", 1);
  std::string clone = dir.uri() + "/disks/a-clone";
  ASSERT_EQ(RunHyperfile("clone " + Q(src + "@2") + " " + Q(clone)).code, 0);
  auto ls = RunHyperfile("ls " + Q(dir.uri() + "/disks") + " --json");
  ASSERT_EQ(ls.code, 0) << ls.err;
  auto lj = nlohmann::json::parse(ls.out);
  ASSERT_EQ(lj.size(), 3u) << ls.out;
  // rm of the source names the clone and deletes nothing.
  auto rm = RunHyperfile("rm --yes " + Q(src));
  EXPECT_EQ(rm.code, 1);
  EXPECT_NE(rm.err.find("a-clone"), std::string::npos) << rm.err;
  EXPECT_EQ(RunHyperfile("read " + Q(src) + " --length 1").out, "b");
  // After flatten the clone needs nothing of the source, and rm goes through.
  auto fl = RunHyperfile("flatten " + Q(clone));
  ASSERT_EQ(fl.code, 0) << fl.err;
  EXPECT_EQ(RunHyperfile("rm --yes " + Q(src)).code, 0);
  auto read = RunHyperfile("read " + Q(clone));
  ASSERT_EQ(read.code, 0) << read.err;
  EXPECT_EQ(read.out, std::string(4 << 20, 'a'));
  EXPECT_EQ(RunHyperfile("flatten " + Q(other)).code, 1);  // not a clone
}

}  // namespace
}  // namespace hyperfile
