// SPDX-License-Identifier: Apache-2.0
#include "hyperfile/executor.h"

#include <string>

#include "util/thread_pool.h"

namespace hyperfile {

Result<std::shared_ptr<Executor>> Executor::Create(const Options& options) {
  if (options.io_threads < 1 || options.io_threads > 1024) {
    return Status::InvalidArgument("Executor: io_threads " + std::to_string(options.io_threads) +
                                   " must be from 1 to 1024");
  }
  if (options.flush_threads < 1 || options.flush_threads > 256) {
    return Status::InvalidArgument("Executor: flush_threads " +
                                   std::to_string(options.flush_threads) +
                                   " must be from 1 to 256");
  }
  return std::shared_ptr<Executor>(new Executor(options));
}

Executor::Executor(const Options& options)
    : options_(options),
      io_(std::make_unique<ThreadPool>(static_cast<size_t>(options.io_threads))),
      flush_(std::make_unique<ThreadPool>(static_cast<size_t>(options.flush_threads))) {}

Executor::~Executor() = default;

}  // namespace hyperfile
