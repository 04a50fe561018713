// SPDX-License-Identifier: Apache-2.0
// What every subcommand of `hyperfile` shares: the global flags (allowed
// anywhere on the line), exit codes, how errors, warnings and debug lines
// are printed (text, or one JSON object per line under --json), how stores
// are opened (the S3 flags, -v request logging, --stats), progress on a
// terminal, and human sizes and times. README "The hyperfile command" is the
// user's side of this contract.
#pragma once

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>

#include "cli/progress.h"
#include "hyperfile/encryption.h"
#include "hyperfile/object_store.h"
#include "hyperfile/options.h"
#include "hyperfile/status.h"

namespace hyperfile::cli {

// Exit codes, the same for every subcommand.
enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,         // the command failed (the error says why)
  kExitUsage = 2,         // the command line does not parse, or a value in it is invalid
  kExitDamaged = 3,       // verify (and demo) found damage
  kExitInterrupted = 130  // SIGINT (128 + 2, as shells report it)
};

// The flags every subcommand takes, before or after its name.
struct GlobalOptions {
  bool json = false;   // machine-readable output; errors as JSON on stderr
  bool debug = false;  // -v/--debug: every store request and retry on stderr
  bool stats = false;  // store requests made, on stderr at the end
  bool human = false;  // -H: sizes as KiB/MiB/..., times relative to now
  // S3, spelled as aws-cli spells them (empty: the AWS conventions decide).
  std::string endpoint_url, profile, region, ca_bundle;
  bool no_verify_ssl = false;
  // The key of encrypted files: --key-file F, or --passphrase (asked on the
  // terminal; one line from stdin when stdin is not a terminal). Without
  // either: HYPERFILE_KEY_FILE, then HYPERFILE_KEY.
  std::string key_file;
  bool passphrase = false;
};
GlobalOptions& Globals();

// Adds the global flags to `app` and lets every subcommand (also those added
// later: call before adding them) pass unknown options up to it, so a global
// flag may come anywhere on the line.
void AddGlobalOptions(CLI::App& app);
// Names the global flags at the end of every subcommand's --help (CLI11
// shows a command's own options only). Call after adding the subcommands.
void DescribeGlobalOptionsIn(CLI::App& app);

// Parses argv. Help and --version print and return kExitOk; a parse error
// prints one usage error (naming an unknown subcommand as such) and returns
// kExitUsage; -1 means parsed, go on. Installs the default SIGINT handler
// (exit 130) and, with -v, the log handler.
int ParseCommandLine(CLI::App& app, int argc, char** argv);

// ------------------------------------------------------------ output ---

// Errors: "hyperfile: error: <Code>: <message>" (one line), or under --json
// {"code": "...", "message": "...", "exit_code": N} on one line of stderr.
void ReportError(const Status& st, int exit_code = kExitError);
// A usage error: "hyperfile: usage: <text>" / {"code": "Usage", ...}.
void ReportUsage(const std::string& text);
// "hyperfile: warning: <text>" / {"level": "warning", "message": "..."}.
void Warn(const std::string& text);
void Notice(const std::string& text);

// Prints the store statistics (--stats) of every store opened so far, and
// returns code. Every subcommand ends through it.
int Finish(int code);
// ReportError, then exit(Finish(code)).
[[noreturn]] void Die(const Status& st, int code = kExitError);
[[noreturn]] void DieUsage(const std::string& text);

// Prints `j` on stdout (pretty, two-space indent) if --json.
void EmitJson(const nlohmann::json& j);

// ------------------------------------------------------------ stores ---

// StoreOptions from the global flags.
StoreOptions CliStoreOptions();

// Counters of the requests made through stores opened here, for progress
// bars of commands that are one library call (verify, rm).
struct RequestCounters {
  std::atomic<uint64_t> bytes_read{0};    // bytes Get returned
  std::atomic<uint64_t> keys_deleted{0};  // keys Delete/DeleteMany removed
};
RequestCounters& Counters();

// Opens a store with the global options; with -v each request is logged,
// with --stats it is counted (printed by Finish).
Result<StoreStack> OpenCliStack(std::string_view uri);
Result<std::shared_ptr<ObjectStore>> OpenCliStore(std::string_view uri);
// Opens clones' origins the same way (OpenOptions/RemoveOptions::store_resolver).
StoreOpener CliStoreOpener();
// OpenOptions whose store_resolver is CliStoreOpener() and whose key is
// CliKey().
OpenOptions CliOpenOptions();
// The key from the global flags and the environment (GlobalOptions), read
// once; nullptr if none is given. A key file that cannot be read, or an
// empty passphrase, ends the command (exit 2). Never printed.
std::shared_ptr<const KeySource> CliKey();
// The same for a key that will lock a new file (create --encrypt, cp
// --encrypt): a passphrase asked on a terminal is asked twice, and a
// mismatch ends the command (exit 2); one line of stdin is read once. Called
// before CliKey(), it decides what CliKey() returns (the same key).
std::shared_ptr<const KeySource> CliNewKey();
// The same for a second key (`key change`'s new key): a key file, or a
// passphrase asked for with `prompt` (with `confirm`, twice on a terminal,
// as CliNewKey).
std::shared_ptr<const KeySource> ReadCliKey(const std::string& key_file, bool passphrase,
                                            const std::string& prompt, bool confirm = false);

// Splits URI@SELECTOR (SplitAt) for a command that reads a state. `at_option`
// is the --at value, if given: giving both is a usage error.
struct StateArg {
  std::string uri;
  bool given = false;  // a selector was given (else: the latest state)
  std::string selector;
};
StateArg ParseStateArg(const std::string& command, const std::string& spec,
                       const std::string* at_option);
// For commands that write or act on the whole file: URI@SELECTOR is refused.
std::string PlainUri(const std::string& command, const std::string& uri);

// ---------------------------------------------------------- progress ---

// Whether progress goes on the terminal: stderr is a TTY, no --json, not
// quiet.
bool ShowProgress(bool quiet = false);

// Redraws `bar` from `done()` ten times a second on a thread of its own
// while a long library call runs; stops (and clears the bar) when destroyed.
class ProgressTicker {
 public:
  ProgressTicker(ProgressBar& bar, std::function<uint64_t()> done);
  ~ProgressTicker();
  ProgressTicker(const ProgressTicker&) = delete;
  ProgressTicker& operator=(const ProgressTicker&) = delete;

 private:
  ProgressBar& bar_;
  std::function<uint64_t()> done_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// ------------------------------------------------------------- human ---

// Bytes: the number, or with -H "1.5 GiB".
std::string Size(uint64_t bytes);
// A time (ms since the epoch): ISO 8601 UTC, or with -H "5 min ago".
std::string Time(int64_t ms);
// "just now", "42 s ago", "5 min ago", "3 h ago", "2 days ago", "in 5 min".
std::string RelativeTime(int64_t ms, int64_t now_ms);

}  // namespace hyperfile::cli
