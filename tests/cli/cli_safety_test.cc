// SPDX-License-Identifier: Apache-2.0
// The `hyperfile` command never deletes, creates or overwrites outside what
// the user named, and refuses bad numbers instead of wrapping them:
// strict numeric options, selectors through At::Parse only, `rm` and `demo`
// that leave foreign files alone.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "cli/cli_run.h"
#include "cli/fs_tree.h"
#include "support/store_testing.h"

namespace hyperfile::testing {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) { return ReadFileBytes(path); }
void WriteFile(const std::string& path, const std::string& content) {
  WriteFileBytes(path, content);
}

class CliSafety : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  std::string Uri(const std::string& name) const { return dir_.uri() + "/" + name; }

  // A directory of a user's files: some text, a nested folder, a dotfile.
  void MakeUserFiles(const std::string& dir) {
    WriteFile(dir + "/notes.txt", "the user's notes\n");
    WriteFile(dir + "/photos/cat.jpg", std::string(5000, 'c'));
    WriteFile(dir + "/.profile", "export X=1\n");
  }

  TempDir dir_;
};

// A bad value on the command line: a usage error (exit 2), one line.
void ExpectRefused(const CliRun& r, const std::string& args, const std::string& expect) {
  EXPECT_EQ(r.code, 2) << args;
  EXPECT_TRUE(r.OneLineError()) << args << ": " << r.err;
  EXPECT_EQ(r.err.rfind("hyperfile: error: InvalidArgument: ", 0), 0u) << args << ": " << r.err;
  EXPECT_NE(r.err.find(expect), std::string::npos) << args << ": " << r.err;
}

// ------------------------------------------------------------ numbers ---

TEST_F(CliSafety, BlockSizeIsRangeCheckedBeforeNarrowing) {
  // 4294971392 = 2^32 + 4096: a 32-bit cast made it a valid 4 KiB block size.
  for (const char* bad : {"4294971392", "4294967296", "0", "3000", "8M", "-4096", "64KQ"}) {
    std::string args = "create " + Uri(std::string("f") + bad) + " --block-size " + bad;
    ExpectRefused(RunHyperfile(args), args, "--block-size");
    EXPECT_FALSE(fs::exists(Path(std::string("f") + bad))) << bad;
  }
  std::string args = "cp " + Path("nothing") + " " + Uri("c") + " --block-size 4294971392";
  ExpectRefused(RunHyperfile(args), args, "--block-size");
  ASSERT_EQ(RunHyperfile("create " + Uri("ok") + " --block-size 4KiB").code, 0);
  EXPECT_NE(RunHyperfile("--json stat " + Uri("ok")).out.find("\"block_size\": 4096"),
            std::string::npos);
}

TEST_F(CliSafety, NegativeOverflowingAndMalformedNumbersAreRefused) {
  ASSERT_EQ(RunHyperfile("create " + Uri("f") + " --block-size 4K --size 64K").code, 0);
  ASSERT_EQ(RunHyperfile("write " + Uri("f") + " --offset 0 -", "hello").code, 0);
  const std::vector<std::string> bad_values = {"-1",
                                               "-5",
                                               "18446744073709551616",
                                               "99999999999999999999T",
                                               "1.5G",
                                               "''",
                                               "' 5'",
                                               "'5 '",
                                               "+5",
                                               "0x10",
                                               "5Q",
                                               "16EiB",
                                               "1e3"};
  struct Option {
    std::string args_before, option, name;
  };
  const std::vector<Option> options = {
      {"read " + Uri("f"), " --offset ", "--offset"},
      {"read " + Uri("f"), " --length ", "--length"},
      {"write " + Uri("f") + " -", " --offset ", "--offset"},
      {"create " + Uri("g"), " --size ", "--size"},
      {"truncate " + Uri("f"), " ", "SIZE"},
      {"log " + Uri("f"), " -n ", "-n"},
      {"cp " + Uri("f") + " " + Path("out.bin"), " -j ", "--jobs"},
  };
  for (const Option& o : options) {
    for (const std::string& v : bad_values) {
      std::string args = o.args_before + o.option + v;
      ExpectRefused(RunHyperfile(args, "data"), args, o.name);
    }
  }
  // Nothing was written, truncated or created by any of them.
  EXPECT_EQ(RunHyperfile("log " + Uri("f")).out.find("3 "), std::string::npos);
  EXPECT_EQ(RunHyperfile("read " + Uri("f") + " --length 5").out, "hello");
  EXPECT_NE(RunHyperfile("--json stat " + Uri("f")).out.find("\"size\": 65536"), std::string::npos);
  EXPECT_FALSE(fs::exists(Path("g")));
  EXPECT_FALSE(fs::exists(Path("out.bin")));
  // Counts take no unit; -j is 1..256.
  for (const std::string& args :
       {"log " + Uri("f") + " -n 1K", "cp " + Uri("f") + " " + Path("o") + " -j 0",
        "cp " + Uri("f") + " " + Path("o") + " -j 257"}) {
    ExpectRefused(RunHyperfile(args), args, args.find("-n") != std::string::npos ? "-n" : "--jobs");
  }
  // The good forms still work.
  EXPECT_EQ(RunHyperfile("read " + Uri("f") + " --offset 1 --length 3").out, "ell");
  EXPECT_EQ(RunHyperfile("read " + Uri("f") + " --offset 0K --length 2B").out, "he");
  EXPECT_EQ(RunHyperfile("log " + Uri("f") + " -n 1").code, 0);
  EXPECT_EQ(RunHyperfile("cp " + Uri("f") + " " + Path("out.bin") + " -j 256").code, 0);
}

// ---------------------------------------------------------- selectors ---

TEST_F(CliSafety, AnEmptySelectorIsRefusedNotTakenAsLatest) {
  ASSERT_EQ(RunHyperfile("create " + Uri("f") + " --block-size 4K").code, 0);
  for (const std::string& args :
       {"cp " + Uri("f") + "@ " + Path("out.bin"), "clone " + Uri("f") + "@ " + Uri("copy"),
        "read " + Uri("f") + " --at ''", "stat " + Uri("f") + " --at ''"}) {
    CliRun r = RunHyperfile(args);
    EXPECT_EQ(r.code, 2) << args;  // a usage error
    EXPECT_TRUE(r.OneLineError()) << args << ": " << r.err;
    EXPECT_EQ(r.err.rfind("hyperfile: error: InvalidArgument", 0), 0u) << args << ": " << r.err;
  }
  EXPECT_FALSE(fs::exists(Path("out.bin")));
  EXPECT_FALSE(fs::exists(Path("copy")));
}

// ----------------------------------------------------------------- rm ---

TEST_F(CliSafety, RmOfADirectoryOfOrdinaryFilesIsNotFoundAndDeletesNothing) {
  MakeUserFiles(Path("docs"));
  auto before = Tree(Path("docs"));
  CliRun r = RunHyperfile("rm " + Uri("docs") + " --yes");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.OneLineError()) << r.err;
  EXPECT_EQ(r.err.rfind("hyperfile: error: NotFound", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("no hyperfile at"), std::string::npos) << r.err;
  EXPECT_EQ(TreeDiff(before, Tree(Path("docs"))), "");
  // Also with --keep-foreign, and for a directory that does not exist (which
  // is not created either).
  EXPECT_EQ(RunHyperfile("rm " + Uri("docs") + " --yes --keep-foreign").code, 1);
  EXPECT_EQ(TreeDiff(before, Tree(Path("docs"))), "");
  CliRun missing = RunHyperfile("rm " + Uri("missing") + " --yes");
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("no hyperfile at"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(Path("missing")));
}

TEST_F(CliSafety, RmRefusesForeignObjectsAndSaysWhatToDo) {
  MakeUserFiles(Path("mixed"));
  ASSERT_EQ(RunHyperfile("create " + Uri("mixed/nested") + " --block-size 4K").code, 0);
  ASSERT_EQ(RunHyperfile("create " + Uri("mixed") + " --block-size 4K").code, 0);
  auto before = Tree(Path("mixed"));
  CliRun r = RunHyperfile("rm " + Uri("mixed") + " --yes");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.OneLineError()) << r.err;
  for (const char* want : {"InvalidArgument", "not part of a hyperfile", "e.g. ",
                           "nothing was deleted", "--keep-foreign"}) {
    EXPECT_NE(r.err.find(want), std::string::npos) << want << ": " << r.err;
  }
  EXPECT_EQ(TreeDiff(before, Tree(Path("mixed"))), "");
  EXPECT_EQ(RunHyperfile("stat " + Uri("mixed")).code, 0);
}

// Depends on the library's RemoveFile honouring keep_foreign.
TEST_F(CliSafety, RmKeepForeignRemovesOnlyTheHyperfile) {
  MakeUserFiles(Path("mixed"));
  ASSERT_EQ(RunHyperfile("create " + Uri("mixed/nested") + " --block-size 4K").code, 0);
  auto foreign = Tree(Path("mixed"));
  ASSERT_EQ(RunHyperfile("create " + Uri("mixed") + " --block-size 4K").code, 0);
  ASSERT_EQ(RunHyperfile("snapshot create " + Uri("mixed") + " s1").code, 0);
  CliRun r = RunHyperfile("rm " + Uri("mixed") + " --yes --keep-foreign");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(TreeDiff(foreign, Tree(Path("mixed"))), "");
  EXPECT_NE(RunHyperfile("stat " + Uri("mixed")).code, 0);
  EXPECT_EQ(RunHyperfile("stat " + Uri("mixed/nested")).code, 0);
}

// --------------------------------------------------------------- demo ---

TEST_F(CliSafety, DemoRefusesADirectoryThatIsNotEmptyOrAPreviousDemo) {
  MakeUserFiles(Path("home"));
  auto before = Tree(Path("home"));
  CliRun r = RunHyperfile("demo " + Path("home"));
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.OneLineError()) << r.err;
  EXPECT_NE(r.err.find("not empty"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(TreeDiff(before, Tree(Path("home"))), "");
  // A hyperfile with a user's file next to it is not a previous demo either.
  ASSERT_EQ(RunHyperfile("demo " + Path("d")).code, 0);
  WriteFile(Path("d/mine.txt"), "mine");
  auto with_mine = Tree(Path("d"));
  EXPECT_EQ(RunHyperfile("demo " + Path("d")).code, 1);
  EXPECT_EQ(TreeDiff(with_mine, Tree(Path("d"))), "");
  // Nor a parent of a hyperfile.
  ASSERT_EQ(RunHyperfile("create " + Uri("parent/child")).code, 0);
  auto parent = Tree(Path("parent"));
  EXPECT_EQ(RunHyperfile("demo " + Path("parent")).code, 1);
  EXPECT_EQ(TreeDiff(parent, Tree(Path("parent"))), "");
  // A regular file is not a directory.
  WriteFile(Path("plain"), "plain");
  EXPECT_EQ(RunHyperfile("demo " + Path("plain")).code, 1);
  EXPECT_EQ(ReadAll(Path("plain")), "plain");
}

TEST_F(CliSafety, DemoRunsInAMissingOrEmptyDirectoryAndAgainOverItself) {
  fs::create_directories(Path("empty"));
  for (const std::string& dir : {Path("empty"), Path("missing"), Path("missing")}) {
    CliRun d = RunHyperfile("demo " + dir);
    EXPECT_EQ(d.code, 0) << dir << ": " << d.err;
    EXPECT_NE(d.out.find("verify: healthy"), std::string::npos) << d.out;
    EXPECT_NE(d.out.find("checkpoint 2: wrote"), std::string::npos) << d.out;  // a fresh file
  }
}

}  // namespace
}  // namespace hyperfile::testing
