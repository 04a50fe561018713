// SPDX-License-Identifier: Apache-2.0
// Metrics of the nbdkit plugin: Prometheus rendering, HTTP and textfile.
#define NBDKIT_API_VERSION 2
#include "metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <nbdkit-plugin.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace hyperfile_nbd {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

// Label values: backslash, double quote and newline are escaped.
std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

class Writer {
 public:
  // A metric family's HELP and TYPE lines, once.
  void Family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void Sample(const std::string& name, const std::string& labels, uint64_t value) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%" PRIu64, value);
    Line(name, labels, buf);
  }
  void SampleSeconds(const std::string& name, const std::string& labels, uint64_t us) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%.6f", static_cast<double>(us) / 1e6);
    Line(name, labels, buf);
  }
  void Histogram(const std::string& name, const std::string& labels,
                 const hyperfile::LatencyHistogram& h) {
    uint64_t running = 0;
    for (int i = 0; i < hyperfile::kLatencyBuckets; i++) {
      running += h.buckets[i];
      char le[48];
      if (i < hyperfile::kLatencyBuckets - 1) {
        std::snprintf(le, sizeof le, "le=\"%g\"",
                      static_cast<double>(hyperfile::kLatencyBucketBoundsUs[i]) / 1e6);
      } else {
        std::snprintf(le, sizeof le, "le=\"+Inf\"");
      }
      Sample(name + "_bucket", labels.empty() ? le : labels + "," + le, running);
    }
    SampleSeconds(name + "_sum", labels, h.total_us);
    Sample(name + "_count", labels, running);
  }
  std::string Take() { return std::move(out_); }

 private:
  void Line(const std::string& name, const std::string& labels, const char* value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  std::string out_;
};

}  // namespace

const char* OpName(int op) {
  static const char* names[] = {"read", "write", "flush", "trim", "zero", "extents"};
  return op >= 0 && op < kOps ? names[op] : "unknown";
}

void AtomicHistogram::Observe(uint64_t us) {
  buckets[hyperfile::LatencyHistogram::BucketOf(us)].fetch_add(1, kRelaxed);
  total_us.fetch_add(us, kRelaxed);
  uint64_t prev = max_us.load(kRelaxed);
  while (us > prev && !max_us.compare_exchange_weak(prev, us, kRelaxed)) {
  }
}

hyperfile::LatencyHistogram AtomicHistogram::Load() const {
  hyperfile::LatencyHistogram h;
  for (int i = 0; i < hyperfile::kLatencyBuckets; i++) {
    h.buckets[i] = buckets[i].load(kRelaxed);
    h.count += h.buckets[i];
  }
  h.total_us = total_us.load(kRelaxed);
  h.max_us = max_us.load(kRelaxed);
  return h;
}

ExportSample SampleCounters(const ExportCounters& c) {
  ExportSample s;
  for (int i = 0; i < kOps; i++) {
    s.ok[i] = c.ok[i].load(kRelaxed);
    s.errors[i] = c.errors[i].load(kRelaxed);
    s.latency[i] = c.latency[i].Load();
  }
  s.bytes_read = c.bytes_read.load(kRelaxed);
  s.bytes_written = c.bytes_written.load(kRelaxed);
  s.flush = c.flush.Load();
  s.connections_total = c.connections_total.load(kRelaxed);
  return s;
}

std::string RenderPrometheus(const std::vector<ExportSample>& exports) {
  Writer w;
  auto each = [&](const char* name, const char* type, const char* help, auto&& fn) {
    w.Family(name, type, help);
    for (const ExportSample& e : exports) fn(e, "export=\"" + Escape(e.name) + "\"");
  };
  using S = hyperfile::StoreMetricsSnapshot;
  each("hyperfile_nbd_requests_total", "counter", "NBD requests served, by operation and outcome.",
       [&](const ExportSample& e, const std::string& l) {
         for (int op = 0; op < kOps; op++) {
           std::string lo = l + ",op=\"" + OpName(op) + "\"";
           w.Sample("hyperfile_nbd_requests_total", lo + ",outcome=\"ok\"", e.ok[op]);
           w.Sample("hyperfile_nbd_requests_total", lo + ",outcome=\"error\"", e.errors[op]);
         }
       });
  each("hyperfile_nbd_bytes_total", "counter", "Bytes read and written by NBD clients.",
       [&](const ExportSample& e, const std::string& l) {
         w.Sample("hyperfile_nbd_bytes_total", l + ",direction=\"read\"", e.bytes_read);
         w.Sample("hyperfile_nbd_bytes_total", l + ",direction=\"write\"", e.bytes_written);
       });
  each("hyperfile_nbd_request_duration_seconds", "histogram",
       "Time to serve an NBD request, by operation.",
       [&](const ExportSample& e, const std::string& l) {
         for (int op = 0; op < kOps; op++) {
           w.Histogram("hyperfile_nbd_request_duration_seconds", l + ",op=\"" + OpName(op) + "\"",
                       e.latency[op]);
         }
       });
  each("hyperfile_flush_duration_seconds", "histogram",
       "Time of each flush (NBD flush, FUA, disconnect, close): commits what was dirty.",
       [&](const ExportSample& e, const std::string& l) {
         w.Histogram("hyperfile_flush_duration_seconds", l, e.flush);
       });
  each("hyperfile_commit_duration_seconds", "histogram",
       "Wire time of each checkpoint commit (the create-only PUT of a segment).",
       [&](const ExportSample& e, const std::string& l) {
         w.Histogram("hyperfile_commit_duration_seconds", l, e.store.commit_latency);
       });
  each("hyperfile_store_requests_total", "counter",
       "Object store requests on the wire (every attempt), by verb and outcome.",
       [&](const ExportSample& e, const std::string& l) {
         for (int v = 0; v < S::kVerbs; v++) {
           for (int c = 0; c < S::kCodes; c++) {
             // Outcomes never seen are left out, except ok (always present).
             if (c != 0 && e.store.outcomes[v][c] == 0) continue;
             w.Sample("hyperfile_store_requests_total",
                      l + ",verb=\"" +
                          hyperfile::StoreVerbName(static_cast<hyperfile::StoreVerb>(v)) +
                          "\",outcome=\"" + hyperfile::StoreOutcomeName(c) + "\"",
                      e.store.outcomes[v][c]);
           }
         }
       });
  each("hyperfile_store_bytes_total", "counter",
       "Bytes received from (GET) and sent to (PUT) the object store.",
       [&](const ExportSample& e, const std::string& l) {
         w.Sample("hyperfile_store_bytes_total", l + ",direction=\"in\"", e.store.bytes_in);
         w.Sample("hyperfile_store_bytes_total", l + ",direction=\"out\"", e.store.bytes_out);
       });
  each("hyperfile_store_request_duration_seconds", "histogram",
       "Latency of object store requests (every attempt), by verb.",
       [&](const ExportSample& e, const std::string& l) {
         for (int v = 0; v < S::kVerbs; v++) {
           w.Histogram("hyperfile_store_request_duration_seconds",
                       l + ",verb=\"" +
                           hyperfile::StoreVerbName(static_cast<hyperfile::StoreVerb>(v)) + "\"",
                       e.store.latency[v]);
         }
       });
  auto per_verb = [&](const char* name, const char* help, const uint64_t(S::*field)[S::kVerbs]) {
    each(name, "counter", help, [&](const ExportSample& e, const std::string& l) {
      for (int v = 0; v < S::kVerbs; v++) {
        w.Sample(
            name,
            l + ",verb=\"" + hyperfile::StoreVerbName(static_cast<hyperfile::StoreVerb>(v)) + "\"",
            (e.store.*field)[v]);
      }
    });
  };
  per_verb("hyperfile_store_retries_total", "Store requests retried (attempts after the first).",
           &S::retries);
  per_verb("hyperfile_store_throttle_retries_total",
           "Retries after the store throttled (503 SlowDown, 429).", &S::throttle_retries);
  per_verb("hyperfile_store_give_ups_total",
           "Store requests that failed after their retries (attempts or time exhausted).",
           &S::give_ups);
  each("hyperfile_cache_hits_total", "counter",
       "Lookups served by the memory caches (data chunks of 4 KiB, index nodes).",
       [&](const ExportSample& e, const std::string& l) {
         w.Sample("hyperfile_cache_hits_total", l + ",cache=\"block\"", e.block_cache_hits);
         w.Sample("hyperfile_cache_hits_total", l + ",cache=\"index\"", e.index_cache_hits);
       });
  each("hyperfile_cache_misses_total", "counter", "Lookups the memory caches could not serve.",
       [&](const ExportSample& e, const std::string& l) {
         w.Sample("hyperfile_cache_misses_total", l + ",cache=\"block\"", e.block_cache_misses);
         w.Sample("hyperfile_cache_misses_total", l + ",cache=\"index\"", e.index_cache_misses);
       });
  each("hyperfile_cache_bytes", "gauge", "Memory held by the caches of the open handle.",
       [&](const ExportSample& e, const std::string& l) {
         w.Sample("hyperfile_cache_bytes", l + ",cache=\"block\"", e.block_cache_bytes);
         w.Sample("hyperfile_cache_bytes", l + ",cache=\"index\"", e.index_cache_bytes);
       });
  each("hyperfile_dirty_bytes", "gauge", "Bytes written and not yet flushed.",
       [&](const ExportSample& e, const std::string& l) {
         w.Sample("hyperfile_dirty_bytes", l, e.dirty_bytes);
       });
  each("hyperfile_checkpoint", "gauge", "Checkpoint id of the open handle (0 when closed).",
       [&](const ExportSample& e, const std::string& l) {
         w.Sample("hyperfile_checkpoint", l, e.checkpoint);
       });
  each("hyperfile_size_bytes", "gauge", "Logical size of the open file.",
       [&](const ExportSample& e, const std::string& l) {
         w.Sample("hyperfile_size_bytes", l, e.size);
       });
  each("hyperfile_export_open", "gauge", "1 while the export's file is open.",
       [&](const ExportSample& e, const std::string& l) {
         w.Sample("hyperfile_export_open", l, e.open ? 1 : 0);
       });
  each("hyperfile_nbd_connections", "gauge", "NBD connections open now.",
       [&](const ExportSample& e, const std::string& l) {
         w.Sample("hyperfile_nbd_connections", l, static_cast<uint64_t>(e.connections));
       });
  each("hyperfile_nbd_connections_total", "counter", "NBD connections opened.",
       [&](const ExportSample& e, const std::string& l) {
         w.Sample("hyperfile_nbd_connections_total", l, e.connections_total);
       });
  return w.Take();
}

// ---------------------------------------------------------------- HTTP ---
struct MetricsHttpAccess {
  static MHD_Result Handle(void* cls, MHD_Connection* connection, const char* url,
                           const char* method, const char*, const char*, size_t* upload_size,
                           void** state) {
    auto* self = static_cast<MetricsHttp*>(cls);
    static int first_call_marker;
    if (*state == nullptr) {  // headers only so far: answer on the next call
      *state = &first_call_marker;
      return MHD_YES;
    }
    unsigned code = MHD_HTTP_OK;
    std::string body;
    bool get = std::strcmp(method, "GET") == 0, head = std::strcmp(method, "HEAD") == 0;
    if (*upload_size != 0) {
      *upload_size = 0;  // a body is never wanted: drop it
      code = MHD_HTTP_BAD_REQUEST;
      body = "no request body accepted\n";
    } else if (!get && !head) {
      code = MHD_HTTP_METHOD_NOT_ALLOWED;
      body = "only GET\n";
    } else if (std::strcmp(url, "/metrics") != 0) {
      code = MHD_HTTP_NOT_FOUND;
      body = "metrics are at /metrics\n";
    } else {
      try {
        body = self->render_();
      } catch (...) {
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
        body = "rendering failed\n";
      }
    }
    MHD_Response* response =
        MHD_create_response_from_buffer(body.size(), body.data(), MHD_RESPMEM_MUST_COPY);
    if (response == nullptr) return MHD_NO;
    MHD_add_response_header(response, "Content-Type",
                            code == MHD_HTTP_OK ? "text/plain; version=0.0.4; charset=utf-8"
                                                : "text/plain; charset=utf-8");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
      MHD_add_response_header(response, "Allow", "GET, HEAD");
    MHD_Result r = MHD_queue_response(connection, code, response);
    MHD_destroy_response(response);
    return r;
  }
};

std::unique_ptr<MetricsHttp> MetricsHttp::Listen(const std::string& address, std::string* error) {
  std::string host, port;
  if (address.starts_with("[")) {
    size_t close = address.find("]:");
    if (close == std::string::npos) {
      *error = "expected [IPV6]:PORT";
      return nullptr;
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos || address.find(':') != colon) {
      *error = "expected ADDRESS:PORT (e.g. 127.0.0.1:9135, [::1]:9135, 0.0.0.0:9135)";
      return nullptr;
    }
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535) {
    *error = "expected ADDRESS:PORT with a port from 0 to 65535";
    return nullptr;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    *error = std::string("cannot resolve: ") + ::gai_strerror(rc);
    return nullptr;
  }
  int fd = -1;
  std::string last = "no address";
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
      last = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    *error = "cannot listen: " + last;
    return nullptr;
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  char name[INET6_ADDRSTRLEN] = "?";
  int bound_port = 0;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&ss);
      ::inet_ntop(AF_INET, &in->sin_addr, name, sizeof name);
      bound_port = ntohs(in->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, name, sizeof name);
      bound_port = ntohs(in6->sin6_port);
    }
  }
  std::unique_ptr<MetricsHttp> http(new MetricsHttp);
  http->fd_ = fd;
  http->bound_ = (ss.ss_family == AF_INET6 ? "[" + std::string(name) + "]" : std::string(name)) +
                 ":" + std::to_string(bound_port);
  return http;
}

bool MetricsHttp::Start(Renderer render, std::string* error) {
  render_ = std::move(render);
  daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, nullptr, nullptr,
                             &MetricsHttpAccess::Handle, this, MHD_OPTION_LISTEN_SOCKET, fd_,
                             MHD_OPTION_CONNECTION_LIMIT, 8u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, static_cast<size_t>(32 * 1024),
                             MHD_OPTION_END);
  if (daemon_ == nullptr) {
    *error = "libmicrohttpd could not start on " + bound_;
    return false;
  }
  return true;
}

void MetricsHttp::Stop() {
  if (daemon_ != nullptr) {
    MHD_stop_daemon(daemon_);
    daemon_ = nullptr;
  }
}

MetricsHttp::~MetricsHttp() {
  Stop();
  if (fd_ >= 0) ::close(fd_);
}

// ------------------------------------------------------------ textfile ---
bool MetricsFile::WriteOnce(std::string* error) {
  std::string text = render_();
  std::string tmp = path_ + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *error = "create " + tmp + ": " + std::strerror(errno);
    return false;
  }
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = "write " + tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), path_.c_str()) != 0) {
    *error = "rename " + tmp + " to " + path_ + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

void MetricsFile::Start(Renderer render) {
  render_ = std::move(render);
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    std::string last_error;
    while (!cv_.wait_for(lock, interval_, [this] { return stop_; })) {
      lock.unlock();
      std::string error;
      if (!WriteOnce(&error) && error != last_error)
        nbdkit_error("metrics-file: %s", error.c_str());
      last_error = error;
      lock.lock();
    }
  });
}

void MetricsFile::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  std::string error;
  if (!WriteOnce(&error)) nbdkit_error("metrics-file: %s", error.c_str());
}

}  // namespace hyperfile_nbd
