// SPDX-License-Identifier: Apache-2.0
// The conventions every subcommand of `hyperfile` follows (README "The
// hyperfile command", tools/cli/conventions.h), end to end on the built
// binary: global flags anywhere, --json on every command and for errors,
// exit codes, URI@SELECTOR, - for stdin/stdout, bounded memory, progress on
// a terminal only, human sizes and times, help text, the bash completion,
// and (on S3) the aws-cli flags and -v request logging.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/cli_run.h"
#include "cli/fs_tree.h"
#include "support/store_testing.h"

namespace hyperfile::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string Q(const std::string& s) { return "'" + s + "'"; }

// The one JSON object of an error on stderr, checked for its fields.
json ErrorObject(const CliRun& r) {
  EXPECT_TRUE(r.OneLineError()) << r.err;
  json j = json::parse(r.err, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(j.is_object()) << r.err;
  if (!j.is_object()) return json::object();
  EXPECT_TRUE(j.contains("code") && j.contains("message") && j.contains("exit_code")) << r.err;
  EXPECT_EQ(j.value("exit_code", -1), r.code) << r.err;
  return j;
}

json Json(const CliRun& r) {
  EXPECT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "stdout is not JSON: " << r.out;
  return j;
}

const std::string kBin = std::string(HYPERFILE_BUILD_DIR) + "/hyperfile";

// Runs a shell script (pipelines of its own), stdout and stderr captured.
CliRun Shell(const std::string& script) {
  static int serial = 0;
  std::string base = fs::temp_directory_path().string() + "/hfconv." + std::to_string(getpid()) +
                     "." + std::to_string(serial++);
  std::string cmd = "( " + script + " ) </dev/null >" + base + ".out 2>" + base + ".err";
  int status = std::system(cmd.c_str());
  CliRun r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFileBytes(base + ".out");
  r.err = ReadFileBytes(base + ".err");
  fs::remove(base + ".out");
  fs::remove(base + ".err");
  return r;
}

// Runs under a pseudo-terminal (script(1)), so stdin, stdout and stderr are
// a TTY; returns what the terminal showed (in out).
CliRun OnTerminal(const std::string& args) {
  return Shell("script -qec " + Q(kBin + " " + args) + " /dev/null");
}

std::string RandomData(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class Conventions : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    HF_REQUIRE_BACKEND(GetParam());
    s3_ = GetParam() == "s3";
    uri_ = s3_ ? UniqueS3Uri("conv") : dir_.path() + "/f";
    other_ = s3_ ? UniqueS3Uri("conv-other") : dir_.path() + "/g";
  }
  void TearDown() override {
    for (const std::string& u : {uri_, other_}) {
      if (!u.empty()) (void)RunHyperfile("rm " + Q(u) + " --yes --force");
    }
  }
  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }
  // A URI that cp takes as a hyperfile (a scheme).
  std::string CpUri(const std::string& uri) const { return s3_ ? uri : "file://" + uri; }

  TempDir dir_;
  bool s3_ = false;
  std::string uri_, other_;
};

TEST_P(Conventions, GlobalFlagsGoAnywhereOnTheLine) {
  ASSERT_EQ(RunHyperfile("create " + Q(uri_) + " --block-size 4K").code, 0);
  ASSERT_EQ(RunHyperfile("write " + Q(uri_) + " --offset 0", "hello").code, 0);
  CliRun before = RunHyperfile("--json log " + Q(uri_));
  CliRun after = RunHyperfile("log " + Q(uri_) + " --json");
  CliRun middle = RunHyperfile("log --json " + Q(uri_) + " -n 0");
  EXPECT_EQ(Json(before), Json(after));
  EXPECT_EQ(Json(before), Json(middle));
  EXPECT_EQ(Json(after).size(), 2u) << after.out;
  // Nested subcommands, and flags with values after the subcommand.
  CliRun snap = RunHyperfile("snapshot create " + Q(uri_) + " first --json");
  EXPECT_EQ(Json(snap)["checkpoint"], 2) << snap.out;
  CliRun verbose = RunHyperfile("stat " + Q(uri_) + " -v --json");
  EXPECT_EQ(Json(verbose)["size"], 5);
  EXPECT_NE(verbose.err.find("\"level\":\"debug\""), std::string::npos) << verbose.err;
  CliRun stats = RunHyperfile("stat " + Q(uri_) + " --stats");
  EXPECT_EQ(stats.code, 0);
  EXPECT_NE(stats.err.find("hyperfile: stats: "), std::string::npos) << stats.err;
  EXPECT_NE(stats.err.find("get="), std::string::npos) << stats.err;
  // The table: requests by verb with latencies, then bytes and rates.
  EXPECT_NE(stats.err.find("request      count  errors  retries"), std::string::npos) << stats.err;
  EXPECT_NE(stats.err.find("bytes in"), std::string::npos) << stats.err;
  // One block per store, although stat opens the store twice.
  size_t blocks = 0;
  for (size_t at = stats.err.find("hyperfile: stats: "); at != std::string::npos;
       at = stats.err.find("hyperfile: stats: ", at + 1)) {
    blocks++;
  }
  EXPECT_EQ(blocks, 1u) << stats.err;
  // Under --json: one JSON object per stderr line, the stats among them.
  CliRun json_stats = RunHyperfile("--json stat " + Q(uri_) + " --stats");
  EXPECT_EQ(json_stats.code, 0);
  int found = 0;
  std::istringstream lines(json_stats.err);
  for (std::string line; std::getline(lines, line);) {
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    if (j.contains("stats")) {
      found++;
      EXPECT_GE(j["stats"]["requests"]["get"]["count"].get<int>(), 1) << line;
      EXPECT_TRUE(j["stats"]["requests"]["get"].contains("latency_us")) << line;
    }
  }
  EXPECT_EQ(found, 1) << json_stats.err;
}

TEST_P(Conventions, JsonOnEveryCommand) {
  CliRun create = RunHyperfile("create " + Q(uri_) + " --block-size 4K --size 8K --json");
  EXPECT_EQ(Json(create)["block_size"], 4096);
  EXPECT_EQ(Json(create)["size"], 8192);
  CliRun write = RunHyperfile("write " + Q(uri_) + " --offset 4096 --json", "hello");
  EXPECT_EQ(Json(write)["checkpoint"], 2) << write.out;
  EXPECT_EQ(Json(write)["bytes"], 5);
  CliRun append = RunHyperfile("--json append " + Q(uri_), "tail");
  EXPECT_EQ(Json(append)["offset"], 8192) << append.out;
  CliRun trunc = RunHyperfile("truncate " + Q(uri_) + " 9000 --json");
  EXPECT_EQ(Json(trunc)["size"], 9000);
  EXPECT_EQ(Json(trunc)["checkpoint"], 4);
  CliRun snap = RunHyperfile("snapshot create " + Q(uri_) + "@2 two --json");
  EXPECT_EQ(Json(snap)["checkpoint"], 2) << snap.out << snap.err;
  CliRun restore = RunHyperfile("restore " + Q(uri_) + " --to two --json");
  EXPECT_EQ(Json(restore)["checkpoint"], 5);
  CliRun clone = RunHyperfile("clone " + Q(uri_ + "@3") + " " + Q(other_) + " --json");
  EXPECT_TRUE(Json(clone)["checkpoint"].is_number_unsigned()) << clone.out << clone.err;
  CliRun read = RunHyperfile("read " + Q(other_) + " -o " + Q(Path("out")) + " --json");
  EXPECT_EQ(Json(read)["bytes"], 8196);
  EXPECT_EQ(ReadFileBytes(Path("out")).substr(4096, 5), "hello");
  CliRun cp = RunHyperfile("cp " + Q(CpUri(uri_)) + " " + Q(Path("cp.out")) + " --json");
  EXPECT_EQ(Json(cp)["size"], 8192) << cp.out << cp.err;
  EXPECT_TRUE(cp.err.empty()) << cp.err;
  CliRun verify = RunHyperfile("verify " + Q(uri_) + " --deep --json");
  EXPECT_EQ(Json(verify)["healthy"], true);
  CliRun del = RunHyperfile("snapshot delete " + Q(uri_) + " two --json");
  EXPECT_EQ(Json(del)["deleted"], true);
  CliRun rm = RunHyperfile("rm " + Q(other_) + " --yes --json");
  EXPECT_EQ(Json(rm)["objects"].get<int>() > 0, true) << rm.out;
}

TEST_P(Conventions, ErrorsUnderJsonAreOneObjectOnStderr) {
  CliRun missing = RunHyperfile("stat " + Q(uri_) + " --json");
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(missing.out.empty()) << missing.out;
  json e = ErrorObject(missing);
  EXPECT_EQ(e["code"], "NotFound") << missing.err;
  CliRun usage = RunHyperfile("--json stat " + Q(uri_) + " --no-such-option");
  EXPECT_EQ(usage.code, 2);
  EXPECT_EQ(ErrorObject(usage)["code"], "Usage") << usage.err;
  CliRun bad = RunHyperfile("create " + Q(uri_) + " --block-size 3000 --json");
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(ErrorObject(bad)["code"], "InvalidArgument") << bad.err;
}

TEST_P(Conventions, ExitCodes) {
  CliRun unknown = RunHyperfile("frobnicate " + Q(uri_));
  EXPECT_EQ(unknown.code, 2);
  EXPECT_TRUE(unknown.OneLineError()) << unknown.err;
  EXPECT_NE(unknown.err.find("unknown subcommand 'frobnicate'"), std::string::npos) << unknown.err;
  CliRun unknown_snap = RunHyperfile("snapshot frob " + Q(uri_));
  EXPECT_EQ(unknown_snap.code, 2);
  EXPECT_NE(unknown_snap.err.find("unknown subcommand 'frob'"), std::string::npos)
      << unknown_snap.err;
  CliRun none = RunHyperfile("--json");
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.err.find("a subcommand is required"), std::string::npos) << none.err;
  for (const std::string& args :
       {std::string("create"), std::string("read"), "stat " + Q(uri_) + " extra",
        "log " + Q(uri_) + " --bogus", "read " + Q(uri_) + " --offset",
        "read " + Q(uri_) + " --offset 12x", "cp " + Q(Path("a")) + " " + Q(Path("b")),
        "gc " + Q(uri_) + " --keep-last lots"}) {
    CliRun r = RunHyperfile(args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
    EXPECT_TRUE(r.OneLineError()) << args << ": " << r.err;
  }
  EXPECT_EQ(RunHyperfile("--help").code, 0);
  EXPECT_EQ(RunHyperfile("cp --help").code, 0);
  EXPECT_EQ(RunHyperfile("read " + Q(uri_)).code, 1);  // no such file
}

// A damaged file: verify exits 3 (not 1, which is "could not check").
TEST(ConventionsLocal, VerifyExitsThreeOnDamage) {
  TempDir dir;
  std::string uri = dir.path() + "/f";
  ASSERT_EQ(RunHyperfile("create " + Q(uri) + " --block-size 4K").code, 0);
  ASSERT_EQ(RunHyperfile("write " + Q(uri) + " --offset 0", RandomData(64 << 10, 1)).code, 0);
  // Flip a byte in the middle of the largest segment (the one with the data).
  std::string newest;
  uintmax_t largest = 0;
  for (const auto& e : fs::recursive_directory_iterator(uri)) {
    std::string p = e.path().string();
    if (e.is_regular_file() && p.find("/seg/") != std::string::npos && e.file_size() > largest) {
      newest = p;
      largest = e.file_size();
    }
  }
  ASSERT_FALSE(newest.empty());
  std::string bytes = ReadFileBytes(newest);
  ASSERT_GT(bytes.size(), 40000u);
  bytes[bytes.size() / 2] ^= 0x5a;
  WriteFileBytes(newest, bytes);
  CliRun v = RunHyperfile("verify " + Q(uri) + " --deep");
  EXPECT_EQ(v.code, 3) << v.out << v.err;
  EXPECT_NE(v.out.find("DAMAGED"), std::string::npos) << v.out;
  CliRun j = RunHyperfile("verify " + Q(uri) + " --deep --json");
  EXPECT_EQ(j.code, 3);
  EXPECT_EQ(json::parse(j.out)["healthy"], false) << j.out;
  EXPECT_EQ(ErrorObject(j)["code"], "Corrupt");
}

// SIGINT: 130 from the default handler, and from the commands that have
// their own (a streaming append commits what it read first).
TEST_P(Conventions, InterruptedExits130) {
  ASSERT_EQ(RunHyperfile("create " + Q(uri_) + " --block-size 4K").code, 0);
  // A streaming append waiting on its input.
  std::string in = Path("in.fifo");
  ASSERT_EQ(::mkfifo(in.c_str(), 0600), 0);
  const std::string& bin = kBin;
  auto run_and_interrupt = [&](const std::string& args, const std::string& feed, int* code,
                               std::string* err, const std::string& env = "") {
    static int serial = 0;
    std::string errf = Path("err" + std::to_string(serial++) + ".txt");
    pid_t pid = ::fork();
    if (pid == 0) {
      std::string cmd = "exec " + env + " " + bin + " " + args + " 2>" + Q(errf);
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    if (!feed.empty()) {
      std::ofstream f(in);  // opens once the reader has
      f << feed;
      f.flush();
      // The writer waits for more input: until the data is committed, wait.
      for (int i = 0; i < 600; i++) {
        CliRun s = RunHyperfile("--json stat " + Q(uri_));
        if (s.code == 0 && json::parse(s.out)["size"] == feed.size()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      ::kill(pid, SIGINT);
    } else {
      // -v prints "opened ..." once the handlers are installed (they come
      // before the first store is opened): no guessing how long start-up takes.
      for (int i = 0; i < 3000 && ReadFileBytes(errf).find("opened") == std::string::npos; i++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ::kill(pid, SIGINT);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    *err = ReadFileBytes(errf);
  };
  int code = 0;
  std::string err;
  run_and_interrupt("append " + Q(uri_) + " " + Q(in) + " --flush-every 10ms", "committed", &code,
                    &err);
  EXPECT_EQ(code, 130) << err;
  EXPECT_NE(err.find("interrupted"), std::string::npos) << err;
  EXPECT_EQ(RunHyperfile("read " + Q(uri_)).out, "committed");
  // A follower (its own handler).
  run_and_interrupt("read " + Q(uri_) + " --follow -v -o " + Q(Path("f.out")), "", &code, &err);
  EXPECT_EQ(code, 130) << err;
  EXPECT_NE(err.find("interrupted"), std::string::npos) << err;
  // The default handler: a command waiting on a slow store (3 s a request).
  run_and_interrupt("--json -v stat " + Q(uri_), "", &code, &err,
                    "env HYPERFILE_STORE_LATENCY=all=3s");
  EXPECT_EQ(code, 130) << err;
  // The last line of stderr (the lines before are -v's) is the error.
  std::string last = err.substr(err.rfind('\n', err.size() - 2) + 1);
  EXPECT_EQ(ErrorObject(CliRun{code, "", last})["code"], "Interrupted") << err;
}

TEST_P(Conventions, SelectorsWhereAStateIsRead) {
  ASSERT_EQ(RunHyperfile("create " + Q(uri_) + " --block-size 4K").code, 0);
  ASSERT_EQ(RunHyperfile("write " + Q(uri_) + " --offset 0", "one").code, 0);
  ASSERT_EQ(RunHyperfile("write " + Q(uri_) + " --offset 0", "two").code, 0);
  EXPECT_EQ(RunHyperfile("read " + Q(uri_ + "@2")).out, "one");
  EXPECT_EQ(RunHyperfile("read " + Q(uri_ + "@latest")).out, "two");
  EXPECT_EQ(Json(RunHyperfile("stat " + Q(uri_ + "@1") + " --json"))["size"], 0);
  EXPECT_EQ(Json(RunHyperfile("verify " + Q(uri_ + "@2") + " --json"))["checkpoint"], 2);
  ASSERT_EQ(RunHyperfile("snapshot create " + Q(uri_ + "@2") + " old").code, 0);
  EXPECT_EQ(RunHyperfile("read " + Q(uri_ + "@old")).out, "one");
  EXPECT_EQ(RunHyperfile("restore " + Q(uri_ + "@old")).code, 0);
  EXPECT_EQ(RunHyperfile("read " + Q(uri_)).out, "one");
  EXPECT_EQ(RunHyperfile("cp " + Q(CpUri(uri_) + "@3") + " -").out, "two");
  // Given twice, or where no state is read: a usage error.
  EXPECT_EQ(RunHyperfile("read " + Q(uri_ + "@2") + " --at 3").code, 2);
  EXPECT_EQ(RunHyperfile("write " + Q(uri_ + "@2") + " --offset 0", "x").code, 2);
  EXPECT_EQ(RunHyperfile("truncate " + Q(uri_ + "@2") + " 0").code, 2);
  EXPECT_EQ(RunHyperfile("restore " + Q(uri_)).code, 2);  // which state?
  EXPECT_EQ(RunHyperfile("read " + Q(uri_ + "@nosuch")).code, 1);
}

TEST_P(Conventions, CpDashIsStdinAndStdout) {
  // 3 MiB with a 1 MiB hole: from a pipe, stays sparse.
  std::string data = RandomData(1 << 20, 2) + std::string(1 << 20, '\0') + RandomData(1 << 20, 3);
  // Stdin a regular file (the harness redirects one) ...
  CliRun in = RunHyperfile("cp - " + Q(CpUri(uri_)) + " --block-size 64K --json", data);
  ASSERT_EQ(in.code, 0) << in.err;
  EXPECT_EQ(Json(in)["size"], 3 << 20) << in.out;
  EXPECT_EQ(RunHyperfile("read " + Q(uri_)).out.size(), data.size());
  // ... and a pipe.
  std::ofstream(Path("data.bin"), std::ios::binary) << data;
  CliRun piped =
      Shell("cat " + Q(Path("data.bin")) + " | " + kBin + " cp - " + Q(CpUri(other_)) + " --json");
  ASSERT_EQ(piped.code, 0) << piped.err;
  EXPECT_EQ(Json(piped)["size"], 3 << 20) << piped.out;
  EXPECT_EQ(Json(piped)["data_bytes"], 2 << 20) << piped.out;
  json st = Json(RunHyperfile("stat " + Q(other_) + " --json"));
  EXPECT_EQ(st["size"], 3 << 20);
  EXPECT_EQ(st["allocated_bytes"], 2 << 20) << "the zeros of a pipe are not stored";
  CliRun out = RunHyperfile("cp " + Q(CpUri(other_)) + " -");
  ASSERT_EQ(out.code, 0) << out.err;
  EXPECT_TRUE(out.out == data) << "cp to stdout differs (" << out.out.size() << " bytes)";
  // Trailing zeros from a pipe keep the size.
  CliRun tail =
      Shell("head -c 100000 /dev/zero | " + kBin + " cp - " + Q(CpUri(uri_)) + " --force");
  ASSERT_EQ(tail.code, 0) << tail.err;
  EXPECT_EQ(Json(RunHyperfile("stat " + Q(uri_) + " --json"))["size"], 100000);
  EXPECT_EQ(RunHyperfile("cp - " + Q(Path("local"))).code, 2);
  EXPECT_EQ(RunHyperfile("cp " + Q(Path("local")) + " -").code, 2);
}

// 64 MiB through write from a pipe and back through read: memory stays
// bounded (peak RSS of the child, measured by wait4).
TEST_P(Conventions, StreamingWriteAndReadKeepMemoryBounded) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan's quarantine inflates RSS; the dev build checks the bound";
#endif
  ASSERT_EQ(RunHyperfile("create " + Q(uri_) + " --block-size 64K").code, 0);
  const std::string& bin = kBin;
  auto peak_kib = [&](const std::string& cmd) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    int status = 0;
    struct rusage usage {};
    ::wait4(pid, &status, 0, &usage);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd;
    return usage.ru_maxrss;
  };
  // wait4's peak RSS covers the shell's waited-for children: head and the
  // command (head's is small).
  long write_kib = peak_kib("head -c 67108864 /dev/urandom | " + bin + " write " + Q(uri_) +
                            " --offset 0 >/dev/null");
  long read_kib = peak_kib(bin + " read " + Q(uri_) + " -o /dev/null");
  EXPECT_EQ(Json(RunHyperfile("stat " + Q(uri_) + " --json"))["size"], 64 << 20);
  // The writer's budget is 3 x --flush-bytes (8M) of dirty data plus small
  // caches; the reader's 8 MiB buffer and 4 MiB caches. With zstd (the
  // default codec) a flight's frames are held next to its raw blocks until
  // its data object is put: measured 60-70 MB for 64 MiB of random data
  // (85-93 MB before the frame buffers were reserved once, at their bound,
  // in the stage's thread; 41 MB without compression).
  EXPECT_LT(write_kib, 96 * 1024) << "write: peak RSS " << write_kib << " KiB";
  EXPECT_LT(read_kib, 60 * 1024) << "read: peak RSS " << read_kib << " KiB";
  std::printf("peak RSS: write 64 MiB from a pipe %ld KiB, read 64 MiB %ld KiB\n", write_kib,
              read_kib);
}

TEST_P(Conventions, ProgressOnlyOnATerminal) {
  std::ofstream(Path("big.bin"), std::ios::binary) << RandomData(4 << 20, 4);
  ASSERT_EQ(RunHyperfile("create " + Q(uri_) + " --block-size 64K").code, 0);
  const std::string bar = "\033[K";
  CliRun w = OnTerminal("write " + Q(uri_) + " --offset 0 " + Q(Path("big.bin")));
  ASSERT_EQ(w.code, 0) << w.out;
  EXPECT_NE(w.out.find(bar), std::string::npos) << "no progress on a terminal: " << w.out;
  for (const std::string& args :
       {"read " + Q(uri_) + " -o " + Q(Path("back.bin")), "verify " + Q(uri_) + " --deep",
        "cp " + Q(CpUri(uri_)) + " " + Q(Path("cp.bin"))}) {
    CliRun t = OnTerminal(args);
    EXPECT_EQ(t.code, 0) << args << ": " << t.out;
    EXPECT_NE(t.out.find(bar), std::string::npos) << args << ": no progress: " << t.out;
    CliRun j = OnTerminal("--json " + args);
    EXPECT_EQ(j.out.find(bar), std::string::npos) << args << ": progress under --json";
    CliRun piped = RunHyperfile(args);  // stderr is a file
    EXPECT_EQ(piped.err.find('\r'), std::string::npos) << args << ": " << piped.err;
  }
  EXPECT_EQ(ReadFileBytes(Path("back.bin")), ReadFileBytes(Path("big.bin")));
  CliRun quiet = OnTerminal("read " + Q(uri_) + " -o " + Q(Path("q.bin")) + " -q");
  EXPECT_EQ(quiet.code, 0) << quiet.out;
  EXPECT_EQ(quiet.out.find(bar), std::string::npos) << "-q: " << quiet.out;
  CliRun rm = OnTerminal("rm " + Q(uri_) + " --yes");
  EXPECT_EQ(rm.code, 0) << rm.out;
  EXPECT_NE(rm.out.find(bar), std::string::npos) << "rm: no progress: " << rm.out;
}

TEST_P(Conventions, HumanSizesAndRelativeTimes) {
  ASSERT_EQ(RunHyperfile("create " + Q(uri_) + " --block-size 4K --size 3M").code, 0);
  CliRun raw = RunHyperfile("log " + Q(uri_));
  EXPECT_NE(raw.out.find("3145728"), std::string::npos) << raw.out;
  CliRun log = RunHyperfile("log " + Q(uri_) + " -H");
  EXPECT_NE(log.out.find("3.0 MiB"), std::string::npos) << log.out;
  EXPECT_NE(log.out.find("just now"), std::string::npos) << log.out;
  CliRun stat = RunHyperfile("-H stat " + Q(uri_));
  EXPECT_NE(stat.out.find("size:        3.0 MiB"), std::string::npos) << stat.out;
  EXPECT_NE(stat.out.find("4.0 KiB"), std::string::npos) << stat.out;
  EXPECT_NE(stat.out.find("just now"), std::string::npos) << stat.out;
  CliRun du = RunHyperfile("du " + Q(uri_) + " --human-readable");
  EXPECT_NE(du.out.find("3.0 MiB"), std::string::npos) << du.out;
  EXPECT_EQ(du.out.find("3145728"), std::string::npos) << du.out;
  // --json keeps numbers whatever -H says.
  EXPECT_EQ(Json(RunHyperfile("stat " + Q(uri_) + " -H --json"))["size"], 3 << 20);
}

// An encrypted file from the command line: create --encrypt with a key file
// (and compression), every command that opens it takes --key-file or
// HYPERFILE_KEY_FILE; no key or a wrong one is exit 1 with an Auth error
// that never quotes the key; stat shows the cipher; key change rewraps (the
// old key stops working, nothing is rewritten); clone, verify --deep, gc and
// du work with the key; a passphrase works from one line of stdin; and on
// the local directory no stored object holds the plaintext.
TEST_P(Conventions, EncryptedFilesTakeTheirKeyEverywhere) {
  const std::string k1 = Path("k1"), k2 = Path("k2");
  const std::string hex1(64, 'a'),
      hex2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  std::ofstream(k1) << hex1 << "\n";
  std::ofstream(k2) << hex2 << "\n";
  const std::string plain = "attack at dawn; " + std::string(70000, 'p');
  CliRun create = RunHyperfile("create " + Q(uri_) + " --encrypt --compression zstd:3 --key-file " +
                               Q(k1) + " --json");
  ASSERT_EQ(create.code, 0) << create.err;
  CliRun write = RunHyperfile("write " + Q(uri_) + " --offset 0 --key-file " + Q(k1), plain);
  ASSERT_EQ(write.code, 0) << write.err;
  CliRun read = RunHyperfile("read " + Q(uri_) + " --key-file " + Q(k1));
  EXPECT_EQ(read.code, 0) << read.err;
  EXPECT_EQ(read.out, plain);
  CliRun env = RunHyperfile("read " + Q(uri_), "", "HYPERFILE_KEY_FILE=" + Q(k1));
  EXPECT_EQ(env.out, plain) << env.err;
  // No key, a wrong key: exit 1, Auth, the key text never printed.
  CliRun none = RunHyperfile("read " + Q(uri_) + " --json");
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.err.find("\"code\":\"Auth\""), std::string::npos) << none.err;
  EXPECT_TRUE(none.out.empty());
  CliRun wrong = RunHyperfile("read " + Q(uri_) + " --key-file " + Q(k2) + " -v");
  EXPECT_EQ(wrong.code, 1);
  EXPECT_NE(wrong.err.find("wrong key"), std::string::npos) << wrong.err;
  EXPECT_EQ(wrong.err.find(hex2.substr(0, 16)), std::string::npos) << wrong.err;
  EXPECT_TRUE(wrong.out.empty());
  CliRun stat = RunHyperfile("stat " + Q(uri_) + " --json --key-file " + Q(k1));
  ASSERT_EQ(stat.code, 0) << stat.err;
  EXPECT_EQ(Json(stat)["cipher"], "xchacha20-poly1305") << stat.out;
  EXPECT_EQ(stat.out.find(hex1.substr(0, 16)), std::string::npos);
  // Key change: the new key opens it, the old one no longer does.
  CliRun change =
      RunHyperfile("key change " + Q(uri_) + " --key-file " + Q(k1) + " --new-key-file " + Q(k2));
  ASSERT_EQ(change.code, 0) << change.err;
  EXPECT_EQ(RunHyperfile("read " + Q(uri_) + " --key-file " + Q(k1)).code, 1);
  EXPECT_EQ(RunHyperfile("read " + Q(uri_) + " --key-file " + Q(k2)).out, plain);
  // Clone, verify --deep, gc and du with the key.
  ASSERT_EQ(RunHyperfile("clone " + Q(uri_) + " " + Q(other_) + " --key-file " + Q(k2)).code, 0);
  EXPECT_EQ(RunHyperfile("read " + Q(other_) + " --key-file " + Q(k2)).out, plain);
  CliRun verify = RunHyperfile("verify " + Q(other_) + " --deep --key-file " + Q(k2));
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;
  EXPECT_EQ(RunHyperfile("verify " + Q(uri_) + " --deep").code, 1);  // Auth, not "damaged"
  ASSERT_EQ(RunHyperfile("write " + Q(uri_) + " --offset 0 --key-file " + Q(k2), "ATTACK").code, 0);
  CliRun gc = RunHyperfile("gc " + Q(uri_) + " --keep-last 1 --key-file " + Q(k2));
  EXPECT_EQ(gc.code, 0) << gc.err;
  CliRun du = RunHyperfile("du " + Q(uri_) + " --key-file " + Q(k2));
  EXPECT_EQ(du.code, 0) << du.err;
  EXPECT_EQ(RunHyperfile("read " + Q(uri_) + " --length 16 --key-file " + Q(k2)).out,
            "ATTACK at dawn; ");
  // A passphrase-wrapped key: one line of stdin when it is not a terminal.
  ASSERT_EQ(RunHyperfile("key change " + Q(uri_) + " --key-file " + Q(k2) + " --new-passphrase",
                         "correct horse battery staple\n")
                .code,
            0);
  CliRun pass = RunHyperfile("read " + Q(uri_) + " --length 6 --passphrase",
                             "correct horse battery staple\n");
  EXPECT_EQ(pass.code, 0) << pass.err;
  EXPECT_EQ(pass.out, "ATTACK");
  if (!s3_) {
    // Nothing the store holds shows the plaintext or the key.
    for (const auto& entry : fs::recursive_directory_iterator(uri_)) {
      if (!entry.is_regular_file()) continue;
      const std::string bytes = ReadFileBytes(entry.path().string());
      EXPECT_EQ(bytes.find("attack at dawn"), std::string::npos) << entry.path();
      EXPECT_EQ(bytes.find(std::string(64, 'p')), std::string::npos) << entry.path();
      EXPECT_EQ(bytes.find(hex2), std::string::npos) << entry.path();
    }
  }
}

// cp into a new file takes --encrypt with the key flags of create: the copy
// reads back only with its key (a missing or wrong key is exit 1, Auth),
// the key never shows in output or --json, and --encrypt is refused where
// it cannot apply (no key, a local destination, an existing plain file).
TEST_P(Conventions, CpEncryptsANewFile) {
  const std::string k1 = Path("k1"), k2 = Path("k2"), local = Path("plain.bin");
  const std::string hex1 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                    hex2(64, 'b');
  std::ofstream(k1) << hex1 << "\n";
  std::ofstream(k2) << hex2 << "\n";
  const std::string plain = "secret plans; " + std::string(200000, 'q') + RandomData(70000, 3);
  std::ofstream(local, std::ios::binary) << plain;
  CliRun cp = RunHyperfile("cp -q " + Q(local) + " " + Q(CpUri(uri_)) +
                           " --encrypt --compression zstd:1 --key-file " + Q(k1) + " --json");
  ASSERT_EQ(cp.code, 0) << cp.err;
  EXPECT_EQ(cp.out.find(hex1.substr(0, 16)), std::string::npos) << cp.out;
  EXPECT_EQ(cp.err.find(hex1.substr(0, 16)), std::string::npos) << cp.err;
  CliRun stat = RunHyperfile("stat " + Q(uri_) + " --json --key-file " + Q(k1));
  ASSERT_EQ(stat.code, 0) << stat.err;
  EXPECT_EQ(Json(stat)["cipher"], "xchacha20-poly1305") << stat.out;
  EXPECT_EQ(RunHyperfile("read " + Q(uri_) + " --key-file " + Q(k1)).out, plain);
  CliRun none = RunHyperfile("read " + Q(uri_) + " --json");
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.err.find("\"code\":\"Auth\""), std::string::npos) << none.err;
  EXPECT_TRUE(none.out.empty());
  CliRun wrong = RunHyperfile("read " + Q(uri_) + " --key-file " + Q(k2) + " --json");
  EXPECT_EQ(wrong.code, 1);
  EXPECT_NE(wrong.err.find("wrong key"), std::string::npos) << wrong.err;
  EXPECT_EQ(wrong.err.find(hex2.substr(0, 16)), std::string::npos) << wrong.err;
  EXPECT_TRUE(wrong.out.empty());
  // Back out with the key, and from the encrypted copy into another new
  // encrypted file with HYPERFILE_KEY_FILE.
  const std::string back = Path("back.bin");
  ASSERT_EQ(RunHyperfile("cp -q " + Q(CpUri(uri_)) + " " + Q(back) + " --key-file " + Q(k1)).code,
            0);
  EXPECT_EQ(ReadFileBytes(back), plain);
  CliRun again = RunHyperfile("cp -q " + Q(CpUri(uri_)) + " " + Q(CpUri(other_)) + " --encrypt", "",
                              "HYPERFILE_KEY_FILE=" + Q(k1));
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(RunHyperfile("read " + Q(other_) + " --key-file " + Q(k1)).out, plain);
  EXPECT_EQ(RunHyperfile("read " + Q(other_)).code, 1);
  if (!s3_) {
    for (const auto& entry : fs::recursive_directory_iterator(uri_)) {
      if (!entry.is_regular_file()) continue;
      const std::string bytes = ReadFileBytes(entry.path().string());
      EXPECT_EQ(bytes.find("secret plans"), std::string::npos) << entry.path();
      EXPECT_EQ(bytes.find(std::string(64, 'q')), std::string::npos) << entry.path();
      EXPECT_EQ(bytes.find(hex1), std::string::npos) << entry.path();
    }
  }
  // No key: a usage error, nothing created. A local destination: refused.
  const std::string third = s3_ ? UniqueS3Uri("conv-third") : Path("third");
  CliRun nokey = RunHyperfile("cp -q " + Q(local) + " " + Q(CpUri(third)) + " --encrypt --json");
  EXPECT_EQ(nokey.code, 2) << nokey.err;
  EXPECT_NE(nokey.err.find("no key"), std::string::npos) << nokey.err;
  EXPECT_EQ(RunHyperfile("stat " + Q(third)).code, 1);
  CliRun to_local = RunHyperfile("cp -q " + Q(CpUri(uri_)) + " " + Q(Path("x.bin")) +
                                 " --encrypt --key-file " + Q(k1));
  EXPECT_NE(to_local.code, 0);
  EXPECT_NE(to_local.err.find("--encrypt applies only to a hyperfile destination"),
            std::string::npos)
      << to_local.err;
  EXPECT_FALSE(fs::exists(Path("x.bin")));
  // --force onto a file that is not encrypted: refused, the file unchanged.
  ASSERT_EQ(RunHyperfile("cp -q " + Q(local) + " " + Q(CpUri(third))).code, 0);
  CliRun force = RunHyperfile("cp -q " + Q(back) + " " + Q(CpUri(third)) +
                              " --force --encrypt --key-file " + Q(k1));
  EXPECT_EQ(force.code, 1) << force.err;
  EXPECT_NE(force.err.find("not encrypted"), std::string::npos) << force.err;
  EXPECT_EQ(RunHyperfile("read " + Q(third)).out, plain);
  (void)RunHyperfile("rm " + Q(third) + " --yes --force");
}

INSTANTIATE_TEST_SUITE_P(Backends, Conventions, ::testing::Values("local", "s3"));

// Runs the CLI on a new pseudo-terminal (its controlling terminal) and
// answers each prompt, in order, once it has appeared; returns what the
// terminal showed and the exit code. Bounded: gives up after ~20 s.
CliRun OnPty(const std::string& args,
             const std::vector<std::pair<std::string, std::string>>& answers) {
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", (kBin + " " + args).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  CliRun r;
  if (pid < 0) return r;
  size_t next = 0;
  for (int i = 0; i < 1000; i++) {
    pollfd pfd{master, POLLIN, 0};
    if (poll(&pfd, 1, 20) > 0) {
      char buf[256];
      ssize_t n = read(master, buf, sizeof buf);
      if (n <= 0) break;  // the child closed the terminal
      r.out.append(buf, static_cast<size_t>(n));
    }
    if (next < answers.size() && r.out.find(answers[next].first) != std::string::npos) {
      const std::string& line = answers[next].second;
      (void)!write(master, line.data(), line.size());
      r.out.erase(0, r.out.find(answers[next].first) + answers[next].first.size());
      next++;
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  close(master);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// create --encrypt --passphrase on a terminal asks twice: the same answer
// creates the file (it then opens with the passphrase from a stdin line),
// two different ones are refused (exit 2) and nothing is created.
TEST(ConventionsLocal, CreateAsksForANewPassphraseTwiceOnATerminal) {
  TempDir dir;
  const std::string uri = dir.path() + "/f";
  CliRun differ = OnPty("create " + Q(uri) + " --encrypt --passphrase",
                        {{"passphrase: ", "first try\n"}, {"again: ", "first tyr\n"}});
  EXPECT_EQ(differ.code, 2) << differ.out;
  EXPECT_NE(differ.out.find("do not match"), std::string::npos) << differ.out;
  EXPECT_EQ(differ.out.find("first t"), std::string::npos) << "echoed: " << differ.out;
  EXPECT_FALSE(fs::exists(uri));
  CliRun same = OnPty("create " + Q(uri) + " --encrypt --passphrase",
                      {{"passphrase: ", "second try\n"}, {"again: ", "second try\n"}});
  ASSERT_EQ(same.code, 0) << same.out;
  EXPECT_EQ(same.out.find("second try"), std::string::npos) << "echoed: " << same.out;
  // Opening takes the passphrase once (stdin-line mode is unchanged).
  CliRun stat = RunHyperfile("stat " + Q(uri) + " --json --passphrase", "second try\n");
  ASSERT_EQ(stat.code, 0) << stat.err;
  EXPECT_EQ(Json(stat)["cipher"], "xchacha20-poly1305") << stat.out;
  EXPECT_EQ(RunHyperfile("stat " + Q(uri) + " --passphrase", "first try\n").code, 1);
}

// ------------------------------------------------------------ help ---

// The subcommands in the "Subcommands:" section of a help text.
std::vector<std::string> Subcommands(const std::string& help) {
  std::vector<std::string> names;
  std::istringstream in(help);
  std::string line;
  bool on = false;
  while (std::getline(in, line)) {
    if (line.rfind("Subcommands:", 0) == 0) {
      on = true;
    } else if (on && !line.empty() && line[0] != ' ') {
      on = false;
    } else if (on && !line.empty()) {
      names.push_back(line.substr(2, line.find(' ', 2) - 2));
    }
  }
  return names;
}

// Every option of every subcommand has a description in --help.
TEST(ConventionsHelp, EveryOptionIsDescribed) {
  std::vector<std::string> commands = {""};
  for (const std::string& sub : Subcommands(RunHyperfile("--help").out)) {
    commands.push_back(sub);
    for (const std::string& child : Subcommands(RunHyperfile(sub + " --help").out)) {
      commands.push_back(sub + " " + child);
    }
  }
  EXPECT_GT(commands.size(), 20u);
  for (const std::string& cmd : commands) {
    CliRun r = RunHyperfile(cmd + " --help");
    ASSERT_EQ(r.code, 0) << cmd;
    std::istringstream in(r.out);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    for (size_t i = 0; i < lines.size(); i++) {
      const std::string& l = lines[i];
      if (l.rfind("  -", 0) != 0 && !(l.size() > 2 && l[0] == ' ' && l[1] == ' ' &&
                                      std::isupper(static_cast<unsigned char>(l[2])))) {
        continue;  // not an option or positional line
      }
      // Names and type, then at least two spaces and the description (or the
      // description on the next, deeper indented line).
      size_t gap = l.find("  ", 2);
      bool described =
          gap != std::string::npos && l.find_first_not_of(' ', gap) != std::string::npos;
      bool next = i + 1 < lines.size() && lines[i + 1].rfind("        ", 0) == 0 &&
                  lines[i + 1].find_first_not_of(' ') != std::string::npos;
      EXPECT_TRUE(described || next) << "hyperfile " << cmd << ": undescribed: " << l;
    }
  }
}

// The bash completion made from the command itself completes subcommands and
// their options.
TEST(ConventionsHelp, BashCompletion) {
  TempDir dir;
  std::string script = dir.path() + "/completion.bash";
  CliRun made = RunHyperfile("--print-bash-completion");
  ASSERT_EQ(made.code, 0) << made.err;
  std::ofstream(script) << made.out;
  auto complete = [&](const std::string& words, int cword) {
    CliRun r = Shell("bash -c " + Q("source " + script + "; COMP_WORDS=(" + words +
                                    "); COMP_CWORD=" + std::to_string(cword) +
                                    "; _hyperfile; echo \" ${COMPREPLY[*]} \""));
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out;
  };
  EXPECT_NE(complete("hyperfile sn", 1).find(" snapshot "), std::string::npos);
  EXPECT_NE(complete("hyperfile snapshot c", 2).find(" create "), std::string::npos);
  EXPECT_NE(complete("hyperfile cp --bl", 2).find(" --block-size "), std::string::npos);
  EXPECT_NE(complete("hyperfile log x --js", 3).find(" --json "), std::string::npos);
  EXPECT_NE(complete("hyperfile --json read x --fo", 4).find(" --follow "), std::string::npos);
  std::string endpoint = complete("hyperfile --endpoint-url ''", 2);
  EXPECT_EQ(endpoint, "  \n") << "an option's value is not a subcommand: " << endpoint;
}

// ------------------------------------------------------------- S3 ---

class ConventionsS3 : public ::testing::Test {
 protected:
  void SetUp() override {
    HF_REQUIRE_S3();
    uri_ = UniqueS3Uri("conv-s3");
    endpoint_ = std::getenv("AWS_ENDPOINT_URL") ? std::getenv("AWS_ENDPOINT_URL") : "";
    if (endpoint_.empty()) GTEST_SKIP() << "AWS_ENDPOINT_URL is not set";
  }
  void TearDown() override {
    if (!uri_.empty()) (void)RunHyperfile("rm " + uri_ + " --yes");
  }
  // A shell prefix with no endpoint or keys in the environment: the
  // gateway's keys are only in the config file's profile "lab".
  std::string BareEnvWithLabProfile() const {
    const char* key = std::getenv("AWS_ACCESS_KEY_ID");
    const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
    EXPECT_TRUE(key && secret);
    const std::string config = dir_.path() + "/config";
    std::ofstream(config) << "[profile lab]\nregion = us-east-1\naws_access_key_id = "
                          << (key ? key : "")
                          << "\naws_secret_access_key = " << (secret ? secret : "") << "\n";
    return "env -u AWS_ENDPOINT_URL -u AWS_ENDPOINT_URL_S3 -u AWS_ACCESS_KEY_ID "
           "-u AWS_SECRET_ACCESS_KEY -u AWS_PROFILE AWS_CONFIG_FILE=" +
           config + " AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true";
  }
  TempDir dir_;
  std::string uri_, endpoint_;
};

// The endpoint and the credentials come from the flags alone.
TEST_F(ConventionsS3, AwsCliFlags) {
  const char* key = std::getenv("AWS_ACCESS_KEY_ID");
  const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
  ASSERT_TRUE(key && secret);
  const std::string bare = BareEnvWithLabProfile();
  CliRun create = RunHyperfile("create " + uri_ + " --endpoint-url " + endpoint_ +
                                   " --profile lab --region us-east-1 --no-verify-ssl --json",
                               "", bare);
  ASSERT_EQ(create.code, 0) << create.err;
  CliRun stat =
      RunHyperfile("--profile lab stat " + uri_ + " --endpoint-url=" + endpoint_, "", bare);
  EXPECT_EQ(stat.code, 0) << stat.err;
  // A wrong endpoint is named in the error; an unknown profile is refused.
  CliRun wrong =
      RunHyperfile("stat " + uri_ + " --endpoint-url http://127.0.0.1:1 --profile lab", "", bare);
  EXPECT_EQ(wrong.code, 1);
  EXPECT_NE(wrong.err.find("127.0.0.1:1"), std::string::npos) << wrong.err;
  CliRun noprofile =
      RunHyperfile("stat " + uri_ + " --endpoint-url " + endpoint_ + " --profile nosuch", "", bare);
  EXPECT_EQ(noprofile.code, 1);
  EXPECT_NE(noprofile.err.find("nosuch"), std::string::npos) << noprofile.err;
  CliRun ca = RunHyperfile("-v stat " + uri_ + " --ca-bundle " + dir_.path() + "/ca.pem");
  EXPECT_NE(ca.err.find("ca-bundle " + dir_.path() + "/ca.pem"), std::string::npos) << ca.err;
}

// The S3 flags reach a clone's origin too: with no endpoint or credentials
// in the environment, verify --deep, diff and stat of a clone read the
// blocks it shares with its source through the flags' store options.
TEST_F(ConventionsS3, FlagsReachAClonesOrigin) {
  const char* key = std::getenv("AWS_ACCESS_KEY_ID");
  const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
  ASSERT_TRUE(key && secret);
  const std::string clone = UniqueS3Uri("conv-s3-clone");
  ASSERT_EQ(RunHyperfile("create " + uri_).code, 0);
  ASSERT_EQ(RunHyperfile("write " + uri_ + " --offset 0", std::string(200000, 'q')).code, 0);
  ASSERT_EQ(RunHyperfile("clone " + uri_ + " " + clone).code, 0);
  ASSERT_EQ(RunHyperfile("write " + clone + " --offset 0", "changed").code, 0);
  const std::string bare = BareEnvWithLabProfile();
  const std::string flags = " --endpoint-url " + endpoint_ + " --profile lab";
  CliRun verify = RunHyperfile("verify " + clone + " --deep --json" + flags, "", bare);
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;
  EXPECT_NE(verify.out.find("\"healthy\": true"), std::string::npos) << verify.out;
  CliRun log = RunHyperfile("log " + clone + " --json" + flags, "", bare);
  ASSERT_EQ(log.code, 0) << log.err;
  uint64_t first = UINT64_MAX;
  for (const auto& c : Json(log)) first = std::min<uint64_t>(first, c["id"].get<uint64_t>());
  CliRun diff = RunHyperfile(
      "diff " + clone + " " + std::to_string(first) + " latest --json" + flags, "", bare);
  EXPECT_EQ(diff.code, 0) << diff.err;
  EXPECT_NE(diff.out.find("\"offset\": 0"), std::string::npos) << diff.out;
  CliRun stat = RunHyperfile("stat " + clone + flags, "", bare);
  EXPECT_EQ(stat.code, 0) << stat.err;
  CliRun read = RunHyperfile("read " + clone + flags, "", bare);
  EXPECT_EQ(read.code, 0) << read.err;
  EXPECT_EQ(read.out, "changed" + std::string(200000 - 7, 'q'));
  (void)RunHyperfile("rm " + clone + " --yes");
}

// -v logs every request (verb, store, key, outcome, time) and never a secret.
TEST_F(ConventionsS3, DebugLogsEachRequestWithoutSecrets) {
  ASSERT_EQ(RunHyperfile("create " + uri_).code, 0);
  CliRun w = RunHyperfile("write " + uri_ + " --offset 0 -v", "hello");
  ASSERT_EQ(w.code, 0) << w.err;
  EXPECT_NE(w.err.find("hyperfile: debug: request put " + uri_), std::string::npos) << w.err;
  EXPECT_NE(w.err.find("hyperfile: debug: request list " + uri_), std::string::npos) << w.err;
  EXPECT_NE(w.err.find(" ms"), std::string::npos) << w.err;
  CliRun r = RunHyperfile("--debug read " + uri_);
  EXPECT_EQ(r.out, "hello");
  EXPECT_NE(r.err.find("request get " + uri_), std::string::npos) << r.err;
  for (const char* var : {"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}) {
    const char* secret = std::getenv(var);
    if (!secret || !*secret) continue;
    EXPECT_EQ(w.err.find(secret), std::string::npos) << var << " printed";
    EXPECT_EQ(r.err.find(secret), std::string::npos) << var << " printed";
  }
  // Without -v: nothing but the result.
  CliRun quiet = RunHyperfile("read " + uri_);
  EXPECT_TRUE(quiet.err.empty()) << quiet.err;
}

}  // namespace
}  // namespace hyperfile::testing
