// SPDX-License-Identifier: Apache-2.0
// End-to-end tests of `hyperfile cp`: local files <-> hyperfiles on the
// local-directory store, sparseness, checkpoints, and that a failed copy
// leaves nothing half-done.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cli/cli_run.h"
#include "cli/fs_tree.h"
#include "support/store_testing.h"

namespace hyperfile::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Writes an 8 MiB sparse file of random data in runs at unaligned offsets
// (about a quarter of it data, the rest holes) and returns its content.
std::string MakeSparseFile(const std::string& path, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string content(8 * kMiB, '\0');
  {
    std::ofstream create(path, std::ios::binary);  // empty: everything a hole
  }
  std::filesystem::resize_file(path, content.size());
  std::fstream out(path, std::ios::binary | std::ios::in | std::ios::out);
  for (uint64_t start = 12345; start + 200000 < content.size(); start += 777777) {
    uint64_t len = 100000 + rng() % 100000;
    for (uint64_t i = 0; i < len; i++) content[start + i] = static_cast<char>(rng() | 1);
    out.seekp(static_cast<std::streamoff>(start));
    out.write(content.data() + start, static_cast<std::streamsize>(len));
  }
  // The last bytes are data, so the size does not hang on a trailing hole.
  content[content.size() - 1] = 'z';
  out.seekp(static_cast<std::streamoff>(content.size() - 1));
  out.put('z');
  return content;
}

uint64_t AllocatedBytes(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ~0ull;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

std::set<std::string> Entries(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.insert(e.path().filename().string());
  }
  return names;
}

class Cp : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  std::string Uri(const std::string& name) const { return dir_.uri() + "/" + name; }

  // Copies `uri` (any selector) to a local file and returns its bytes.
  std::string ReadBack(const std::string& uri) {
    std::string out = Path("readback.bin");
    CliRun r = RunHyperfile("cp '" + uri + "' " + out);
    EXPECT_EQ(r.code, 0) << r.err;
    std::string bytes = ReadAll(out);
    std::filesystem::remove(out);
    return bytes;
  }

  TempDir dir_;
};

TEST_F(Cp, LocalToHyperfileToLocalIsIdenticalAndSparse) {
  std::string content = MakeSparseFile(Path("src.bin"), 1);
  CliRun up = RunHyperfile("cp " + Path("src.bin") + " " + Uri("hf"));
  ASSERT_EQ(up.code, 0) << up.err;
  EXPECT_EQ(up.err, "");  // stderr is not a terminal: no progress, no summary
  CliRun stat = RunHyperfile("--json stat " + Uri("hf"));
  EXPECT_NE(stat.out.find("\"size\": 8388608"), std::string::npos) << stat.out;
  EXPECT_NE(stat.out.find("\"block_size\": 65536"), std::string::npos) << stat.out;

  CliRun down = RunHyperfile("cp " + Uri("hf") + " " + Path("out.bin") + " --jobs 3");
  ASSERT_EQ(down.code, 0) << down.err;
  EXPECT_TRUE(ReadAll(Path("out.bin")) == content);
  // Holes stay holes: about a quarter of the file is data.
  EXPECT_LT(AllocatedBytes(Path("out.bin")), content.size() / 2);
  EXPECT_EQ(Entries(dir_.path()), (std::set<std::string>{"hf", "out.bin", "src.bin"}));
}

TEST_F(Cp, EmptyAndAllHoleFiles) {
  std::ofstream(Path("empty.bin")).close();
  ASSERT_EQ(RunHyperfile("cp " + Path("empty.bin") + " " + Uri("e")).code, 0);
  EXPECT_EQ(ReadBack(Uri("e")), "");
  std::ofstream(Path("holes.bin")).close();
  std::filesystem::resize_file(Path("holes.bin"), 3 * kMiB + 5);
  ASSERT_EQ(RunHyperfile("cp " + Path("holes.bin") + " " + Uri("h")).code, 0);
  EXPECT_NE(RunHyperfile("--json stat " + Uri("h")).out.find("\"allocated_bytes\": 0"),
            std::string::npos);
  EXPECT_EQ(ReadBack(Uri("h")), std::string(3 * kMiB + 5, '\0'));
}

TEST_F(Cp, OldCheckpointToHyperfilesOfOtherBlockSizes) {
  std::string content = MakeSparseFile(Path("src.bin"), 2);
  ASSERT_EQ(RunHyperfile("cp " + Path("src.bin") + " " + Uri("hf")).code, 0);  // checkpoint 2
  ASSERT_EQ(RunHyperfile("snapshot create " + Uri("hf") + " before").code, 0);
  ASSERT_EQ(RunHyperfile("write " + Uri("hf") + " --offset 0 -", "changed").code, 0);
  ASSERT_EQ(RunHyperfile("truncate " + Uri("hf") + " 1000").code, 0);

  for (const char* block_size : {"4K", "1M"}) {
    std::string copy = Uri(std::string("copy") + block_size);
    CliRun r = RunHyperfile("cp " + Uri("hf") + "@2 " + copy + " --block-size " + block_size);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(ReadBack(copy) == content) << block_size;
  }
  EXPECT_NE(RunHyperfile("--json stat " + Uri("copy4K")).out.find("\"block_size\": 4096"),
            std::string::npos);
  // A snapshot name selects the same state; the block size is the source's.
  ASSERT_EQ(RunHyperfile("cp " + Uri("hf") + "@before " + Uri("bysnap")).code, 0);
  EXPECT_TRUE(ReadBack(Uri("bysnap")) == content);
  EXPECT_NE(RunHyperfile("--json stat " + Uri("bysnap")).out.find("\"block_size\": 65536"),
            std::string::npos);
  // The latest state is the truncated one; so is the state at a future time
  // (ISO or "@" + Unix seconds).
  std::string latest = ReadBack(Uri("hf"));
  EXPECT_EQ(latest.size(), 1000u);
  EXPECT_EQ(latest.substr(0, 7), "changed");
  EXPECT_EQ(ReadBack(Uri("hf") + "@2100-01-01T00:00:00Z"), latest);
  EXPECT_EQ(ReadBack(Uri("hf") + "@@4102444800"), latest);
}

TEST_F(Cp, ExistingHyperfileNeedsForceWhichAddsACheckpoint) {
  std::string first = MakeSparseFile(Path("a.bin"), 3);
  std::string second = MakeSparseFile(Path("b.bin"), 4);
  ASSERT_EQ(RunHyperfile("cp " + Path("a.bin") + " " + Uri("hf")).code, 0);

  CliRun refused = RunHyperfile("cp " + Path("b.bin") + " " + Uri("hf"));
  EXPECT_NE(refused.code, 0);
  EXPECT_TRUE(refused.OneLineError()) << refused.err;
  EXPECT_EQ(refused.err.rfind("hyperfile: error: AlreadyExists", 0), 0u) << refused.err;
  EXPECT_NE(refused.err.find("--force"), std::string::npos) << refused.err;
  EXPECT_TRUE(ReadBack(Uri("hf")) == first);

  CliRun forced = RunHyperfile("cp " + Path("b.bin") + " " + Uri("hf") + " --force");
  ASSERT_EQ(forced.code, 0) << forced.err;
  EXPECT_TRUE(ReadBack(Uri("hf")) == second);
  EXPECT_TRUE(ReadBack(Uri("hf") + "@2") == first);  // history keeps the old content
  CliRun log = RunHyperfile("log " + Uri("hf") + " -n 1");
  EXPECT_EQ(log.out.rfind("3 ", 0), 0u) << log.out;  // one new checkpoint

  // --force with a different block size than the file's is refused, untouched.
  CliRun mismatch =
      RunHyperfile("cp " + Path("a.bin") + " " + Uri("hf") + " --force --block-size 4K");
  EXPECT_NE(mismatch.code, 0);
  EXPECT_TRUE(mismatch.OneLineError()) << mismatch.err;
  EXPECT_EQ(RunHyperfile("log " + Uri("hf") + " -n 1").out, log.out);
}

TEST_F(Cp, RefusesBadArguments) {
  MakeSparseFile(Path("src.bin"), 5);
  struct Case {
    std::string args, expect;
  };
  std::vector<Case> cases = {
      {"cp " + Path("src.bin") + " " + Path("dst.bin"), "local paths"},
      {"cp " + Path("missing.bin") + " " + Uri("hf"), "NotFound"},
      {"cp " + Uri("missing") + " " + Path("dst.bin"), "NotFound"},
      {"cp ftp://host/x " + Path("dst.bin"), "unknown scheme"},
      {"cp " + Path("src.bin") + " " + Uri("hf") + "@3", "names a checkpoint"},
      {"cp " + Path("src.bin") + " " + Uri("hf") + " --block-size 3000", "InvalidArgument"},
      {"cp " + Path("src.bin") + " " + Uri("hf") + " --block-size 12Q", "bad size unit"},
      {"cp " + Uri("hf2") + " " + Path("dst.bin") + " --block-size 4K", "--block-size"},
      {"cp " + dir_.path() + " " + Uri("hf"), "not a regular file"},
  };
  for (const Case& c : cases) {
    CliRun r = RunHyperfile(c.args);
    EXPECT_NE(r.code, 0) << c.args;
    EXPECT_TRUE(r.OneLineError()) << c.args << ": " << r.err;
    EXPECT_EQ(r.err.rfind("hyperfile: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << ": " << r.err;
  }
  // Nothing was created by any of them.
  EXPECT_EQ(Entries(dir_.path()), std::set<std::string>{"src.bin"});
  CliRun checkpoint = RunHyperfile("cp " + Uri("nothere") + "@7 " + Path("x.bin"));
  EXPECT_NE(checkpoint.code, 0);
}

TEST_F(Cp, MissingCheckpointOfExistingFile) {
  MakeSparseFile(Path("src.bin"), 6);
  ASSERT_EQ(RunHyperfile("cp " + Path("src.bin") + " " + Uri("hf")).code, 0);
  CliRun r = RunHyperfile("cp " + Uri("hf") + "@99 " + Path("x.bin"));
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(r.OneLineError()) << r.err;
  EXPECT_NE(r.err.find("checkpoint 99"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(Path("x.bin")));
}

TEST_F(Cp, UnwritableLocalDestinationLeavesNoTemporaryFile) {
  MakeSparseFile(Path("src.bin"), 7);
  ASSERT_EQ(RunHyperfile("cp " + Path("src.bin") + " " + Uri("hf")).code, 0);
  std::filesystem::create_directory(Path("sub"));
  std::vector<std::string> destinations = {Path("no/such/dir/out.bin"), Path("sub"),
                                           Path("sub") + "/", "/dev/full"};
  for (const std::string& dst : destinations) {
    CliRun r = RunHyperfile("cp " + Uri("hf") + " " + dst);
    EXPECT_NE(r.code, 0) << dst;
    EXPECT_TRUE(r.OneLineError()) << dst << ": " << r.err;
  }
  // A write that fails mid-copy (the file-size limit; as root, permissions
  // would not stop it): the temporary file is removed, DST never appears.
  CliRun limited = RunHyperfile("cp " + Uri("hf") + " " + Path("sub/out.bin"), "", "ulimit -f 64;");
  EXPECT_NE(limited.code, 0);
  EXPECT_TRUE(limited.OneLineError()) << limited.err;
  EXPECT_NE(limited.err.find("IOError"), std::string::npos) << limited.err;
  EXPECT_TRUE(Entries(Path("sub")).empty());
  EXPECT_EQ(Entries(dir_.path()), (std::set<std::string>{"hf", "src.bin", "sub"}));
}

TEST_F(Cp, ReplacesAnExistingLocalFileKeepingModeAndSymlink) {
  std::string content = MakeSparseFile(Path("src.bin"), 8);
  ASSERT_EQ(RunHyperfile("cp " + Path("src.bin") + " " + Uri("hf")).code, 0);
  std::ofstream(Path("real.bin")) << "old content";
  std::filesystem::permissions(Path("real.bin"), std::filesystem::perms(0640));
  std::filesystem::create_symlink(Path("real.bin"), Path("link.bin"));

  CliRun r = RunHyperfile("cp " + Uri("hf") + " " + Path("link.bin"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::is_symlink(Path("link.bin")));
  EXPECT_TRUE(ReadAll(Path("real.bin")) == content);
  struct stat st;
  ASSERT_EQ(::stat(Path("real.bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

// Damages the biggest segment of the hyperfile in directory `dir` in the
// middle of its data, so reading the data fails its checksum.
void CorruptData(const std::string& dir) {
  std::filesystem::path biggest;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/seg")) {
    if (biggest.empty() || e.file_size() > std::filesystem::file_size(biggest)) biggest = e.path();
  }
  ASSERT_FALSE(biggest.empty());
  std::fstream f(biggest, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(biggest) / 2));
  f.write("\xde\xad\xbe\xef\xde\xad\xbe\xef", 8);
}

TEST_F(Cp, FailedSourceReadLeavesNothingBehind) {
  std::string dense(8 * kMiB, '\0');
  std::mt19937_64 rng(9);
  for (char& c : dense) c = static_cast<char>(rng());
  std::ofstream(Path("dense.bin"), std::ios::binary) << dense;
  ASSERT_EQ(RunHyperfile("cp " + Path("dense.bin") + " " + Uri("bad")).code, 0);
  CorruptData(Path("bad"));
  std::string small = MakeSparseFile(Path("small.bin"), 10);
  ASSERT_EQ(RunHyperfile("cp " + Path("small.bin") + " " + Uri("target")).code, 0);
  std::set<std::string> before = Entries(dir_.path());

  // Into a new hyperfile: it is removed again, directory and all.
  CliRun to_new = RunHyperfile("cp " + Uri("bad") + " " + Uri("copy"));
  EXPECT_NE(to_new.code, 0);
  EXPECT_TRUE(to_new.OneLineError()) << to_new.err;
  EXPECT_NE(to_new.err.find("Corrupt"), std::string::npos) << to_new.err;
  EXPECT_FALSE(std::filesystem::exists(Path("copy")));
  // Into an existing one with --force: its content is back as it was.
  CliRun to_old = RunHyperfile("cp " + Uri("bad") + " " + Uri("target") + " --force");
  EXPECT_NE(to_old.code, 0);
  EXPECT_TRUE(to_old.OneLineError()) << to_old.err;
  EXPECT_TRUE(ReadBack(Uri("target")) == small);
  // Into a local file: no temporary file is left.
  CliRun to_local = RunHyperfile("cp " + Uri("bad") + " " + Path("out.bin"));
  EXPECT_NE(to_local.code, 0);
  EXPECT_TRUE(to_local.OneLineError()) << to_local.err;
  EXPECT_EQ(Entries(dir_.path()), before);
}

// A dense 8 MiB file of random bytes (every block is data).
std::string MakeDenseFile(const std::string& path, uint64_t seed) {
  std::string dense(8 * kMiB, '\0');
  std::mt19937_64 rng(seed);
  for (char& c : dense) c = static_cast<char>(rng() | 1);
  std::ofstream(path, std::ios::binary) << dense;
  return dense;
}

// A user's files in `dir`, and a hyperfile nested in it at `dir`/nested.
void MakeUserFilesAndNestedHyperfile(const std::string& dir, const std::string& small) {
  WriteFileBytes(dir + "/notes.txt", "the user's notes\n");
  WriteFileBytes(dir + "/photos/cat.jpg", std::string(70000, 'c'));
  WriteFileBytes(dir + "/.profile", "export X=1\n");
  CliRun nested = RunHyperfile("cp " + small + " file://" + dir + "/nested");
  ASSERT_EQ(nested.code, 0) << nested.err;
}

// Cleanup after a failed copy into a directory that already holds a user's
// files and another hyperfile: the copy created a hyperfile there and takes
// only that away again. The copy fails at the end, writing its segment past
// the file-size limit. (Depends on RemoveFile honouring keep_foreign.)
TEST_F(Cp, FailedCopyIntoADirectoryOfUserFilesLeavesThemAlone) {
  MakeDenseFile(Path("dense.bin"), 11);
  std::string small = MakeSparseFile(Path("small.bin"), 12);
  std::string dir = Path("home");
  MakeUserFilesAndNestedHyperfile(dir, Path("small.bin"));
  auto before = Tree(dir);

  CliRun r = RunHyperfile("cp " + Path("dense.bin") + " file://" + dir, "", "ulimit -f 64;");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(r.OneLineError()) << r.err;
  EXPECT_NE(r.err.find("IOError"), std::string::npos) << r.err;
  EXPECT_EQ(TreeDiff(before, Tree(dir)), "") << r.err;
  EXPECT_TRUE(ReadBack("file://" + dir + "/nested") == small);
  EXPECT_NE(RunHyperfile("stat file://" + dir).code, 0);  // no hyperfile left at DST

  // Creating a hyperfile among other files is allowed; they stay as they are.
  ASSERT_EQ(RunHyperfile("cp " + Path("small.bin") + " file://" + dir).code, 0);
  EXPECT_TRUE(ReadBack("file://" + dir) == small);
  for (const auto& [name, content] : before) {
    EXPECT_TRUE(ReadFileBytes(dir + "/" + name) == content) << name << " changed or deleted";
  }
}

// Cleanup after a failed copy into the parent directory of another hyperfile
// (the source fails mid-way): the other hyperfile is untouched. (Depends on
// RemoveFile honouring keep_foreign.)
TEST_F(Cp, FailedCopyIntoTheParentOfAHyperfileLeavesItAlone) {
  MakeDenseFile(Path("dense.bin"), 13);
  ASSERT_EQ(RunHyperfile("cp " + Path("dense.bin") + " " + Uri("bad")).code, 0);
  CorruptData(Path("bad"));
  std::string small = MakeSparseFile(Path("small.bin"), 14);
  ASSERT_EQ(RunHyperfile("cp " + Path("small.bin") + " " + Uri("parent/child")).code, 0);
  auto before = Tree(Path("parent"));

  CliRun r = RunHyperfile("cp " + Uri("bad") + " " + Uri("parent"));
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(r.OneLineError()) << r.err;
  EXPECT_NE(r.err.find("Corrupt"), std::string::npos) << r.err;
  EXPECT_EQ(TreeDiff(before, Tree(Path("parent"))), "") << r.err;
  EXPECT_TRUE(ReadBack(Uri("parent/child")) == small);
}

// --force over an existing file never deletes: a failed copy restores its old
// content, and other objects under its root stay as they are.
TEST_F(Cp, FailedForcedCopyRestoresAndDeletesNothing) {
  MakeDenseFile(Path("dense.bin"), 15);
  ASSERT_EQ(RunHyperfile("cp " + Path("dense.bin") + " " + Uri("bad")).code, 0);
  CorruptData(Path("bad"));
  std::string small = MakeSparseFile(Path("small.bin"), 16);
  std::string dir = Path("home");
  MakeUserFilesAndNestedHyperfile(dir, Path("small.bin"));
  ASSERT_EQ(RunHyperfile("cp " + Path("small.bin") + " file://" + dir).code, 0);
  auto user_files = Tree(dir);
  for (auto it = user_files.begin(); it != user_files.end();) {
    it = it->first.starts_with("seg/") ? user_files.erase(it) : std::next(it);
  }

  CliRun r = RunHyperfile("cp " + Uri("bad") + " file://" + dir + " --force");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(r.OneLineError()) << r.err;
  EXPECT_TRUE(ReadBack("file://" + dir) == small);
  auto after = Tree(dir);
  for (const auto& [name, content] : user_files) {
    auto found = after.find(name);
    ASSERT_NE(found, after.end()) << name << " was deleted";
    EXPECT_TRUE(found->second == content) << name << " changed";
  }
}

// A failed copy to a local file removes its temporary file only: an existing
// DST keeps its old content and the files next to it stay.
TEST_F(Cp, FailedCopyToALocalFileKeepsTheOldFileAndItsNeighbours) {
  MakeDenseFile(Path("dense.bin"), 17);
  ASSERT_EQ(RunHyperfile("cp " + Path("dense.bin") + " " + Uri("hf")).code, 0);
  std::string dir = Path("out");
  WriteFileBytes(dir + "/disk.img", "old image");
  WriteFileBytes(dir + "/neighbour.txt", "next to it");
  auto before = Tree(dir);
  CliRun limited = RunHyperfile("cp " + Uri("hf") + " " + dir + "/disk.img", "", "ulimit -f 64;");
  EXPECT_NE(limited.code, 0);
  EXPECT_TRUE(limited.OneLineError()) << limited.err;
  EXPECT_EQ(TreeDiff(before, Tree(dir)), "");
  EXPECT_EQ(Entries(dir), (std::set<std::string>{"disk.img", "neighbour.txt"}));
}

}  // namespace
}  // namespace hyperfile::testing
