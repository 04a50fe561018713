// SPDX-License-Identifier: Apache-2.0
// Streaming append/write and `read --follow` (follow.h).
#include "cli/follow.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "cli/conventions.h"
#include "cli/progress.h"
#include "hyperfile/file.h"
#include "hyperfile/object_store.h"
#include "hyperfile/store_layers.h"

namespace hyperfile::cli {

namespace {

// ------------------------------------------------------------- signals ---
// SIGINT / SIGTERM write a byte into a pipe that the loops poll together
// with their input (the self-pipe trick), so a signal that arrives just
// before a blocking wait is never missed.
int g_signal_pipe[2] = {-1, -1};
std::atomic<bool> g_stop{false};
std::atomic<bool> g_interrupted{false};  // the stop was a SIGINT: exit 130

void OnSignal(int signal) {
  if (signal == SIGINT) g_interrupted = true;
  g_stop = true;
  const char c = 1;
  ssize_t ignored = ::write(g_signal_pipe[1], &c, 1);
  (void)ignored;
}

class StopSignals {
 public:
  StopSignals() {
    if (::pipe(g_signal_pipe) == 0) {
      for (int fd : g_signal_pipe) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    struct sigaction action;
    std::memset(&action, 0, sizeof action);
    action.sa_handler = OnSignal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  static int fd() { return g_signal_pipe[0]; }

 private:
  struct sigaction old_int_, old_term_;
};

// Waits until `fd` is readable (fd < 0: never), a stop signal, or timeout
// (-1 = none). Returns true if fd is readable.
bool WaitReadable(int fd, int timeout_ms) {
  for (;;) {
    if (g_stop) return false;
    struct pollfd p[2] = {{StopSignals::fd(), POLLIN, 0}, {fd, POLLIN, 0}};
    int n = ::poll(p, fd >= 0 ? 2 : 1, timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    if (g_stop) return false;
    return fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
  }
}

int Fail(const Status& st) {
  ReportError(st);
  return kExitError;
}
int Usage(const Status& st) {
  ReportError(st, kExitUsage);
  return kExitUsage;
}
// The exit code of a command stopped by a signal: 130 for SIGINT.
int StoppedCode() { return g_interrupted ? kExitInterrupted : kExitOk; }

// A Conflict while streaming means another writer committed to the file.
Status Explain(const Status& st, const std::string& uri, uint64_t unflushed) {
  if (!st.IsConflict()) return st;
  return Status::Conflict(
      uri +
      ": another writer committed to this file after this one opened it (one writer per "
      "file; the other one keeps it); " +
      std::to_string(unflushed) + " bytes read since the last checkpoint were not written (" +
      st.message() + ")");
}

}  // namespace

Result<uint64_t> ParseDurationMs(std::string_view what, std::string_view text) {
  auto v = util::ParseDurationMs(text);
  if (!v.ok()) {
    return Status::InvalidArgument(std::string(what) + " '" + std::string(text) +
                                   "': " + v.status().message());
  }
  return v;
}

int RunStream(const StreamRequest& req) {
  if (req.flush_bytes < (64u << 10) || req.flush_bytes > (1ull << 30)) {
    return Usage(Status::InvalidArgument("--flush-bytes " + std::to_string(req.flush_bytes) +
                                         ": must be from 64K to 1G"));
  }
  int fd = 0;
  if (req.input != "-" && !req.input.empty()) {
    fd = ::open(req.input.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Fail(Status::IOError("cannot open " + req.input + ": " + strerror(errno)));
  }
  // A regular file's size is the progress bar's total; a pipe's is unknown.
  struct stat input_stat;
  uint64_t input_total = ProgressBar::kUnknownTotal;
  if (::fstat(fd, &input_stat) == 0 && S_ISREG(input_stat.st_mode)) {
    off_t here = ::lseek(fd, 0, SEEK_CUR);
    input_total = static_cast<uint64_t>(input_stat.st_size - std::max<off_t>(here, 0));
  }
  StopSignals signals;
  auto stack = OpenCliStack(req.uri);
  if (!stack.ok()) return Fail(stack.status());
  OpenOptions options = CliOpenOptions();
  // Bounded memory: the flusher starts a checkpoint at flush_bytes, at most
  // two are in flight, and a writer waits beyond the budget.
  options.flush_dirty_bytes = req.flush_bytes;
  options.dirty_budget_bytes = std::max<uint64_t>(3 * req.flush_bytes, 16u << 20);
  options.flush_interval_ms = static_cast<uint32_t>(req.flush_every_ms);
  options.block_cache_bytes = 4u << 20;
  options.index_cache_bytes = 4u << 20;
  auto opened = File::Open(stack->store, options);
  if (!opened.ok()) return Fail(opened.status());
  std::unique_ptr<File> f = std::move(opened).value();
  const uint64_t start = req.append ? f->Size() : req.offset;
  uint64_t total = 0;
  std::vector<char> buf(1u << 20);
  Status error;
  ProgressBar bar(ShowProgress(req.quiet), input_total);
  for (;;) {
    if (!WaitReadable(fd, -1)) break;  // a stop signal
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      error = Status::IOError("read " + req.input + ": " + strerror(errno));
      break;
    }
    if (n == 0) break;  // EOF
    const size_t len = static_cast<size_t>(n);
    if (req.append) {
      auto at = f->Append(buf.data(), len);
      if (!at.ok()) error = at.status();
    } else {
      error = f->PWrite(req.offset + total, buf.data(), len);
    }
    if (!error.ok()) break;
    total += len;
    bar.Update(total);
  }
  if (fd > 0) ::close(fd);
  bar.Note("flushing " + req.uri + " ...");
  if (!error.ok()) {
    auto st = f->Stat();
    error = Explain(error, req.uri, st.ok() ? st->dirty_bytes : 0);
    (void)f->Close();
    bar.Clear();
    return Fail(error);
  }
  auto id = f->Flush();
  if (!id.ok()) {
    auto st = f->Stat();
    Status e = Explain(id.status(), req.uri, st.ok() ? st->dirty_bytes : 0);
    (void)f->Close();
    bar.Clear();
    return Fail(e);
  }
  Status closed = f->Close();
  bar.Clear();
  if (!closed.ok()) return Fail(closed);
  if (Globals().json) {
    EmitJson({{"checkpoint", *id}, {"bytes", total}, {"offset", start}});
  } else {
    std::printf("checkpoint %llu: %llu bytes at %llu\n", (unsigned long long)*id,
                (unsigned long long)total, (unsigned long long)start);
  }
  if (g_interrupted) {
    ReportError(Status::IOError("interrupted; the " + std::to_string(total) +
                                " bytes read were committed as checkpoint " + std::to_string(*id)),
                kExitInterrupted);
  }
  return StoppedCode();
}

namespace {

// Writes all of [data, data+len) to fd.
Status WriteOut(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError(std::string("write output: ") + strerror(errno));
    data += n;
    len -= static_cast<size_t>(n);
  }
  return Status::OK();
}

// Transient trouble (the next poll may well succeed) as opposed to errors a
// retry cannot fix.
bool Passing(const Status& st) {
  return st.IsTransient() || st.IsThrottled() || st.code() == Status::Code::kIOError;
}

}  // namespace

int RunFollow(const FollowRequest& req) {
  if (req.poll_ms < 10 || req.poll_ms > 86'400'000) {
    return Usage(Status::InvalidArgument("--poll: must be from 10ms to 1 day"));
  }
  int out = 1;
  if (!req.output.empty()) {
    out = ::open(req.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
      return Fail(Status::IOError("cannot write " + req.output + ": " + strerror(errno)));
  }
  StopSignals signals;
  auto stack = OpenCliStack(req.uri);
  if (!stack.ok()) return Fail(stack.status());
  OpenOptions options = CliOpenOptions();
  options.read_only = true;
  options.block_cache_bytes = 16u << 20;
  options.index_cache_bytes = 4u << 20;
  auto opened = File::Open(stack->store, options);
  if (!opened.ok()) return Fail(opened.status());
  std::unique_ptr<File> f = std::move(opened).value();
  uint64_t pos = req.from_end ? f->Size() : req.offset;
  std::vector<char> buf(1u << 20);
  int code = 0;
  bool warned = false;
  auto next_poll = std::chrono::steady_clock::now() + std::chrono::milliseconds(req.poll_ms);
  for (;;) {
    // Everything the current state holds past pos.
    Status st;
    while (!g_stop) {
      auto n = f->PRead(pos, buf.data(), buf.size());
      if (!n.ok()) {
        st = n.status();
        break;
      }
      if (*n == 0) break;
      st = WriteOut(out, buf.data(), *n);
      if (!st.ok()) break;
      pos += *n;
    }
    if (!st.ok()) {
      if (st.IsNotFound()) {
        st =
            Status::NotFound(req.uri + " was removed while it was followed (" + st.message() + ")");
      }
      code = Fail(st);
      break;
    }
    // Polls on a fixed grid (not poll_ms after the work of the last one), so
    // a new checkpoint waits at most poll_ms to be seen; a poll that ran
    // late is not made up for with a burst.
    const auto now = std::chrono::steady_clock::now();
    if (next_poll < now) next_poll = now;
    const auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(next_poll - now).count();
    if (g_stop || WaitReadable(-1, static_cast<int>(wait)) || g_stop) break;
    next_poll += std::chrono::milliseconds(req.poll_ms);
    auto r = f->Refresh();
    if (!r.ok()) {
      if (Passing(r.status())) {
        if (!warned) {
          Warn(r.status().ToString() + "; still following");
        }
        warned = true;
        continue;
      }
      code = Fail(r.status());
      break;
    }
    if (warned && r.ok()) warned = false;
    if (r->removed) {
      code = Fail(Status::NotFound(req.uri + " was removed; stopped following at byte " +
                                   std::to_string(pos)));
      break;
    }
    if (r->went_backwards || r->replaced) {
      code = Fail(Status::NotFound(
          req.uri + " was replaced by another file (its head is checkpoint " +
          std::to_string(r->new_checkpoint) + ", this follower was at checkpoint " +
          std::to_string(r->old_checkpoint) + "); stopped following at byte " +
          std::to_string(pos)));
      break;
    }
    if (!r->changed) continue;
    if (r->restored) {
      Notice(req.uri + " was restored to checkpoint " + std::to_string(r->restored_from) +
             " (size " + std::to_string(r->restored_size) + "); continuing from byte " +
             std::to_string(r->new_bytes_from));
      pos = r->new_bytes_from;
    } else if (r->truncated && r->new_bytes_from < pos) {
      Notice(req.uri + " was truncated to " + std::to_string(r->new_bytes_from) +
             " bytes; continuing from there");
      pos = r->new_bytes_from;
    }
    if (!r->history_complete) {
      Notice("more checkpoints than could be checked passed between two polls of " + req.uri +
             "; a truncation among them may have gone unnoticed");
    }
    if (pos > r->new_size) pos = r->new_size;
  }
  if (out != 1) ::close(out);
  if (code == 0 && g_interrupted) {
    ReportError(Status::IOError("interrupted; stopped following at byte " + std::to_string(pos)),
                kExitInterrupted);
  }
  return code == 0 ? StoppedCode() : code;
}

}  // namespace hyperfile::cli
