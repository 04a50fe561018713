// SPDX-License-Identifier: Apache-2.0
// The C API (include/hyperfile/hyperfile.h) over the C++ one. Every entry
// point validates its arguments, catches every exception (none may cross into
// C) and records the message of a failure in a thread-local string.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "hyperfile/checkpoints.h"
#include "hyperfile/file.h"
#include "hyperfile/hyperfile.h"
#include "hyperfile/log.h"
#include "hyperfile/object_store.h"
#include "hyperfile/status.h"
#include "hyperfile/version.h"

struct hf_file {
  std::unique_ptr<hyperfile::File> file;
  std::atomic<bool> closed{false};
  std::mutex close_mu;  // one hf_close at a time
};

namespace {

using hyperfile::At;
using hyperfile::File;
using hyperfile::ObjectStore;
using hyperfile::Result;
using hyperfile::Status;

// The C codes 1..14 are Status::Code; checked here so they cannot drift.
static_assert(HF_ENOTFOUND == static_cast<int>(Status::Code::kNotFound));
static_assert(HF_EEXIST == static_cast<int>(Status::Code::kAlreadyExists));
static_assert(HF_EPRECONDITION == static_cast<int>(Status::Code::kPreconditionFailed));
static_assert(HF_ECONFLICT == static_cast<int>(Status::Code::kConflict));
static_assert(HF_ETHROTTLED == static_cast<int>(Status::Code::kThrottled));
static_assert(HF_ETRANSIENT == static_cast<int>(Status::Code::kTransient));
static_assert(HF_EAUTH == static_cast<int>(Status::Code::kAuth));
static_assert(HF_EINVAL == static_cast<int>(Status::Code::kInvalidArgument));
static_assert(HF_ECORRUPT == static_cast<int>(Status::Code::kCorrupt));
static_assert(HF_EIO == static_cast<int>(Status::Code::kIOError));
static_assert(HF_EROFS == static_cast<int>(Status::Code::kReadOnly));
static_assert(HF_ENOTSUP == static_cast<int>(Status::Code::kNotSupported));
static_assert(HF_ERANGE == static_cast<int>(Status::Code::kOutOfRange));

thread_local std::string last_error;

int Fail(int code, std::string message) {
  try {
    last_error = std::move(message);
  } catch (...) {
    last_error.clear();  // out of memory for the message: keep the code
  }
  return code;
}

int Report(const Status& st) {
  if (st.ok()) return HF_OK;
  return Fail(static_cast<int>(st.code()), st.ToString());
}

// Runs fn (returning an int status), turning exceptions into codes.
template <typename Fn>
int Guard(const char* op, Fn fn) noexcept {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return Fail(HF_ENOMEM, std::string(op) + ": out of memory");
  } catch (const std::exception& e) {
    return Fail(HF_EINTERNAL, std::string(op) + ": internal error: " + e.what());
  } catch (...) {
    return Fail(HF_EINTERNAL, std::string(op) + ": internal error");
  }
}

int Null(const char* op, const char* what) {
  return Fail(HF_EINVAL, std::string(op) + ": " + what + " is NULL");
}

// The handle, or an error code in *rc.
File* Live(const char* op, hf_file* f, int* rc) {
  if (f == nullptr) {
    *rc = Null(op, "file handle");
    return nullptr;
  }
  if (f->closed.load(std::memory_order_acquire) || !f->file) {
    *rc = Fail(HF_ECLOSED, std::string(op) + ": the handle is closed");
    return nullptr;
  }
  return f->file.get();
}

Result<std::shared_ptr<ObjectStore>> Store(const char* uri) { return hyperfile::OpenStore(uri); }

Result<At> Selector(const char* selector) {
  if (selector == nullptr) return At::Latest();
  return At::Parse(selector);
}

int Wrap(std::unique_ptr<File> file, hf_file** out) {
  auto h = std::make_unique<hf_file>();
  h->file = std::move(file);
  *out = h.release();
  return HF_OK;
}

}  // namespace

extern "C" {

const char* hf_status_name(int status) {
  switch (status) {
    case HF_OK:
      return "OK";
    case HF_ECLOSED:
      return "Closed";
    case HF_ENOMEM:
      return "OutOfMemory";
    case HF_EINTERNAL:
      return "Internal";
    default:
      if (status > 0 && status <= HF_ERANGE) {
        return Status::CodeName(static_cast<Status::Code>(status)).data();
      }
      return "Unknown";
  }
}

const char* hf_last_error(void) { return last_error.c_str(); }

const char* hf_version(void) { return HYPERFILE_VERSION_STRING; }

int hf_create(const char* uri, uint32_t block_size, uint64_t size, hf_file** out) {
  return Guard("hf_create", [&]() -> int {
    if (uri == nullptr) return Null("hf_create", "uri");
    if (out == nullptr) return Null("hf_create", "out");
    auto store = Store(uri);
    if (!store.ok()) return Report(store.status());
    hyperfile::CreateOptions create;
    if (block_size != 0) create.block_size = block_size;
    create.initial_size = size;
    auto file = File::Create(std::move(store).value(), create);
    if (!file.ok()) return Report(file.status());
    return Wrap(std::move(file).value(), out);
  });
}

int hf_open(const char* uri, unsigned flags, hf_file** out) {
  return Guard("hf_open", [&]() -> int {
    if (uri == nullptr) return Null("hf_open", "uri");
    if (out == nullptr) return Null("hf_open", "out");
    if ((flags & ~HF_OPEN_READ_ONLY) != 0) {
      return Fail(HF_EINVAL, "hf_open: unknown flags " + std::to_string(flags));
    }
    auto store = Store(uri);
    if (!store.ok()) return Report(store.status());
    hyperfile::OpenOptions options;
    options.read_only = (flags & HF_OPEN_READ_ONLY) != 0;
    auto file = File::Open(std::move(store).value(), options);
    if (!file.ok()) return Report(file.status());
    return Wrap(std::move(file).value(), out);
  });
}

int hf_open_at(const char* uri, const char* selector, hf_file** out) {
  return Guard("hf_open_at", [&]() -> int {
    if (uri == nullptr) return Null("hf_open_at", "uri");
    if (selector == nullptr) return Null("hf_open_at", "selector");
    if (out == nullptr) return Null("hf_open_at", "out");
    auto at = At::Parse(selector);
    if (!at.ok()) return Report(at.status());
    auto store = Store(uri);
    if (!store.ok()) return Report(store.status());
    auto file = File::OpenAt(std::move(store).value(), at.value());
    if (!file.ok()) return Report(file.status());
    return Wrap(std::move(file).value(), out);
  });
}

int hf_close(hf_file* f) {
  return Guard("hf_close", [&]() -> int {
    if (f == nullptr) return Null("hf_close", "file handle");
    std::lock_guard<std::mutex> lock(f->close_mu);
    if (f->closed.exchange(true, std::memory_order_acq_rel)) {
      return Fail(HF_ECLOSED, "hf_close: the handle is already closed");
    }
    // The File object stays until hf_free, so a call racing with this one
    // reaches a closed File (which fails cleanly) rather than freed memory.
    return Report(f->file->Close());
  });
}

void hf_free(hf_file* f) {
  if (f == nullptr) return;
  if (!f->closed.load(std::memory_order_acquire)) (void)hf_close(f);
  delete f;
}

int hf_pread(hf_file* f, void* buf, size_t len, uint64_t offset, size_t* nread) {
  return Guard("hf_pread", [&]() -> int {
    int rc = HF_OK;
    File* file = Live("hf_pread", f, &rc);
    if (file == nullptr) return rc;
    if (buf == nullptr && len > 0) return Null("hf_pread", "buf");
    if (nread == nullptr) return Null("hf_pread", "nread");
    auto n = file->PRead(offset, buf, len);
    if (!n.ok()) return Report(n.status());
    *nread = n.value();
    return HF_OK;
  });
}

int hf_pwrite(hf_file* f, const void* buf, size_t len, uint64_t offset) {
  return Guard("hf_pwrite", [&]() -> int {
    int rc = HF_OK;
    File* file = Live("hf_pwrite", f, &rc);
    if (file == nullptr) return rc;
    if (buf == nullptr && len > 0) return Null("hf_pwrite", "buf");
    return Report(file->PWrite(offset, buf, len));
  });
}

int hf_append(hf_file* f, const void* buf, size_t len, uint64_t* offset) {
  return Guard("hf_append", [&]() -> int {
    int rc = HF_OK;
    File* file = Live("hf_append", f, &rc);
    if (file == nullptr) return rc;
    if (buf == nullptr && len > 0) return Null("hf_append", "buf");
    auto at = file->Append(buf, len);
    if (!at.ok()) return Report(at.status());
    if (offset != nullptr) *offset = at.value();
    return HF_OK;
  });
}

int hf_truncate(hf_file* f, uint64_t size) {
  return Guard("hf_truncate", [&]() -> int {
    int rc = HF_OK;
    File* file = Live("hf_truncate", f, &rc);
    if (file == nullptr) return rc;
    return Report(file->Truncate(size));
  });
}

int hf_punch_hole(hf_file* f, uint64_t offset, uint64_t len) {
  return Guard("hf_punch_hole", [&]() -> int {
    int rc = HF_OK;
    File* file = Live("hf_punch_hole", f, &rc);
    if (file == nullptr) return rc;
    return Report(file->PunchHole(offset, len));
  });
}

int hf_write_zeroes(hf_file* f, uint64_t offset, uint64_t len) {
  return Guard("hf_write_zeroes", [&]() -> int {
    int rc = HF_OK;
    File* file = Live("hf_write_zeroes", f, &rc);
    if (file == nullptr) return rc;
    return Report(file->WriteZeroes(offset, len));
  });
}

int hf_flush(hf_file* f, uint64_t* checkpoint) {
  return Guard("hf_flush", [&]() -> int {
    int rc = HF_OK;
    File* file = Live("hf_flush", f, &rc);
    if (file == nullptr) return rc;
    auto id = file->Flush();
    if (!id.ok()) return Report(id.status());
    if (checkpoint != nullptr) *checkpoint = id.value();
    return HF_OK;
  });
}

int hf_fstat(hf_file* f, hf_stat* out) {
  return Guard("hf_fstat", [&]() -> int {
    int rc = HF_OK;
    File* file = Live("hf_fstat", f, &rc);
    if (file == nullptr) return rc;
    if (out == nullptr) return Null("hf_fstat", "out");
    auto st = file->Stat();
    if (!st.ok()) return Report(st.status());
    const hyperfile::FileStat& s = st.value();
    hf_stat r{};
    r.size = s.size;
    r.allocated_bytes = s.allocated_bytes;
    r.block_size = s.block_size;
    r.read_only = s.read_only ? 1 : 0;
    r.checkpoint = s.checkpoint;
    r.create_time_ms = s.create_time_ms;
    r.mtime_ms = s.mtime_ms;
    r.checkpoint_time_ms = s.checkpoint_time_ms;
    r.dirty_bytes = s.dirty_bytes;
    *out = r;
    return HF_OK;
  });
}

int hf_list_checkpoints(const char* uri, size_t limit, hf_checkpoint** list, size_t* count) {
  return Guard("hf_list_checkpoints", [&]() -> int {
    if (uri == nullptr) return Null("hf_list_checkpoints", "uri");
    if (list == nullptr) return Null("hf_list_checkpoints", "list");
    if (count == nullptr) return Null("hf_list_checkpoints", "count");
    auto store = Store(uri);
    if (!store.ok()) return Report(store.status());
    auto cps = hyperfile::ListCheckpoints(std::move(store).value(), limit);
    if (!cps.ok()) return Report(cps.status());
    const auto& v = cps.value();
    hf_checkpoint* a = nullptr;
    if (!v.empty()) {
      a = static_cast<hf_checkpoint*>(std::calloc(v.size(), sizeof(hf_checkpoint)));
      if (a == nullptr) return Fail(HF_ENOMEM, "hf_list_checkpoints: out of memory");
    }
    for (size_t i = 0; i < v.size(); i++) {
      a[i].id = v[i].id;
      a[i].parent = v[i].parent;
      a[i].time_ms = v[i].time_ms;
      a[i].size = v[i].size;
      a[i].bytes_changed = v[i].bytes_changed;
      a[i].restored_from = v[i].restored_from;
    }
    *list = a;
    *count = v.size();
    return HF_OK;
  });
}

void hf_free_checkpoints(hf_checkpoint* list) { std::free(list); }

int hf_resolve(const char* uri, const char* selector, uint64_t* checkpoint) {
  return Guard("hf_resolve", [&]() -> int {
    if (uri == nullptr) return Null("hf_resolve", "uri");
    if (selector == nullptr) return Null("hf_resolve", "selector");
    if (checkpoint == nullptr) return Null("hf_resolve", "checkpoint");
    auto at = At::Parse(selector);
    if (!at.ok()) return Report(at.status());
    auto store = Store(uri);
    if (!store.ok()) return Report(store.status());
    auto id = hyperfile::ResolveAt(std::move(store).value(), at.value());
    if (!id.ok()) return Report(id.status());
    *checkpoint = id.value();
    return HF_OK;
  });
}

int hf_snapshot_create(const char* uri, const char* name, const char* selector) {
  return Guard("hf_snapshot_create", [&]() -> int {
    if (uri == nullptr) return Null("hf_snapshot_create", "uri");
    if (name == nullptr) return Null("hf_snapshot_create", "name");
    auto at = Selector(selector);
    if (!at.ok()) return Report(at.status());
    auto store = Store(uri);
    if (!store.ok()) return Report(store.status());
    return Report(hyperfile::CreateSnapshot(std::move(store).value(), name, at.value()));
  });
}

int hf_snapshot_list(const char* uri, hf_snapshot** list, size_t* count) {
  return Guard("hf_snapshot_list", [&]() -> int {
    if (uri == nullptr) return Null("hf_snapshot_list", "uri");
    if (list == nullptr) return Null("hf_snapshot_list", "list");
    if (count == nullptr) return Null("hf_snapshot_list", "count");
    auto store = Store(uri);
    if (!store.ok()) return Report(store.status());
    auto snaps = hyperfile::ListSnapshots(std::move(store).value());
    if (!snaps.ok()) return Report(snaps.status());
    const auto& v = snaps.value();
    hf_snapshot* a = nullptr;
    if (!v.empty()) {
      a = static_cast<hf_snapshot*>(std::calloc(v.size(), sizeof(hf_snapshot)));
      if (a == nullptr) return Fail(HF_ENOMEM, "hf_snapshot_list: out of memory");
    }
    for (size_t i = 0; i < v.size(); i++) {
      a[i].name = static_cast<char*>(std::malloc(v[i].name.size() + 1));
      if (a[i].name == nullptr) {
        hf_free_snapshots(a, i);
        return Fail(HF_ENOMEM, "hf_snapshot_list: out of memory");
      }
      std::memcpy(a[i].name, v[i].name.c_str(), v[i].name.size() + 1);
      a[i].checkpoint = v[i].checkpoint;
      a[i].created_ms = v[i].created_ms;
    }
    *list = a;
    *count = v.size();
    return HF_OK;
  });
}

void hf_free_snapshots(hf_snapshot* list, size_t count) {
  if (list == nullptr) return;
  for (size_t i = 0; i < count; i++) std::free(list[i].name);
  std::free(list);
}

int hf_snapshot_delete(const char* uri, const char* name) {
  return Guard("hf_snapshot_delete", [&]() -> int {
    if (uri == nullptr) return Null("hf_snapshot_delete", "uri");
    if (name == nullptr) return Null("hf_snapshot_delete", "name");
    auto store = Store(uri);
    if (!store.ok()) return Report(store.status());
    return Report(hyperfile::DeleteSnapshot(std::move(store).value(), name));
  });
}

int hf_restore(const char* uri, const char* selector, uint64_t* checkpoint) {
  return Guard("hf_restore", [&]() -> int {
    if (uri == nullptr) return Null("hf_restore", "uri");
    if (selector == nullptr) return Null("hf_restore", "selector");
    auto at = At::Parse(selector);
    if (!at.ok()) return Report(at.status());
    auto store = Store(uri);
    if (!store.ok()) return Report(store.status());
    auto id = hyperfile::Restore(std::move(store).value(), at.value());
    if (!id.ok()) return Report(id.status());
    if (checkpoint != nullptr) *checkpoint = id.value();
    return HF_OK;
  });
}

int hf_clone(const char* src, const char* selector, const char* dst, uint64_t* checkpoint) {
  return Guard("hf_clone", [&]() -> int {
    if (src == nullptr) return Null("hf_clone", "src");
    if (dst == nullptr) return Null("hf_clone", "dst");
    auto at = Selector(selector);
    if (!at.ok()) return Report(at.status());
    auto from = Store(src);
    if (!from.ok()) return Report(from.status());
    auto to = Store(dst);
    if (!to.ok()) return Report(to.status());
    auto id = hyperfile::Clone(std::move(from).value(), at.value(), std::move(to).value());
    if (!id.ok()) return Report(id.status());
    if (checkpoint != nullptr) *checkpoint = id.value();
    return HF_OK;
  });
}

void hf_set_log_callback(hf_log_callback callback, void* context) {
  try {
    if (callback == nullptr) {
      (void)hyperfile::SetLogHandler(nullptr);
      return;
    }
    (void)hyperfile::SetLogHandler(
        [callback, context](hyperfile::LogLevel level, std::string_view message) {
          std::string line(message);  // NUL-terminated for C
          callback(static_cast<int>(level), line.c_str(), context);
        });
  } catch (...) {
    (void)Fail(HF_ENOMEM, "hf_set_log_callback: out of memory");
  }
}

}  // extern "C"
