// SPDX-License-Identifier: Apache-2.0
#include "cli/cp.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cli/cli_util.h"
#include "cli/conventions.h"
#include "cli/cp_endpoints.h"
#include "cli/progress.h"
#include "cli/stop_signals.h"

namespace hyperfile::cli {
namespace {

constexpr uint64_t kPieceBytes = 8ull << 20;  // one worker's unit of work
constexpr uint64_t kPieceAlign = 64 << 10;    // pieces start on this boundary at least
constexpr uint64_t kDefaultBlockSize = 64 << 10;
constexpr int kMaxJobs = 256;

// ------------------------------------------------------------ the plan ---

// Pieces of at most kPieceBytes covering every data range, rounded out to
// `align` and split on multiples of kPieceBytes, so no two pieces share a
// block of the destination: workers never write the same block.
std::vector<ByteRange> PlanPieces(const std::vector<ByteRange>& data, uint64_t size,
                                  uint64_t align) {
  std::vector<ByteRange> merged;
  for (const ByteRange& r : data) {
    uint64_t start = r.offset / align * align;
    uint64_t end = std::min(size, (r.offset + r.length + align - 1) / align * align);
    if (start >= end) continue;
    if (!merged.empty() && start <= merged.back().offset + merged.back().length) {
      uint64_t back_end = std::max(end, merged.back().offset + merged.back().length);
      merged.back().length = back_end - merged.back().offset;
    } else {
      merged.push_back({start, end - start});
    }
  }
  std::vector<ByteRange> pieces;
  for (const ByteRange& r : merged) {
    for (uint64_t pos = r.offset, end = r.offset + r.length; pos < end;) {
      uint64_t piece_end = std::min(end, (pos / kPieceBytes + 1) * kPieceBytes);
      pieces.push_back({pos, piece_end - pos});
      pos = piece_end;
    }
  }
  return pieces;
}

uint64_t TotalBytes(const std::vector<ByteRange>& pieces) {
  uint64_t total = 0;
  for (const ByteRange& p : pieces) total += p.length;
  return total;
}

// ------------------------------------------------------------- copying ---

bool AllZero(const char* p, size_t len) {
  return len == 0 || (p[0] == 0 && std::memcmp(p, p + 1, len - 1) == 0);
}

// Copies one piece, skipping runs of all-zero blocks (they stay holes).
Status CopyPiece(CopySource& source, CopySink& sink, const ByteRange& piece, std::string* buf) {
  buf->resize(piece.length);
  char* data = buf->data();
  HF_RETURN_IF_ERROR(source.Read(piece.offset, data, piece.length));
  const uint64_t block = sink.BlockSize();
  auto block_len = [&](uint64_t pos) { return std::min(block, piece.length - pos); };
  uint64_t pos = 0;
  while (pos < piece.length) {
    while (pos < piece.length && AllZero(data + pos, block_len(pos))) pos += block_len(pos);
    uint64_t run = pos;
    while (pos < piece.length && !AllZero(data + pos, block_len(pos))) pos += block_len(pos);
    if (pos > run) HF_RETURN_IF_ERROR(sink.Write(piece.offset + run, data + run, pos - run));
  }
  return Status::OK();
}

// Runs the workers over the pieces while the calling thread draws progress.
class ParallelCopy {
 public:
  ParallelCopy(CopySource& source, CopySink& sink, const std::vector<ByteRange>& pieces)
      : source_(source), sink_(sink), pieces_(pieces) {}

  Status Run(int jobs, ProgressBar& bar) {
    int workers = static_cast<int>(std::min<size_t>(jobs, std::max<size_t>(pieces_.size(), 1)));
    running_ = workers;
    std::vector<std::thread> threads;
    for (int i = 0; i < workers; i++) threads.emplace_back([this] { Work(); });
    WatchUntilDone(bar);
    for (std::thread& t : threads) t.join();
    bar.Update(bytes_done_.load());
    std::lock_guard<std::mutex> lock(mu_);
    return first_error_;
  }

 private:
  void Work() {
    std::string buf;
    while (!stop_.load() && !StopRequested()) {
      size_t i = next_.fetch_add(1);
      if (i >= pieces_.size()) break;
      Status st = CopyPiece(source_, sink_, pieces_[i], &buf);
      if (!st.ok()) {
        Fail(st);
        break;
      }
      bytes_done_.fetch_add(pieces_[i].length);
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (--running_ == 0) done_.notify_all();
  }

  void Fail(const Status& st) {
    std::lock_guard<std::mutex> lock(mu_);
    if (first_error_.ok()) first_error_ = st;
    stop_.store(true);
  }

  void WatchUntilDone(ProgressBar& bar) {
    std::unique_lock<std::mutex> lock(mu_);
    while (running_ > 0) {
      done_.wait_for(lock, std::chrono::milliseconds(100));
      lock.unlock();
      bar.Update(bytes_done_.load());
      lock.lock();
    }
  }

  CopySource& source_;
  CopySink& sink_;
  const std::vector<ByteRange>& pieces_;
  std::atomic<size_t> next_{0};
  std::atomic<uint64_t> bytes_done_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable done_;
  int running_ = 0;
  Status first_error_;
};

// ----------------------------------------------------------- endpoints ---

// An argument with a scheme ("s3://", "file://", "memory://", ...) names a
// hyperfile; anything else is an ordinary local path.
bool IsHyperfileUri(const std::string& arg) { return arg.find("://") != std::string::npos; }

struct Endpoints {
  bool source_is_stdin = false;        // SRC is -
  bool destination_is_stdout = false;  // DST is -
  bool source_is_hyperfile = false;
  std::string source;  // path or URI without the selector
  At source_at;
  bool destination_is_hyperfile = false;
};

Result<Endpoints> ClassifyEndpoints(const CpRequest& request) {
  if (request.source.empty() || request.destination.empty()) {
    return Status::InvalidArgument("cp: SRC and DST must not be empty");
  }
  Endpoints e;
  e.source_is_stdin = request.source == "-";
  e.destination_is_stdout = request.destination == "-";
  e.source_is_hyperfile = IsHyperfileUri(request.source);
  e.destination_is_hyperfile = IsHyperfileUri(request.destination);
  if (e.source_is_stdin && !e.destination_is_hyperfile) {
    return Status::InvalidArgument("cp: from - (stdin) the destination must be a hyperfile URI");
  }
  if (e.destination_is_stdout && !e.source_is_hyperfile) {
    return Status::InvalidArgument("cp: to - (stdout) the source must be a hyperfile URI");
  }
  if (!e.source_is_hyperfile && !e.destination_is_hyperfile) {
    return Status::InvalidArgument(
        "cp: both " + request.source + " and " + request.destination +
        " are local paths; one side must be a hyperfile URI (s3://, file://, memory://)");
  }
  e.source = request.source;
  if (e.source_is_hyperfile) {
    auto [uri, selector] = SplitAt(request.source);
    e.source = uri;
    // "URI@" is refused by At::Parse rather than meaning the latest state.
    if (selector) {
      HF_ASSIGN_OR_RETURN(e.source_at, At::Parse(*selector));
    }
  }
  if (e.destination_is_hyperfile && SplitAt(request.destination).second.has_value()) {
    return Status::InvalidArgument("cp: destination " + request.destination +
                                   " names a checkpoint; a copy always makes a new one");
  }
  if (!e.destination_is_hyperfile && request.compression) {
    return Status::InvalidArgument("cp: --compression applies only to a hyperfile destination");
  }
  if (!e.destination_is_hyperfile && request.encryption_key) {
    return Status::InvalidArgument("cp: --encrypt applies only to a hyperfile destination");
  }
  if (e.destination_is_stdout && request.force) {
    return Status::InvalidArgument("cp: --force applies only to a hyperfile destination");
  }
  if (!e.destination_is_hyperfile && request.block_size != 0) {
    return Status::InvalidArgument("cp: --block-size applies only to a hyperfile destination");
  }
  if (request.jobs < 1 || request.jobs > kMaxJobs) {
    return Status::InvalidArgument("cp: --jobs must be 1.." + std::to_string(kMaxJobs));
  }
  return e;
}

Result<std::unique_ptr<CopySource>> OpenSource(const Endpoints& e) {
  if (e.source_is_hyperfile) return OpenHyperfileSource(e.source, e.source_at);
  if (e.source_is_stdin) return OpenLocalSource("/dev/stdin");  // a regular file
  return OpenLocalSource(e.source);
}

// `size` and `source_block_size` (0 for a local file) are the source's.
Result<std::unique_ptr<CopySink>> OpenSink(const CpRequest& request, const Endpoints& e,
                                           uint64_t size, uint32_t source_block_size) {
  if (!e.destination_is_hyperfile) return CreateLocalSink(request.destination, size);
  HyperfileSinkOptions options;
  options.size = size;
  options.block_size_explicit = request.block_size != 0;
  uint64_t block_size = request.block_size;
  if (block_size == 0) block_size = source_block_size ? source_block_size : kDefaultBlockSize;
  if (block_size > UINT32_MAX) {
    return Status::InvalidArgument("cp: block size " + std::to_string(block_size) + " too large");
  }
  options.block_size = static_cast<uint32_t>(block_size);
  options.force = request.force;
  options.compression = request.compression;
  options.encryption_key = request.encryption_key;
  options.streaming = e.source_is_stdin;
  return CreateHyperfileSink(request.destination, options);
}

// ---------------------------------------------------------------- flow ---

bool Progress(const CpRequest& request) { return ShowProgress(request.quiet); }

int Failed(const Status& st) {
  ReportError(st);
  return kExitError;
}

int ReportInterrupted(const std::string& what_is_left) {
  ReportError(Status::IOError("cp interrupted; " + what_is_left), kExitInterrupted);
  return kExitInterrupted;
}

// After a failure: undo the partial copy and say what happened, in one line.
int ReportFailure(const Status& failure, CopySink& sink, const std::string& destination) {
  Status cleanup = sink.Discard();
  std::string also = cleanup.ok() ? "" : " (cleanup failed too: " + cleanup.ToString() + ")";
  if (StopRequested()) {
    return ReportInterrupted(cleanup.ok() ? "nothing half-done left at " + destination
                                          : "cleanup failed: " + cleanup.ToString());
  }
  if (!also.empty()) Warn(also.substr(2, also.size() - 3));
  ReportError(failure);
  return kExitError;
}

void PrintSummary(uint64_t data_bytes, uint64_t size, double seconds, const std::string& note) {
  double rate = seconds > 0 ? static_cast<double>(data_bytes) / seconds : 0;
  std::fprintf(stderr, "copied %s of data (size %s) in %.1f s, %s/s%s%s\n",
               HumanBytes(static_cast<double>(data_bytes)).c_str(),
               HumanBytes(static_cast<double>(size)).c_str(), seconds, HumanBytes(rate).c_str(),
               note.empty() ? "" : "; ", note.c_str());
}

// --json: what was copied, on stdout.
void PrintJson(const CpRequest& request, uint64_t data_bytes, uint64_t size, double seconds,
               const std::string& note) {
  nlohmann::json j = {{"source", request.source},
                      {"destination", request.destination},
                      {"data_bytes", data_bytes},
                      {"size", size},
                      {"seconds", seconds}};
  constexpr std::string_view kCheckpoint = "checkpoint ";
  if (note.starts_with(kCheckpoint)) {
    j["checkpoint"] = std::stoull(note.substr(kCheckpoint.size()));
  }
  EmitJson(j);
}

// Copies the pieces, then commits; on any failure discards the sink.
int CopyInto(CopySource& source, CopySink& sink, const std::vector<ByteRange>& pieces,
             const CpRequest& request) {
  ProgressBar bar(Progress(request), TotalBytes(pieces));
  Status st = ParallelCopy(source, sink, pieces).Run(request.jobs, bar);
  if (st.ok() && StopRequested()) st = Status::IOError("interrupted");
  std::string note;
  if (st.ok()) {
    bar.Note("committing " + request.destination + " ...");
    Result<std::string> committed = sink.Commit();
    st = committed.status();
    if (st.ok()) note = committed.value();
  }
  bar.Clear();
  if (!st.ok()) return ReportFailure(st, sink, request.destination);
  if (Progress(request)) PrintSummary(TotalBytes(pieces), source.Size(), bar.Elapsed(), note);
  PrintJson(request, TotalBytes(pieces), source.Size(), bar.Elapsed(), note);
  return 0;
}

// SRC is a pipe (stdin): read it in order, write what is not zero, size the
// destination at the end. Memory: one buffer of kPieceBytes.
int StreamIn(const CpRequest& request, const Endpoints& e, StopSignals& signals) {
  Result<std::unique_ptr<CopySink>> sink = OpenSink(request, e, 0, 0);
  if (!sink.ok()) return Failed(sink.status());
  signals.ArmUnlink((*sink)->EmergencyUnlinkPath());
  CopySink& out = **sink;
  ProgressBar bar(Progress(request), ProgressBar::kUnknownTotal);
  const uint64_t block = out.BlockSize();
  std::string buf(std::max<uint64_t>(kPieceBytes / block, 1) * block, '\0');
  uint64_t offset = 0, data_bytes = 0;
  Status st;
  bool eof = false;
  while (st.ok() && !eof && !StopRequested()) {
    size_t filled = 0;
    while (filled < buf.size()) {  // whole blocks, so zero blocks can be skipped
      ssize_t n = ::read(STDIN_FILENO, buf.data() + filled, buf.size() - filled);
      if (n < 0 && errno == EINTR) {
        if (StopRequested()) break;
        continue;
      }
      if (n < 0) {
        st = Status::IOError(std::string("cp: read stdin: ") + std::strerror(errno));
        break;
      }
      if (n == 0) {
        eof = true;
        break;
      }
      filled += static_cast<size_t>(n);
    }
    if (!st.ok() || StopRequested()) break;
    for (size_t pos = 0; pos < filled && st.ok(); pos += block) {
      size_t len = std::min<size_t>(block, filled - pos);
      if (AllZero(buf.data() + pos, len)) continue;
      st = out.Write(offset + pos, buf.data() + pos, len);
      data_bytes += len;
    }
    offset += filled;
    bar.Update(offset);
  }
  if (st.ok() && StopRequested()) st = Status::IOError("interrupted");
  if (st.ok()) st = out.Resize(offset);
  std::string note;
  if (st.ok()) {
    bar.Note("committing " + request.destination + " ...");
    Result<std::string> committed = out.Commit();
    st = committed.status();
    if (st.ok()) note = committed.value();
  }
  bar.Clear();
  if (!st.ok()) return ReportFailure(st, out, request.destination);
  if (Progress(request)) PrintSummary(data_bytes, offset, bar.Elapsed(), note);
  PrintJson(request, data_bytes, offset, bar.Elapsed(), note);
  return 0;
}

// DST is stdout: the whole content in order, holes as zeros. Memory: one
// buffer of kPieceBytes.
int StreamOut(const CpRequest& request, CopySource& source, const std::vector<ByteRange>& ranges) {
  ProgressBar bar(Progress(request) && !::isatty(STDOUT_FILENO), source.Size());
  std::string buf;
  const std::string zeros(kPieceBytes, '\0');
  uint64_t pos = 0;
  size_t next = 0;
  Status st;
  auto put = [&](const char* data, size_t len) {
    while (len > 0 && st.ok()) {
      ssize_t n = ::write(STDOUT_FILENO, data, len);
      if (n < 0 && errno == EINTR) {
        if (StopRequested()) st = Status::IOError("interrupted");
        continue;
      }
      if (n < 0) {
        st = Status::IOError(std::string("cp: write stdout: ") + std::strerror(errno));
        break;
      }
      data += n;
      len -= static_cast<size_t>(n);
    }
  };
  while (pos < source.Size() && st.ok() && !StopRequested()) {
    while (next < ranges.size() && ranges[next].offset + ranges[next].length <= pos) next++;
    bool in_data = next < ranges.size() && ranges[next].offset <= pos;
    uint64_t end = next < ranges.size()
                       ? (in_data ? ranges[next].offset + ranges[next].length : ranges[next].offset)
                       : source.Size();
    uint64_t len = std::min<uint64_t>({end - pos, kPieceBytes, source.Size() - pos});
    if (in_data) {
      buf.resize(len);
      st = source.Read(pos, buf.data(), len);
      if (st.ok()) put(buf.data(), len);
    } else {
      put(zeros.data(), len);
    }
    pos += len;
    bar.Update(pos);
  }
  bar.Clear();
  if (st.ok() && StopRequested()) return ReportInterrupted("stdout has a partial copy");
  if (!st.ok()) return Failed(st);
  PrintJson(request, pos, source.Size(), bar.Elapsed(), "");
  return 0;
}

int Copy(const CpRequest& request, const Endpoints& e, StopSignals& signals) {
  if (e.source_is_stdin) {
    struct stat st;
    if (::fstat(STDIN_FILENO, &st) != 0 || !S_ISREG(st.st_mode)) {
      return StreamIn(request, e, signals);
    }
  }
  Result<std::unique_ptr<CopySource>> source = OpenSource(e);
  if (!source.ok()) return Failed(source.status());
  // Listed before the destination exists, so a failure here leaves nothing.
  Result<std::vector<ByteRange>> ranges = (*source)->DataRanges();
  if (!ranges.ok()) return Failed(ranges.status());
  if (StopRequested()) return ReportInterrupted("nothing was written");
  if (e.destination_is_stdout) return StreamOut(request, **source, *ranges);
  Result<std::unique_ptr<CopySink>> sink =
      OpenSink(request, e, (*source)->Size(), (*source)->BlockSize());
  if (!sink.ok()) return Failed(sink.status());
  signals.ArmUnlink((*sink)->EmergencyUnlinkPath());
  uint64_t align = std::max<uint64_t>(kPieceAlign, (*sink)->BlockSize());
  std::vector<ByteRange> pieces = PlanPieces(*ranges, (*source)->Size(), align);
  return CopyInto(**source, **sink, pieces, request);
}

}  // namespace

int RunCp(const CpRequest& request) {
  Result<Endpoints> endpoints = ClassifyEndpoints(request);
  if (!endpoints.ok()) {
    ReportError(endpoints.status(), kExitUsage);
    return kExitUsage;
  }
  StopSignals signals;
  return Copy(request, *endpoints, signals);
}

}  // namespace hyperfile::cli
