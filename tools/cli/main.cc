// SPDX-License-Identifier: Apache-2.0
// The `hyperfile` command: create, write, read, inspect and travel in time.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "cli/cli_util.h"
#include "cli/completion.h"
#include "cli/conventions.h"
#include "cli/cp.h"
#include "cli/follow.h"
#include "cli/gc_commands.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/object_store.h"
#include "hyperfile/version.h"

namespace hf = hyperfile;

namespace {

namespace cli = hf::cli;
using cli::Die;
using cli::DieUsage;

template <typename T>
T Must(hf::Result<T> r) {
  if (!r.ok()) Die(r.status());
  return std::move(r).value();
}
void Must(const hf::Status& st) {
  if (!st.ok()) Die(st);
}
// For values of the command line, checked before anything is opened: a bad
// one is a usage error (exit 2).
template <typename T>
T Arg(hf::Result<T> r) {
  if (!r.ok()) Die(r.status(), cli::kExitUsage);
  return std::move(r).value();
}

// Every numeric option and argument goes through the one strict parser
// (cli_util.h); `what` names it in the error.
uint64_t ParseSize(const std::string& what, const std::string& text) {
  return Arg(cli::ParseNumber(what, text));
}

// Every store is opened with the global options (S3 flags, -v, --stats).
std::shared_ptr<hf::ObjectStore> Store(const std::string& uri) {
  return Must(cli::OpenCliStore(uri));
}

// A state as the user typed it: the library's At::Parse is the only judge.
// `given` false (no --at, no '@') means the latest state; given, even an
// empty text goes to At::Parse (which refuses it).
hf::At ParseAt(const std::string& text, bool given = true) {
  return given ? Arg(hf::At::Parse(text)) : hf::At::Latest();
}
hf::At ParseAt(const cli::StateArg& a) { return ParseAt(a.selector, a.given); }

std::string IsoTime(int64_t ms) { return hf::At::Time(ms).ToString(); }

// Text output, which --json replaces.
template <typename... Args>
void Say(const char* format, Args... args) {
  if (!cli::Globals().json) std::printf(format, args...);
}

// `hyperfile rm`: deletes the hyperfile's own keys and nothing else. Checks
// up front (so the refusal says what to do, and nothing is even asked):
// no hyperfile at all is NotFound; other objects under the root are refused
// unless --keep-foreign. RemoveFile checks the same again.
int Remove(const std::string& uri, bool yes, bool keep_foreign, bool force, bool quiet) {
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
    if (answer != "y" && answer != "Y" && answer != "yes") {
      Die(hf::Status::InvalidArgument("rm: not confirmed; nothing was deleted"));
    }
  }
  hf::RemoveOptions options;
  options.keep_foreign = keep_foreign;
  options.force = force;
  if (force) {
    cli::Warn("--force: clones of " + store->Name() + " that borrow its data break");
  }
  options.store_resolver = cli::CliStoreOpener();
  hf::Status removed;
  {
    cli::ProgressBar bar(cli::ShowProgress(quiet), survey.format_keys,
                         cli::ProgressBar::Unit::kCount);
    uint64_t before = cli::Counters().keys_deleted.load();
    cli::ProgressTicker ticker(bar, [before] { return cli::Counters().keys_deleted - before; });
    removed = hf::RemoveFile(store, options);
  }
  Must(removed);
  cli::EmitJson({{"removed", store->Name()}, {"objects", survey.format_keys}});
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
  Say("created %s (4 KiB blocks)\n", store->Name().c_str());
  std::string v1 = "version one of the data";
  Must(f->PWrite(1000, v1.data(), v1.size()));
  Must(f->PWrite(10ull << 30, "far away", 8));  // a 10 GiB sparse file
  uint64_t c1 = Must(f->Flush());
  Say("checkpoint %llu: wrote at 1000 and at 10 GiB (sparse)\n", (unsigned long long)c1);
  std::string v2 = "VERSION TWO, overwritten";
  Must(f->PWrite(1000, v2.data(), v2.size()));
  uint64_t c2 = Must(f->Flush());
  Say("checkpoint %llu: overwrote at 1000\n", (unsigned long long)c2);
  Must(f->Truncate(4096));
  uint64_t c3 = Must(f->Flush());
  Say("checkpoint %llu: truncated to 4 KiB\n", (unsigned long long)c3);
  auto st = Must(f->Stat());
  Say("now: size %llu, allocated %llu bytes\n", (unsigned long long)st.size,
      (unsigned long long)st.allocated_bytes);
  Must(f->Close());
  auto old = Must(hf::File::OpenAt(store, hf::At::Checkpoint(c1)));
  std::string back(v1.size(), 0);
  Must(old->PRead(1000, back.data(), back.size()).status());
  Say("time travel to checkpoint %llu reads: \"%s\" (size %llu)\n", (unsigned long long)c1,
      back.c_str(), (unsigned long long)old->Size());
  uint64_t r = Must(hf::Restore(store, hf::At::Checkpoint(c1)));
  auto now = Must(hf::File::Open(store));
  Say("restored checkpoint %llu as new checkpoint %llu: size %llu again\n", (unsigned long long)c1,
      (unsigned long long)r, (unsigned long long)now->Size());
  Must(now->Close());
  for (const auto& c : Must(hf::ListCheckpoints(store))) {
    std::string restored =
        c.restored_from ? " restored from " + std::to_string(c.restored_from) : "";
    Say("  checkpoint %llu  %s  size %llu  changed %llu%s\n", (unsigned long long)c.id,
        IsoTime(c.time_ms).c_str(), (unsigned long long)c.size, (unsigned long long)c.bytes_changed,
        restored.c_str());
  }
  auto report = Must(hf::Verify(store, hf::At::Latest(), true));
  Say("verify: %s (%llu nodes, %llu blocks checked)\n", report.ok() ? "healthy" : "DAMAGED",
      (unsigned long long)report.nodes_checked, (unsigned long long)report.blocks_checked);
  cli::EmitJson({{"uri", store->Name()},
                 {"checkpoints", Must(hf::ListCheckpoints(store)).size()},
                 {"healthy", report.ok()},
                 {"problems", report.problems}});
  return report.ok() ? cli::kExitOk : cli::kExitDamaged;
}

}  // namespace

// Adding an option to a subcommand: a variable here, `sub->add_option(name,
// variable, "help")` next to the subcommand's others (help text required:
// it is the man page), then read it in the subcommand's branch below. Check
// its value with Arg(...) before anything is opened (a bad value exits 2).
int main(int argc, char** argv) {
  CLI::App app{
      "hyperfile: random read/write files on object storage, with a checkpoint at every flush",
      "hyperfile"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hyperfile " HYPERFILE_VERSION_STRING,
                       "print the version and exit");
  app.set_help_flag("-h,--help", "print this help and exit (also after a subcommand)");
  cli::AddGlobalOptions(app);
  app.footer(
      "URI: s3://bucket/prefix, file:///path or a path (a local directory). Where a state is\n"
      "read, URI@SELECTOR (or --at) names it: a checkpoint id, a UTC time, @UNIXSECONDS, a\n"
      "snapshot name or latest.\n"
      "Exit status: 0 ok, 1 error, 2 usage (bad command line; nothing was done), 3 damage\n"
      "found (verify), 130 interrupted (SIGINT). Each subcommand has --help.");
  const std::string kUri = "s3://bucket/prefix, file:///path or a path";
  const std::string kStateUri =
      "the file, optionally URI@SELECTOR (a checkpoint id, time, "
      "snapshot or latest)";
  const std::string kAt =
      "the state to read: checkpoint id, UTC time, @UNIXSECONDS, "
      "snapshot name or latest (or URI@SELECTOR)";
  std::string uri, at, src, dst, file_arg = "-", out_path, name;
  std::string block_size = "64K", size_text, offset_text = "0", length_text;
  bool deep = false, yes = false;

  auto* create = app.add_subcommand("create", "create an empty file");
  create->add_option("URI", uri, kUri)->required();
  create->add_option("--block-size", block_size,
                     "bytes per block, a power of two from 4K to 4M (default 64K; fixed for life)");
  create->add_option("--size", size_text, "initial size, a hole (default 0; K, M, G suffixes)");
  std::string compression_text;
  create->add_option("--compression", compression_text,
                     "codec of the blocks: zstd[:LEVEL] (default zstd:1), lz4, none");
  bool encrypt = false;
  create->add_flag("--encrypt", encrypt,
                   "encrypt the file (XChaCha20-Poly1305) under --key-file F, HYPERFILE_KEY_FILE, "
                   "HYPERFILE_KEY or --passphrase");

  // `hyperfile key change URI --new-key-file NEW` (old key: --key-file).
  auto* key_cmd = app.add_subcommand("key", "keys of encrypted files");
  key_cmd->require_subcommand(1);
  auto* key_change = key_cmd->add_subcommand(
      "change", "rewrap the file's data key under a new key (no data is rewritten)");
  key_change->add_option("URI", uri, kUri)->required();
  std::string new_key_file;
  bool new_passphrase = false;
  key_change->add_option("--new-key-file", new_key_file, "the new key")->type_name("FILE");
  key_change->add_flag("--new-passphrase", new_passphrase,
                       "ask for a new passphrase (on the terminal, or the next line of stdin)");
  key_change->footer(
      "The old key comes from --key-file, HYPERFILE_KEY_FILE, HYPERFILE_KEY or --passphrase.\n"
      "Afterwards only the new key opens the file, its checkpoints, snapshots and clones'\n"
      "borrowed data; a clone keeps its own key record (change it there).");

  auto* write = app.add_subcommand(
      "write", "write FILE or stdin at an offset, streaming (checkpoints as it goes), then flush");
  write->add_option("URI", uri, kUri)->required();
  write->add_option("--offset", offset_text, "where the first byte goes")->required();
  write->add_option("FILE", file_arg, "input (default: - for stdin)");

  // Streaming (tools/cli/follow.h): `command | hyperfile append URI --flush-every 5s`.
  std::string flush_every_text = "0", flush_bytes_text = "8M", poll_text = "250ms";
  bool follow = false, from_end = false, quiet = false;
  auto* append = app.add_subcommand(
      "append", "append FILE or stdin as it arrives (checkpoints as it goes), then flush");
  append->add_option("URI", uri, kUri)->required();
  append->add_option("FILE", file_arg, "input (default: - for stdin)");
  for (CLI::App* sub : {write, append}) {
    sub->add_option("--flush-every", flush_every_text,
                    "checkpoint when the oldest unflushed byte is this old (e.g. 5s; 0 = off)");
    sub->add_option("--flush-bytes", flush_bytes_text,
                    "checkpoint every this many bytes, 64K..1G (default 8M)");
    sub->add_flag("-q,--quiet", quiet, "no progress bar");
  }
  const char* kStreamFooter =
      "Memory stays bounded whatever the input size. On EOF or SIGTERM what was read is\n"
      "committed and the command exits 0; on SIGINT it is committed too and the exit status\n"
      "is 130. One writer per file: a second one fails with a Conflict. Follow the file from\n"
      "anywhere with: hyperfile read URI --follow";
  append->footer(kStreamFooter);
  write->footer(kStreamFooter);

  auto* read = app.add_subcommand("read", "read bytes to stdout or a file");
  read->add_option("URI", uri, kStateUri)->required();
  read->add_option("--offset", offset_text, "first byte to read (default 0)");
  read->add_option("--length", length_text, "bytes to read (default: to the end)");
  read->add_option("--at", at, kAt);
  read->add_option("-o,--output", out_path, "write to this file instead of stdout");
  read->add_flag("-f,--follow", follow, "like tail -f: print new bytes as checkpoints appear");
  read->add_flag("--from-end", from_end, "with --follow: start at the current end");
  read->add_option("--poll", poll_text, "with --follow: poll interval (default 250ms)");
  read->add_flag("-q,--quiet", quiet, "no progress bar");
  read->footer(
      "A progress bar is shown on a terminal when the data does not go to it (-o, or stdout\n"
      "redirected). With --json and -o, a summary goes to stdout.");

  auto* stat = app.add_subcommand("stat", "size, allocation, block size, checkpoint");
  stat->add_option("URI", uri, kStateUri)->required();
  stat->add_option("--at", at, kAt);

  auto* truncate = app.add_subcommand("truncate", "set the size, then flush");
  truncate->add_option("URI", uri, kUri)->required();
  truncate->add_option("SIZE", size_text, "the new size (K, M, G suffixes)")->required();

  auto* log = app.add_subcommand("log", "list checkpoints, newest first");
  log->add_option("URI", uri, kUri)->required();
  std::string limit_text = "0";
  log->add_option("-n", limit_text, "at most N (0 = all)");

  auto* snapshot = app.add_subcommand("snapshot", "named snapshots: create, list, delete");
  snapshot->require_subcommand(1);
  auto* snap_create = snapshot->add_subcommand("create", "pin a checkpoint under a name");
  snap_create->add_option("URI", uri, kStateUri + "; default: the latest")->required();
  snap_create->add_option("NAME", name, "a letter, then letters, digits, . _ - (at most 128)")
      ->required();
  snap_create->add_option("--at", at, "the state to pin (or URI@SELECTOR)");
  auto* snap_list = snapshot->add_subcommand("list", "list snapshots");
  snap_list->add_option("URI", uri, kUri)->required();
  auto* snap_delete = snapshot->add_subcommand("delete", "delete a snapshot");
  snap_delete->add_option("URI", uri, kUri)->required();
  snap_delete->add_option("NAME", name, "the snapshot")->required();

  auto* restore = app.add_subcommand("restore", "make an old state the head again");
  restore->add_option("URI", uri, kStateUri)->required();
  restore->add_option("--to", at, "the state to restore (or URI@SELECTOR)");
  restore->footer("The state becomes a new checkpoint; the history stays.");

  auto* clone = app.add_subcommand("clone", "new writable file sharing SRC's data");
  clone->add_option("SRC", src, "the source, URI[@SELECTOR] (default: its latest state)")
      ->required();
  clone->add_option("DST", dst, "the new file's URI")->required();

  hf::cli::CpRequest cp_request;
  std::string cp_block_size;
  auto* cp = app.add_subcommand("cp", "copy between local files and hyperfiles (sparse, parallel)");
  cp->footer(
      "SRC and DST: an argument with a scheme (s3://bucket/prefix, file:///path, memory://name)\n"
      "is a hyperfile; a bare path is an ordinary local file; - is stdin (SRC) or stdout (DST).\n"
      "A hyperfile SRC may name a state: URI@ID (checkpoint), URI@TIME (2026-11-25T10:00:00Z)\n"
      "or URI@SNAPSHOT. One side at least must be a hyperfile. Holes are never read and\n"
      "all-zero blocks never written, so sparse files stay sparse.\n"
      "A local DST is written to a temporary file in its directory and renamed over DST at\n"
      "the end. A hyperfile DST is created (block size: --block-size, else the source's,\n"
      "else 64K); an existing one is refused unless --force, which overwrites it as a new\n"
      "checkpoint (older checkpoints keep the old content). On failure or Ctrl-C nothing\n"
      "half-done is left: the temporary file or the new hyperfile's own keys are removed\n"
      "(other files or objects under DST are never touched), a --force DST gets its old\n"
      "content back. Exit status: 0 done, 1 error, 2 usage, 130 interrupted.\n\n"
      "Examples:\n"
      "  hyperfile cp disk.img s3://bucket/disk --block-size 1M\n"
      "  hyperfile cp s3://bucket/disk@before-upgrade restored.img\n"
      "  hyperfile cp s3://bucket/disk@42 file:///backup/disk\n"
      "  zcat disk.img.gz | hyperfile cp - s3://bucket/disk\n"
      "  hyperfile cp s3://bucket/disk@42 - | sha256sum");
  cp->add_option("SRC", cp_request.source, "local path, - (stdin) or URI[@SELECTOR]")->required();
  cp->add_option("DST", cp_request.destination, "local path, - (stdout) or URI")->required();
  cp->add_option("--block-size", cp_block_size, "for a new hyperfile DST: 4K..4M, power of two");
  std::string cp_compression;
  cp->add_option("--compression", cp_compression,
                 "for a hyperfile DST: zstd[:LEVEL] (default zstd:1), lz4, none");
  bool cp_encrypt = false;
  cp->add_flag("--encrypt", cp_encrypt,
               "for a new hyperfile DST: encrypt it under --key-file F, HYPERFILE_KEY_FILE, "
               "HYPERFILE_KEY or --passphrase");
  cp->add_flag("--force", cp_request.force, "overwrite an existing hyperfile DST (new checkpoint)");
  cp->add_flag("-q,--quiet", cp_request.quiet, "no progress bar or summary");
  std::string jobs_text = "8";
  cp->add_option("-j,--jobs", jobs_text, "parallel workers, 1..256 (default 8)");

  auto* diff = app.add_subcommand("diff", "byte ranges that differ between two states");
  diff->add_option("URI", uri, kUri)->required();
  std::string from, to;
  diff->add_option("FROM", from, "a state: checkpoint id, time, snapshot or latest")->required();
  diff->add_option("TO", to, "a state: checkpoint id, time, snapshot or latest")->required();

  auto* verify =
      app.add_subcommand("verify", "check every index node (and with --deep every block)");
  verify->add_option("URI", uri, kStateUri)->required();
  verify->add_option("--at", at, kAt);
  verify->add_flag("--deep", deep, "read and check every data block too");
  verify->add_flag("-q,--quiet", quiet, "no progress bar");
  verify->footer("Exit status: 0 healthy, 3 damage found (each problem is printed), 1 error.");

  auto* rm = app.add_subcommand("rm", "delete a file and all its checkpoints");
  rm->add_option("URI", uri, kUri)->required();
  rm->add_flag("--yes", yes, "do not ask");
  bool keep_foreign = false;
  rm->add_flag("--keep-foreign", keep_foreign,
               "remove the hyperfile but leave other objects under URI untouched");
  bool rm_force = false;
  rm->add_flag("--force", rm_force, "remove even if clones borrow its data (they break)");
  rm->add_flag("-q,--quiet", quiet, "no progress bar");
  rm->footer(
      "Deletes only the keys of the hyperfile format (seg/, dat/, snap/, gc/, lease/, pin/).\n"
      "If URI also holds other objects (a user's files, a nested hyperfile), rm refuses\n"
      "and deletes nothing, unless --keep-foreign: then only the hyperfile goes.");

  auto* demo = app.add_subcommand(
      "demo", "a short tour on a local directory (missing, empty or a previous demo's)");
  std::string demo_dir = "/tmp/hyperfile-demo";
  demo->add_option("DIR", demo_dir, "the directory (default /tmp/hyperfile-demo)");

  auto gc_commands = hf::cli::AddGcCommands(app);
  cli::DescribeGlobalOptionsIn(app);

  // A hidden helper for the build: prints the bash completion script.
  bool print_completion = false;
  app.add_flag("--print-bash-completion", print_completion)->group("");
  for (int i = 1; i < argc; i++) {
    if (std::string_view(argv[i]) == "--print-bash-completion") app.require_subcommand(0);
  }

  if (int rc = cli::ParseCommandLine(app, argc, argv); rc >= 0) return rc;
  if (print_completion) {
    std::fputs(cli::BashCompletion(app).c_str(), stdout);
    return 0;
  }
  if (int rc = hf::cli::RunGcCommands(*gc_commands); rc >= 0) return cli::Finish(rc);
  // Whether `--at` was given to the subcommand that runs.
  auto at_opt = [&](CLI::App* sub) -> const std::string* {
    return sub->get_option("--at")->count() > 0 ? &at : nullptr;
  };

  if (*create) {
    uri = cli::PlainUri("create", uri);
    hf::CreateOptions co;
    co.block_size = Arg(hf::cli::ParseBlockSize("--block-size", block_size));
    if (create->get_option("--size")->count() > 0) co.initial_size = ParseSize("--size", size_text);
    if (create->get_option("--compression")->count() > 0) {
      co.compression = Arg(hf::ParseCompression(compression_text));
    }
    if (encrypt) {
      co.encryption_key = cli::CliNewKey();
      if (!co.encryption_key) {
        DieUsage("create --encrypt: no key; give --key-file F, HYPERFILE_KEY_FILE or --passphrase");
      }
    }
    auto f = Must(hf::File::Create(Store(uri), co, cli::CliOpenOptions()));
    auto st = Must(f->Stat());
    Must(f->Close());
    cli::EmitJson({{"uri", uri},
                   {"block_size", st.block_size},
                   {"size", st.size},
                   {"checkpoint", st.checkpoint}});
  } else if (*write || *append) {
    // Arguments first: a bad one fails before anything is opened or read.
    hf::cli::StreamRequest sr;
    sr.uri = cli::PlainUri(*write ? "write" : "append", uri);
    sr.input = file_arg;
    sr.append = append->parsed();
    sr.offset = *write ? ParseSize("--offset", offset_text) : 0;
    sr.flush_every_ms = Arg(hf::cli::ParseDurationMs("--flush-every", flush_every_text));
    sr.flush_bytes = ParseSize("--flush-bytes", flush_bytes_text);
    sr.quiet = quiet;
    return cli::Finish(hf::cli::RunStream(sr));
  } else if (*read && follow) {
    if (at_opt(read) || read->get_option("--length")->count() > 0 ||
        cli::SplitAt(uri).second.has_value()) {
      DieUsage("read --follow follows the latest state: no --at, no URI@SELECTOR, no --length");
    }
    hf::cli::FollowRequest fr;
    fr.uri = uri;
    fr.output = out_path;
    fr.offset = ParseSize("--offset", offset_text);
    fr.from_end = from_end;
    fr.poll_ms = Arg(hf::cli::ParseDurationMs("--poll", poll_text));
    return cli::Finish(hf::cli::RunFollow(fr));
  } else if (*read) {
    if (from_end || read->get_option("--poll")->count() > 0) {
      DieUsage("read: --from-end and --poll go with --follow");
    }
    cli::StateArg state = cli::ParseStateArg("read", uri, at_opt(read));
    hf::At read_at = ParseAt(state);
    uint64_t off = ParseSize("--offset", offset_text);
    bool has_length = read->get_option("--length")->count() > 0;
    uint64_t len = has_length ? ParseSize("--length", length_text) : 0;
    // One pass over the data: small caches keep memory bounded.
    hf::OpenOptions oo = cli::CliOpenOptions();
    oo.read_only = true;
    oo.block_cache_bytes = 4u << 20;
    oo.index_cache_bytes = 4u << 20;
    oo.max_read_request_bytes = 1u << 20;  // in flight: io_parallelism x 1 MiB
    auto f = Must(hf::File::OpenAt(Store(state.uri), read_at, oo));
    uint64_t size = f->Size();
    if (!has_length) len = off < size ? size - off : 0;
    if (off >= size) len = 0;
    len = std::min(len, size - std::min(off, size));
    FILE* out = out_path.empty() ? stdout : std::fopen(out_path.c_str(), "wb");
    if (!out) Die(hf::Status::IOError("cannot write " + out_path + ": " + std::strerror(errno)));
    cli::ProgressBar bar(cli::ShowProgress(quiet) && (out != stdout || !isatty(STDOUT_FILENO)),
                         len);
    const uint64_t start = off, total = len;
    std::string buf;
    while (len > 0) {
      buf.resize(std::min<uint64_t>(len, 4 << 20));
      size_t n = Must(f->PRead(off, buf.data(), buf.size()));
      if (n == 0) break;
      if (std::fwrite(buf.data(), 1, n, out) != n) {
        bar.Clear();
        Die(hf::Status::IOError("write " + (out_path.empty() ? "stdout" : out_path) + ": " +
                                std::strerror(errno)));
      }
      off += n;
      len -= n;
      bar.Update(off - start);
    }
    bar.Clear();
    if (out != stdout && std::fclose(out) != 0) {
      Die(hf::Status::IOError("cannot write " + out_path + ": " + std::strerror(errno)));
    }
    if (out != stdout) {
      auto st = Must(f->Stat());
      cli::EmitJson({{"output", out_path},
                     {"offset", start},
                     {"bytes", total - len},
                     {"checkpoint", st.checkpoint}});
    }
  } else if (*stat) {
    cli::StateArg state = cli::ParseStateArg("stat", uri, at_opt(stat));
    hf::At stat_at = ParseAt(state);
    auto f = Must(hf::File::OpenAt(Store(state.uri), stat_at, cli::CliOpenOptions()));
    auto s = Must(f->Stat());
    // Stored bytes come from the index (every leaf read once).
    auto use = Must(hf::MeasureStorage(Store(state.uri), hf::At::Checkpoint(s.checkpoint),
                                       cli::CliOpenOptions()));
    const double ratio =
        use.stored_bytes == 0 ? 1.0 : double(use.logical_bytes) / double(use.stored_bytes);
    cli::EmitJson({{"size", s.size},
                   {"allocated_bytes", s.allocated_bytes},
                   {"compression", hf::CompressionName(s.compression)},
                   {"cipher", hf::CipherName(s.cipher)},
                   {"logical_bytes", use.logical_bytes},
                   {"stored_bytes", use.stored_bytes},
                   {"ratio", ratio},
                   {"block_size", s.block_size},
                   {"checkpoint", s.checkpoint},
                   {"created", IsoTime(s.create_time_ms)},
                   {"checkpoint_time", IsoTime(s.checkpoint_time_ms)}});
    Say("size:        %s\nallocated:   %s\nblock size:  %s\ncheckpoint:  %llu (%s)\n"
        "created:     %s\ncodec:       %s\ncipher:      %s\nlogical:     %s\n"
        "stored:      %s (ratio %.2f)\n",
        cli::Size(s.size).c_str(), cli::Size(s.allocated_bytes).c_str(),
        cli::Size(s.block_size).c_str(), (unsigned long long)s.checkpoint,
        cli::Time(s.checkpoint_time_ms).c_str(), cli::Time(s.create_time_ms).c_str(),
        hf::CompressionName(s.compression).c_str(), hf::CipherName(s.cipher).c_str(),
        cli::Size(use.logical_bytes).c_str(), cli::Size(use.stored_bytes).c_str(), ratio);
  } else if (*truncate) {
    uri = cli::PlainUri("truncate", uri);
    uint64_t new_size = ParseSize("SIZE", size_text);
    auto f = Must(hf::File::Open(Store(uri), cli::CliOpenOptions()));
    Must(f->Truncate(new_size));
    uint64_t id = Must(f->Flush());
    Must(f->Close());
    cli::EmitJson({{"size", new_size}, {"checkpoint", id}});
  } else if (*log) {
    uri = cli::PlainUri("log", uri);
    nlohmann::json j = nlohmann::json::array();
    auto limit = static_cast<size_t>(Arg(hf::cli::ParseNumberInRange(
        "-n", limit_text, 0, std::numeric_limits<size_t>::max(), /*allow_suffix=*/false)));
    for (const auto& c : Must(hf::ListCheckpoints(Store(uri), limit))) {
      j.push_back({{"id", c.id},
                   {"time", IsoTime(c.time_ms)},
                   {"size", c.size},
                   {"bytes_changed", c.bytes_changed},
                   {"restored_from", c.restored_from},
                   {"snapshots", c.snapshots}});
      std::string snaps;
      for (const auto& sn : c.snapshots) snaps += " [" + sn + "]";
      std::string restored =
          c.restored_from ? " restored from " + std::to_string(c.restored_from) : "";
      Say("%-8llu %-24s size %-12s changed %-10s%s%s\n", (unsigned long long)c.id,
          cli::Time(c.time_ms).c_str(), cli::Size(c.size).c_str(),
          cli::Size(c.bytes_changed).c_str(), restored.c_str(), snaps.c_str());
    }
    cli::EmitJson(j);
  } else if (*snap_create) {
    cli::StateArg state = cli::ParseStateArg("snapshot create", uri, at_opt(snap_create));
    hf::At snap_at = ParseAt(state);
    auto store = Store(state.uri);
    Must(hf::CreateSnapshot(store, name, snap_at));
    uint64_t id = Must(hf::ResolveAt(store, hf::At::Snapshot(name)));
    cli::EmitJson({{"name", name}, {"checkpoint", id}});
  } else if (*snap_list) {
    uri = cli::PlainUri("snapshot list", uri);
    nlohmann::json j = nlohmann::json::array();
    for (const auto& s : Must(hf::ListSnapshots(Store(uri)))) {
      j.push_back(
          {{"name", s.name}, {"checkpoint", s.checkpoint}, {"created", IsoTime(s.created_ms)}});
      Say("%-24s %llu\n", s.name.c_str(), (unsigned long long)s.checkpoint);
    }
    cli::EmitJson(j);
  } else if (*snap_delete) {
    uri = cli::PlainUri("snapshot delete", uri);
    Must(hf::DeleteSnapshot(Store(uri), name));
    cli::EmitJson({{"name", name}, {"deleted", true}});
  } else if (*restore) {
    const std::string* to_opt = restore->get_option("--to")->count() > 0 ? &at : nullptr;
    auto [plain, selector] = cli::SplitAt(uri);
    if (selector && to_opt) DieUsage("restore: the state is given twice (" + uri + " and --to)");
    if (!selector && !to_opt) DieUsage("restore: which state? give --to SELECTOR or URI@SELECTOR");
    hf::At restore_at = ParseAt(selector ? *selector : at);
    uint64_t id = Must(hf::Restore(Store(plain), restore_at));
    Say("restored as checkpoint %llu\n", (unsigned long long)id);
    cli::EmitJson({{"checkpoint", id}});
  } else if (*key_change) {
    uri = cli::PlainUri("key change", uri);
    if (new_key_file.empty() && !new_passphrase) {
      DieUsage("key change: give the new key: --new-key-file F or --new-passphrase");
    }
    auto old_key = cli::CliKey();
    if (!old_key) DieUsage("key change: no current key; give --key-file F or --passphrase");
    auto new_key = cli::ReadCliKey(new_key_file, new_passphrase, "new passphrase: ", true);
    uint64_t record = Must(hf::ChangeKey(Store(uri), *old_key, *new_key));
    Say("key changed (key record %llu); no data was rewritten\n", (unsigned long long)record);
    cli::EmitJson({{"uri", uri}, {"key_record", record}});
  } else if (*clone) {
    cli::StateArg state = cli::ParseStateArg("clone", src, nullptr);
    hf::At src_at = ParseAt(state);
    dst = cli::PlainUri("clone", dst);
    hf::CloneOptions clone_options;
    clone_options.source_key = cli::CliKey();
    uint64_t id = Must(hf::Clone(Store(state.uri), src_at, Store(dst), clone_options));
    Say("cloned into %s (checkpoint %llu)\n", dst.c_str(), (unsigned long long)id);
    cli::EmitJson({{"source", src}, {"destination", dst}, {"checkpoint", id}});
  } else if (*cp) {
    if (cp->get_option("--block-size")->count() > 0) {
      cp_request.block_size = Arg(hf::cli::ParseBlockSize("cp: --block-size", cp_block_size));
    }
    if (cp->get_option("--compression")->count() > 0) {
      cp_request.compression = Arg(hf::ParseCompression(cp_compression));
    }
    if (cp_encrypt) {
      cp_request.encryption_key = cli::CliNewKey();
      if (!cp_request.encryption_key) {
        DieUsage("cp --encrypt: no key; give --key-file F, HYPERFILE_KEY_FILE or --passphrase");
      }
    }
    cp_request.jobs = static_cast<int>(
        Arg(hf::cli::ParseNumberInRange("cp: --jobs", jobs_text, 1, 256, /*allow_suffix=*/false)));
    return cli::Finish(hf::cli::RunCp(cp_request));
  } else if (*diff) {
    uri = cli::PlainUri("diff", uri);
    hf::At from_at = ParseAt(from), to_at = ParseAt(to);
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : Must(hf::Diff(Store(uri), from_at, to_at, cli::CliOpenOptions()))) {
      j.push_back({{"offset", r.offset}, {"length", r.length}});
      Say("%llu\t%llu\n", (unsigned long long)r.offset, (unsigned long long)r.length);
    }
    cli::EmitJson(j);
  } else if (*verify) {
    cli::StateArg state = cli::ParseStateArg("verify", uri, at_opt(verify));
    hf::At verify_at = ParseAt(state);
    auto store = Store(state.uri);
    const bool progress = deep && cli::ShowProgress(quiet);
    uint64_t total = 0;
    if (progress) {
      auto f = Must(hf::File::OpenAt(store, verify_at, cli::CliOpenOptions()));
      total = Must(f->Stat()).allocated_bytes;
    }
    std::optional<hf::Result<hf::VerifyReport>> result;
    {
      cli::ProgressBar bar(progress, total);
      uint64_t before = cli::Counters().bytes_read.load();
      std::unique_ptr<cli::ProgressTicker> ticker;
      if (progress) {
        ticker = std::make_unique<cli::ProgressTicker>(
            bar, [before, total] { return std::min(total, cli::Counters().bytes_read - before); });
      }
      result = hf::Verify(store, verify_at, deep, cli::CliOpenOptions());
    }
    auto report = Must(std::move(*result));
    cli::EmitJson({{"checkpoint", report.checkpoint},
                   {"nodes", report.nodes_checked},
                   {"blocks", report.blocks_checked},
                   {"bytes", report.bytes_checked},
                   {"healthy", report.ok()},
                   {"problems", report.problems}});
    Say("checkpoint %llu: %llu nodes, %llu blocks checked\n", (unsigned long long)report.checkpoint,
        (unsigned long long)report.nodes_checked, (unsigned long long)report.blocks_checked);
    for (const auto& p : report.problems) Say("DAMAGED: %s\n", p.c_str());
    if (!report.ok()) {
      cli::ReportError(
          hf::Status::Corrupt(state.uri + ": " + std::to_string(report.problems.size()) +
                              " problems found (damaged)"),
          cli::kExitDamaged);
      return cli::Finish(cli::kExitDamaged);
    }
  } else if (*rm) {
    return cli::Finish(Remove(cli::PlainUri("rm", uri), yes, keep_foreign, rm_force, quiet));
  } else if (*demo) {
    return cli::Finish(Demo(demo_dir));
  }
  return cli::Finish(0);
}
