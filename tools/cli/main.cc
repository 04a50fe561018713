// SPDX-License-Identifier: Apache-2.0
// The `hyperfile` command: create, write, read, inspect and travel in time.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_util.h"
#include "cli/cp.h"
#include "cli/follow.h"
#include "cli/gc_commands.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/object_store.h"
#include "hyperfile/version.h"

namespace hf = hyperfile;

namespace {

[[noreturn]] void Die(const hf::Status& st) {
  hf::cli::PrintError(st);
  std::exit(1);
}
template <typename T>
T Must(hf::Result<T> r) {
  if (!r.ok()) Die(r.status());
  return std::move(r).value();
}
void Must(const hf::Status& st) {
  if (!st.ok()) Die(st);
}

// Every numeric option and argument goes through the one strict parser
// (cli_util.h); `what` names it in the error.
uint64_t ParseSize(const std::string& what, const std::string& text) {
  return Must(hf::cli::ParseNumber(what, text));
}

std::shared_ptr<hf::ObjectStore> Store(const std::string& uri) { return Must(hf::OpenStore(uri)); }

// A state as the user typed it: the library's At::Parse is the only judge.
// `given` false (no --at, no '@') means the latest state; given, even an
// empty text goes to At::Parse (which refuses it).
hf::At ParseAt(const std::string& text, bool given = true) {
  return given ? Must(hf::At::Parse(text)) : hf::At::Latest();
}

std::string IsoTime(int64_t ms) { return hf::At::Time(ms).ToString(); }

// `hyperfile rm`: deletes the hyperfile's own keys and nothing else. Checks
// up front (so the refusal says what to do, and nothing is even asked):
// no hyperfile at all is NotFound; other objects under the root are refused
// unless --keep-foreign. RemoveFile checks the same again.
int Remove(const std::string& uri, bool yes, bool keep_foreign, bool force) {
  auto local = hf::cli::LocalDirectory(uri);
  // Opening a local store may create its directory; rm must not.
  if (local && !std::filesystem::exists(*local)) {
    Die(hf::Status::NotFound("rm: no hyperfile at " + uri + " (no such directory)"));
  }
  auto store = Store(uri);
  hf::cli::RootSurvey survey = Must(hf::cli::SurveyRoot(*store));
  if (survey.segments == 0) {
    Die(hf::Status::NotFound(
        "rm: no hyperfile at " + store->Name() +
        (survey.foreign_count
             ? " (it holds " + hf::cli::DescribeForeign(survey) + "); nothing was deleted"
             : "")));
  }
  if (survey.foreign_count > 0 && !keep_foreign) {
    Die(hf::Status::InvalidArgument(
        "rm: " + store->Name() + " holds " + hf::cli::DescribeForeign(survey) +
        "; nothing was deleted; use --keep-foreign to remove only the hyperfile"));
  }
  if (!yes) {
    if (!isatty(0)) Die(hf::Status::InvalidArgument("rm: refusing without --yes (not a terminal)"));
    std::fprintf(stderr, "Delete the hyperfile %s and all its checkpoints%s? [y/N] ",
                 store->Name().c_str(),
                 survey.foreign_count ? " (other objects there are left alone)" : "");
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y" && answer != "yes") return 1;
  }
  hf::RemoveOptions options;
  options.keep_foreign = keep_foreign;
  options.force = force;
  if (force) {
    std::fprintf(stderr, "hyperfile: warning: --force: clones of %s that borrow its data break\n",
                 store->Name().c_str());
  }
  Must(hf::RemoveFile(store, options));
  return 0;
}

// Whether the demo may (re)use `dir`: it is missing or empty, or holds only
// a hyperfile (a previous demo). Anything else is refused before anything is
// touched. Returns true if a previous demo is there to remove.
bool CheckDemoDirectory(const std::string& uri) {
  auto local = hf::cli::LocalDirectory(uri);
  if (!local) {
    Die(hf::Status::InvalidArgument("demo: " + uri + " is not a local directory"));
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  auto refuse = [&](const std::string& why) {
    Die(hf::Status::InvalidArgument("demo: " + *local + " " + why +
                                    "; nothing was touched (give a missing or empty directory)"));
  };
  fs::file_status st = fs::symlink_status(*local, ec);
  if (ec || !fs::exists(st)) return false;  // missing: the demo creates it
  if (!fs::is_directory(st)) refuse("is not a directory");
  // Everything in it must be a key of the format (or the local store's own
  // .hftmp/.hflock machinery); a special file or a symlink is refused too.
  bool any_key = false;
  for (auto it = fs::recursive_directory_iterator(*local, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    std::string rel = fs::relative(it->path(), *local, ec).generic_string();
    if (rel == ".hftmp" || rel == ".hflock") {
      it.disable_recursion_pending();
      continue;
    }
    fs::file_status s = it->symlink_status(ec);
    if (fs::is_directory(s)) continue;
    if (!fs::is_regular_file(s) || !hf::cli::IsFormatKey(rel)) {
      refuse("is not empty and not a previous demo (it holds " + rel + ")");
    }
    any_key = true;
  }
  if (ec) Die(hf::Status::IOError("demo: cannot read " + *local + ": " + ec.message()));
  if (!any_key) return false;
  hf::cli::RootSurvey survey = Must(hf::cli::SurveyRoot(*Store(uri)));
  if (survey.foreign_count > 0) refuse("holds " + hf::cli::DescribeForeign(survey));
  if (survey.segments == 0) refuse("holds snapshot records but no hyperfile");
  return true;
}

// The README's main job: a short tour of what the format gives.
int Demo(const std::string& uri) {
  bool previous = CheckDemoDirectory(uri);
  auto store = Store(uri);
  if (previous) Must(hf::RemoveFile(store));  // only the format's keys are there
  hf::CreateOptions co;
  co.block_size = 4096;
  auto f = Must(hf::File::Create(store, co));
  std::printf("created %s (4 KiB blocks)\n", store->Name().c_str());
  std::string v1 = "version one of the data";
  Must(f->PWrite(1000, v1.data(), v1.size()));
  Must(f->PWrite(10ull << 30, "far away", 8));  // a 10 GiB sparse file
  uint64_t c1 = Must(f->Flush());
  std::printf("checkpoint %llu: wrote at 1000 and at 10 GiB (sparse)\n", (unsigned long long)c1);
  std::string v2 = "VERSION TWO, overwritten";
  Must(f->PWrite(1000, v2.data(), v2.size()));
  uint64_t c2 = Must(f->Flush());
  std::printf("checkpoint %llu: overwrote at 1000\n", (unsigned long long)c2);
  Must(f->Truncate(4096));
  uint64_t c3 = Must(f->Flush());
  std::printf("checkpoint %llu: truncated to 4 KiB\n", (unsigned long long)c3);
  auto st = Must(f->Stat());
  std::printf("now: size %llu, allocated %llu bytes\n", (unsigned long long)st.size,
              (unsigned long long)st.allocated_bytes);
  Must(f->Close());
  auto old = Must(hf::File::OpenAt(store, hf::At::Checkpoint(c1)));
  std::string back(v1.size(), 0);
  Must(old->PRead(1000, back.data(), back.size()).status());
  std::printf("time travel to checkpoint %llu reads: \"%s\" (size %llu)\n", (unsigned long long)c1,
              back.c_str(), (unsigned long long)old->Size());
  uint64_t r = Must(hf::Restore(store, hf::At::Checkpoint(c1)));
  auto now = Must(hf::File::Open(store));
  std::printf("restored checkpoint %llu as new checkpoint %llu: size %llu again\n",
              (unsigned long long)c1, (unsigned long long)r, (unsigned long long)now->Size());
  Must(now->Close());
  for (const auto& c : Must(hf::ListCheckpoints(store))) {
    std::printf(
        "  checkpoint %llu  %s  size %llu  changed %llu%s\n", (unsigned long long)c.id,
        IsoTime(c.time_ms).c_str(), (unsigned long long)c.size, (unsigned long long)c.bytes_changed,
        c.restored_from ? (" restored from " + std::to_string(c.restored_from)).c_str() : "");
  }
  auto report = Must(hf::Verify(store, hf::At::Latest(), true));
  std::printf("verify: %s (%llu nodes, %llu blocks checked)\n", report.ok() ? "healthy" : "DAMAGED",
              (unsigned long long)report.nodes_checked, (unsigned long long)report.blocks_checked);
  return report.ok() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "hyperfile: random read/write files on object storage, with a checkpoint at every flush"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hyperfile " HYPERFILE_VERSION_STRING);
  bool json = false;
  app.add_flag("--json", json, "machine-readable output");
  std::string uri, at, src, dst, file_arg = "-", out_path, name;
  std::string block_size = "64K", size_text, offset_text = "0", length_text;
  bool deep = false, yes = false;

  auto* create = app.add_subcommand("create", "create an empty file");
  create->add_option("URI", uri, "s3://bucket/prefix, file:///path or a path")->required();
  create->add_option("--block-size", block_size, "4K..4M, power of two");
  create->add_option("--size", size_text, "initial size (a hole)");
  std::string compression_text;
  create->add_option("--compression", compression_text, "zstd[:LEVEL] (default zstd:1), lz4, none");

  auto* write =
      app.add_subcommand("write", "write bytes from FILE or stdin at an offset, then flush");
  write->add_option("URI", uri)->required();
  write->add_option("--offset", offset_text)->required();
  write->add_option("FILE", file_arg, "input (default: stdin)");

  // Streaming (tools/cli/follow.h): `command | hyperfile append URI --flush-every 5s`.
  std::string flush_every_text = "0", flush_bytes_text = "8M", poll_text = "250ms";
  bool stats = false, follow = false, from_end = false;
  auto* append = app.add_subcommand(
      "append", "append FILE or stdin as it arrives (checkpoints as it goes), then flush");
  append->add_option("URI", uri)->required();
  append->add_option("FILE", file_arg);
  for (CLI::App* sub : {write, append}) {
    sub->add_option("--flush-every", flush_every_text,
                    "checkpoint when the oldest unflushed byte is this old (e.g. 5s; 0 = off)");
    sub->add_option("--flush-bytes", flush_bytes_text, "checkpoint every this many bytes (8M)");
    sub->add_flag("--stats", stats, "print the store requests made (stderr)");
  }
  append->footer(
      "Memory stays bounded whatever the input size. On EOF, SIGINT or SIGTERM what was read\n"
      "is committed and the command exits 0. One writer per file: a second one fails with\n"
      "a Conflict. Follow the file from anywhere with: hyperfile read URI --follow");

  auto* read = app.add_subcommand("read", "read bytes to stdout or a file");
  read->add_option("URI", uri)->required();
  read->add_option("--offset", offset_text);
  read->add_option("--length", length_text);
  read->add_option("--at", at, "checkpoint id, time or snapshot");
  read->add_option("-o", out_path, "output file");
  read->add_flag("-f,--follow", follow, "like tail -f: print new bytes as checkpoints appear");
  read->add_flag("--from-end", from_end, "with --follow: start at the current end");
  read->add_option("--poll", poll_text, "with --follow: poll interval (250ms)");
  read->add_flag("--stats", stats, "print the store requests made (stderr)");

  auto* stat = app.add_subcommand("stat", "size, allocation, block size, checkpoint");
  stat->add_option("URI", uri)->required();
  stat->add_option("--at", at);

  auto* truncate = app.add_subcommand("truncate", "set the size, then flush");
  truncate->add_option("URI", uri)->required();
  truncate->add_option("SIZE", size_text)->required();

  auto* log = app.add_subcommand("log", "list checkpoints, newest first");
  log->add_option("URI", uri)->required();
  std::string limit_text = "0";
  log->add_option("-n", limit_text, "at most N (0 = all)");

  auto* snapshot = app.add_subcommand("snapshot", "named snapshots");
  snapshot->require_subcommand(1);
  auto* snap_create = snapshot->add_subcommand("create", "pin a checkpoint under a name");
  snap_create->add_option("URI", uri)->required();
  snap_create->add_option("NAME", name)->required();
  snap_create->add_option("--at", at);
  auto* snap_list = snapshot->add_subcommand("list", "list snapshots");
  snap_list->add_option("URI", uri)->required();
  auto* snap_delete = snapshot->add_subcommand("delete", "delete a snapshot");
  snap_delete->add_option("URI", uri)->required();
  snap_delete->add_option("NAME", name)->required();

  auto* restore = app.add_subcommand("restore", "make an old state the head again");
  restore->add_option("URI", uri)->required();
  restore->add_option("--to", at)->required();

  auto* clone = app.add_subcommand("clone", "new writable file sharing SRC's data");
  clone->add_option("SRC", src, "URI[@ID|@SNAPSHOT]")->required();
  clone->add_option("DST", dst)->required();

  hf::cli::CpRequest cp_request;
  std::string cp_block_size;
  auto* cp = app.add_subcommand("cp", "copy between local files and hyperfiles (sparse, parallel)");
  cp->footer(
      "SRC and DST: an argument with a scheme (s3://bucket/prefix, file:///path, memory://name)\n"
      "is a hyperfile; a bare path is an ordinary local file. A hyperfile SRC may name a state:\n"
      "URI@ID (checkpoint), URI@TIME (2026-11-25T10:00:00Z) or URI@SNAPSHOT. One side at least\n"
      "must be a hyperfile. Holes are never read and all-zero blocks never written, so\n"
      "sparse files stay sparse.\n"
      "A local DST is written to a temporary file in its directory and renamed over DST at\n"
      "the end. A hyperfile DST is created (block size: --block-size, else the source's,\n"
      "else 64K); an existing one is refused unless --force, which overwrites it as a new\n"
      "checkpoint (older checkpoints keep the old content). On failure or Ctrl-C nothing\n"
      "half-done is left: the temporary file or the new hyperfile's own keys are removed\n"
      "(other files or objects under DST are never touched), a --force DST gets its old\n"
      "content back. Exit status: 0 done, 1 error, 130 interrupted.\n\n"
      "Examples:\n"
      "  hyperfile cp disk.img s3://bucket/disk --block-size 1M\n"
      "  hyperfile cp s3://bucket/disk@before-upgrade restored.img\n"
      "  hyperfile cp s3://bucket/disk@42 file:///backup/disk");
  cp->add_option("SRC", cp_request.source, "local path or URI[@ID|@TIME|@SNAPSHOT]")->required();
  cp->add_option("DST", cp_request.destination, "local path or URI")->required();
  cp->add_option("--block-size", cp_block_size, "for a new hyperfile DST: 4K..4M, power of two");
  std::string cp_compression;
  cp->add_option("--compression", cp_compression,
                 "for a hyperfile DST: zstd[:LEVEL] (default zstd:1), lz4, none");
  cp->add_flag("--force", cp_request.force, "overwrite an existing hyperfile DST (new checkpoint)");
  cp->add_flag("-q,--quiet", cp_request.quiet, "no progress bar or summary");
  std::string jobs_text = "8";
  cp->add_option("-j,--jobs", jobs_text, "parallel workers, 1..256 (default 8)");

  auto* diff = app.add_subcommand("diff", "byte ranges that differ between two states");
  diff->add_option("URI", uri)->required();
  std::string from, to;
  diff->add_option("FROM", from)->required();
  diff->add_option("TO", to)->required();

  auto* verify =
      app.add_subcommand("verify", "check every index node (and with --deep every block)");
  verify->add_option("URI", uri)->required();
  verify->add_option("--at", at);
  verify->add_flag("--deep", deep);

  auto* rm = app.add_subcommand("rm", "delete a file and all its checkpoints");
  rm->add_option("URI", uri)->required();
  rm->add_flag("--yes", yes, "do not ask");
  bool keep_foreign = false;
  rm->add_flag("--keep-foreign", keep_foreign,
               "remove the hyperfile but leave other objects under URI untouched");
  bool rm_force = false;
  rm->add_flag("--force", rm_force, "remove even if clones borrow its data (they break)");
  rm->footer(
      "Deletes only the keys of the hyperfile format (seg/, dat/, snap/, gc/, lease/, pin/).\n"
      "If URI also holds other objects (a user's files, a nested hyperfile), rm refuses\n"
      "and deletes nothing, unless --keep-foreign: then only the hyperfile goes.");

  auto* demo = app.add_subcommand(
      "demo", "a short tour on a local directory (missing, empty or a previous demo's)");
  std::string demo_dir = "/tmp/hyperfile-demo";
  demo->add_option("DIR", demo_dir);

  auto gc_commands = hf::cli::AddGcCommands(app);

  CLI11_PARSE(app, argc, argv);
  if (int rc = hf::cli::RunGcCommands(*gc_commands, json); rc >= 0) return rc;
  nlohmann::json j;
  // Whether `--at` was given to the subcommand that runs.
  auto at_given = [](CLI::App* sub) { return sub->get_option("--at")->count() > 0; };

  if (*create) {
    hf::CreateOptions co;
    co.block_size = Must(hf::cli::ParseBlockSize("--block-size", block_size));
    if (create->get_option("--size")->count() > 0) co.initial_size = ParseSize("--size", size_text);
    if (create->get_option("--compression")->count() > 0) {
      co.compression = Must(hf::ParseCompression(compression_text));
    }
    auto f = Must(hf::File::Create(Store(uri), co));
    Must(f->Close());
  } else if (*write || *append) {
    // Arguments first: a bad one fails before anything is opened or read.
    hf::cli::StreamRequest sr;
    sr.uri = uri;
    sr.input = file_arg;
    sr.append = append->parsed();
    sr.offset = *write ? ParseSize("--offset", offset_text) : 0;
    sr.flush_every_ms = Must(hf::cli::ParseDurationMs("--flush-every", flush_every_text));
    sr.flush_bytes = ParseSize("--flush-bytes", flush_bytes_text);
    sr.stats = stats;
    return hf::cli::RunStream(sr);
  } else if (*read && follow) {
    if (at_given(read) || read->get_option("--length")->count() > 0) {
      Die(hf::Status::InvalidArgument(
          "read --follow follows the latest state: no --at, no --length"));
    }
    hf::cli::FollowRequest fr;
    fr.uri = uri;
    fr.output = out_path;
    fr.offset = ParseSize("--offset", offset_text);
    fr.from_end = from_end;
    fr.poll_ms = Must(hf::cli::ParseDurationMs("--poll", poll_text));
    fr.stats = stats;
    return hf::cli::RunFollow(fr);
  } else if (*read) {
    if (from_end || read->get_option("--poll")->count() > 0) {
      Die(hf::Status::InvalidArgument("read: --from-end and --poll go with --follow"));
    }
    uint64_t off = ParseSize("--offset", offset_text);
    bool has_length = read->get_option("--length")->count() > 0;
    uint64_t len = has_length ? ParseSize("--length", length_text) : 0;
    auto f = Must(hf::File::OpenAt(Store(uri), ParseAt(at, at_given(read))));
    uint64_t size = f->Size();
    if (!has_length) len = off < size ? size - off : 0;
    FILE* out = out_path.empty() ? stdout : std::fopen(out_path.c_str(), "wb");
    if (!out) Must(hf::Status::IOError("cannot write " + out_path));
    std::string buf;
    while (len > 0) {
      buf.resize(std::min<uint64_t>(len, 8 << 20));
      size_t n = Must(f->PRead(off, buf.data(), buf.size()));
      if (n == 0) break;
      if (std::fwrite(buf.data(), 1, n, out) != n) Must(hf::Status::IOError("write failed"));
      off += n;
      len -= n;
    }
    if (out != stdout && std::fclose(out) != 0)
      Must(hf::Status::IOError("cannot write " + out_path));
  } else if (*stat) {
    auto f = Must(hf::File::OpenAt(Store(uri), ParseAt(at, at_given(stat))));
    auto s = Must(f->Stat());
    // Stored bytes come from the index (every leaf read once).
    auto use = Must(hf::MeasureStorage(Store(uri), hf::At::Checkpoint(s.checkpoint)));
    const double ratio =
        use.stored_bytes == 0 ? 1.0 : double(use.logical_bytes) / double(use.stored_bytes);
    j = {{"size", s.size},
         {"allocated_bytes", s.allocated_bytes},
         {"compression", hf::CompressionName(s.compression)},
         {"logical_bytes", use.logical_bytes},
         {"stored_bytes", use.stored_bytes},
         {"ratio", ratio},
         {"block_size", s.block_size},
         {"checkpoint", s.checkpoint},
         {"created", IsoTime(s.create_time_ms)},
         {"checkpoint_time", IsoTime(s.checkpoint_time_ms)}};
    if (!json) {
      std::printf(
          "size:        %llu\nallocated:   %llu\nblock size:  %u\ncheckpoint:  %llu (%s)\n"
          "created:     %s\ncodec:       %s\nlogical:     %llu\nstored:      %llu (ratio %.2f)\n",
          (unsigned long long)s.size, (unsigned long long)s.allocated_bytes, s.block_size,
          (unsigned long long)s.checkpoint, IsoTime(s.checkpoint_time_ms).c_str(),
          IsoTime(s.create_time_ms).c_str(), hf::CompressionName(s.compression).c_str(),
          (unsigned long long)use.logical_bytes, (unsigned long long)use.stored_bytes, ratio);
    }
  } else if (*truncate) {
    uint64_t new_size = ParseSize("SIZE", size_text);
    auto f = Must(hf::File::Open(Store(uri)));
    Must(f->Truncate(new_size));
    Must(f->Close());
  } else if (*log) {
    j = nlohmann::json::array();
    auto limit = static_cast<size_t>(Must(hf::cli::ParseNumberInRange(
        "-n", limit_text, 0, std::numeric_limits<size_t>::max(), /*allow_suffix=*/false)));
    for (const auto& c : Must(hf::ListCheckpoints(Store(uri), limit))) {
      j.push_back({{"id", c.id},
                   {"time", IsoTime(c.time_ms)},
                   {"size", c.size},
                   {"bytes_changed", c.bytes_changed},
                   {"restored_from", c.restored_from},
                   {"snapshots", c.snapshots}});
      if (!json) {
        std::string snaps;
        for (const auto& s : c.snapshots) snaps += " [" + s + "]";
        std::printf(
            "%-8llu %s  size %-12llu changed %-10llu%s%s\n", (unsigned long long)c.id,
            IsoTime(c.time_ms).c_str(), (unsigned long long)c.size,
            (unsigned long long)c.bytes_changed,
            c.restored_from ? (" restored from " + std::to_string(c.restored_from)).c_str() : "",
            snaps.c_str());
      }
    }
  } else if (*snap_create) {
    Must(hf::CreateSnapshot(Store(uri), name, ParseAt(at, at_given(snap_create))));
  } else if (*snap_list) {
    j = nlohmann::json::array();
    for (const auto& s : Must(hf::ListSnapshots(Store(uri)))) {
      j.push_back(
          {{"name", s.name}, {"checkpoint", s.checkpoint}, {"created", IsoTime(s.created_ms)}});
      if (!json) std::printf("%-24s %llu\n", s.name.c_str(), (unsigned long long)s.checkpoint);
    }
  } else if (*snap_delete) {
    Must(hf::DeleteSnapshot(Store(uri), name));
  } else if (*restore) {
    uint64_t id = Must(hf::Restore(Store(uri), ParseAt(at)));
    std::printf("restored as checkpoint %llu\n", (unsigned long long)id);
  } else if (*clone) {
    auto [src_uri, sel] = hf::cli::SplitAt(src);
    hf::At src_at = ParseAt(sel.value_or(""), sel.has_value());
    uint64_t id = Must(hf::Clone(Store(src_uri), src_at, Store(dst)));
    std::printf("cloned into %s (checkpoint %llu)\n", dst.c_str(), (unsigned long long)id);
  } else if (*cp) {
    if (cp->get_option("--block-size")->count() > 0) {
      cp_request.block_size = Must(hf::cli::ParseBlockSize("cp: --block-size", cp_block_size));
    }
    if (cp->get_option("--compression")->count() > 0) {
      cp_request.compression = Must(hf::ParseCompression(cp_compression));
    }
    cp_request.jobs = static_cast<int>(
        Must(hf::cli::ParseNumberInRange("cp: --jobs", jobs_text, 1, 256, /*allow_suffix=*/false)));
    return hf::cli::RunCp(cp_request);
  } else if (*diff) {
    j = nlohmann::json::array();
    for (const auto& r : Must(hf::Diff(Store(uri), ParseAt(from), ParseAt(to)))) {
      j.push_back({{"offset", r.offset}, {"length", r.length}});
      if (!json)
        std::printf("%llu\t%llu\n", (unsigned long long)r.offset, (unsigned long long)r.length);
    }
  } else if (*verify) {
    auto report = Must(hf::Verify(Store(uri), ParseAt(at, at_given(verify)), deep));
    j = {{"checkpoint", report.checkpoint},
         {"nodes", report.nodes_checked},
         {"blocks", report.blocks_checked},
         {"problems", report.problems}};
    if (!json) {
      std::printf("checkpoint %llu: %llu nodes, %llu blocks checked\n",
                  (unsigned long long)report.checkpoint, (unsigned long long)report.nodes_checked,
                  (unsigned long long)report.blocks_checked);
      for (const auto& p : report.problems) std::printf("DAMAGED: %s\n", p.c_str());
    }
    if (json) std::cout << j.dump(2) << "\n";
    return report.ok() ? 0 : 1;
  } else if (*rm) {
    return Remove(uri, yes, keep_foreign, rm_force);
  } else if (*demo) {
    return Demo(demo_dir);
  }
  if (json && !j.is_null()) std::cout << j.dump(2) << "\n";
  return 0;
}
