// SPDX-License-Identifier: Apache-2.0
#include "cli/conventions.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "cli/cli_util.h"
#include "cli/stats.h"
#include "crypto/key_source.h"
#include "file/sealing.h"
#include "hyperfile/checkpoints.h"
#include "hyperfile/log.h"
#include "hyperfile/store_layers.h"

namespace hyperfile::cli {

GlobalOptions& Globals() {
  static GlobalOptions options;
  return options;
}

RequestCounters& Counters() {
  static RequestCounters counters;
  return counters;
}

namespace {

std::mutex& StderrMutex() {
  static std::mutex mu;
  return mu;
}

// Secrets that must never reach a log line, whatever a message holds.
std::vector<std::string>& Secrets() {
  static std::vector<std::string> secrets;
  return secrets;
}

std::string Redact(std::string text) {
  for (const std::string& s : Secrets()) {
    if (s.size() < 4) continue;
    for (size_t at = text.find(s); at != std::string::npos; at = text.find(s, at)) {
      text.replace(at, s.size(), "<redacted>");
    }
  }
  return text;
}

std::string OneLine(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

// One line on stderr: "hyperfile: <level>: <text>" or a JSON object.
void Line(std::string_view level, const std::string& text) {
  std::string line;
  if (Globals().json) {
    line = nlohmann::json{{"level", level}, {"message", Redact(OneLine(text))}}.dump() + "\n";
  } else {
    line = "hyperfile: " + std::string(level) + ": " + Redact(OneLine(text)) + "\n";
  }
  std::lock_guard<std::mutex> lock(StderrMutex());
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

// ------------------------------------------------------------ signals ---

// The message a SIGINT prints, made before any signal can arrive.
char g_interrupt_message[256];
size_t g_interrupt_length = 0;

extern "C" void OnInterrupt(int) {
  ssize_t ignored = ::write(STDERR_FILENO, g_interrupt_message, g_interrupt_length);
  (void)ignored;
  ::_exit(kExitInterrupted);
}

void InstallInterruptHandler() {
  std::string text =
      Globals().json
          ? nlohmann::json{{"code", "Interrupted"}, {"message", "interrupted"}, {"exit_code", 130}}
                    .dump() +
                "\n"
          : "hyperfile: error: interrupted\n";
  g_interrupt_length = std::min(text.size(), sizeof g_interrupt_message);
  std::memcpy(g_interrupt_message, text.data(), g_interrupt_length);
  struct sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
}

// --------------------------------------------------------- the log hook ---

void InstallLogHandler() {
  for (const char* var :
       {"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN"}) {
    const char* v = std::getenv(var);
    if (v && *v) Secrets().push_back(v);
  }
  const bool debug = Globals().debug;
  // Retries, throttling, slow requests and give-ups always; the rest with -v.
  SetLogHandler([debug](LogLevel level, std::string_view message) {
    if (!debug && level < LogLevel::kWarning) return;
    Line(LogLevelName(level), std::string(message));
  });
}

// ---------------------------------------------------- the request layer ---

std::string Ms(std::chrono::steady_clock::time_point start) {
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", ms);
  return buf;
}

std::string Outcome(const Status& st) { return st.ok() ? "OK" : st.ToString(); }

// On top of the stack (above the retry layer): with -v one debug line per
// call; always counts bytes read and keys deleted for progress bars.
class CliStore : public StoreWrapper {
 public:
  CliStore(std::shared_ptr<ObjectStore> base, bool debug)
      : StoreWrapper(std::move(base)), debug_(debug) {}

  Status Put(std::string_view key, const Payload& data, const PutOptions& options,
             ObjectInfo* info) override {
    auto start = std::chrono::steady_clock::now();
    Status st = StoreWrapper::Put(key, data, options, info);
    if (debug_) {
      uint64_t bytes = 0;
      for (std::string_view piece : data) bytes += piece.size();
      Debug("put", key,
            std::to_string(bytes) + " B" + (options.if_absent ? " if-absent" : "") + " -> " +
                Outcome(st) + ", " + Ms(start));
    }
    return st;
  }
  Status Get(std::string_view key, uint64_t offset, uint64_t length, std::string* out,
             ObjectInfo* info) override {
    auto start = std::chrono::steady_clock::now();
    Status st = StoreWrapper::Get(key, offset, length, out, info);
    if (st.ok()) Counters().bytes_read.fetch_add(out->size());
    if (debug_) {
      std::string range = "[" + std::to_string(offset) + ", " +
                          (length == kToEnd ? "end" : std::to_string(offset + length)) + ")";
      Debug("get", key,
            range + " -> " + (st.ok() ? std::to_string(out->size()) + " B" : Outcome(st)) + ", " +
                Ms(start));
    }
    return st;
  }
  Status Head(std::string_view key, ObjectInfo* info) override {
    auto start = std::chrono::steady_clock::now();
    Status st = StoreWrapper::Head(key, info);
    if (debug_) Debug("head", key, "-> " + Outcome(st) + ", " + Ms(start));
    return st;
  }
  Status List(std::string_view prefix, std::string_view start_after, size_t limit,
              std::vector<ObjectInfo>* out) override {
    auto start = std::chrono::steady_clock::now();
    size_t before = out->size();
    Status st = StoreWrapper::List(prefix, start_after, limit, out);
    if (debug_) {
      Debug("list", prefix,
            "after '" + std::string(start_after) + "' limit " + std::to_string(limit) + " -> " +
                (st.ok() ? std::to_string(out->size() - before) + " keys" : Outcome(st)) + ", " +
                Ms(start));
    }
    return st;
  }
  Status Delete(std::string_view key) override {
    auto start = std::chrono::steady_clock::now();
    Status st = StoreWrapper::Delete(key);
    if (st.ok()) Counters().keys_deleted.fetch_add(1);
    if (debug_) Debug("delete", key, "-> " + Outcome(st) + ", " + Ms(start));
    return st;
  }
  Status DeleteMany(const std::vector<std::string>& keys) override {
    auto start = std::chrono::steady_clock::now();
    Status st = StoreWrapper::DeleteMany(keys);
    if (st.ok()) Counters().keys_deleted.fetch_add(keys.size());
    if (debug_) {
      Debug("delete-many", keys.empty() ? std::string_view() : std::string_view(keys[0]),
            std::to_string(keys.size()) + " keys -> " + Outcome(st) + ", " + Ms(start));
    }
    return st;
  }

 private:
  void Debug(std::string_view verb, std::string_view key, const std::string& rest) {
    Line("debug",
         "request " + std::string(verb) + " " + Name() + " " + std::string(key) + " " + rest);
  }
  bool debug_;
};

struct OpenedStack {
  std::string name;
  std::shared_ptr<MetricsStore> metrics;
};
std::mutex g_stacks_mu;
std::vector<OpenedStack> g_stacks;
// --stats: the command's clock starts when it opens its first store.
std::optional<StatsRecorder> g_stats_recorder;

// The first positional word at or after argv[from] (skipping options and
// the values of `app`'s options that take one); npos-like -1 if none.
int FirstWord(CLI::App& app, int argc, char** argv, int from) {
  for (int i = from; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--") return i + 1 < argc ? i + 1 : -1;
    if (a.size() < 2 || a[0] != '-') return i;
    if (a.find('=') != std::string::npos) continue;
    const CLI::Option* opt = app.get_option_no_throw(a);
    if (opt && opt->get_expected_min() > 0) i++;  // skip its value
  }
  return -1;
}

// For a parse error where a subcommand was expected: what to say instead of
// CLI11's "A subcommand is required".
std::optional<std::string> SubcommandProblem(CLI::App& app, int argc, char** argv) {
  CLI::App* cur = &app;
  int from = 1;
  for (;;) {
    auto parsed = cur->get_subcommands();
    if (parsed.empty()) break;
    CLI::App* next = parsed.front();
    for (int i = from; i < argc; i++) {
      if (next->check_name(argv[i])) {
        from = i + 1;
        break;
      }
    }
    cur = next;
  }
  if (cur->get_require_subcommand_min() == 0 || !cur->get_subcommands().empty()) {
    return std::nullopt;
  }
  std::string names;
  for (const CLI::App* sub : cur->get_subcommands({})) {
    if (!sub->get_group().empty()) names += (names.empty() ? "" : " ") + sub->get_name();
  }
  std::string where = cur == &app ? "hyperfile" : "hyperfile " + cur->get_name();
  int word = FirstWord(app, argc, argv, from);
  bool known = false;
  for (const CLI::App* sub : cur->get_subcommands({}))
    known = known || sub->check_name(argv[word < 0 ? 0 : word]);
  if (word >= 0 && !known) {
    return "unknown subcommand '" + std::string(argv[word]) + "' for " + where +
           " (one of: " + names + ")";
  }
  if (word < 0) return "a subcommand is required for " + where + " (one of: " + names + ")";
  return std::nullopt;
}

}  // namespace

// ---------------------------------------------------------- the flags ---

void AddGlobalOptions(CLI::App& app) {
  GlobalOptions& g = Globals();
  app.fallthrough();  // inherited by the subcommands added after this
  const std::string global = "Global options (anywhere on the line)";
  app.add_flag("--json", g.json,
               "machine-readable output on stdout; errors, warnings and debug lines as one JSON "
               "object per line on stderr")
      ->group(global);
  app.add_flag("-v,--debug", g.debug,
               "log every store request and retry on stderr (secrets are never printed)")
      ->group(global);
  app.add_flag("--stats", g.stats, "print the store requests made, on stderr at the end")
      ->group(global);
  app.add_flag("-H,--human-readable", g.human,
               "sizes as KiB, MiB, ...; times relative to now (log, stat, du)")
      ->group(global);
  const std::string s3 = "S3 options (as aws-cli spells them; default: the AWS configuration)";
  app.add_option("--endpoint-url", g.endpoint_url,
                 "S3 endpoint, e.g. http://127.0.0.1:7480 (default: AWS_ENDPOINT_URL_S3, "
                 "AWS_ENDPOINT_URL, the profile's)")
      ->group(s3);
  app.add_option("--profile", g.profile, "profile in ~/.aws/config and ~/.aws/credentials")
      ->group(s3);
  app.add_option("--region", g.region, "region (default: AWS_REGION, the profile's, us-east-1)")
      ->group(s3);
  app.add_flag("--no-verify-ssl", g.no_verify_ssl,
               "do not verify the endpoint's TLS certificate (test endpoints only)")
      ->group(s3);
  app.add_option("--key-file", g.key_file,
                 "key of an encrypted file: 32 raw bytes, 64 hex digits or base64 "
                 "(default: HYPERFILE_KEY_FILE, then HYPERFILE_KEY)")
      ->type_name("FILE");
  app.add_flag("--passphrase", g.passphrase,
               "ask for the passphrase of an encrypted file (on the terminal, or one line of "
               "stdin)");
  app.add_option("--ca-bundle", g.ca_bundle,
                 "PEM file of CA certificates to verify TLS with (default: AWS_CA_BUNDLE, the "
                 "system's)")
      ->group(s3);
}

void DescribeGlobalOptionsIn(CLI::App& app) {
  const std::string text =
      "Global options, also after the subcommand (see hyperfile --help): --json, -v/--debug,\n"
      "--stats, -H/--human-readable, --endpoint-url, --profile, --region, --no-verify-ssl,\n"
      "--ca-bundle, --key-file, --passphrase. Exit status: 0 ok, 1 error, 2 usage, 3 damaged "
      "(verify), 130 interrupted.";
  std::vector<CLI::App*> all = app.get_subcommands({});
  for (size_t i = 0; i < all.size(); i++) {
    for (CLI::App* child : all[i]->get_subcommands({})) all.push_back(child);
  }
  for (CLI::App* sub : all) {
    std::string footer = sub->get_footer();
    sub->footer(footer.empty() ? text : footer + "\n\n" + text);
  }
}

int ParseCommandLine(CLI::App& app, int argc, char** argv) {
  // Known before parsing, so a parse error is already JSON.
  for (int i = 1; i < argc && std::strcmp(argv[i], "--") != 0; i++) {
    if (std::strcmp(argv[i], "--json") == 0) Globals().json = true;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::optional<std::string> sub = SubcommandProblem(app, argc, argv);
    ReportUsage(sub ? *sub : std::string(e.what()) + " (see --help)");
    return kExitUsage;
  }
  InstallInterruptHandler();
  InstallLogHandler();
  return -1;
}

// ------------------------------------------------------------ output ---

void ReportError(const Status& st, int exit_code) {
  if (Globals().json) {
    std::string line = nlohmann::json{{"code", Status::CodeName(st.code())},
                                      {"message", Redact(OneLine(st.message()))},
                                      {"exit_code", exit_code}}
                           .dump() +
                       "\n";
    std::lock_guard<std::mutex> lock(StderrMutex());
    std::fputs(line.c_str(), stderr);
    return;
  }
  Line("error", st.ToString());
}

void ReportUsage(const std::string& text) {
  if (Globals().json) {
    std::string line =
        nlohmann::json{
            {"code", "Usage"}, {"message", OneLine(text)}, {"exit_code", int(kExitUsage)}}
            .dump() +
        "\n";
    std::lock_guard<std::mutex> lock(StderrMutex());
    std::fputs(line.c_str(), stderr);
    return;
  }
  Line("usage", text);
}

void Warn(const std::string& text) { Line("warning", text); }
void Notice(const std::string& text) { Line("notice", text); }

int Finish(int code) {
  std::lock_guard<std::mutex> lock(g_stacks_mu);
  // One block per store: a command that opened the same store twice (stat
  // reads the head, then measures the index) sums the two stacks' figures.
  std::vector<std::pair<std::string, StoreMetricsSnapshot>> per_store;
  for (const OpenedStack& s : g_stacks) {
    if (!s.metrics) continue;
    auto it = std::find_if(per_store.begin(), per_store.end(),
                           [&](const auto& p) { return p.first == s.name; });
    if (it == per_store.end()) {
      per_store.emplace_back(s.name, s.metrics->Snapshot());
    } else {
      it->second += s.metrics->Snapshot();
    }
  }
  for (const auto& [name, snapshot] : per_store) {
    const StatsRecorder recorder = g_stats_recorder ? *g_stats_recorder : StatsRecorder();
    std::lock_guard<std::mutex> err_lock(StderrMutex());
    if (Globals().json) {
      // One JSON object on one line, like every stderr line under --json.
      nlohmann::json j = {{"stats", StatsJson(recorder.Collect(snapshot, std::nullopt))},
                          {"store", name}};
      std::fputs((j.dump() + "\n").c_str(), stderr);
    } else {
      // The summary line, then the table: requests by verb with latencies,
      // bytes and rates, throttling, commits.
      std::fprintf(stderr, "hyperfile: stats: %s (%s)\n", snapshot.ToString().c_str(),
                   name.c_str());
      recorder.Print(stderr, snapshot, std::nullopt, /*json=*/false);
    }
  }
  g_stacks.clear();
  std::fflush(stdout);
  return code;
}

void Die(const Status& st, int code) {
  ReportError(st, code);
  std::exit(Finish(code));
}

void DieUsage(const std::string& text) {
  ReportUsage(text);
  std::exit(Finish(kExitUsage));
}

void EmitJson(const nlohmann::json& j) {
  if (Globals().json) std::printf("%s\n", j.dump(2).c_str());
}

// ------------------------------------------------------------ stores ---

StoreOptions CliStoreOptions() {
  const GlobalOptions& g = Globals();
  StoreOptions o;
  o.endpoint = g.endpoint_url;
  o.profile = g.profile;
  o.region = g.region;
  o.ca_bundle = g.ca_bundle;
  o.verify_tls = !g.no_verify_ssl;
  o.metrics = g.stats;
  return o;
}

Result<StoreStack> OpenCliStack(std::string_view uri) {
  HF_ASSIGN_OR_RETURN(StoreStack stack, OpenStoreStack(uri, CliStoreOptions()));
  stack.store = std::make_shared<CliStore>(stack.store, Globals().debug);
  if (stack.metrics) {
    std::lock_guard<std::mutex> lock(g_stacks_mu);
    if (!g_stats_recorder) g_stats_recorder.emplace();
    g_stacks.push_back({stack.store->Name(), stack.metrics});
  }
  if (Globals().debug) {
    const GlobalOptions& g = Globals();
    Line("debug", "opened " + stack.store->Name() +
                      (g.endpoint_url.empty() ? "" : " endpoint " + g.endpoint_url) +
                      (g.region.empty() ? "" : " region " + g.region) +
                      (g.profile.empty() ? "" : " profile " + g.profile) +
                      (g.ca_bundle.empty() ? "" : " ca-bundle " + g.ca_bundle) +
                      (g.no_verify_ssl ? " (TLS not verified)" : ""));
  }
  return stack;
}

Result<std::shared_ptr<ObjectStore>> OpenCliStore(std::string_view uri) {
  HF_ASSIGN_OR_RETURN(StoreStack stack, OpenCliStack(uri));
  return stack.store;
}

StoreOpener CliStoreOpener() {
  return [](const std::string& uri) { return OpenCliStore(uri); };
}

OpenOptions CliOpenOptions() {
  OpenOptions o;
  o.store_resolver = CliStoreOpener();
  o.key = CliKey();
  return o;
}

std::shared_ptr<const KeySource> ReadCliKey(const std::string& key_file, bool passphrase,
                                            const std::string& prompt, bool confirm) {
  if (!key_file.empty() && passphrase) {
    DieUsage("give a key file or a passphrase, not both");
  }
  if (passphrase) {
    // A terminal: asked with echo off. Otherwise one line of stdin (scripts
    // and tests; a key file is the better way there).
    // A new passphrase typed on a terminal is asked twice: a typo would
    // lock the file for good.
    Result<crypto::SecureBuffer> text = !isatty(0) ? crypto::ReadPassphrase(0, 2, prompt)
                                        : confirm  ? crypto::PromptNewPassphrase(prompt, "again: ")
                                                   : crypto::PromptPassphrase(prompt);
    if (!text.ok()) Die(text.status(), kExitUsage);
    auto key = KeySource::FromPassphrase(text->view());
    if (!key.ok()) Die(key.status(), kExitUsage);
    return *key;
  }
  if (key_file.empty()) return nullptr;
  auto key = KeySource::FromKeyFile(key_file);
  if (!key.ok()) Die(key.status(), kExitUsage);
  return *key;
}

namespace {

std::shared_ptr<const KeySource> TheCliKey(bool confirm) {
  static std::once_flag once;
  static std::shared_ptr<const KeySource> key;
  std::call_once(once, [confirm] {
    const GlobalOptions& g = Globals();
    if (!g.key_file.empty() || g.passphrase) {
      key = ReadCliKey(g.key_file, g.passphrase, "passphrase: ", confirm);
      return;
    }
    crypto::KeySourceOptions o;  // HYPERFILE_KEY_FILE, HYPERFILE_KEY
    auto kek = crypto::KekSourceFromOptions(o);
    if (!kek.ok()) Die(kek.status(), kExitUsage);
    if (kek->has_value()) {
      key = std::make_shared<const KeySource>(
          std::make_unique<KeySource::Impl>(KeySource::Impl{std::move(**kek)}));
    }
  });
  return key;
}

}  // namespace

std::shared_ptr<const KeySource> CliKey() { return TheCliKey(false); }

std::shared_ptr<const KeySource> CliNewKey() { return TheCliKey(true); }

StateArg ParseStateArg(const std::string& command, const std::string& spec,
                       const std::string* at_option) {
  auto [uri, selector] = SplitAt(spec);
  StateArg a;
  a.uri = uri;
  if (selector && at_option) {
    DieUsage(command + ": the state is given twice (" + spec + " and --at " + *at_option +
             "); give one");
  }
  if (selector) {
    a.given = true;
    a.selector = *selector;
  } else if (at_option) {
    a.given = true;
    a.selector = *at_option;
  }
  return a;
}

std::string PlainUri(const std::string& command, const std::string& uri) {
  auto [plain, selector] = SplitAt(uri);
  if (selector) {
    DieUsage(command + ": " + uri + " names a state (@" + *selector + "); " + command +
             " takes the file's URI alone");
  }
  return plain;
}

// ---------------------------------------------------------- progress ---

bool ShowProgress(bool quiet) { return !quiet && !Globals().json && ::isatty(STDERR_FILENO) != 0; }

ProgressTicker::ProgressTicker(ProgressBar& bar, std::function<uint64_t()> done)
    : bar_(bar), done_(std::move(done)) {
  // Drawn once before the work starts, so even a command that ends before
  // the first tick has shown its bar on the terminal.
  bar_.Update(done_());
  thread_ = std::thread([this] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (stop_.load()) return;
      bar_.Update(done_());
    }
  });
}

ProgressTicker::~ProgressTicker() {
  stop_.store(true);
  thread_.join();
  bar_.Clear();
}

// ------------------------------------------------------------- human ---

std::string Size(uint64_t bytes) {
  return Globals().human ? HumanBytes(static_cast<double>(bytes)) : std::to_string(bytes);
}

std::string RelativeTime(int64_t ms, int64_t now_ms) {
  int64_t d = (now_ms - ms) / 1000;
  bool future = d < 0;
  if (future) d = -d;
  if (d < 5) return "just now";
  std::string n;
  if (d < 120) {
    n = std::to_string(d) + " s";
  } else if (d < 2 * 3600) {
    n = std::to_string(d / 60) + " min";
  } else if (d < 2 * 86400) {
    n = std::to_string(d / 3600) + " h";
  } else {
    n = std::to_string(d / 86400) + " days";
  }
  return future ? "in " + n : n + " ago";
}

std::string Time(int64_t ms) {
  if (!Globals().human) return At::Time(ms).ToString();
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  return RelativeTime(ms, now);
}

}  // namespace hyperfile::cli
