// The `hyperfile` command: create, write, read, inspect and travel in time.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli_util.h"
#include "cli/cp.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/object_store.h"

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

// "64K", "1G", "10MiB", "4096" -> bytes.
uint64_t ParseSize(const std::string& text) {
  size_t pos = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &pos);
  } catch (...) {
    Die(hf::Status::InvalidArgument("bad size '" + text + "'"));
  }
  std::string unit = text.substr(pos);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
  if (unit.size() == 2 && unit[1] == 'i') unit.pop_back();
  int shift = 0;
  if (unit.empty())
    shift = 0;
  else if (unit == "K" || unit == "k")
    shift = 10;
  else if (unit == "M" || unit == "m")
    shift = 20;
  else if (unit == "G" || unit == "g")
    shift = 30;
  else if (unit == "T" || unit == "t")
    shift = 40;
  else
    Die(hf::Status::InvalidArgument("bad size unit in '" + text + "'"));
  if (shift && v > (~0ull >> shift)) Die(hf::Status::InvalidArgument("size too large: " + text));
  return static_cast<uint64_t>(v) << shift;
}

std::shared_ptr<hf::ObjectStore> Store(const std::string& uri) { return Must(hf::OpenStore(uri)); }

hf::At ParseAt(const std::string& text) {
  return text.empty() ? hf::At::Latest() : Must(hf::At::Parse(text));
}

std::string IsoTime(int64_t ms) { return hf::At::Time(ms).ToString(); }

std::string ReadInput(const std::string& path) {
  std::string data;
  FILE* in = path == "-" || path.empty() ? stdin : std::fopen(path.c_str(), "rb");
  if (!in) Die(hf::Status::IOError("cannot open " + path));
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) data.append(buf, n);
  if (in != stdin) std::fclose(in);
  return data;
}

// The README's main job: a short tour of what the format gives.
int Demo(const std::string& uri) {
  auto store = Store(uri);
  (void)hf::RemoveFile(store);
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
  app.set_version_flag("--version", "hyperfile 0.1.0");
  bool json = false;
  app.add_flag("--json", json, "machine-readable output");
  std::string uri, at, src, dst, file_arg = "-", out_path, name;
  std::string block_size = "64K", size_text, offset_text = "0", length_text;
  bool deep = false, yes = false;

  auto* create = app.add_subcommand("create", "create an empty file");
  create->add_option("URI", uri, "s3://bucket/prefix, file:///path or a path")->required();
  create->add_option("--block-size", block_size, "4K..4M, power of two");
  create->add_option("--size", size_text, "initial size (a hole)");

  auto* write =
      app.add_subcommand("write", "write bytes from FILE or stdin at an offset, then flush");
  write->add_option("URI", uri)->required();
  write->add_option("--offset", offset_text)->required();
  write->add_option("FILE", file_arg, "input (default: stdin)");

  auto* append = app.add_subcommand("append", "append FILE or stdin, then flush");
  append->add_option("URI", uri)->required();
  append->add_option("FILE", file_arg);

  auto* read = app.add_subcommand("read", "read bytes to stdout or a file");
  read->add_option("URI", uri)->required();
  read->add_option("--offset", offset_text);
  read->add_option("--length", length_text);
  read->add_option("--at", at, "checkpoint id, time or snapshot");
  read->add_option("-o", out_path, "output file");

  auto* stat = app.add_subcommand("stat", "size, allocation, block size, checkpoint");
  stat->add_option("URI", uri)->required();
  stat->add_option("--at", at);

  auto* truncate = app.add_subcommand("truncate", "set the size, then flush");
  truncate->add_option("URI", uri)->required();
  truncate->add_option("SIZE", size_text)->required();

  auto* log = app.add_subcommand("log", "list checkpoints, newest first");
  log->add_option("URI", uri)->required();
  size_t limit = 0;
  log->add_option("-n", limit, "at most N");

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
      "half-done is left: the temporary file or new hyperfile is removed, a --force DST gets\n"
      "its old content back. Exit status: 0 done, 1 error, 130 interrupted.\n\n"
      "Examples:\n"
      "  hyperfile cp disk.img s3://bucket/disk --block-size 1M\n"
      "  hyperfile cp s3://bucket/disk@before-upgrade restored.img\n"
      "  hyperfile cp s3://bucket/disk@42 file:///backup/disk");
  cp->add_option("SRC", cp_request.source, "local path or URI[@ID|@TIME|@SNAPSHOT]")->required();
  cp->add_option("DST", cp_request.destination, "local path or URI")->required();
  cp->add_option("--block-size", cp_block_size, "for a new hyperfile DST: 4K..4M, power of two");
  cp->add_flag("--force", cp_request.force, "overwrite an existing hyperfile DST (new checkpoint)");
  cp->add_flag("-q,--quiet", cp_request.quiet, "no progress bar or summary");
  cp->add_option("-j,--jobs", cp_request.jobs, "parallel workers (default 8)")
      ->check(CLI::Range(1, 256));

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

  auto* demo = app.add_subcommand("demo", "a short tour on a local directory");
  std::string demo_dir = "/tmp/hyperfile-demo";
  demo->add_option("DIR", demo_dir);

  CLI11_PARSE(app, argc, argv);
  nlohmann::json j;

  if (*create) {
    hf::CreateOptions co;
    co.block_size = static_cast<uint32_t>(ParseSize(block_size));
    if (!size_text.empty()) co.initial_size = ParseSize(size_text);
    auto f = Must(hf::File::Create(Store(uri), co));
    Must(f->Close());
  } else if (*write || *append) {
    auto f = Must(hf::File::Open(Store(uri)));
    std::string data = ReadInput(file_arg);
    uint64_t off = 0;
    if (*write) {
      off = ParseSize(offset_text);
      Must(f->PWrite(off, data.data(), data.size()));
    } else {
      off = Must(f->Append(data.data(), data.size()));
    }
    uint64_t id = Must(f->Flush());
    Must(f->Close());
    std::printf("checkpoint %llu: %zu bytes at %llu\n", (unsigned long long)id, data.size(),
                (unsigned long long)off);
  } else if (*read) {
    auto f = Must(hf::File::OpenAt(Store(uri), ParseAt(at)));
    uint64_t off = ParseSize(offset_text);
    uint64_t size = f->Size();
    uint64_t len = length_text.empty() ? (off < size ? size - off : 0) : ParseSize(length_text);
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
    auto f = Must(hf::File::OpenAt(Store(uri), ParseAt(at)));
    auto s = Must(f->Stat());
    j = {{"size", s.size},
         {"allocated_bytes", s.allocated_bytes},
         {"block_size", s.block_size},
         {"checkpoint", s.checkpoint},
         {"created", IsoTime(s.create_time_ms)},
         {"checkpoint_time", IsoTime(s.checkpoint_time_ms)}};
    if (!json) {
      std::printf(
          "size:        %llu\nallocated:   %llu\nblock size:  %u\ncheckpoint:  %llu (%s)\n"
          "created:     %s\n",
          (unsigned long long)s.size, (unsigned long long)s.allocated_bytes, s.block_size,
          (unsigned long long)s.checkpoint, IsoTime(s.checkpoint_time_ms).c_str(),
          IsoTime(s.create_time_ms).c_str());
    }
  } else if (*truncate) {
    auto f = Must(hf::File::Open(Store(uri)));
    Must(f->Truncate(ParseSize(size_text)));
    Must(f->Close());
  } else if (*log) {
    j = nlohmann::json::array();
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
    Must(hf::CreateSnapshot(Store(uri), name, ParseAt(at)));
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
    uint64_t id = Must(hf::Clone(Store(src_uri), ParseAt(sel), Store(dst)));
    std::printf("cloned into %s (checkpoint %llu)\n", dst.c_str(), (unsigned long long)id);
  } else if (*cp) {
    if (!cp_block_size.empty()) {
      cp_request.block_size = ParseSize(cp_block_size);
      if (cp_request.block_size == 0) Die(hf::Status::InvalidArgument("cp: --block-size 0"));
    }
    return hf::cli::RunCp(cp_request);
  } else if (*diff) {
    j = nlohmann::json::array();
    for (const auto& r : Must(hf::Diff(Store(uri), ParseAt(from), ParseAt(to)))) {
      j.push_back({{"offset", r.offset}, {"length", r.length}});
      if (!json)
        std::printf("%llu\t%llu\n", (unsigned long long)r.offset, (unsigned long long)r.length);
    }
  } else if (*verify) {
    auto report = Must(hf::Verify(Store(uri), ParseAt(at), deep));
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
    if (!yes) {
      if (!isatty(0))
        Die(hf::Status::InvalidArgument("rm: refusing without --yes (not a terminal)"));
      std::fprintf(stderr, "Delete %s and all its checkpoints? [y/N] ", uri.c_str());
      std::string answer;
      std::getline(std::cin, answer);
      if (answer != "y" && answer != "Y" && answer != "yes") return 1;
    }
    Must(hf::RemoveFile(Store(uri)));
  } else if (*demo) {
    return Demo(demo_dir);
  }
  if (json && !j.is_null()) std::cout << j.dump(2) << "\n";
  return 0;
}
