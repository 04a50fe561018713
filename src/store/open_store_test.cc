// SPDX-License-Identifier: Apache-2.0
// OpenStore: URI parsing, the memory:// registry, the stack it assembles and
// the latency specification (HYPERFILE_STORE_LATENCY).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>

#include "hyperfile/object_store.h"
#include "hyperfile/store_layers.h"
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

// ------------------------------------------------------------ the stack ---

using std::chrono::microseconds;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

template <typename Fn>
Clock::duration Time(Fn fn) {
  auto start = Clock::now();
  fn();
  return Clock::now() - start;
}

// Sets an environment variable for one test and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(OpenStoreStack, BackendMetricsAndTop) {
  StoreOptions o;
  o.metrics = true;
  o.latency_from_environment = false;
  auto stack = OpenStoreStack("memory://stack-test", o);
  ASSERT_TRUE(stack.ok()) << stack.status().ToString();
  ASSERT_NE(stack->metrics, nullptr);
  ASSERT_NE(stack->backend, nullptr);
  EXPECT_NE(stack->store, stack->backend);  // the retry layer is on top
  ASSERT_TRUE(stack->store->Put("k", "v").ok());
  std::string out;
  ASSERT_TRUE(stack->backend->Get("k", &out).ok());
  EXPECT_EQ(out, "v");
  EXPECT_EQ(stack->metrics->Snapshot().count(StoreVerb::kPut), 1u);
  EXPECT_EQ(stack->store->Name(), "memory://stack-test");

  StoreOptions bare;
  bare.retry = false;
  bare.latency_from_environment = false;
  auto plain = OpenStoreStack("memory://stack-test", bare);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->metrics, nullptr);
  EXPECT_EQ(plain->store, plain->backend);  // no layer asked, none added
}

TEST(OpenStoreStack, LatencyFromOptions) {
  StoreOptions o;
  LatencyOptions l;
  l.head_ttfb = milliseconds(40);
  o.latency = l;
  auto store = OpenStore("memory://latency-options", o);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_GE(Time([&] { EXPECT_TRUE((*store)->Head("k", nullptr).IsNotFound()); }),
            milliseconds(40));
}

TEST(OpenStoreStack, RefusesBadLatencyOptionsNamingTheField) {
  StoreOptions o;
  LatencyOptions l;
  l.list_ttfb = milliseconds(-1);
  o.latency = l;
  auto s = OpenStore("memory://bad-latency", o);
  ASSERT_TRUE(s.status().IsInvalidArgument());
  EXPECT_NE(s.status().message().find("latency.list_ttfb"), std::string::npos)
      << s.status().message();
  l = LatencyOptions{};
  l.max_in_flight = 5000;
  o.latency = l;
  s = OpenStore("memory://bad-latency", o);
  ASSERT_TRUE(s.status().IsInvalidArgument());
  EXPECT_NE(s.status().message().find("latency.max_in_flight"), std::string::npos)
      << s.status().message();
}

TEST(OpenStoreStack, LatencyFromTheEnvironment) {
  ScopedEnv env("HYPERFILE_STORE_LATENCY", "head=2s");
  auto slow = OpenStore("memory://latency-env");
  ASSERT_TRUE(slow.ok()) << slow.status().ToString();
  EXPECT_GE(Time([&] { EXPECT_TRUE((*slow)->Head("k", nullptr).IsNotFound()); }),
            milliseconds(2000));
  // Explicit options win over the environment ...
  StoreOptions o;
  o.latency = LatencyOptions{};
  o.latency->head_ttfb = microseconds(0);
  auto explicit_store = OpenStore("memory://latency-env", o);
  ASSERT_TRUE(explicit_store.ok());
  EXPECT_LT(Time([&] { EXPECT_TRUE((*explicit_store)->Head("k", nullptr).IsNotFound()); }),
            milliseconds(1000));
  // ... and a caller can ignore it.
  StoreOptions ignore;
  ignore.latency_from_environment = false;
  auto fast = OpenStore("memory://latency-env", ignore);
  ASSERT_TRUE(fast.ok());
  EXPECT_LT(Time([&] { EXPECT_TRUE((*fast)->Head("k", nullptr).IsNotFound()); }),
            milliseconds(1000));
}

TEST(OpenStoreStack, BadEnvironmentValueNamesTheVariable) {
  for (const char* bad : {"fast", "get=30", "aws,", "get=1ms,get=2ms"}) {
    ScopedEnv env("HYPERFILE_STORE_LATENCY", bad);
    auto s = OpenStore("memory://latency-env-bad");
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_TRUE(s.status().IsInvalidArgument()) << s.status().ToString();
    EXPECT_NE(s.status().message().find("HYPERFILE_STORE_LATENCY"), std::string::npos)
        << s.status().message();
    EXPECT_NE(s.status().message().find(bad), std::string::npos) << s.status().message();
  }
  ScopedEnv empty("HYPERFILE_STORE_LATENCY", "");  // empty = unset
  EXPECT_TRUE(OpenStore("memory://latency-env-bad").ok());
}

TEST(MakeStoreOpener, OpensWithTheSameOptions) {
  StoreOptions o;
  o.latency = LatencyOptions{};
  o.latency->head_ttfb = milliseconds(40);
  StoreOpener open = MakeStoreOpener(o);
  o.latency.reset();  // the opener holds its own copy
  auto origin = open("memory://opener-origin");
  ASSERT_TRUE(origin.ok()) << origin.status().ToString();
  EXPECT_GE(Time([&] { EXPECT_TRUE((*origin)->Head("k", nullptr).IsNotFound()); }),
            milliseconds(40));
  auto bad = open("nope://x");
  EXPECT_TRUE(bad.status().IsInvalidArgument());
  EXPECT_NE(bad.status().message().find("nope://x"), std::string::npos);
}

// ----------------------------------------------------- latency parsing ---

TEST(ParseLatencyOptions, AwsIsTheDefaultProfile) {
  auto o = ParseLatencyOptions("aws");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  LatencyOptions d;
  EXPECT_EQ(o->get_ttfb, d.get_ttfb);
  EXPECT_EQ(o->put_ttfb, d.put_ttfb);
  EXPECT_EQ(o->head_ttfb, d.head_ttfb);
  EXPECT_EQ(o->list_ttfb, d.list_ttfb);
  EXPECT_EQ(o->delete_ttfb, d.delete_ttfb);
  EXPECT_EQ(o->bandwidth_bytes_per_s, d.bandwidth_bytes_per_s);
  EXPECT_EQ(o->max_in_flight, 0);
}

TEST(ParseLatencyOptions, ItemsStartFromNothing) {
  auto o = ParseLatencyOptions("get=30ms,put=60ms,bw=100MB");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->get_ttfb, milliseconds(30));
  EXPECT_EQ(o->put_ttfb, milliseconds(60));
  EXPECT_EQ(o->head_ttfb, microseconds(0));
  EXPECT_EQ(o->list_ttfb, microseconds(0));
  EXPECT_EQ(o->delete_ttfb, microseconds(0));
  EXPECT_EQ(o->bandwidth_bytes_per_s, 100ull << 20);

  o = ParseLatencyOptions("head=250us,list=1s,delete=0,bw=1GiB/s,inflight=16");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->get_ttfb, microseconds(0));
  EXPECT_EQ(o->head_ttfb, microseconds(250));
  EXPECT_EQ(o->list_ttfb, milliseconds(1000));
  EXPECT_EQ(o->bandwidth_bytes_per_s, 1ull << 30);
  EXPECT_EQ(o->max_in_flight, 16);

  o = ParseLatencyOptions("all=5ms");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->put_ttfb, milliseconds(5));
  EXPECT_EQ(o->delete_ttfb, milliseconds(5));
  EXPECT_EQ(o->bandwidth_bytes_per_s, 0u);  // unlimited

  o = ParseLatencyOptions("bw=12345");  // plain bytes per second
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->bandwidth_bytes_per_s, 12345u);
}

TEST(ParseLatencyOptions, AwsFirstThenAdjust) {
  auto o = ParseLatencyOptions("aws,get=50ms,bw=0");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->get_ttfb, milliseconds(50));
  EXPECT_EQ(o->put_ttfb, milliseconds(60));
  EXPECT_EQ(o->head_ttfb, milliseconds(30));
  EXPECT_EQ(o->bandwidth_bytes_per_s, 0u);
}

TEST(ParseLatencyOptions, StrictRefusalsNameTheItem) {
  struct Case {
    const char* spec;
    const char* item;  // what the message must name
  };
  for (Case c : {Case{"", ""},
                 Case{"fast", "fast"},
                 Case{"AWS", "AWS"},
                 Case{"get=30", "get=30"},
                 Case{"get=30 ms", "get=30 ms"},
                 Case{" get=30ms", " get=30ms"},
                 Case{"get=-1ms", "get=-1ms"},
                 Case{"get=1.5ms", "get=1.5ms"},
                 Case{"get=61s", "get=61s"},
                 Case{"get=ms", "get=ms"},
                 Case{"get=", "get="},
                 Case{"get=30ms,", ""},
                 Case{",get=30ms", ""},
                 Case{"get=1ms,get=2ms", "get=2ms"},
                 Case{"nope=1ms", "nope"},
                 Case{"get=1ms,aws", "aws"},
                 Case{"bw=fast", "bw=fast"},
                 Case{"bw=-1", "bw=-1"},
                 Case{"bw=1MB/h", "bw=1MB/h"},
                 Case{"inflight=5000", "inflight=5000"},
                 Case{"inflight=1K", "inflight=1K"},
                 Case{"get=99999999999999999999s", "get=99999999999999999999s"}}) {
    auto o = ParseLatencyOptions(c.spec);
    ASSERT_FALSE(o.ok()) << "'" << c.spec << "' was accepted";
    EXPECT_TRUE(o.status().IsInvalidArgument()) << o.status().ToString();
    EXPECT_NE(o.status().message().find(c.item), std::string::npos)
        << c.spec << ": " << o.status().message();
  }
}

}  // namespace
}  // namespace hyperfile
