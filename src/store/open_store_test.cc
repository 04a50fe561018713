// OpenStore: URI parsing and the memory:// registry.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "hyperfile/object_store.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

TEST(OpenStore, MemoryNamesShareContents) {
  auto a = OpenStore("memory://open-test-shared");
  auto b = OpenStore("memory://open-test-shared");
  auto c = OpenStore("memory://open-test-other");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_TRUE((*a)->Put("k", "v").ok());
  std::string out;
  ASSERT_TRUE((*b)->Get("k", &out).ok());
  EXPECT_EQ(out, "v");
  EXPECT_TRUE((*c)->Get("k", &out).IsNotFound());
  EXPECT_EQ((*a)->Name(), "memory://open-test-shared");
}

TEST(OpenStore, FileUrisAndPaths) {
  testing::TempDir dir;
  auto byuri = OpenStore("file://" + dir.path() + "/s");
  ASSERT_TRUE(byuri.ok()) << byuri.status().ToString();
  EXPECT_EQ((*byuri)->Name(), "file://" + dir.path() + "/s");
  ASSERT_TRUE((*byuri)->Put("k", "v").ok());
  StoreOptions no_retry;
  no_retry.retry = false;
  auto bypath = OpenStore(dir.path() + "/s", no_retry);
  ASSERT_TRUE(bypath.ok());
  std::string out;
  ASSERT_TRUE((*bypath)->Get("k", &out).ok());
  EXPECT_EQ(out, "v");
}

TEST(OpenStore, RelativePathBecomesAbsolute) {
  testing::TempDir dir;
  std::string old = std::filesystem::current_path();
  ASSERT_EQ(::chdir(dir.path().c_str()), 0);
  auto store = OpenStore("rel/store");
  ASSERT_EQ(::chdir(old.c_str()), 0);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::string want = std::filesystem::canonical(dir.path()).string() + "/rel/store";
  EXPECT_EQ((*store)->Name(), "file://" + want);
  ASSERT_TRUE((*store)->Put("k", "v").ok());
  EXPECT_TRUE(std::filesystem::exists(want + "/k"));
}

TEST(OpenStore, BadUrisAreInvalidArgumentNamingTheUri) {
  for (const char* uri :
       {"", "s3://", "s3:///prefix", "ftp://x", "file://relative/path", "http://host/bucket"}) {
    auto s = OpenStore(uri);
    ASSERT_FALSE(s.ok()) << uri;
    EXPECT_TRUE(s.status().IsInvalidArgument()) << uri << ": " << s.status().ToString();
    EXPECT_NE(s.status().message().find("'" + std::string(uri) + "'"), std::string::npos)
        << s.status().message();
  }
}

TEST(OpenStore, RootsThatCannotBeAFileAreRefused) {
  std::string dots;
  for (int i = 0; i < 64; i++) dots += "../";
  for (std::string uri : {std::string("file:///"), std::string("/"), std::string("file:///tmp/../"),
                          std::string("file:////."), std::string("//tmp/..//"), dots}) {
    auto s = OpenStore(uri);
    ASSERT_FALSE(s.ok()) << uri;
    EXPECT_TRUE(s.status().IsInvalidArgument()) << uri << ": " << s.status().ToString();
    EXPECT_NE(s.status().message().find("the filesystem root cannot be a hyperfile"),
              std::string::npos)
        << s.status().ToString();
  }
  for (const char* uri : {"file:///proc/self", "/sys/x", "file:///dev/shm/../null"}) {
    auto s = OpenStore(uri);
    ASSERT_FALSE(s.ok()) << uri;
    EXPECT_TRUE(s.status().IsInvalidArgument()) << uri << ": " << s.status().ToString();
    EXPECT_NE(s.status().message().find("pseudo filesystem"), std::string::npos)
        << s.status().ToString();
  }
}

TEST(OpenStore, OpeningAMissingPathCreatesNothing) {
  testing::TempDir dir;
  for (std::string uri : {"file://" + dir.path() + "/a/b", dir.path() + "/a/b"}) {
    auto s = OpenStore(uri);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    std::string out;
    EXPECT_TRUE((*s)->Get("seg/0000000000000001", &out).IsNotFound());
    std::vector<ObjectInfo> all;
    EXPECT_TRUE((*s)->List("seg/", "", 1, &all).ok());
    EXPECT_FALSE(std::filesystem::exists(dir.path() + "/a")) << uri;
  }
}

TEST(OpenStore, S3UriSplitsBucketAndPrefix) {
  StoreOptions o;
  o.endpoint = "http://127.0.0.1:1";
  o.access_key_id = "AKIDEXAMPLE";
  o.secret_access_key = "secret";
  o.region = "us-east-1";
  auto s = OpenStore("s3://bucket/some/prefix/", o);
  if (!s.ok() && s.status().IsNotSupported()) GTEST_SKIP() << "no S3 backend in this build";
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->Name(), "s3://bucket/some/prefix");
  auto bare = OpenStore("s3://bucket", o);
  ASSERT_TRUE(bare.ok()) << bare.status().ToString();
  EXPECT_EQ((*bare)->Name(), "s3://bucket");
}

}  // namespace
}  // namespace hyperfile
