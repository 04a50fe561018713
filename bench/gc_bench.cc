// SPDX-License-Identifier: Apache-2.0
// Space-reclamation benchmark (issue 11's targets), each figure a ratio:
//   1. uniform 4 KiB random overwrite of a file, N times over, keep-last 1,
//      collection + compaction every tenth of a pass: stored / live in the
//      steady state (second half), bytes compaction rewrote per byte freed,
//      and each run's GETs, LISTs and DELETEs;
//   2. sequential rewrite of the whole file 5 times, keep-last 1: stored /
//      live after a collection (the case that stored 6.0x before);
//   3. foreground 4 KiB write p99 while a background thread compacts and
//      collects through the same handle, against the same run without it.
// Default store: memory://, so the figures are about the algorithm, not the
// network; --uri s3://... runs it against a real store.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/gc.h"
#include "hyperfile/object_store.h"
#include "hyperfile/store_layers.h"

namespace hf = hyperfile;
using Clock = std::chrono::steady_clock;

namespace {

template <typename T>
T Must(hf::Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "gc_bench: %s: %s\n", what, r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}
void Must(const hf::Status& st, const char* what) {
  if (!st.ok()) {
    std::fprintf(stderr, "gc_bench: %s: %s\n", what, st.ToString().c_str());
    std::exit(1);
  }
}

uint64_t Stored(hf::ObjectStore* store) {
  uint64_t total = 0;
  for (const char* prefix : {"seg/", "dat/"}) {
    std::vector<hf::ObjectInfo> objects;
    Must(store->List(prefix, "", 0, &objects), "list");
    for (const auto& o : objects) total += o.size;
  }
  return total;
}

std::shared_ptr<hf::ObjectStore> Fresh(const std::string& base, const std::string& name) {
  std::string uri = base.empty() ? "memory://gc-bench-" + name : base + "/gc-bench-" + name;
  auto store = Must(hf::OpenStore(uri), "open store");
  std::vector<hf::ObjectInfo> existing;
  Must(store->List("", "", 0, &existing), "list");
  if (!existing.empty()) {
    hf::RemoveOptions rm;
    rm.keep_foreign = rm.force = true;
    (void)hf::RemoveFile(store, rm);
  }
  return store;
}

// --get-log: every GET the handle makes during a compaction, one line each:
// run, rewrite call (the calls made so far), where ("call": inside a rewrite
// call, i.e. a read the prefetch did not cover; "pre": between calls, i.e.
// PrefetchStored), main (1: the compacting thread, 0: a pool thread), key,
// offset, length. For diagnosing where compaction's GETs go.
class GetLogStore : public hf::StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  std::atomic<int> phase{0};  // 0: off, 1: between calls, 2: inside a call
  std::atomic<uint64_t> run{0}, call{0};
  std::thread::id main_thread = std::this_thread::get_id();
  FILE* out = nullptr;
  hf::Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* o,
                 hf::ObjectInfo* info) override {
    hf::Status st = StoreWrapper::Get(key, offset, length, o, info);
    const int ph = phase.load();
    if (out && ph != 0) {
      std::lock_guard<std::mutex> lock(mu_);
      std::fprintf(out, "%llu %llu %s %d %.*s %llu %llu\n", (unsigned long long)run.load(),
                   (unsigned long long)call.load(), ph == 2 ? "call" : "pre",
                   std::this_thread::get_id() == main_thread ? 1 : 0, int(key.size()), key.data(),
                   (unsigned long long)offset, (unsigned long long)o->size());
    }
    return st;
  }
  using StoreWrapper::Get;

 private:
  std::mutex mu_;
};

void FillRandom(std::mt19937_64& rng, char* p, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng() | 1;
    std::memcpy(p + i, &v, std::min<size_t>(8, n - i));
  }
}

hf::GcOptions KeepLast1() {
  hf::GcOptions o;
  o.policy = hf::RetentionPolicy{};
  o.policy->keep_last = 1;
  o.grace_ms = 0;
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hyperfile space-reclamation benchmark"};
  std::string base, json_path;
  uint64_t size = 1ull << 30;
  int passes = 10, seq_passes = 5;
  double ratio = 0.65;
  uint64_t flush_bytes = 16ull << 20;
  int p99_writes = 200000;
  app.add_option("--uri", base, "store prefix (default memory://)");
  app.add_option("--size", size, "file size in bytes (default 1 GiB)");
  app.add_option("--passes", passes, "random overwrite passes (default 10)");
  app.add_option("--seq-passes", seq_passes, "sequential rewrites (default 5)");
  app.add_option("--max-live-ratio", ratio, "compaction threshold (default 0.65)");
  app.add_option("--flush-bytes", flush_bytes, "dirty bytes per checkpoint (default 16 MiB)");
  app.add_option("--p99-writes", p99_writes, "writes per latency run (default 200000)");
  app.add_option("--json", json_path, "write the figures here");
  std::string get_log_path;
  app.add_option("--get-log", get_log_path,
                 "log each GET the handle makes during compaction here (see GetLogStore)");
  CLI11_PARSE(app, argc, argv);
  const uint32_t kBlock = 4096;
  nlohmann::json out;
  std::mt19937_64 rng(42);
  std::string buf(1 << 20, '\0');

  // ---- 1. random overwrites with collection and compaction -------------
  {
    auto store = Fresh(base, "random");
    hf::CreateOptions co;
    co.block_size = kBlock;
    hf::OpenOptions oo;
    oo.dirty_budget_bytes = 2 * flush_bytes;
    oo.flush_dirty_bytes = flush_bytes;
    // The handle's own requests (the rewrite's reads), counted during each
    // compaction.
    auto get_log = std::make_shared<GetLogStore>(store);
    if (!get_log_path.empty()) get_log->out = std::fopen(get_log_path.c_str(), "w");
    auto handle_metrics = std::make_shared<hf::MetricsStore>(get_log);
    auto f = Must(hf::File::Create(handle_metrics, co, oo), "create");
    for (uint64_t off = 0; off < size; off += buf.size()) {
      FillRandom(rng, buf.data(), buf.size());
      Must(f->PWrite(off, buf.data(), std::min<uint64_t>(buf.size(), size - off)), "fill");
    }
    Must(f->Flush().status(), "flush");
    const uint64_t blocks = size / kBlock;
    const uint64_t per_run = blocks / 10;
    std::vector<double> ratios;
    uint64_t rewritten = 0, freed = 0, runs = 0;
    uint64_t gets = 0, lists = 0, deletes = 0, max_gets = 0;
    double gc_seconds = 0, collect_seconds = 0;
    uint64_t incremental_runs = 0, incremental_gets = 0, incremental_lists = 0;
    uint64_t incremental_deletes = 0, deleted_objects = 0, applied = 0;
    // Compaction's own requests (its plan reads the head's index and lists
    // the objects; the rewrite reads through the handle, not counted here)
    // and where its time goes: planning (until the first rewrite), the
    // rewrite callbacks, the flush after the last one.
    auto plan_metrics = std::make_shared<hf::MetricsStore>(store);
    double plan_seconds = 0, rewrite_seconds = 0, flush_seconds = 0;
    uint64_t compact_gets = 0, compact_lists = 0, rewrite_gets = 0, rewrite_calls = 0;
    uint64_t rewrite_get_bytes = 0;
    const auto random_start = Clock::now();
    char block[kBlock];
    for (uint64_t w = 0; w < blocks * static_cast<uint64_t>(passes); w++) {
      FillRandom(rng, block, kBlock);
      Must(f->PWrite((rng() % blocks) * kBlock, block, kBlock), "write");
      if ((w + 1) % per_run != 0) continue;
      Must(f->Flush().status(), "flush");
      auto t0 = Clock::now();
      hf::CompactOptions cpo;
      cpo.max_live_ratio = ratio;
      cpo.policy = KeepLast1().policy;
      std::string cbuf;
      plan_metrics->Reset();
      const auto handle_before = handle_metrics->Snapshot();
      Clock::time_point first_call{}, last_call{};
      get_log->run = runs;
      get_log->call = 0;
      get_log->phase = 1;
      auto c =
          Must(hf::CompactThrough(f.get(), plan_metrics, cpo,
                                  [&](uint64_t off, uint64_t len) -> hf::Status {
                                    auto c0 = Clock::now();
                                    rewrite_calls++;
                                    get_log->phase = 2;
                                    if (first_call == Clock::time_point{}) first_call = c0;
                                    cbuf.resize(len);
                                    HF_ASSIGN_OR_RETURN(size_t n, f->PRead(off, cbuf.data(), len));
                                    hf::Status st = f->PWrite(off, cbuf.data(), n);
                                    last_call = Clock::now();
                                    get_log->call++;
                                    get_log->phase = 1;
                                    rewrite_seconds +=
                                        std::chrono::duration<double>(last_call - c0).count();
                                    return st;
                                  }),
               "compact");
      get_log->phase = 0;
      {
        auto c1 = Clock::now();
        if (first_call == Clock::time_point{}) {
          plan_seconds += std::chrono::duration<double>(c1 - t0).count();
        } else {
          plan_seconds += std::chrono::duration<double>(first_call - t0).count();
          flush_seconds += std::chrono::duration<double>(c1 - last_call).count();
        }
        auto m = plan_metrics->Snapshot();
        compact_gets += m.count(hf::StoreVerb::kGet);
        compact_lists += m.count(hf::StoreVerb::kList);
        const auto handle_during = handle_metrics->Snapshot() - handle_before;
        rewrite_gets += handle_during.count(hf::StoreVerb::kGet);
        rewrite_get_bytes += handle_during.bytes_in;
      }
      uint64_t before = Stored(store.get());
      auto t1 = Clock::now();
      auto r = Must(hf::Collect(store, KeepLast1()), "collect");
      gc_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
      collect_seconds += std::chrono::duration<double>(Clock::now() - t1).count();
      if (!r.swept) {
        incremental_runs++;
        incremental_gets += r.gets;
        incremental_lists += r.lists;
        incremental_deletes += r.deletes;
        deleted_objects += r.deleted_objects;
        applied += r.checkpoints_applied;
      }
      uint64_t after = Stored(store.get());
      runs++;
      rewritten += c.bytes_rewritten;
      freed += before > after ? before - after : 0;
      gets += r.gets;
      lists += r.lists;
      deletes += r.deletes;
      max_gets = std::max(max_gets, r.gets);
      double ratio_now = static_cast<double>(after) / static_cast<double>(size);
      if (w >= blocks * static_cast<uint64_t>(passes) / 2) ratios.push_back(ratio_now);
      std::fprintf(stderr, "\rrandom: pass %.1f stored/live %.3f   ",
                   double(w + 1) / double(blocks), ratio_now);
    }
    std::fprintf(stderr, "\n");
    const double random_seconds =
        std::chrono::duration<double>(Clock::now() - random_start).count();
    Must(f->Close(), "close");
    if (get_log->out) std::fclose(get_log->out);
    double avg = 0, worst = 0;
    for (double x : ratios) {
      avg += x / static_cast<double>(ratios.size());
      worst = std::max(worst, x);
    }
    double rw_per_freed = freed ? static_cast<double>(rewritten) / static_cast<double>(freed) : 0;
    out["random"] = {
        {"size", size},
        {"passes", passes},
        {"stored_over_live_avg", avg},
        {"stored_over_live_max", worst},
        {"rewritten_per_freed", rw_per_freed},
        {"runs", runs},
        {"gets_per_run", double(gets) / double(runs)},
        {"max_gets_per_run", max_gets},
        {"lists_per_run", double(lists) / double(runs)},
        {"deletes_per_run", double(deletes) / double(runs)},
        {"gc_seconds_per_run", gc_seconds / double(runs)},
        {"collect_seconds_per_run", collect_seconds / double(runs)},
        {"compact_plan_seconds_per_run", plan_seconds / double(runs)},
        {"compact_rewrite_seconds_per_run", rewrite_seconds / double(runs)},
        {"compact_flush_seconds_per_run", flush_seconds / double(runs)},
        {"compact_plan_gets_per_run", double(compact_gets) / double(runs)},
        {"compact_rewrite_gets_per_run", double(rewrite_gets) / double(runs)},
        {"compact_rewrite_calls_per_run", double(rewrite_calls) / double(runs)},
        {"compact_rewrite_get_bytes_per_run", double(rewrite_get_bytes) / double(runs)},
        {"compact_plan_lists_per_run", double(compact_lists) / double(runs)},
        {"seconds_per_pass", random_seconds / double(passes)},
        {"incremental_runs", incremental_runs},
        {"incremental_gets", incremental_gets},
        {"incremental_lists", incremental_lists},
        {"incremental_deletes", incremental_deletes},
        {"incremental_deleted_objects", deleted_objects},
        {"incremental_checkpoints_applied", applied}};
    std::printf("random 4K overwrite %dx of %.0f MiB, keep-last 1, gc+compaction every 1/10 pass\n",
                passes, double(size) / (1 << 20));
    std::printf("  stored/live steady state: avg %.3f, max %.3f   (target <= 1.3: %s)\n", avg,
                worst, worst <= 1.3 ? "met" : "MISSED");
    std::printf("  compaction rewrote %.3f bytes per byte freed   (target <= 1: %s)\n",
                rw_per_freed, rw_per_freed <= 1.0 ? "met" : "MISSED");
    std::printf("  per run: %.0f GET (max %llu), %.1f LIST, %.1f DELETE requests, %.2f s\n",
                double(gets) / double(runs), (unsigned long long)max_gets,
                double(lists) / double(runs), double(deletes) / double(runs),
                gc_seconds / double(runs));
    std::printf(
        "  compaction per run: plan %.2f s (%.0f GET, %.1f LIST), rewrite %.2f s (%.0f GET, %.1f "
        "MiB, for "
        "%.0f calls), flush %.2f s; %.1f s per pass in all (writes, compaction, collection)\n",
        plan_seconds / double(runs), double(compact_gets) / double(runs),
        double(compact_lists) / double(runs), rewrite_seconds / double(runs),
        double(rewrite_gets) / double(runs), double(rewrite_get_bytes) / double(runs) / (1 << 20),
        double(rewrite_calls) / double(runs), flush_seconds / double(runs),
        random_seconds / double(passes));
    if (incremental_runs > 0) {
      auto per = [&](uint64_t v) { return double(v) / double(incremental_runs); };
      std::printf(
          "  incremental collections (%llu of %llu runs; the first is the sweep): per run %.0f "
          "GET, %.1f LIST, %.1f DELETE requests for %.1f objects deleted and %.1f checkpoints "
          "applied; collection alone %.2f s per run (compaction and collection %.2f s)\n",
          (unsigned long long)incremental_runs, (unsigned long long)runs, per(incremental_gets),
          per(incremental_lists), per(incremental_deletes), per(deleted_objects), per(applied),
          collect_seconds / double(runs), gc_seconds / double(runs));
    }
  }

  // ---- 2. sequential rewrites --------------------------------------------
  {
    auto store = Fresh(base, "seq");
    hf::CreateOptions co;
    co.block_size = 1 << 20;
    auto f = Must(hf::File::Create(store, co), "create");
    for (int p = 0; p < seq_passes; p++) {
      for (uint64_t off = 0; off < size; off += buf.size()) {
        FillRandom(rng, buf.data(), buf.size());
        Must(f->PWrite(off, buf.data(), std::min<uint64_t>(buf.size(), size - off)), "write");
      }
      Must(f->Flush().status(), "flush");
    }
    Must(f->Close(), "close");
    uint64_t before = Stored(store.get());
    auto r = Must(hf::Collect(store, KeepLast1()), "collect");
    uint64_t after = Stored(store.get());
    double rb = double(before) / double(size), ra = double(after) / double(size);
    out["sequential"] = {{"passes", seq_passes},
                         {"stored_over_live_before", rb},
                         {"stored_over_live_after", ra},
                         {"gets", r.gets},
                         {"lists", r.lists},
                         {"deletes", r.deletes}};
    std::printf(
        "sequential rewrite %dx, keep-last 1: stored/live %.3f before gc, %.3f after "
        "(target <= 1.1: %s); gc: %llu GET, %llu LIST, %llu DELETE\n",
        seq_passes, rb, ra, ra <= 1.1 ? "met" : "MISSED", (unsigned long long)r.gets,
        (unsigned long long)r.lists, (unsigned long long)r.deletes);
  }

  // ---- 3. foreground write latency with background gc --------------------
  auto latency_run = [&](bool with_gc) {
    auto store = Fresh(base, with_gc ? "p99-gc" : "p99");
    hf::CreateOptions co;
    co.block_size = kBlock;
    hf::OpenOptions oo;
    oo.dirty_budget_bytes = 2 * flush_bytes;
    oo.flush_dirty_bytes = flush_bytes;
    auto f = Must(hf::File::Create(store, co, oo), "create");
    const uint64_t lsize = std::min<uint64_t>(size, 256ull << 20);
    for (uint64_t off = 0; off < lsize; off += buf.size()) {
      FillRandom(rng, buf.data(), buf.size());
      Must(f->PWrite(off, buf.data(), buf.size()), "fill");
    }
    Must(f->Flush().status(), "flush");
    hf::RangeLocks locks(kBlock);
    std::atomic<bool> stop{false};
    std::atomic<int> gc_runs{0};
    std::thread gc;
    if (with_gc) {
      gc = std::thread([&] {
        std::string cbuf;
        while (!stop) {
          hf::CompactOptions cpo;
          cpo.max_live_ratio = ratio;
          cpo.policy = KeepLast1().policy;
          (void)hf::CompactThrough(f.get(), store, cpo,
                                   [&](uint64_t off, uint64_t len) -> hf::Status {
                                     auto lock = locks.Exclusive(off, len);
                                     cbuf.resize(len);
                                     HF_ASSIGN_OR_RETURN(size_t n, f->PRead(off, cbuf.data(), len));
                                     return f->PWrite(off, cbuf.data(), n);
                                   });
          (void)hf::Collect(store, KeepLast1());
          gc_runs++;
        }
      });
    }
    std::vector<double> us;
    us.reserve(p99_writes);
    std::mt19937_64 wrng(7);
    char block[kBlock];
    const uint64_t blocks = lsize / kBlock;
    for (int i = 0; i < p99_writes; i++) {
      FillRandom(wrng, block, kBlock);
      uint64_t off = (wrng() % blocks) * kBlock;
      auto t0 = Clock::now();
      {
        auto lock = locks.Shared(off, kBlock);
        Must(f->PWrite(off, block, kBlock), "write");
      }
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    stop = true;
    if (gc.joinable()) gc.join();
    Must(f->Close(), "close");
    std::sort(us.begin(), us.end());
    return std::make_pair(us[us.size() * 99 / 100], gc_runs.load());
  };
  {
    auto [base_p99, n0] = latency_run(false);
    auto [gc_p99, runs] = latency_run(true);
    (void)n0;
    double r = gc_p99 / base_p99;
    out["write_p99"] = {
        {"without_gc_us", base_p99}, {"with_gc_us", gc_p99}, {"ratio", r}, {"gc_runs", runs}};
    std::printf(
        "4K write p99: %.1f us with background gc+compaction (%d runs) vs %.1f us without "
        "= %.2fx (target <= 2: %s)\n",
        gc_p99, runs, base_p99, r, r <= 2.0 ? "met" : "MISSED");
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return 0;
}
