// SPDX-License-Identifier: Apache-2.0
// Following the head: File::Refresh on a read-only handle, its cost, what it
// reports (appends, truncation, restore, removal, a replaced file, long
// gaps), the background refresh with its callback, and reads racing a
// refresh (forced interleavings through the test hooks, then a threaded mix).
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "file/file_impl.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"
#include "support/store_testing.h"

namespace hyperfile {
namespace {

using testing::MakeStoreForBackend;

std::unique_ptr<File> MustCreate(const std::shared_ptr<ObjectStore>& store) {
  CreateOptions co;
  co.block_size = 4096;
  auto f = File::Create(store, co);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  return f.ok() ? std::move(f).value() : nullptr;
}

std::unique_ptr<File> MustFollow(const std::shared_ptr<ObjectStore>& store,
                                 OpenOptions options = {}) {
  options.read_only = true;
  auto f = File::Open(store, options);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  return f.ok() ? std::move(f).value() : nullptr;
}

std::string ReadAll(File* f) {
  std::string out(f->Size(), '\0');
  auto n = f->PRead(0, out.data(), out.size());
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  out.resize(n.ok() ? *n : 0);
  return out;
}

void AppendFlush(File* w, const std::string& data) {
  ASSERT_TRUE(w->Append(data.data(), data.size()).ok());
  auto id = w->Flush();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
}

RefreshResult MustRefresh(File* f) {
  auto r = f->Refresh();
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : RefreshResult{};
}

class Follow : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    HF_REQUIRE_BACKEND(GetParam());
    auto s = MakeStoreForBackend(GetParam(), "follow");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = *s;
  }
  std::shared_ptr<ObjectStore> store_;
};

TEST_P(Follow, RefreshMovesToTheNewestCheckpointAndReportsIt) {
  auto w = MustCreate(store_);
  ASSERT_TRUE(w);
  AppendFlush(w.get(), "line one\n");
  auto r = MustFollow(store_);
  ASSERT_TRUE(r);
  EXPECT_EQ(ReadAll(r.get()), "line one\n");
  RefreshResult same = MustRefresh(r.get());
  EXPECT_FALSE(same.changed);
  EXPECT_EQ(same.old_checkpoint, same.new_checkpoint);
  EXPECT_EQ(same.new_bytes_from, 9u);

  AppendFlush(w.get(), "line two\n");
  AppendFlush(w.get(), "line three\n");
  EXPECT_EQ(r->Size(), 9u) << "a read-only handle stays put until it refreshes";
  RefreshResult moved = MustRefresh(r.get());
  EXPECT_TRUE(moved.changed);
  EXPECT_EQ(moved.old_checkpoint, 2u);
  EXPECT_EQ(moved.new_checkpoint, 4u);
  EXPECT_EQ(moved.old_size, 9u);
  EXPECT_EQ(moved.new_size, 29u);
  EXPECT_EQ(moved.new_bytes_from, 9u);
  EXPECT_FALSE(moved.truncated || moved.restored || moved.removed || moved.replaced ||
               moved.went_backwards);
  EXPECT_TRUE(moved.history_complete);
  EXPECT_EQ(ReadAll(r.get()), "line one\nline two\nline three\n");
  auto st = r->Stat();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->checkpoint, 4u);
  EXPECT_EQ(st->size, 29u);
  EXPECT_TRUE(st->read_only);
  ASSERT_TRUE(r->Close().ok());
  ASSERT_TRUE(w->Close().ok());
}

TEST_P(Follow, TruncateRestoreAndRemoveAreReported) {
  auto w = MustCreate(store_);
  ASSERT_TRUE(w);
  AppendFlush(w.get(), std::string(10000, 'a'));  // checkpoint 2
  auto r = MustFollow(store_);
  ASSERT_TRUE(r);

  // Truncated, then grown again before the follower looks: the follower
  // learns of the truncation from the sizes in between.
  ASSERT_TRUE(w->Truncate(3000).ok());
  ASSERT_TRUE(w->Flush().ok());                  // 3
  AppendFlush(w.get(), std::string(9000, 'b'));  // 4: size 12000 > 10000
  RefreshResult t = MustRefresh(r.get());
  EXPECT_TRUE(t.changed);
  EXPECT_TRUE(t.truncated);
  EXPECT_FALSE(t.restored);
  EXPECT_EQ(t.new_size, 12000u);
  EXPECT_EQ(t.new_bytes_from, 3000u);
  std::string all = ReadAll(r.get());
  EXPECT_EQ(all, std::string(3000, 'a') + std::string(9000, 'b'));

  // A restore to checkpoint 2 (size 10000), then an append.
  ASSERT_TRUE(w->Close().ok());
  auto restored = Restore(store_, At::Checkpoint(2));  // 5
  ASSERT_TRUE(restored.ok()) << restored.status().ToString();
  auto w2 = File::Open(store_);
  ASSERT_TRUE(w2.ok());
  AppendFlush(w2->get(), "after\n");  // 6
  RefreshResult rs = MustRefresh(r.get());
  EXPECT_TRUE(rs.changed);
  EXPECT_TRUE(rs.restored);
  EXPECT_EQ(rs.restored_from, 2u);
  EXPECT_EQ(rs.restored_size, 10000u);
  EXPECT_EQ(rs.new_bytes_from, 10000u) << "a follower continues from the restored size";
  EXPECT_EQ(rs.new_size, 10006u);
  EXPECT_EQ(ReadAll(r.get()), std::string(10000, 'a') + "after\n");
  ASSERT_TRUE((*w2)->Close().ok());

  // Removed: reported, and the handle stays at its state.
  ASSERT_TRUE(RemoveFile(store_).ok());
  RefreshResult gone = MustRefresh(r.get());
  EXPECT_TRUE(gone.removed);
  EXPECT_FALSE(gone.changed);
  EXPECT_EQ(r->Size(), 10006u);
}

TEST_P(Follow, AReplacedOrShorterFileIsNotFollowed) {
  {
    auto w = MustCreate(store_);
    ASSERT_TRUE(w);
    for (int i = 0; i < 3; i++) AppendFlush(w.get(), "x");  // head 4
    ASSERT_TRUE(w->Close().ok());
  }
  auto r = MustFollow(store_);
  ASSERT_TRUE(r);
  ASSERT_TRUE(RemoveFile(store_).ok());
  {
    auto w = MustCreate(store_);  // a new file, head 1
    ASSERT_TRUE(w);
    RefreshResult back = MustRefresh(r.get());
    EXPECT_TRUE(back.went_backwards);
    EXPECT_FALSE(back.changed);
    for (int i = 0; i < 5; i++) AppendFlush(w.get(), "new");  // head 6, another file id
    RefreshResult other = MustRefresh(r.get());
    EXPECT_TRUE(other.replaced);
    EXPECT_FALSE(other.changed);
    EXPECT_EQ(r->Size(), 3u);
    auto st = r->Stat();
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->checkpoint, 4u) << "the handle stays at its state";
    ASSERT_TRUE(w->Close().ok());
  }
}

TEST_P(Follow, LongGapsReadOlderHeadersAndSayWhenHistoryIsIncomplete) {
  auto w = MustCreate(store_);
  ASSERT_TRUE(w);
  AppendFlush(w.get(), std::string(100, 'a'));  // 2
  auto r = MustFollow(store_);
  ASSERT_TRUE(r);
  ASSERT_TRUE(w->Truncate(40).ok());
  ASSERT_TRUE(w->Flush().ok());  // 3: the truncation, 200 checkpoints before the head
  for (int i = 0; i < 200; i++) AppendFlush(w.get(), "b");
  RefreshResult mid = MustRefresh(r.get());
  EXPECT_TRUE(mid.changed);
  EXPECT_TRUE(mid.history_complete);
  EXPECT_TRUE(mid.truncated) << "found in an older header's recent checkpoints";
  EXPECT_EQ(mid.new_bytes_from, 40u);
  EXPECT_EQ(mid.new_size, 240u);

  for (int i = 0; i < 600; i++) AppendFlush(w.get(), "c");
  RefreshResult far = MustRefresh(r.get());
  EXPECT_TRUE(far.changed);
  EXPECT_FALSE(far.history_complete);
  EXPECT_FALSE(far.truncated);
  EXPECT_EQ(far.new_bytes_from, 240u);
  EXPECT_EQ(far.new_size, 840u);
  EXPECT_EQ(ReadAll(r.get()), std::string(40, 'a') + std::string(200, 'b') + std::string(600, 'c'));
  ASSERT_TRUE(w->Close().ok());
}

// A poll that finds nothing new costs one LIST; one that finds a new head
// costs the LIST and the head's header, and reading the new bytes only what
// holds them.
TEST_P(Follow, APollWithNoChangeCostsOneRequest) {
  auto metrics = std::make_shared<MetricsStore>(store_);
  auto w = MustCreate(store_);
  ASSERT_TRUE(w);
  AppendFlush(w.get(), std::string(5000, 'a'));
  auto r = MustFollow(metrics);
  ASSERT_TRUE(r);
  EXPECT_EQ(ReadAll(r.get()).size(), 5000u);
  metrics->Reset();
  for (int i = 0; i < 20; i++) EXPECT_FALSE(MustRefresh(r.get()).changed);
  StoreMetricsSnapshot idle = metrics->Snapshot();
  EXPECT_EQ(idle.total_requests(), 20u) << idle.ToString();
  EXPECT_EQ(idle.count(StoreVerb::kList), 20u) << idle.ToString();

  AppendFlush(w.get(), "new line\n");
  metrics->Reset();
  RefreshResult moved = MustRefresh(r.get());
  ASSERT_TRUE(moved.changed);
  StoreMetricsSnapshot step = metrics->Snapshot();
  EXPECT_EQ(step.count(StoreVerb::kList), 1u) << step.ToString();
  EXPECT_EQ(step.count(StoreVerb::kGet), 1u) << step.ToString();
  EXPECT_EQ(step.total_requests(), 2u) << step.ToString();
  metrics->Reset();
  std::string tail(moved.new_size - moved.new_bytes_from, '\0');
  auto n = r->PRead(moved.new_bytes_from, tail.data(), tail.size());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(tail, "new line\n");
  StoreMetricsSnapshot read = metrics->Snapshot();
  // A small flush's data is inline in its segment, inside the header's read.
  EXPECT_EQ(read.total_requests(), 0u) << "the new bytes came with the head: " << read.ToString();
  // A flush larger than the header read: only the new bytes are fetched.
  std::string big(200 << 10, 'b');
  AppendFlush(w.get(), big);
  ASSERT_TRUE(MustRefresh(r.get()).changed);
  metrics->Reset();
  std::string back(big.size(), '\0');
  n = r->PRead(5009, back.data(), back.size());
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(back == big);
  read = metrics->Snapshot();
  EXPECT_LE(read.count(StoreVerb::kGet), 2u) << read.ToString();
  EXPECT_LE(read.bytes_in, big.size() + 2 * 4096 + 2048)
      << "only the new bytes: " << read.ToString();
  ASSERT_TRUE(w->Close().ok());
}

TEST_P(Follow, BackgroundRefreshCallsBack) {
  auto w = MustCreate(store_);
  ASSERT_TRUE(w);
  AppendFlush(w.get(), "first\n");
  std::mutex mu;
  std::condition_variable cv;
  std::vector<RefreshResult> seen;
  std::string read_in_callback;
  File* reader = nullptr;
  OpenOptions o;
  o.refresh_interval_ms = 10;
  o.on_refresh = [&](const Status& st, const RefreshResult& rr) {
    ASSERT_TRUE(st.ok()) << st.ToString();
    std::string tail(rr.new_size - rr.new_bytes_from, '\0');
    std::lock_guard<std::mutex> l(mu);
    // The new state is installed when the callback runs.
    auto n = reader->PRead(rr.new_bytes_from, tail.data(), tail.size());
    ASSERT_TRUE(n.ok());
    read_in_callback += tail;
    seen.push_back(rr);
    cv.notify_all();
  };
  std::unique_ptr<File> r;
  {
    std::lock_guard<std::mutex> l(mu);  // the callback waits for `reader`
    r = MustFollow(store_, o);
    ASSERT_TRUE(r);
    reader = r.get();
  }
  AppendFlush(w.get(), "second\n");
  {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30), [&] { return !seen.empty(); }));
    EXPECT_TRUE(seen[0].changed);
    EXPECT_EQ(seen[0].new_size, 13u);
  }
  AppendFlush(w.get(), "third\n");
  {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30),
                            [&] { return !seen.empty() && seen.back().new_size == 19u; }));
    EXPECT_EQ(read_in_callback, "second\nthird\n");
  }
  ASSERT_TRUE(r->Close().ok());  // stops the refresher
  ASSERT_TRUE(w->Close().ok());
}

// A failing store reaches on_refresh as an error (the handle stays where it
// is), and following resumes when the store answers again.
TEST_P(Follow, BackgroundRefreshReportsStoreErrorsAndRecovers) {
  auto faults = std::make_shared<FaultInjectionStore>(store_);
  auto w = MustCreate(store_);
  ASSERT_TRUE(w);
  AppendFlush(w.get(), "one\n");
  std::mutex mu;
  std::condition_variable cv;
  int errors = 0;
  uint64_t newest_size = 0;
  OpenOptions o;
  o.refresh_interval_ms = 10;
  o.on_refresh = [&](const Status& st, const RefreshResult& rr) {
    std::lock_guard<std::mutex> l(mu);
    if (!st.ok()) {
      EXPECT_TRUE(st.IsTransient()) << st.ToString();
      errors++;
    } else {
      newest_size = rr.new_size;
    }
    cv.notify_all();
  };
  auto r = MustFollow(faults, o);
  ASSERT_TRUE(r);
  faults->FailWhen([](const StoreCall& c) { return c.verb == StoreVerb::kList; },
                   Status::Transient("injected: the network is down"));
  AppendFlush(w.get(), "two\n");
  {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30), [&] { return errors >= 2; }));
    EXPECT_EQ(newest_size, 0u);
  }
  EXPECT_EQ(r->Size(), 4u) << "a failed refresh leaves the handle where it was";
  faults->ClearFaults();
  {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30), [&] { return newest_size == 8u; }));
  }
  EXPECT_EQ(ReadAll(r.get()), "one\ntwo\n");
  ASSERT_TRUE(r->Close().ok());
  ASSERT_TRUE(w->Close().ok());
}

TEST_P(Follow, RefreshIsRefusedWhereThereIsNothingToFollow) {
  auto w = MustCreate(store_);
  ASSERT_TRUE(w);
  AppendFlush(w.get(), "a");
  auto mine = w->Refresh();
  EXPECT_TRUE(mine.status().IsInvalidArgument()) << mine.status().ToString();
  EXPECT_NE(mine.status().message().find("writable"), std::string::npos);
  OpenOptions ro;
  ro.read_only = true;
  auto pinned = File::OpenAt(store_, At::Checkpoint(1), ro);
  ASSERT_TRUE(pinned.ok());
  auto pr = (*pinned)->Refresh();
  EXPECT_TRUE(pr.status().IsInvalidArgument()) << pr.status().ToString();
  EXPECT_NE(pr.status().message().find("pinned at checkpoint 1"), std::string::npos);
  // OpenAt(latest) read-only follows.
  auto latest = File::OpenAt(store_, At::Latest(), ro);
  ASSERT_TRUE(latest.ok());
  EXPECT_TRUE((*latest)->Refresh().ok());
  ASSERT_TRUE((*latest)->Close().ok());
  EXPECT_FALSE((*latest)->Refresh().ok()) << "closed";

  auto refused = [&](OpenOptions o, const std::string& what) {
    auto f = File::Open(store_, o);
    EXPECT_TRUE(f.status().IsInvalidArgument()) << what << ": " << f.status().ToString();
    EXPECT_NE(f.status().message().find(what), std::string::npos) << f.status().ToString();
  };
  OpenOptions o;
  o.refresh_interval_ms = 100;
  refused(o, "refresh_interval_ms needs read_only");
  o.read_only = true;
  o.refresh_interval_ms = 5;
  refused(o, "refresh_interval_ms 5");
  o.refresh_interval_ms = 86'400'001;
  refused(o, "refresh_interval_ms 86400001");
  o.refresh_interval_ms = 0;
  o.on_refresh = [](const Status&, const RefreshResult&) {};
  refused(o, "on_refresh needs refresh_interval_ms");
  OpenOptions at;
  at.read_only = true;
  at.refresh_interval_ms = 100;
  auto old = File::OpenAt(store_, At::Checkpoint(1), at);
  EXPECT_TRUE(old.status().IsInvalidArgument()) << old.status().ToString();
  ASSERT_TRUE(w->Close().ok());
}

// State k of the file: size SizeOf(k), every byte 'a' + k % 26. A read that
// mixed two states (one's size with the other's content) would show a size
// and bytes that do not belong together.
uint64_t SizeOf(int k) { return 3000 + static_cast<uint64_t>((k * 7) % 5) * 4100; }
char ByteOf(int k) { return static_cast<char>('a' + k % 26); }

void WriteState(File* w, int k) {
  ASSERT_TRUE(w->Truncate(0).ok());
  std::string data(SizeOf(k), ByteOf(k));
  ASSERT_TRUE(w->PWrite(0, data.data(), data.size()).ok());
  ASSERT_TRUE(w->Flush().ok());
}

// Which state a whole-file read shows (-1 if it matches none of [lo, hi]).
int StateOfRead(const std::string& got, int lo, int hi) {
  for (int k = lo; k <= hi; k++) {
    if (got.size() == SizeOf(k) && got == std::string(SizeOf(k), ByteOf(k))) return k;
  }
  return -1;
}

TEST_P(Follow, AReadRacingARefreshSeesOneStateForcedInterleavings) {
  auto w = MustCreate(store_);
  ASSERT_TRUE(w);
  WriteState(w.get(), 1);
  auto r = MustFollow(store_);
  ASSERT_TRUE(r);
  auto* impl = dynamic_cast<file::FileImpl*>(r.get());
  ASSERT_NE(impl, nullptr);
  int state = 1;
  // At each hook point, the writer commits a new state and the follower
  // refreshes to it while the read is in progress.
  for (const char* point : {"read:planned", "read:snapshot"}) {
    for (int round = 0; round < 6; round++) {
      const int before = state, after = state + 1;
      bool fired = false;
      impl->SetTestHook([&](std::string_view p) {
        if (p != point || fired) return;
        fired = true;
        WriteState(w.get(), after);
        RefreshResult rr = MustRefresh(r.get());
        EXPECT_TRUE(rr.changed);
        EXPECT_EQ(rr.new_size, SizeOf(after));
      });
      std::string got(64 << 10, '\0');
      auto n = r->PRead(0, got.data(), got.size());
      impl->SetTestHook(nullptr);
      ASSERT_TRUE(fired) << point;
      ASSERT_TRUE(n.ok()) << n.status().ToString();
      got.resize(*n);
      // Refreshed before the read took its state: the new one; after: the old.
      const int expect = std::string_view(point) == "read:planned" ? after : before;
      EXPECT_EQ(StateOfRead(got, before, after), expect)
          << point << " round " << round << ": read " << got.size() << " bytes";
      state = after;
    }
  }
  // The same around the install itself: a read while the new head is read
  // but not installed sees the old state, one after it the new.
  const int before = state, after = state + 1;
  WriteState(w.get(), after);
  std::string during;
  impl->SetTestHook([&](std::string_view p) {
    if (p != "refresh:install") return;
    during = ReadAll(r.get());
  });
  RefreshResult rr = MustRefresh(r.get());
  impl->SetTestHook(nullptr);
  EXPECT_TRUE(rr.changed);
  EXPECT_EQ(StateOfRead(during, before, after), before);
  EXPECT_EQ(StateOfRead(ReadAll(r.get()), before, after), after);
  ASSERT_TRUE(w->Close().ok());
}

// The same property with real threads: readers read the whole file (and its
// extents) in a loop while the writer commits states and the follower
// refreshes. Correctness does not depend on how they interleave; every read
// must be exactly one state.
TEST_P(Follow, ReadersDuringRefreshesSeeWholeStates) {
  auto w = MustCreate(store_);
  ASSERT_TRUE(w);
  WriteState(w.get(), 0);
  auto r = MustFollow(store_);
  ASSERT_TRUE(r);
  constexpr int kStates = 30;
  std::atomic<int> newest{0};
  std::atomic<bool> done{false};
  std::atomic<int> bad{0}, reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; t++) {
    readers.emplace_back([&] {
      while (!done) {
        std::string got(64 << 10, '\0');
        auto n = r->PRead(0, got.data(), got.size());
        if (!n.ok()) {
          ADD_FAILURE() << "read: " << n.status().ToString();
          bad++;
          continue;
        }
        got.resize(*n);
        // Loaded after the read: the follower only refreshes to a state
        // after the writer published it here.
        const int hi = newest.load();
        if (StateOfRead(got, 0, hi) < 0) {
          size_t first_diff = 0;
          while (first_diff < got.size() && got[first_diff] == got[0]) first_diff++;
          ADD_FAILURE() << "read " << got.size() << " bytes, first byte " << got[0]
                        << ", uniform up to " << first_diff << ", newest " << hi;
          bad++;
        }
        auto ext = r->Extents(0, UINT64_MAX);
        if (!ext.ok() || ext->empty() ||
            ext->back().offset + ext->back().length > SizeOf(0) + 5 * 4100) {
          ADD_FAILURE() << "extents: " << ext.status().ToString();
          bad++;
        }
        reads++;
      }
    });
  }
  for (int k = 1; k <= kStates; k++) {
    WriteState(w.get(), k);
    newest = k;
    RefreshResult rr = MustRefresh(r.get());
    EXPECT_TRUE(rr.changed);
    EXPECT_EQ(rr.new_size, SizeOf(k));
    // Every state is read at least once (progress, not timing: the readers
    // run freely; this only waits for them to have made some).
    const int seen = reads.load();
    while (reads.load() < seen + 3 && bad.load() == 0) std::this_thread::yield();
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0);
  ASSERT_TRUE(w->Close().ok());
}

// A writer streaming a generated log (random line sizes, pauses, the
// background flush by age) while followers on other handles, refreshed in
// the background, reproduce it from their callbacks: at the end each has
// shown exactly the input, and never a byte that was not written.
TEST_P(Follow, FollowersOnOtherHandlesReproduceAStreamedLog) {
  auto created = MustCreate(store_);
  ASSERT_TRUE(created);
  ASSERT_TRUE(created->Close().ok());
  OpenOptions wo;
  wo.flush_interval_ms = 20;
  wo.flush_dirty_bytes = 64 << 10;
  wo.dirty_budget_bytes = 256 << 10;
  auto opened = File::Open(store_, wo);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<File> w = std::move(opened).value();

  std::mutex mu;  // guards `input` and the followers' output
  std::condition_variable cv;
  std::string input;
  struct Shown {
    std::string bytes;
    File* file = nullptr;
    int callbacks = 0;
    bool bad = false;
  };
  std::vector<Shown> shown(2);
  std::vector<std::unique_ptr<File>> followers;
  {
    std::lock_guard<std::mutex> l(mu);
    for (size_t i = 0; i < shown.size(); i++) {
      OpenOptions o;
      o.refresh_interval_ms = 10 + 7 * static_cast<uint32_t>(i);
      o.on_refresh = [&, i](const Status& st, const RefreshResult& rr) {
        std::lock_guard<std::mutex> l(mu);
        Shown& s = shown[i];
        s.callbacks++;
        if (!st.ok() || !rr.changed || rr.truncated || rr.restored) {
          s.bad = true;
          return;
        }
        std::string tail(rr.new_size - rr.new_bytes_from, '\0');
        auto n = s.file->PRead(rr.new_bytes_from, tail.data(), tail.size());
        if (!n.ok() || *n != tail.size() || rr.new_bytes_from != s.bytes.size()) {
          s.bad = true;
          return;
        }
        s.bytes += tail;
        if (s.bytes != input.substr(0, s.bytes.size())) s.bad = true;  // never past the input
        cv.notify_all();
      };
      followers.push_back(MustFollow(store_, o));
      ASSERT_TRUE(followers.back());
      shown[i].file = followers.back().get();
    }
  }
  std::mt19937_64 rng(5);
  for (int i = 0; i < 400; i++) {
    size_t len = rng() % 16 == 0 ? 6000 : 1 + rng() % 200;
    std::string line(len, static_cast<char>('a' + i % 26));
    line.back() = '\n';
    {
      std::lock_guard<std::mutex> l(mu);  // appended before any follower can see it
      input += line;
    }
    ASSERT_TRUE(w->Append(line.data(), line.size()).ok());
    if (rng() % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 60));
  }
  ASSERT_TRUE(w->Flush().ok());
  {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(60), [&] {
      for (const Shown& s : shown) {
        if (s.bytes.size() < input.size() && !s.bad) return false;
      }
      return true;
    }));
    for (const Shown& s : shown) {
      EXPECT_FALSE(s.bad);
      EXPECT_GT(s.callbacks, 1) << "followed as it grew, not only at the end";
      EXPECT_TRUE(s.bytes == input) << "a follower's output differs from the input";
    }
  }
  for (auto& f : followers) ASSERT_TRUE(f->Close().ok());
  ASSERT_TRUE(w->Close().ok());
}

INSTANTIATE_TEST_SUITE_P(Backends, Follow, ::testing::Values("memory", "local", "s3"));

}  // namespace
}  // namespace hyperfile
