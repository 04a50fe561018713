// SPDX-License-Identifier: Apache-2.0
// The local backend against a hostile or mistyped directory: roots that
// cannot be a file, special files at keys (never block), symbolic links
// (never followed), lazy creation (readers create and delete nothing), and
// directories in the way of a put.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "hyperfile/object_store.h"
#include "support/store_testing.h"
#include "support/time_limit.h"

namespace hyperfile {
namespace {

using ::hyperfile::testing::InChildWithin;

namespace fs = std::filesystem;

std::shared_ptr<ObjectStore> MustOpen(const std::string& dir) {
  auto s = NewLocalStore(dir);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : nullptr;
}

bool Has(const Status& st, std::string_view text) {
  return st.message().find(text) != std::string::npos;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(LocalStoreRoots, FilesystemRootIsRefused) {
  for (const char* root : {"/", "//", "/.", "/./", "/tmp/..", "/tmp/../", "/a/b/../../", "/.."}) {
    auto s = NewLocalStore(root);
    ASSERT_FALSE(s.ok()) << root;
    EXPECT_TRUE(s.status().IsInvalidArgument()) << root << ": " << s.status().ToString();
    EXPECT_TRUE(Has(s.status(), "the filesystem root cannot be a hyperfile"))
        << s.status().ToString();
    EXPECT_TRUE(Has(s.status(), "'" + std::string(root) + "'")) << s.status().ToString();
  }
}

TEST(LocalStoreRoots, PseudoFilesystemsAreRefused) {
  for (const char* root : {"/proc", "/proc/self", "/sys/", "/sys/kernel", "/dev", "/dev/shm/x",
                           "/tmp/../proc/1", "/var/./../dev//null"}) {
    auto s = NewLocalStore(root);
    ASSERT_FALSE(s.ok()) << root;
    EXPECT_TRUE(s.status().IsInvalidArgument()) << root << ": " << s.status().ToString();
    EXPECT_TRUE(Has(s.status(), "pseudo filesystem")) << s.status().ToString();
    EXPECT_TRUE(Has(s.status(), root)) << s.status().ToString();
  }
  // Names that only start like one are fine.
  testing::TempDir dir;
  EXPECT_TRUE(NewLocalStore(dir.path() + "/proc").ok());
  EXPECT_FALSE(fs::exists(dir.path() + "/proc"));
}

TEST(LocalStoreRoots, SymlinkToRootOrPseudoFilesystemIsRefused) {
  testing::TempDir dir;
  ASSERT_EQ(::symlink("/", (dir.path() + "/to-root").c_str()), 0);
  ASSERT_EQ(::symlink("/proc", (dir.path() + "/to-proc").c_str()), 0);
  auto root = NewLocalStore(dir.path() + "/to-root");
  ASSERT_FALSE(root.ok());
  EXPECT_TRUE(root.status().IsInvalidArgument());
  EXPECT_TRUE(Has(root.status(), "the filesystem root cannot be a hyperfile"))
      << root.status().ToString();
  auto proc = NewLocalStore(dir.path() + "/to-proc/self");
  ASSERT_FALSE(proc.ok());
  EXPECT_TRUE(Has(proc.status(), "pseudo filesystem")) << proc.status().ToString();
}

TEST(LocalStoreRoots, ExistingNonDirectoryIsRefused) {
  testing::TempDir dir;
  std::ofstream(dir.path() + "/plain") << "user data";
  for (std::string root : {dir.path() + "/plain", dir.path() + "/plain/", dir.path() + "/plain/x",
                           dir.path() + "/sub/../plain"}) {
    auto s = NewLocalStore(root);
    ASSERT_FALSE(s.ok()) << root;
    EXPECT_TRUE(s.status().IsInvalidArgument()) << s.status().ToString();
    EXPECT_TRUE(Has(s.status(), "not a directory")) << s.status().ToString();
    EXPECT_TRUE(Has(s.status(), root)) << s.status().ToString();
  }
  EXPECT_EQ(ReadFile(dir.path() + "/plain"), "user data");
}

TEST(LocalStoreRoots, DotSegmentsAreNormalised) {
  testing::TempDir dir;
  auto store = MustOpen(dir.path() + "//a/./b/../c/");
  EXPECT_EQ(store->Name(), "file://" + dir.path() + "/a/c");
  ASSERT_TRUE(store->Put("k", "v").ok());
  EXPECT_EQ(ReadFile(dir.path() + "/a/c/k"), "v");
  EXPECT_FALSE(fs::exists(dir.path() + "/a/b"));
}

// Every entry below `path`, to compare the tree before and after.
std::vector<std::string> Tree(const std::string& path) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(path, ec)) return out;
  for (auto& e : fs::recursive_directory_iterator(path)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(LocalStoreLazy, OpeningAndReadingAMissingPathCreateNothing) {
  testing::TempDir dir;
  const std::string root = dir.path() + "/typo/store";
  auto store = MustOpen(root);
  EXPECT_FALSE(fs::exists(dir.path() + "/typo"));
  std::string out;
  Status get = store->Get("seg/0000000000000001", &out);
  EXPECT_TRUE(get.IsNotFound()) << get.ToString();
  EXPECT_TRUE(Has(get, root + "/seg/0000000000000001")) << get.ToString();
  EXPECT_TRUE(store->Get("k", 3, 5, &out, nullptr).IsNotFound());
  EXPECT_TRUE(store->Head("snap/x", nullptr).IsNotFound());
  std::vector<ObjectInfo> all;
  EXPECT_TRUE(store->List("", "", 0, &all).ok());
  EXPECT_TRUE(store->List("seg/", "", 1, &all).ok());
  EXPECT_TRUE(all.empty());
  EXPECT_TRUE(store->Delete("seg/0000000000000001").ok());
  EXPECT_TRUE(store->DeleteMany({"a", "b/c"}).ok());
  EXPECT_TRUE(OpenStore("file://" + root).ok());
  EXPECT_TRUE(OpenStore(root + "/").ok());
  EXPECT_FALSE(fs::exists(dir.path() + "/typo"));
  // The first put creates the root and the hidden folders.
  ASSERT_TRUE(store->Put("seg/1", "x").ok());
  EXPECT_TRUE(fs::is_directory(root + "/.hftmp"));
  EXPECT_TRUE(fs::is_directory(root + "/.hflock"));
  EXPECT_EQ(ReadFile(root + "/seg/1"), "x");
}

TEST(LocalStoreLazy, ReadersOfAnExistingDirectoryCreateNothing) {
  testing::TempDir dir;
  std::ofstream(dir.path() + "/user-file") << "mine";
  std::vector<std::string> before = Tree(dir.path());
  auto store = MustOpen(dir.path());
  std::string out;
  EXPECT_TRUE(store->Get("user-file", &out).ok());
  EXPECT_TRUE(store->Head("nope", nullptr).IsNotFound());
  std::vector<ObjectInfo> all;
  EXPECT_TRUE(store->List("", "", 0, &all).ok());
  EXPECT_EQ(all.size(), 1u);
  EXPECT_EQ(Tree(dir.path()), before);  // no .hftmp, no .hflock
  // A delete in an existing root may make .hflock, nothing else.
  EXPECT_TRUE(store->Delete("nope").ok());
  EXPECT_FALSE(fs::exists(dir.path() + "/.hftmp"));
}

TEST(LocalStoreSpecialFiles, FifoAtKeyNeverBlocks) {
  testing::TempDir dir;
  auto store = MustOpen(dir.path());
  ASSERT_TRUE(store->Put("seg/0000000000000001", "real").ok());
  ASSERT_EQ(::mkfifo((dir.path() + "/seg/fffffffffffffffe").c_str(), 0644), 0);
  const std::string key = "seg/fffffffffffffffe";
  EXPECT_EQ(InChildWithin(10,
                          [&] {
                            std::string out;
                            Status st = store->Get(key, &out);
                            return st.IsCorrupt() && Has(st, "not a regular file") &&
                                           Has(st, "a FIFO") && Has(st, dir.path() + "/" + key)
                                       ? 0
                                       : 1;
                          }),
            0);
  EXPECT_EQ(InChildWithin(10,
                          [&] {
                            std::string out;
                            Status st = store->Get(key, 0, 10, &out, nullptr);
                            return st.IsCorrupt() ? 0 : 1;
                          }),
            0);
  EXPECT_EQ(InChildWithin(10,
                          [&] {
                            Status st = store->Head(key, nullptr);
                            return st.IsCorrupt() && Has(st, "not a regular file") ? 0 : 1;
                          }),
            0);
  EXPECT_EQ(InChildWithin(
                10,
                [&] {
                  std::vector<ObjectInfo> all;
                  Status st = store->List("seg/", "", 0, &all);
                  return st.ok() && all.size() == 1 && all[0].key == "seg/0000000000000001" ? 0 : 1;
                }),
            0);
  EXPECT_EQ(InChildWithin(10,
                          [&] {
                            Status st = store->Delete(key);
                            return st.IsInvalidArgument() && Has(st, "a FIFO") ? 0 : 1;
                          }),
            0);
  struct stat st;
  ASSERT_EQ(::lstat((dir.path() + "/" + key).c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));  // left alone
}

TEST(LocalStoreSpecialFiles, SocketAndDeviceAtKeyAreNotRegularFiles) {
  testing::TempDir dir;
  auto store = MustOpen(dir.path());
  int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = dir.path() + "/sock";
  ASSERT_LT(path.size(), sizeof addr.sun_path);
  strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::symlink("/dev/zero", (dir.path() + "/zero").c_str()), 0);
  for (const char* key : {"sock", "zero"}) {
    EXPECT_EQ(InChildWithin(10,
                            [&] {
                              std::string out;
                              Status g = store->Get(key, &out);
                              Status h = store->Head(key, nullptr);
                              return g.IsCorrupt() && h.IsCorrupt() &&
                                             Has(g, "not a regular file") && out.empty()
                                         ? 0
                                         : 1;
                            }),
              0)
        << key;
  }
  std::vector<ObjectInfo> all;
  ASSERT_TRUE(store->List("", "", 0, &all).ok());
  EXPECT_TRUE(all.empty());
  ::close(sock);
}

TEST(LocalStoreSpecialFiles, SymlinksAreNeverFollowed) {
  testing::TempDir dir, outside;
  std::ofstream(outside.path() + "/secret") << "not yours";
  auto store = MustOpen(dir.path());
  ASSERT_TRUE(store->Put("snap/a", "x").ok());
  ASSERT_EQ(::symlink((outside.path() + "/secret").c_str(), (dir.path() + "/snap/b").c_str()), 0);
  ASSERT_EQ(::symlink(outside.path().c_str(), (dir.path() + "/seg").c_str()), 0);
  // A symlink at the key.
  std::string out;
  Status get = store->Get("snap/b", &out);
  EXPECT_TRUE(get.IsCorrupt()) << get.ToString();
  EXPECT_TRUE(Has(get, "a symbolic link")) << get.ToString();
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(store->Head("snap/b", nullptr).IsCorrupt());
  // A symlink in place of a folder.
  Status through = store->Get("seg/secret", &out);
  EXPECT_TRUE(through.IsCorrupt()) << through.ToString();
  EXPECT_TRUE(Has(through, "'seg' is a symbolic link")) << through.ToString();
  EXPECT_TRUE(store->Head("seg/secret", nullptr).IsCorrupt());
  std::vector<ObjectInfo> all;
  ASSERT_TRUE(store->List("", "", 0, &all).ok());
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].key, "snap/a");
  all.clear();
  ASSERT_TRUE(store->List("seg/", "", 0, &all).ok());
  EXPECT_TRUE(all.empty());
  // Writes never go through it either.
  Status put = store->Put("seg/new", "x");
  EXPECT_TRUE(put.IsInvalidArgument()) << put.ToString();
  EXPECT_FALSE(fs::exists(outside.path() + "/new"));
  Status del = store->Delete("seg/secret");
  EXPECT_FALSE(del.ok());
  EXPECT_TRUE(store->Put("snap/b", "y").IsInvalidArgument());
  EXPECT_TRUE(store->Delete("snap/b").IsInvalidArgument());
  EXPECT_EQ(ReadFile(outside.path() + "/secret"), "not yours");
  EXPECT_TRUE(fs::is_symlink(dir.path() + "/snap/b"));
}

TEST(LocalStoreDirectoryAtKey, EmptyDirectoryIsReplacedByPut) {
  testing::TempDir dir;
  auto store = MustOpen(dir.path());
  ASSERT_TRUE(store->Put("seg/0000000000000001", "x").ok());
  const std::string key = "seg/fffffffffffffffd";
  ASSERT_TRUE(fs::create_directory(dir.path() + "/" + key));
  PutOptions create_only;
  create_only.if_absent = true;
  Status put = store->Put(key, "segment", create_only, nullptr);
  ASSERT_TRUE(put.ok()) << put.ToString();
  std::string out;
  ASSERT_TRUE(store->Get(key, &out).ok());
  EXPECT_EQ(out, "segment");
  // A plain put too.
  ASSERT_TRUE(fs::create_directory(dir.path() + "/plain"));
  put = store->Put("plain", "v");
  ASSERT_TRUE(put.ok()) << put.ToString();
  ASSERT_TRUE(store->Get("plain", &out).ok());
  EXPECT_EQ(out, "v");
}

TEST(LocalStoreDirectoryAtKey, WhatIsInTheWayIsInvalidArgumentNeverPreconditionFailed) {
  testing::TempDir dir;
  auto store = MustOpen(dir.path());
  const std::string key = "seg/fffffffffffffffd";
  ASSERT_TRUE(fs::create_directories(dir.path() + "/" + key + "/user"));
  ASSERT_EQ(::mkfifo((dir.path() + "/seg/fifo").c_str(), 0644), 0);
  PutOptions create_only;
  create_only.if_absent = true;
  for (const PutOptions& o : {create_only, PutOptions{}}) {
    Status put = store->Put(key, "segment", o, nullptr);
    EXPECT_TRUE(put.IsInvalidArgument()) << put.ToString();
    EXPECT_TRUE(Has(put, "non-empty directory")) << put.ToString();
    EXPECT_TRUE(Has(put, dir.path() + "/" + key)) << put.ToString();
    EXPECT_EQ(InChildWithin(10,
                            [&] {
                              Status st = store->Put("seg/fifo", "segment", o, nullptr);
                              return st.IsInvalidArgument() && Has(st, "a FIFO") ? 0 : 1;
                            }),
              0);
  }
  EXPECT_TRUE(fs::is_directory(dir.path() + "/" + key + "/user"));
  struct stat st;
  ASSERT_EQ(::lstat((dir.path() + "/seg/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_TRUE(fs::is_empty(dir.path() + "/.hftmp"));
  // Deleting a directory "key" is a no-op: it is not an object.
  EXPECT_TRUE(store->Delete(key).ok());
  EXPECT_TRUE(fs::is_directory(dir.path() + "/" + key + "/user"));
}

TEST(LocalStoreBounds, WholeObjectGetOfAHugeFileIsRefused) {
  testing::TempDir dir;
  auto store = MustOpen(dir.path());
  ASSERT_TRUE(store->Put("big", "x").ok());
  ASSERT_EQ(::truncate((dir.path() + "/big").c_str(), (1ll << 30) + 1), 0);  // sparse
  std::string out;
  Status st = store->Get("big", &out);
  EXPECT_TRUE(st.IsCorrupt()) << st.ToString();
  EXPECT_TRUE(Has(st, std::to_string((1ll << 30) + 1))) << st.ToString();
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(store->Get("big", 0, 4, &out, nullptr).ok());  // ranges are fine
  EXPECT_EQ(out, std::string("x\0\0\0", 4));
}

}  // namespace
}  // namespace hyperfile
