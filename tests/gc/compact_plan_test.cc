// SPDX-License-Identifier: Apache-2.0
// How compaction rewrites what it planned (src/gc/compact.cc): the victims'
// live extents go to the rewrite callback in pieces of whole blocks, at
// most 256 KiB and at most one extent each; within a run of extents that
// touch, last first. No call starts where an earlier one ended, so the
// handle's read planner never takes a compaction for a sequential stream:
// its readahead (8 MiB windows, doubling to 32 MiB) fetched, for every few
// rewritten blocks, megabytes that were not rewritten. That made gc_bench's
// 256 MiB x 4 run take 25 minutes (docs/design/0006, "Compaction"). Calls
// no larger than an extent keep a caller's exclusive range locks short.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "hyperfile/file.h"
#include "hyperfile/gc.h"
#include "hyperfile/store_layers.h"
#include "support/random_bytes.h"

namespace hyperfile {
namespace {

constexpr uint32_t kBlock = 64 * 1024;
constexpr uint64_t kMiB = 1ull << 20;

std::string Bytes(uint64_t seed, size_t n) { return testing::RandomBytes(seed, n); }

CompactOptions KeepHeadOnly() {
  CompactOptions o;
  o.policy = RetentionPolicy{};
  o.policy->keep_last = 1;
  return o;
}

struct Call {
  uint64_t offset, length;
};

// A 24 MiB file with two victims, both mostly dead, all else overwritten:
// the first commit's object keeps block 2 and [6, 8) MiB (a run of 32
// blocks: eight 256 KiB pieces); a later commit's object keeps only the
// block just below 6 MiB, an extent that touches the run. Closed, so a
// handle opened on it starts with a cold cache.
std::shared_ptr<ObjectStore> BuildMostlyDeadObjects(const std::string& name,
                                                    const std::string& compression,
                                                    std::string* contents) {
  auto store = NewMemoryStore(name + "-" + compression);
  CreateOptions co;
  co.block_size = kBlock;
  co.compression = *ParseCompression(compression);
  auto f = File::Create(store, co);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  if (!f.ok()) return store;
  *contents = Bytes(1, 24 * kMiB);
  EXPECT_TRUE((*f)->PWrite(0, contents->data(), contents->size()).ok());
  EXPECT_TRUE((*f)->Flush().ok());
  auto overwrite = [&](uint64_t lo, uint64_t hi, uint64_t seed) {
    std::string b = Bytes(seed, hi - lo);
    EXPECT_TRUE((*f)->PWrite(lo, b.data(), b.size()).ok());
    contents->replace(lo, b.size(), b);
  };
  overwrite(0, 2 * kBlock, 2);
  overwrite(3 * kBlock, 6 * kMiB, 3);
  overwrite(8 * kMiB, 24 * kMiB, 4);
  EXPECT_TRUE((*f)->Flush().ok());
  overwrite(5 * kMiB, 6 * kMiB, 5);  // 16 blocks ...
  EXPECT_TRUE((*f)->Flush().ok());
  overwrite(5 * kMiB, 6 * kMiB - kBlock, 6);  // ... of which the last stays
  EXPECT_TRUE((*f)->Flush().ok());
  EXPECT_TRUE((*f)->Close().ok());
  return store;
}

// Victim bytes compaction rewrites in the file above: block 2, and
// [6 MiB - 1 block, 8 MiB) (one range of nine pieces, 64 KiB the last one).
constexpr uint64_t kVictimLive = 2 * kBlock + 2 * kMiB;

// A file of `blocks` blocks written in `objects` flushes (one object each),
// then two of every three blocks overwritten at random and closed: each
// first object keeps about a third of its blocks, alone or in short runs,
// dead ones between (a random overwrite's usual victim).
std::shared_ptr<ObjectStore> BuildScattered(const std::string& name, const std::string& compression,
                                            uint32_t block, uint64_t blocks, uint64_t objects,
                                            uint64_t seed, std::string* contents) {
  auto store = NewMemoryStore(name + "-" + compression);
  CreateOptions co;
  co.block_size = block;
  co.compression = *ParseCompression(compression);
  *contents = Bytes(seed, blocks * block);
  auto f = File::Create(store, co);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  if (!f.ok()) return store;
  const size_t part = contents->size() / objects;
  for (uint64_t o = 0; o < objects; o++) {
    EXPECT_TRUE((*f)->PWrite(o * part, contents->data() + o * part, part).ok());
    EXPECT_TRUE((*f)->Flush().ok());
  }
  std::mt19937_64 rng(seed + 1);
  for (uint64_t b = 0; b < blocks; b++) {
    if (rng() % 3 == 0) continue;
    std::string n = Bytes(seed * 100000 + b, block);
    EXPECT_TRUE((*f)->PWrite(b * block, n.data(), n.size()).ok());
    contents->replace(b * block, block, n);
  }
  EXPECT_TRUE((*f)->Close().ok());
  return store;
}

// The file at `store` reads back as `contents`.
void ExpectContents(const std::shared_ptr<ObjectStore>& store, const std::string& contents) {
  auto r = File::Open(store);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string back(contents.size(), '\0');
  auto n = (*r)->PRead(0, back.data(), back.size());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, contents.size());
  EXPECT_TRUE(back == contents);
}

// Blocks compressed (each block a frame: an extent of its own) or not.
class CompactPlan : public ::testing::TestWithParam<std::string> {};

TEST_P(CompactPlan, RewriteCallsAreWholeBlocksAndNeverContinueAnEarlierCall) {
  std::string contents;
  auto store = BuildMostlyDeadObjects("compact-plan-calls", GetParam(), &contents);
  auto f = File::Open(store);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  std::vector<Call> calls;
  std::string buf;
  auto report = CompactThrough(f->get(), store, KeepHeadOnly(), [&](uint64_t off, uint64_t len) {
    calls.push_back({off, len});
    buf.resize(len);
    HF_ASSIGN_OR_RETURN(size_t n, (*f)->PRead(off, buf.data(), len));
    return (*f)->PWrite(off, buf.data(), n);
  });
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->victims, 2u) << "the test needs its two victims";
  uint64_t total = 0;
  std::vector<std::pair<uint64_t, uint64_t>> covered;
  for (size_t i = 0; i < calls.size(); i++) {
    SCOPED_TRACE("call " + std::to_string(i) + " at " + std::to_string(calls[i].offset));
    EXPECT_EQ(calls[i].offset % kBlock, 0u);
    EXPECT_EQ(calls[i].length % kBlock, 0u);
    EXPECT_GT(calls[i].length, 0u);
    EXPECT_LE(calls[i].length, 256u * 1024);
    for (size_t j = 0; j < i; j++) {
      EXPECT_NE(calls[i].offset, calls[j].offset + calls[j].length)
          << "continues call " << j << ": the read planner would take it for a stream";
      EXPECT_TRUE(calls[i].offset + calls[i].length <= calls[j].offset ||
                  calls[j].offset + calls[j].length <= calls[i].offset)
          << "overlaps call " << j;
    }
    total += calls[i].length;
  }
  EXPECT_EQ(total, report->bytes_rewritten);
  EXPECT_EQ(total, kVictimLive);
  if (GetParam() != "none") {
    // One call per frame: merging the run into 256 KiB calls held the
    // caller's locks 64 blocks at a time (the gc_bench write p99 went 7.8x).
    EXPECT_EQ(calls.size(), kVictimLive / kBlock);
  }
  ASSERT_TRUE((*f)->Close().ok());
  // Nothing changed for a reader.
  auto r = File::Open(store);
  ASSERT_TRUE(r.ok());
  std::string back(contents.size(), '\0');
  auto n = (*r)->PRead(0, back.data(), back.size());
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, contents.size());
  EXPECT_TRUE(back == contents);
}

// The effect that matters: a compaction through a handle with readahead on
// (the default options) fetches about what it rewrites, not the megabytes
// after each range.
TEST_P(CompactPlan, RewriteThroughAHandleFetchesAboutWhatItRewrites) {
  std::string contents;
  auto base = BuildMostlyDeadObjects("compact-plan-fetch", GetParam(), &contents);
  auto counting = std::make_shared<MetricsStore>(base);
  auto f = File::Open(counting);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_TRUE((*f)->Stat().ok());
  std::string buf;
  const uint64_t before = counting->Snapshot().bytes_in;  // the plan reads through `base`
  auto report = CompactThrough(f->get(), base, KeepHeadOnly(), [&](uint64_t off, uint64_t len) {
    buf.resize(len);
    HF_ASSIGN_OR_RETURN(size_t n, (*f)->PRead(off, buf.data(), len));
    return (*f)->PWrite(off, buf.data(), n);
  });
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->bytes_rewritten, kVictimLive);
  ASSERT_TRUE((*f)->Close().ok());
  const uint64_t fetched = counting->Snapshot().bytes_in - before;
  // The rewritten bytes, plus index nodes and headers (a few KiB); the old
  // ascending pieces set off readahead windows of 8 and 16 MiB here.
  EXPECT_GE(fetched, report->bytes_rewritten);
  EXPECT_LE(fetched, report->bytes_rewritten + 512 * 1024);
}

// A victim whose live blocks are scattered (a random overwrite's usual
// victim) costs a few GETs, not one per block: compaction prefetches each
// batch's live extents of one object together, gaps of dead bytes
// included (FileImpl::PrefetchStored), and the rewrite reads find them
// cached. The old one GET per block cost 58,286 GETs per run of gc_bench's
// 1 GiB file.
TEST_P(CompactPlan, ScatteredLiveBlocksOfAVictimCostAFewGets) {
  constexpr uint64_t kBlocks = 256;  // 16 MiB in two objects of 8 MiB
  std::string contents;
  auto base =
      BuildScattered("compact-plan-scattered", GetParam(), kBlock, kBlocks, 2, 7, &contents);
  auto counting = std::make_shared<MetricsStore>(base);
  auto f = File::Open(counting);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  ASSERT_TRUE((*f)->Stat().ok());
  std::string buf;
  size_t calls = 0;
  const StoreMetricsSnapshot before = counting->Snapshot();  // the plan reads through `base`
  auto report = CompactThrough(f->get(), base, KeepHeadOnly(), [&](uint64_t off, uint64_t len) {
    calls++;
    buf.resize(len);
    HF_ASSIGN_OR_RETURN(size_t n, (*f)->PRead(off, buf.data(), len));
    return (*f)->PWrite(off, buf.data(), n);
  });
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->victims, 2u);
  const StoreMetricsSnapshot during = counting->Snapshot() - before;
  ASSERT_GE(calls, 60u) << "the test needs scattered live blocks";
  // Each object in spans of at most 4 MiB (never two objects in one),
  // each ended early by a gap of more than 256 KiB (4 dead blocks), plus the
  // index leaves the reads walk: 20 measured, where one GET per rewritten
  // extent was about 88 (zstd) and 62 (none: touching blocks are one extent).
  EXPECT_LE(during.count(StoreVerb::kGet), 24u) << during.ToString();
  EXPECT_LE(during.bytes_in, kBlocks * kBlock + 1 * kMiB) << during.ToString();
  ASSERT_TRUE((*f)->Close().ok());
  ExpectContents(base, contents);
}

// A compaction's own handle (the CLI's) starts with no index cached: the
// rewrite's lookups loaded every leaf they met with a GET of its own (149
// serial GETs for a 64 MiB file of 4 KiB blocks). The prefetch walks the
// batch's logical span as a scan, which loads the leaves in runs.
TEST_P(CompactPlan, AFreshHandleLoadsTheIndexLeavesInRuns) {
  constexpr uint32_t kSmall = 4096;
  // 64 MiB: about 150 index leaves, more than the 64 KiB of nodes that
  // come with the head's header.
  constexpr uint64_t kBlocks = 16384;
  std::string contents;
  auto base = BuildScattered("compact-plan-leaves", GetParam(), kSmall, kBlocks, 1, 9, &contents);
  auto counting = std::make_shared<MetricsStore>(base);
  auto report = Compact(counting, KeepHeadOnly());
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->victims, 1u);
  ASSERT_GE(report->bytes_rewritten, kBlocks * kSmall / 4);
  const StoreMetricsSnapshot m = counting->Snapshot();
  // The plan (headers, the marked index), the victim in 4 MiB spans, the
  // handle's header and leaf runs: 26 measured for zstd, 166 with a GET per
  // leaf (none: 23 either way, its touching blocks merge into fewer
  // extents, whose leaves come with the header).
  EXPECT_LE(m.count(StoreVerb::kGet), 40u) << m.ToString();
  ExpectContents(base, contents);
}

// A writer's index cache after many flushes: each flush caches new copies of
// the interior nodes it changed, and the copies they replace are never used
// again. Cached with priority over the leaves and without a bound of their
// own, they came to fill the whole cache, so every leaf a lookup needed was
// fetched again, once per rewrite call: at 1 GiB of random 4 KiB overwrites
// compaction reloaded the same 4,100 leaves 12 times per run (gc_bench,
// docs/design/0006). Interior nodes now hold at most half the cache.
TEST_P(CompactPlan, ManyFlushesLeaveTheWritersLeavesCached) {
  constexpr uint32_t kSmall = 4096;
  constexpr uint64_t kBlocks = 4096;  // 16 MiB, one object
  auto base = NewMemoryStore("compact-plan-stale-interior-" + GetParam());
  auto counting = std::make_shared<MetricsStore>(base);
  CreateOptions co;
  co.block_size = kSmall;
  co.compression = *ParseCompression(GetParam());
  OpenOptions oo;
  oo.index_cache_bytes = 256 * 1024;  // the leaves fit several times over
  auto f = File::Create(counting, co, oo);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  std::string contents = Bytes(21, kBlocks * kSmall);
  ASSERT_TRUE((*f)->PWrite(0, contents.data(), contents.size()).ok());
  ASSERT_TRUE((*f)->Flush().ok());
  std::mt19937_64 rng(22);
  for (int flush = 0; flush < 800; flush++) {  // each a new root and a few leaves
    for (int w = 0; w < 3; w++) {
      const uint64_t b = rng() % kBlocks;
      std::string n = Bytes(rng(), kSmall);
      ASSERT_TRUE((*f)->PWrite(b * kSmall, n.data(), n.size()).ok());
      contents.replace(b * kSmall, kSmall, n);
    }
    ASSERT_TRUE((*f)->Flush().ok());
  }
  CompactOptions o = KeepHeadOnly();
  o.max_rewrite_bytes = 1;  // the first victim only: the 16 MiB object, most dead bytes
  std::string buf;
  size_t calls = 0;
  const StoreMetricsSnapshot before = counting->Snapshot();
  auto report = CompactThrough(f->get(), base, o, [&](uint64_t off, uint64_t len) {
    calls++;
    buf.resize(len);
    HF_ASSIGN_OR_RETURN(size_t n, (*f)->PRead(off, buf.data(), len));
    return (*f)->PWrite(off, buf.data(), n);
  });
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->victims, 1u);
  const StoreMetricsSnapshot during = counting->Snapshot() - before;
  ASSERT_GE(calls, 500u) << "the test needs many rewrite calls";
  // The victim in a few GETs of 4 MiB, and the leaves not cached yet once
  // each: 14 measured (zstd, 2,278 calls) and 6 (none, 1,017 calls); a
  // leaf GET per call was 2,412 and 1,155.
  EXPECT_LE(during.count(StoreVerb::kGet), 40u) << calls << " calls; " << during.ToString();
  ASSERT_TRUE((*f)->Close().ok());
  ExpectContents(base, contents);
}

// CompactOptions::stop (a CLI's first SIGINT, a server's shutdown) ends
// the rewrite at the next call: what was rewritten is committed, the lease
// is released at once (a writer opens right away, where a killed
// compaction's lease blocks writers for 90 s), nothing changes for a reader,
// and the next compaction rewrites exactly the rest.
TEST_P(CompactPlan, StopEndsTheRewriteCommitsWhatWasDoneAndReleasesTheLease) {
  std::string contents;
  auto store = BuildMostlyDeadObjects("compact-plan-stop", GetParam(), &contents);
  CompactOptions o = KeepHeadOnly();
  int asked = 0;
  o.stop = [&] { return ++asked > 3; };  // three calls, then stop
  auto first = Compact(store, o);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->stopped);
  EXPECT_EQ(asked, 4);
  EXPECT_GT(first->bytes_rewritten, 0u);
  EXPECT_LT(first->bytes_rewritten, kVictimLive);
  EXPECT_NE(first->checkpoint, 0u);
  {
    auto w = File::Open(store);  // writable: no compaction lease in the way
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    std::string back(contents.size(), '\0');
    auto n = (*w)->PRead(0, back.data(), back.size());
    ASSERT_TRUE(n.ok());
    EXPECT_TRUE(back == contents);
    ASSERT_TRUE((*w)->Close().ok());
  }
  // Stopped before the first call: nothing committed.
  o.stop = [] { return true; };
  auto none = Compact(store, o);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->stopped);
  EXPECT_EQ(none->bytes_rewritten, 0u);
  EXPECT_EQ(none->checkpoint, 0u);
  o.stop = nullptr;
  auto rest = Compact(store, o);
  ASSERT_TRUE(rest.ok()) << rest.status().ToString();
  EXPECT_FALSE(rest->stopped);
  EXPECT_EQ(first->bytes_rewritten + rest->bytes_rewritten, kVictimLive);
  ExpectContents(store, contents);
}

INSTANTIATE_TEST_SUITE_P(Codecs, CompactPlan, ::testing::Values("zstd", "none"));

}  // namespace
}  // namespace hyperfile
