// Index size and open cost: the figures the core issue asks for.
//   index_bench [--checkpoints N]
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
    bytes += format::EncodedNodeSize(node.data);
    return Status::OK();
  });
  *nodes = n.ok() ? *n : 0;
  return bytes;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"index size and open cost"};
  int checkpoints = 10000;
  app.add_option("--checkpoints", checkpoints);
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
