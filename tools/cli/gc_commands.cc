// SPDX-License-Identifier: Apache-2.0
#include "cli/gc_commands.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "cli/cli_util.h"
#include "cli/conventions.h"
#include "cli/progress.h"
#include "cli/stop_signals.h"
#include "format/format.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/gc.h"
#include "hyperfile/object_store.h"

namespace hyperfile::cli {

struct GcCommands {
  CLI::App *gc = nullptr, *du = nullptr, *policy = nullptr, *ls = nullptr, *flatten = nullptr;
  std::string uri;
  // Retention rules, as typed (empty = not given).
  std::map<std::string, std::string> rules;
  bool dry_run = false, compact = false, quiet = false, clear = false, sweep = false;
  std::string grace = "20m", live_ratio = "0.65";
};

namespace {

constexpr const char* kRuleNames[] = {"keep-last",  "keep-within", "keep-hourly",
                                      "keep-daily", "keep-weekly", "keep-monthly"};

void AddRules(CLI::App* sub, GcCommands* c) {
  for (const char* r : kRuleNames) {
    std::string help =
        std::string(r) == "keep-within"
            ? "keep every checkpoint within DURATION of the newest (7d, 36h)"
            : std::string("keep the newest ") +
                  (std::string(r) == "keep-last"
                       ? "N checkpoints"
                       : "checkpoint of each of the last N " + std::string(r + 5) + " periods");
    sub->add_option(std::string("--") + r, c->rules[r], help);
  }
}

// The rules given on the command line, as a policy (nullopt if none).
Result<std::optional<RetentionPolicy>> RulesPolicy(const GcCommands& c) {
  std::string text;
  for (const auto& [name, value] : c.rules) {
    if (!value.empty()) text += name + "=" + value + " ";
  }
  if (text.empty()) return std::optional<RetentionPolicy>();
  HF_ASSIGN_OR_RETURN(RetentionPolicy p, RetentionPolicy::Parse(text));
  return std::optional<RetentionPolicy>(p);
}

std::string Human(uint64_t bytes) { return HumanBytes(static_cast<double>(bytes)); }

int Fail(const Status& st) {
  ReportError(st);
  return kExitError;
}
// A value of the command line that does not parse: nothing was done.
int Usage(const Status& st) {
  ReportError(st, kExitUsage);
  return kExitUsage;
}

int RunGc(GcCommands& c, bool json) {
  auto policy = RulesPolicy(c);
  if (!policy.ok()) return Usage(policy.status());
  GcOptions o;
  o.policy = *policy;
  o.store_resolver = CliStoreOpener();  // clones' stores with the same S3 flags
  o.dry_run = c.dry_run;
  o.sweep = c.sweep;
  auto grace = RetentionPolicy::ParseDuration(c.grace);
  if (c.grace == "0") {
    o.grace_ms = 0;
  } else if (!grace.ok()) {
    return Usage(Status::InvalidArgument("--grace: " + grace.status().message()));
  } else {
    o.grace_ms = *grace;
  }
  double live_ratio = 0;
  try {
    size_t used = 0;
    live_ratio = std::stod(c.live_ratio, &used);
    if (used != c.live_ratio.size()) throw std::invalid_argument("trailing characters");
  } catch (...) {
    return Usage(Status::InvalidArgument("--max-live-ratio '" + c.live_ratio + "': not a number"));
  }
  auto store = OpenCliStore(c.uri);
  if (!store.ok()) return Fail(store.status());
  if (o.upload_grace_ms < o.grace_ms) o.upload_grace_ms = o.grace_ms;
  const bool progress = ShowProgress(c.quiet);
  if (progress) {
    o.progress = [](const GcProgress& p) {
      std::fprintf(stderr, "\r%-8s %llu/%llu   ", p.phase.c_str(), (unsigned long long)p.done,
                   (unsigned long long)p.total);
    };
  }
  nlohmann::json j;
  if (c.compact && !c.dry_run) {
    CompactOptions co;
    co.policy = *policy;
    co.max_live_ratio = live_ratio;
    co.open_options = CliOpenOptions();  // the key of an encrypted file
    // The first SIGINT/SIGTERM/SIGHUP stops the rewrite at its next call:
    // what was rewritten is committed and the compaction lease released, so
    // writers can open at once (a killed compaction's lease keeps them out
    // for up to 90 s). A second signal exits at once.
    StopSignals signals;
    co.stop = [] { return StopRequested(); };
    auto cr = Compact(*store, co);
    if (cr.ok() && cr->stopped) {
      ReportError(Status::IOError("gc interrupted during compaction; " +
                                  std::string(cr->bytes_rewritten
                                                  ? "what it rewrote is committed (checkpoint " +
                                                        std::to_string(cr->checkpoint) + ")"
                                                  : "nothing was changed") +
                                  ", nothing collected"),
                  kExitInterrupted);
      return kExitInterrupted;
    }
    if (cr.ok() && StopRequested()) {  // after the last call: the compaction is whole
      ReportError(Status::IOError("gc interrupted after compaction (checkpoint " +
                                  std::to_string(cr->checkpoint) + "); nothing collected"),
                  kExitInterrupted);
      return kExitInterrupted;
    }
    if (cr.ok()) {
      j["compaction"] = {{"victims", cr->victims},
                         {"bytes_rewritten", cr->bytes_rewritten},
                         {"victim_bytes", cr->victim_bytes},
                         {"checkpoint", cr->checkpoint}};
      if (!json) {
        std::printf(
            "compacted: %llu objects (%s), %s rewritten%s\n", (unsigned long long)cr->victims,
            Human(cr->victim_bytes).c_str(), Human(cr->bytes_rewritten).c_str(),
            cr->checkpoint ? (" as checkpoint " + std::to_string(cr->checkpoint)).c_str() : "");
      }
    } else if (cr.status().code() == Status::Code::kConflict) {
      // A writer is (probably) active: say so and collect without compacting.
      Warn("not compacting: " + cr.status().message());
      j["compaction"] = {{"skipped", cr.status().message()}};
    } else {
      return Fail(cr.status());
    }
  }
  o.key = CliKey();
  auto r = Collect(*store, o);
  if (progress) std::fprintf(stderr, "\r%40s\r", "");
  if (!r.ok()) return Fail(r.status());
  j["dry_run"] = r->dry_run;
  j["head"] = r->head;
  j["checkpoints"] = r->checkpoints;
  j["kept"] = r->kept;
  j["expired"] = r->expired;
  j["snapshots"] = r->snapshots;
  j["pins"] = r->pins;
  j["stale_pins"] = r->stale_pins;
  j["leases"] = r->leases;
  j["objects"] = r->objects;
  j["stored_bytes"] = r->stored_bytes;
  j["live_objects"] = r->live_objects;
  j["live_bytes"] = r->live_bytes;
  j["deleted_objects"] = r->deleted_objects;
  j["deleted_bytes"] = r->deleted_bytes;
  j["orphans_deleted"] = r->orphans_deleted;
  j["held_by_grace"] = r->held_by_grace;
  j["nodes_visited"] = r->nodes_visited;
  j["swept"] = r->swept;
  j["checkpoints_applied"] = r->checkpoints_applied;
  j["requests"] = {{"get", r->gets},
                   {"head", r->heads},
                   {"list", r->lists},
                   {"put", r->puts},
                   {"delete", r->deletes}};
  if (!r->note.empty()) j["note"] = r->note;
  if (json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("%s%llu checkpoints: %llu kept, %llu expired\n", r->dry_run ? "dry run: " : "",
              (unsigned long long)r->checkpoints, (unsigned long long)r->kept,
              (unsigned long long)r->expired.size());
  std::printf("%s %llu objects (%s) of %llu (%s); %llu too young to delete (grace %s)\n",
              r->dry_run ? "would delete" : "deleted", (unsigned long long)r->deleted_objects,
              Human(r->deleted_bytes).c_str(), (unsigned long long)r->objects,
              Human(r->stored_bytes).c_str(), (unsigned long long)r->held_by_grace,
              c.grace.c_str());
  std::printf("live: %llu objects (%s)\n", (unsigned long long)r->live_objects,
              Human(r->live_bytes).c_str());
  if (r->stale_pins > 0) {
    std::printf("dropped %llu pin(s) of clones that no longer exist\n",
                (unsigned long long)r->stale_pins);
  }
  if (!r->note.empty()) std::printf("note: %s\n", r->note.c_str());
  return 0;
}

int RunDu(GcCommands& c, bool json) {
  auto store = OpenCliStore(c.uri);
  if (!store.ok()) return Fail(store.status());
  auto u = DiskUsage(*store, CliKey().get());
  if (!u.ok()) return Fail(u.status());
  nlohmann::json j = {{"logical_size", u->logical_size},
                      {"allocated_bytes", u->allocated_bytes},
                      {"stored_bytes", u->stored_bytes},
                      {"objects", u->objects},
                      {"head_bytes", u->head_bytes},
                      {"history_bytes", u->history_bytes},
                      {"snapshot_bytes", u->snapshot_bytes},
                      {"clone_bytes", u->clone_bytes},
                      {"reclaimable_bytes", u->reclaimable_bytes},
                      {"checkpoints", u->checkpoints}};
  if (json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  auto line = [](const char* what, uint64_t v) {
    if (Globals().human) {
      std::printf("%-34s %12s\n", what, Human(v).c_str());
    } else {
      std::printf("%-34s %14llu  %s\n", what, (unsigned long long)v, Human(v).c_str());
    }
  };
  line("logical size", u->logical_size);
  line("allocated (head)", u->allocated_bytes);
  line("stored (all objects)", u->stored_bytes);
  line("  used by the head", u->head_bytes);
  line("  held only by older checkpoints", u->history_bytes);
  line("    of which only by snapshots", u->snapshot_bytes);
  line("    of which only by clones", u->clone_bytes);
  line("  reclaimable now (hyperfile gc)", u->reclaimable_bytes);
  std::printf("%-34s %14llu\n", "checkpoints", (unsigned long long)u->checkpoints);
  return 0;
}

int RunPolicy(GcCommands& c, bool json) {
  auto given = RulesPolicy(c);
  if (!given.ok()) return Usage(given.status());
  auto store = OpenCliStore(c.uri);
  if (!store.ok()) return Fail(store.status());
  if (c.clear || given->has_value()) {
    RetentionPolicy p = given->value_or(RetentionPolicy{});
    if (Status st = SetRetentionPolicy(*store, p); !st.ok()) return Fail(st);
  }
  auto stored = GetRetentionPolicy(*store);
  if (!stored.ok()) return Fail(stored.status());
  std::string text = stored->has_value() ? (*stored)->ToString() : "";
  if (json) {
    nlohmann::json j;
    j["policy"] = stored->has_value() ? nlohmann::json(text) : nlohmann::json();
    std::cout << j.dump(2) << "\n";
  } else if (!stored->has_value()) {
    std::printf("no policy stored (gc keeps every checkpoint unless given rules)\n");
  } else {
    std::printf("%s\n",
                text.empty() ? "(keep only the head, snapshots, clones and leases)" : text.c_str());
  }
  return 0;
}

// Every hyperfile under a prefix: keys "<root>/seg/<16 hex>" name a root.
int RunLs(GcCommands& c, bool json) {
  std::string prefix = c.uri;
  auto store = OpenCliStore(prefix);
  if (!store.ok()) return Fail(store.status());
  std::vector<ObjectInfo> objects;
  std::map<std::string, uint64_t> roots;  // root -> stored bytes
  std::string after;
  for (size_t pages = 0;; pages++) {
    std::vector<ObjectInfo> page;
    if (Status st = (*store)->List("", after, 1000, &page); !st.ok()) return Fail(st);
    for (const ObjectInfo& o : page) {
      size_t pos = o.key.rfind("/seg/");
      std::string root;
      std::string_view tail;
      if (o.key.starts_with("seg/")) {
        tail = std::string_view(o.key);
      } else if (pos != std::string::npos) {
        root = o.key.substr(0, pos);
        tail = std::string_view(o.key).substr(pos + 1);
      } else {
        continue;
      }
      if (format::ParseSegmentKey(tail)) roots[root] += o.size;
    }
    if (page.size() < 1000) break;
    if (page.back().key <= after || pages > 100000) {
      return Fail(Status::Corrupt((*store)->Name() + ": the listing does not advance"));
    }
    after = page.back().key;
  }
  nlohmann::json j = nlohmann::json::array();
  std::string base = prefix;
  while (!base.empty() && base.back() == '/') base.pop_back();
  for (const auto& [root, seg_bytes] : roots) {
    std::string uri = root.empty() ? base : base + "/" + root;
    auto fs = OpenCliStore(uri);
    if (!fs.ok()) return Fail(fs.status());
    auto log = ListCheckpoints(*fs, 1);
    nlohmann::json e = {{"uri", uri}, {"segment_bytes", seg_bytes}};
    if (log.ok() && !log->empty()) {
      e["size"] = (*log)[0].size;
      e["checkpoint"] = (*log)[0].id;
    } else {
      e["error"] = log.status().ToString();
    }
    j.push_back(e);
    if (!json) {
      if (e.contains("size")) {
        std::printf("%-50s size %-12s checkpoint %llu\n", uri.c_str(),
                    Human(e["size"].get<uint64_t>()).c_str(),
                    (unsigned long long)e["checkpoint"].get<uint64_t>());
      } else {
        std::printf("%-50s %s\n", uri.c_str(), log.status().ToString().c_str());
      }
    }
  }
  if (json) std::cout << j.dump(2) << "\n";
  return 0;
}

int RunFlatten(GcCommands& c, bool json) {
  auto store = OpenCliStore(c.uri);
  if (!store.ok()) return Fail(store.status());
  auto id = Flatten(*store, CliOpenOptions());
  if (!id.ok()) return Fail(id.status());
  if (json) {
    nlohmann::json j;
    j["checkpoint"] = *id;
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf(
        "flattened as checkpoint %llu; older checkpoints expired, the source's pin dropped\n",
        (unsigned long long)*id);
  }
  return 0;
}

}  // namespace

std::shared_ptr<GcCommands> AddGcCommands(CLI::App& app) {
  auto c = std::make_shared<GcCommands>();
  c->gc = app.add_subcommand("gc", "expire old checkpoints and delete what nothing uses");
  c->gc->add_option("URI", c->uri, "the file")->required();
  c->gc->add_flag("--dry-run", c->dry_run, "decide and report; delete and write nothing");
  c->gc->add_flag("--sweep", c->sweep,
                  "list and mark everything (finds orphans, rebuilds the collector's ledger; "
                  "otherwise a run applies only the checkpoints committed since the last one)");
  AddRules(c->gc, c.get());
  c->gc->add_option("--grace", c->grace,
                    "never delete objects younger than this (default 20m; 0 = no age check)");
  c->gc->add_flag("--compact", c->compact,
                  "first rewrite live blocks out of mostly-dead objects (refused while a writer "
                  "seems active)");
  c->gc->add_option("--max-live-ratio", c->live_ratio,
                    "compact objects at most this live (default 0.65)");
  c->gc->add_flag("-q,--quiet", c->quiet, "no progress");
  c->gc->footer(
      "Always kept: the head, named snapshots, checkpoints clones were made from, and\n"
      "checkpoints held by reader leases. Rules given here replace the stored policy\n"
      "(hyperfile policy); with neither, nothing expires and only orphans are deleted.\n"
      "Examples:\n"
      "  hyperfile gc s3://bucket/disk --keep-last 10 --keep-daily 7\n"
      "  hyperfile gc s3://bucket/disk --dry-run --json");
  c->du = app.add_subcommand("du", "where a file's stored bytes are: head, history, reclaimable");
  c->du->add_option("URI", c->uri, "the file")->required();
  c->policy = app.add_subcommand("policy", "show or set the retention policy stored with a file");
  c->policy->add_option("URI", c->uri, "the file")->required();
  AddRules(c->policy, c.get());
  c->policy->add_flag("--clear", c->clear, "store the empty policy (keep only the always-kept)");
  c->ls = app.add_subcommand("ls", "list the hyperfiles under a prefix with their sizes");
  c->ls->add_option("PREFIX", c->uri, "s3://bucket/prefix/ or a directory")->required();
  c->flatten = app.add_subcommand(
      "flatten", "copy what a clone still borrows, so it no longer needs its source");
  c->flatten->add_option("CLONE", c->uri, "the clone")->required();
  return c;
}

int RunGcCommands(GcCommands& c) {
  const bool json = Globals().json;
  if (*c.gc || *c.du || *c.policy || *c.flatten) {
    auto [plain, selector] = SplitAt(c.uri);
    if (selector) {
      return Usage(Status::InvalidArgument(c.uri + " names a state (@" + *selector +
                                           "); this command takes the file's URI alone"));
    }
  }
  if (*c.gc) return RunGc(c, json);
  if (*c.du) return RunDu(c, json);
  if (*c.policy) return RunPolicy(c, json);
  if (*c.ls) return RunLs(c, json);
  if (*c.flatten) return RunFlatten(c, json);
  return -1;
}

}  // namespace hyperfile::cli
