// SPDX-License-Identifier: Apache-2.0
// A shared Executor (hyperfile/executor.h): many handles on few threads,
// writers that share one flush worker do not deadlock, handles closed with
// readahead queued behind other handles' work, and the executor released
// before its handles.
#include "hyperfile/executor.h"

#include <dirent.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"
#include "support/time_limit.h"

namespace hyperfile {
namespace {

// Threads of this process right now.
int ThreadCount() {
  int n = 0;
  DIR* d = opendir("/proc/self/task");
  if (!d) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') n++;
  }
  closedir(d);
  return n;
}

std::string Pattern(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::shared_ptr<Executor> MakeExecutor(int io, int flush) {
  Executor::Options o;
  o.io_threads = io;
  o.flush_threads = flush;
  auto e = Executor::Create(o);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return e.ok() ? *e : nullptr;
}

TEST(Executor, RefusesOutOfRangeOptions) {
  for (auto [io, flush] : std::vector<std::pair<int, int>>{{0, 1}, {1025, 1}, {1, 0}, {1, 257}}) {
    Executor::Options o;
    o.io_threads = io;
    o.flush_threads = flush;
    auto e = Executor::Create(o);
    ASSERT_FALSE(e.ok()) << io << " " << flush;
    EXPECT_EQ(e.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(e.status().message().find(io < 1 || io > 1024 ? "io_threads" : "flush_threads"),
              std::string::npos)
        << e.status().ToString();
  }
  EXPECT_TRUE(Executor::Create().ok());
}

// Without an executor, every read-only handle starts io_parallelism threads;
// with one, none, and a writer only its flusher.
TEST(Executor, HandlesOnASharedExecutorStartAlmostNoThreads) {
  auto store = NewMemoryStore("executor-threads");
  const std::string data = Pattern(1, 300 * 1024);
  {
    auto f = File::Create(store);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_TRUE((*f)->PWrite(0, data.data(), data.size()).ok());
    ASSERT_TRUE((*f)->Flush().ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  auto executor = MakeExecutor(4, 2);
  ASSERT_TRUE(executor);
  const int before = ThreadCount();
  ASSERT_GT(before, 0);

  OpenOptions ro;
  ro.read_only = true;
  ro.executor = executor;
  std::vector<std::unique_ptr<File>> readers;
  for (int i = 0; i < 32; i++) {
    auto f = File::Open(store, ro);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    readers.push_back(std::move(*f));
  }
  EXPECT_EQ(ThreadCount(), before) << "32 read-only handles on an executor";
  // They all work, concurrently, on the four shared workers.
  std::vector<std::thread> threads;
  std::vector<int> good(readers.size(), 0);
  for (size_t i = 0; i < readers.size(); i++) {
    threads.emplace_back([&, i] {
      std::string got(data.size(), '\0');
      auto n = readers[i]->PRead(0, got.data(), got.size());
      good[i] = n.ok() && *n == data.size() && got == data;
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < readers.size(); i++) EXPECT_TRUE(good[i]) << "reader " << i;

  OpenOptions rw;
  rw.executor = executor;
  auto writer = File::Open(store, rw);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  // Its flusher and its writer lease's renewer (docs/design/0015).
  EXPECT_EQ(ThreadCount(), before + 2)
      << "a writer on an executor starts only its flusher and renewer";
  ASSERT_TRUE((*writer)->PWrite(5, "xyz", 3).ok());
  ASSERT_TRUE((*writer)->Flush().ok());
  ASSERT_TRUE((*writer)->Close().ok());
  writer->reset();
  readers.clear();
  EXPECT_EQ(ThreadCount(), before);

  // The default: a handle of its own threads (8 I/O workers).
  OpenOptions own;
  own.read_only = true;
  auto f = File::Open(store, own);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(ThreadCount(), before + own.io_parallelism);
}

// Eight writers whose flush stages share ONE flush worker and ONE I/O
// worker: stages wait for I/O tasks only, so all of them finish (in a child
// with a deadline: a deadlock fails instead of hanging the suite).
TEST(Executor, WritersSharingOneWorkerOfEachKindNeverDeadlock) {
  EXPECT_TRUE(testing::RunsWithin(120, [] {
    auto executor = MakeExecutor(1, 1);
    if (!executor) return false;
    const uint32_t bs = 4096;
    std::vector<std::shared_ptr<ObjectStore>> stores;
    std::vector<std::unique_ptr<File>> files;
    for (int i = 0; i < 8; i++) {
      stores.push_back(NewMemoryStore("executor-writer-" + std::to_string(i)));
      CreateOptions c;
      c.block_size = bs;
      OpenOptions o;
      o.executor = executor;
      o.dirty_budget_bytes = 8 * bs;  // writers wait for flushes: the pipeline is busy
      auto f = File::Create(stores.back(), c, o);
      if (!f.ok()) return false;
      files.push_back(std::move(*f));
    }
    std::vector<std::string> want(files.size());
    std::vector<int> ok(files.size(), 0);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < files.size(); i++) {
      threads.emplace_back([&, i] {
        std::mt19937_64 rng(i);
        want[i].assign(64 * bs, '\0');
        bool good = true;
        for (int op = 0; op < 300 && good; op++) {
          // Partial writes at random places (their flushes merge bases).
          const uint64_t off = rng() % (want[i].size() - 100);
          const std::string piece = Pattern(rng(), 1 + rng() % 100);
          good = files[i]->PWrite(off, piece.data(), piece.size()).ok();
          want[i].replace(off, piece.size(), piece);
          if (op % 37 == 0) good = good && files[i]->Flush().ok();
        }
        good = good && files[i]->Flush().ok();
        std::string got(want[i].size(), '\0');
        auto n = files[i]->PRead(0, got.data(), got.size());
        ok[i] = good && n.ok() && got.substr(0, *n) == want[i].substr(0, *n);
      });
    }
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < files.size(); i++) {
      if (!ok[i] || !files[i]->Close().ok()) return false;
      // What was committed is what was written.
      OpenOptions ro;
      ro.read_only = true;
      auto again = File::Open(stores[i], ro);
      if (!again.ok()) return false;
      std::string got((*again)->Size(), '\0');
      auto n = (*again)->PRead(0, got.data(), got.size());
      if (!n.ok() || got.substr(0, want[i].size()) != want[i].substr(0, got.size())) return false;
    }
    return true;
  }));
}

// A store whose Gets are slow and which remembers whether one ran while no
// handle was supposed to exist.
class WatchedStore : public StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    if (!handle_alive.load()) late_gets++;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    Status st = StoreWrapper::Get(key, offset, length, out, info);
    if (!handle_alive.load()) late_gets++;
    return st;
  }
  std::atomic<bool> handle_alive{true};
  std::atomic<int> late_gets{0};
};

// Handles destroyed while their readahead is still queued behind another
// handle's requests on the shared workers: the destructor waits for its own
// tasks, so none runs (and no Get is issued) once it returned. The executor
// released before its handles stays alive for them.
TEST(Executor, DestroyedHandlesLeaveNoTaskBehindAndOutliveTheirExecutor) {
  auto watched = std::make_shared<WatchedStore>(NewMemoryStore("executor-close"));
  std::shared_ptr<ObjectStore> store = watched;
  const std::string data = Pattern(2, 4 << 20);
  {
    auto f = File::Create(store);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE((*f)->PWrite(0, data.data(), data.size()).ok());
    ASSERT_TRUE((*f)->Flush().ok());
    ASSERT_TRUE((*f)->Close().ok());
  }
  for (int round = 0; round < 5; round++) {
    auto executor = MakeExecutor(2, 1);
    ASSERT_TRUE(executor);
    OpenOptions ro;
    ro.read_only = true;
    ro.executor = executor;
    ro.max_read_request_bytes = 64 * 1024;  // many small readahead requests
    std::vector<std::unique_ptr<File>> files;
    for (int i = 0; i < 4; i++) {
      auto f = File::Open(store, ro);
      ASSERT_TRUE(f.ok());
      files.push_back(std::move(*f));
    }
    executor.reset();  // the handles keep it alive
    // Sequential reads start readahead far ahead of what was read.
    for (auto& f : files) {
      for (uint64_t off = 0; off < 512 * 1024; off += 128 * 1024) {
        std::string got(128 * 1024, '\0');
        auto n = f->PRead(off, got.data(), got.size());
        ASSERT_TRUE(n.ok()) << n.status().ToString();
        ASSERT_EQ(got, data.substr(off, got.size()));
      }
    }
    for (auto& f : files) {
      ASSERT_TRUE(f->Close().ok());
      f.reset();
    }
    watched->handle_alive = false;  // every handle is gone
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_EQ(watched->late_gets.load(), 0) << "round " << round << ": a task outlived its handle";
    watched->handle_alive = true;
  }
}

}  // namespace
}  // namespace hyperfile
