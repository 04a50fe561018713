// SPDX-License-Identifier: Apache-2.0
// Index size and open cost: the figures the core issue asks for, and the
// index bytes one small flush rewrites (issue 10).
//   index_bench [--checkpoints N] [--small-flushes N]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <random>

#include "file/open_internal.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/store_layers.h"
#include "index/btree.h"

using namespace hyperfile;

namespace {

// Bytes of every index node reachable from the latest checkpoint.
uint64_t IndexBytes(std::shared_ptr<ObjectStore> store, uint64_t* nodes) {
  auto s = file::ResolveState(store, At::Latest(), OpenOptions{});
  file::Lineage lineage(s->store, {}, nullptr);
  file::NodeLoader loader(&lineage, 1ull << 30);
  index::Tree tree(&loader, s->read.header.block_size());
  index::TreeRoot root;
  root.ref = s->self().root;
  root.height = s->self().height;
  uint64_t bytes = 0;
  auto n = tree.VisitNodes(root, [&](const index::Node& node) {
    bytes += node.ref.length;
    return Status::OK();
  });
  *nodes = n.ok() ? *n : 0;
  return bytes;
}

// What the latest checkpoint's flush wrote into its node area, and what the
// same nodes took in the previous fixed-size format (16 + 4 bytes a node,
// 36 bytes a leaf entry, 32 an interior entry).
struct FlushNodes {
  uint64_t nodes = 0, bytes = 0, fixed_bytes = 0, extents = 0, leaves = 0, leaf_bytes = 0,
           leaf_entries = 0;
};
FlushNodes LatestFlushNodes(std::shared_ptr<ObjectStore> store) {
  FlushNodes out;
  auto s = file::ResolveState(store, At::Latest(), OpenOptions{});
  file::Lineage lineage(s->store, {}, nullptr);
  file::NodeLoader loader(&lineage, 1ull << 30);
  index::Tree tree(&loader, s->read.header.block_size());
  index::TreeRoot root;
  root.ref = s->self().root;
  root.height = s->self().height;
  const uint64_t id = s->self().id;
  (void)tree.VisitNodes(root, [&](const index::Node& node) {
    const size_t n = node.data.level == 0 ? node.data.extents.size() : node.data.children.size();
    if (node.data.level == 0) {
      out.extents += n;
      out.leaves++;
    }
    if (node.ref.segment != id) return Status::OK();
    out.nodes++;
    out.bytes += node.ref.length;
    out.fixed_bytes += 20 + n * (node.data.level == 0 ? 36 : 32);
    if (node.data.level == 0) {
      out.leaf_bytes += node.ref.length;
      out.leaf_entries += n;
    }
    return Status::OK();
  });
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"index size and open cost"};
  int checkpoints = 10000;
  int small_flushes = 400;
  app.add_option("--checkpoints", checkpoints);
  app.add_option("--small-flushes", small_flushes,
                 "flushes of 256 random 4 KiB blocks after a sequential 1 GiB write");
  CLI11_PARSE(app, argc, argv);
  {
    auto store = NewMemoryStore("seq");
    CreateOptions co;
    co.block_size = 4096;
    auto f = File::Create(store, co).value();
    std::string chunk(8 << 20, 'x');
    for (uint64_t off = 0; off < (1ull << 30); off += chunk.size()) {
      chunk[0] = static_cast<char>(off >> 23);
      (void)f->PWrite(off, chunk.data(), chunk.size());
    }
    (void)f->Close();
    uint64_t nodes = 0, bytes = IndexBytes(store, &nodes);
    std::printf(
        "sequential 1 GiB (4 KiB blocks, default dirty budget): index %llu bytes in %llu nodes\n",
        (unsigned long long)bytes, (unsigned long long)nodes);
  }
  {
    auto store = NewMemoryStore("rand");
    CreateOptions co;
    co.block_size = 4096;
    auto f = File::Create(store, co).value();
    std::mt19937_64 rng(1);
    std::string block(4096, 'r');
    for (int i = 0; i < 100000; i++) {
      block[0] = static_cast<char>(i);
      (void)f->PWrite((rng() % (1ull << 18)) * 4096, block.data(), block.size());
    }
    (void)f->Close();
    uint64_t nodes = 0, bytes = IndexBytes(store, &nodes);
    std::printf("100k random 4 KiB writes over 1 GiB: index %llu bytes in %llu nodes\n",
                (unsigned long long)bytes, (unsigned long long)nodes);
  }
  {
    // Issue 10: a 1 GiB file written sequentially, then flushes of 256
    // scattered 4 KiB blocks each (1 MiB of data); the figures are averaged
    // over the last 20 flushes.
    auto store = NewMemoryStore("small");
    CreateOptions co;
    co.block_size = 4096;
    auto f = File::Create(store, co).value();
    std::string chunk(8 << 20, 'x');
    for (uint64_t off = 0; off < (1ull << 30); off += chunk.size()) {
      chunk[0] = static_cast<char>(off >> 23);
      (void)f->PWrite(off, chunk.data(), chunk.size());
    }
    (void)f->Flush();
    std::mt19937_64 rng(2);
    std::string block(4096, 's');
    FlushNodes sum;
    int measured = 0;
    for (int i = 0; i < small_flushes; i++) {
      for (int k = 0; k < 256; k++) {
        block[0] = static_cast<char>(k);
        (void)f->PWrite((rng() % (1ull << 18)) * 4096, block.data(), block.size());
      }
      (void)f->Flush();
      if (i >= small_flushes - 20) {
        FlushNodes n = LatestFlushNodes(store);
        sum.nodes += n.nodes;
        sum.bytes += n.bytes;
        sum.fixed_bytes += n.fixed_bytes;
        sum.leaf_bytes += n.leaf_bytes;
        sum.leaf_entries += n.leaf_entries;
        sum.extents = n.extents;
        sum.leaves = n.leaves;
        measured++;
      }
    }
    (void)f->Close();
    if (measured > 0) {
      std::printf(
          "flush of 256 random 4 KiB blocks (%d flushes after a sequential 1 GiB; tree of %llu "
          "extents in %llu leaves): %.1f nodes, %.0f node bytes per flush (fixed-size v3 "
          "entries: %.0f bytes, %.2fx); leaves %.0f bytes, %.0f entries\n",
          small_flushes, (unsigned long long)sum.extents, (unsigned long long)sum.leaves,
          double(sum.nodes) / measured, double(sum.bytes) / measured,
          double(sum.fixed_bytes) / measured, double(sum.fixed_bytes) / double(sum.bytes),
          double(sum.leaf_bytes) / measured, double(sum.leaf_entries) / measured);
    }
  }
  {
    auto base = NewMemoryStore("history");
    CreateOptions co;
    co.block_size = 4096;
    auto f = File::Create(base, co).value();
    std::vector<int64_t> times{0, 0};
    for (int i = 0; i < checkpoints; i++) {
      (void)f->PWrite(static_cast<uint64_t>(i % 64) * 4096, &i, sizeof i);
      (void)f->Flush();
      times.push_back(f->Stat()->checkpoint_time_ms);
    }
    (void)f->Close();
    auto metrics = std::make_shared<MetricsStore>(base);
    auto cost = [&](const At& at) {
      metrics->Reset();
      auto g = File::OpenAt(metrics, at);
      if (!g.ok()) std::printf("  open failed: %s\n", g.status().ToString().c_str());
      return (unsigned long long)metrics->Snapshot().total_requests();
    };
    std::printf(
        "open with %d checkpoints: latest %llu requests, oldest by id %llu, middle by id %llu, "
        "oldest by time %llu, middle by time %llu\n",
        checkpoints + 1, cost(At::Latest()), cost(At::Checkpoint(1)),
        cost(At::Checkpoint(static_cast<uint64_t>(checkpoints) / 2)), cost(At::Time(times[2])),
        cost(At::Time(times[static_cast<size_t>(checkpoints) / 2])));
  }
  return 0;
}
