// SPDX-License-Identifier: Apache-2.0
#include "hyperfile/status.h"

#include <cstdio>
#include <cstdlib>

namespace hyperfile {

std::string_view Status::CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kNotFound:
      return "NotFound";
    case Code::kAlreadyExists:
      return "AlreadyExists";
    case Code::kPreconditionFailed:
      return "PreconditionFailed";
    case Code::kConflict:
      return "Conflict";
    case Code::kThrottled:
      return "Throttled";
    case Code::kTransient:
      return "Transient";
    case Code::kAuth:
      return "Auth";
    case Code::kInvalidArgument:
      return "InvalidArgument";
    case Code::kCorrupt:
      return "Corrupt";
    case Code::kIOError:
      return "IOError";
    case Code::kReadOnly:
      return "ReadOnly";
    case Code::kNotSupported:
      return "NotSupported";
    case Code::kOutOfRange:
      return "OutOfRange";
  }
  return "Unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(CodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message_;
  return Status(code_, std::move(msg));
}

namespace internal {

void DieOnBadResultAccess(const Status& status) {
  std::fprintf(stderr, "hyperfile: value() of a failed Result: %s\n", status.ToString().c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace internal

}  // namespace hyperfile
