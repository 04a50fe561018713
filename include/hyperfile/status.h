// SPDX-License-Identifier: Apache-2.0
// Status and Result: how every hyperfile operation reports success or failure.
//
// hyperfile never throws across its public API. An operation returns a Status
// (or a Result<T> carrying a value on success). A non-OK status has a Code that
// callers can act on and a message that names the operation and the object or
// argument at fault. Messages never contain secrets.
//
// Both are [[nodiscard]]: ignoring one is a compiler warning. Where ignoring
// an error is deliberate, say so with a (void) cast.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "hyperfile/export.h"

namespace hyperfile {

class [[nodiscard]] HYPERFILE_EXPORT Status {
 public:
  enum class Code : uint8_t {
    kOk = 0,
    kNotFound,            // object, file, checkpoint or snapshot does not exist
    kAlreadyExists,       // create of something that exists (file, snapshot)
    kPreconditionFailed,  // conditional put refused (If-None-Match / If-Match)
    kConflict,            // the file was changed by another writer (fenced)
    kThrottled,           // the store asked us to slow down (503 SlowDown, 429)
    kTransient,           // timeout, connection reset, 5xx: worth retrying
    kAuth,                // bad or missing credentials, access denied
    kInvalidArgument,     // the caller passed something unusable
    kCorrupt,             // an object's bytes fail validation
    kIOError,             // local I/O failure (disk full, permission, ...)
    kReadOnly,            // write to a read-only handle or old checkpoint
    kNotSupported,        // the store or build cannot do this
    kOutOfRange,          // a limit of the format would be exceeded
  };

  Status() = default;  // OK

  static Status OK() { return Status(); }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) { return {Code::kAlreadyExists, std::move(msg)}; }
  static Status PreconditionFailed(std::string msg) {
    return {Code::kPreconditionFailed, std::move(msg)};
  }
  static Status Conflict(std::string msg) { return {Code::kConflict, std::move(msg)}; }
  static Status Throttled(std::string msg) { return {Code::kThrottled, std::move(msg)}; }
  static Status Transient(std::string msg) { return {Code::kTransient, std::move(msg)}; }
  static Status Auth(std::string msg) { return {Code::kAuth, std::move(msg)}; }
  static Status InvalidArgument(std::string msg) {
    return {Code::kInvalidArgument, std::move(msg)};
  }
  static Status Corrupt(std::string msg) { return {Code::kCorrupt, std::move(msg)}; }
  static Status IOError(std::string msg) { return {Code::kIOError, std::move(msg)}; }
  static Status ReadOnly(std::string msg) { return {Code::kReadOnly, std::move(msg)}; }
  static Status NotSupported(std::string msg) { return {Code::kNotSupported, std::move(msg)}; }
  static Status OutOfRange(std::string msg) { return {Code::kOutOfRange, std::move(msg)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsAlreadyExists() const { return code_ == Code::kAlreadyExists; }
  bool IsPreconditionFailed() const { return code_ == Code::kPreconditionFailed; }
  bool IsConflict() const { return code_ == Code::kConflict; }
  bool IsThrottled() const { return code_ == Code::kThrottled; }
  bool IsTransient() const { return code_ == Code::kTransient; }
  bool IsAuth() const { return code_ == Code::kAuth; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsCorrupt() const { return code_ == Code::kCorrupt; }
  bool IsIOError() const { return code_ == Code::kIOError; }
  bool IsReadOnly() const { return code_ == Code::kReadOnly; }
  bool IsNotSupported() const { return code_ == Code::kNotSupported; }
  bool IsOutOfRange() const { return code_ == Code::kOutOfRange; }
  // Worth retrying with backoff: transient or throttled.
  bool IsRetryable() const { return code_ == Code::kTransient || code_ == Code::kThrottled; }

  // "NotFound: get s3://bucket/prefix/key: ..." for logs and error output.
  std::string ToString() const;
  static std::string_view CodeName(Code code);

  // Returns a copy whose message is prefixed with context ("open file:///x: ").
  Status WithContext(std::string_view context) const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

namespace internal {
// Prints "hyperfile: value() of a failed Result: <status>" to stderr and
// aborts. Never returns.
[[noreturn]] HYPERFILE_EXPORT void DieOnBadResultAccess(const Status& status);
}  // namespace internal

// A value or a non-OK Status. Check ok() before using the value: value(),
// operator* and operator-> on a failed Result abort the process with the
// error's message (never undefined behaviour).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit on purpose
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit on purpose
    if (status_.ok()) status_ = Status::InvalidArgument("Result constructed from OK status");
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return Checked(); }
  const T& value() const& { return Checked(); }
  T&& value() && { return std::move(Checked()); }
  T* operator->() { return &Checked(); }
  const T* operator->() const { return &Checked(); }
  T& operator*() & { return Checked(); }
  const T& operator*() const& { return Checked(); }

 private:
  T& Checked() {
    if (!value_) internal::DieOnBadResultAccess(status_);
    return *value_;
  }
  const T& Checked() const {
    if (!value_) internal::DieOnBadResultAccess(status_);
    return *value_;
  }
  Status status_;
  std::optional<T> value_;
};

}  // namespace hyperfile

// Internal helpers used across the code base.
#define HF_RETURN_IF_ERROR(expr)         \
  do {                                   \
    ::hyperfile::Status _hf_st = (expr); \
    if (!_hf_st.ok()) return _hf_st;     \
  } while (0)

#define HF_CONCAT_INNER(a, b) a##b
#define HF_CONCAT(a, b) HF_CONCAT_INNER(a, b)
#define HF_ASSIGN_OR_RETURN(lhs, expr) \
  HF_ASSIGN_OR_RETURN_IMPL(HF_CONCAT(_hf_res_, __LINE__), lhs, expr)
#define HF_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
