// SPDX-License-Identifier: Apache-2.0
// Threads shared by many open files.
//
// By default every handle starts its own workers: io_parallelism threads for
// parallel store requests, and a writable handle two more for its flush
// stages. An application with many open files gives them one Executor
// instead (OpenOptions::executor): then a read-only handle starts no thread
// at all and a writable one only its flusher (the thread that decides when
// to flush; it sleeps between decisions). Handles keep the executor alive;
// it can be released before them.
//
//   auto executor = hyperfile::Executor::Create({.io_threads = 32}).value();
//   hyperfile::OpenOptions options;
//   options.executor = executor;
//   for (...) files.push_back(hyperfile::File::Open(uri, options).value());
//
// Work of all handles shares the workers first come, first served: one busy
// file can delay another's requests, never block them for good (a task only
// ever waits for I/O tasks, which wait for nothing, so no handle can
// deadlock another).
#pragma once

#include <memory>

#include "hyperfile/export.h"
#include "hyperfile/status.h"

namespace hyperfile {

class ThreadPool;  // internal

class HYPERFILE_EXPORT Executor {
 public:
  struct Options {
    // Workers for store requests (reads, uploads, readahead): 1 .. 1024.
    int io_threads = 16;
    // Workers for writable handles' flush stages (merging partial blocks,
    // building and committing segments; each waits for I/O workers): 1 ..
    // 256. Flushes of more files than this at once wait their turn.
    int flush_threads = 4;
  };
  // InvalidArgument naming the field if one is out of range.
  static Result<std::shared_ptr<Executor>> Create(const Options& options);
  static Result<std::shared_ptr<Executor>> Create() { return Create(Options{}); }

  // Runs every queued task, then joins the workers. Handles hold a
  // reference, so this runs only after the last of them is gone.
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  const Options& options() const { return options_; }

  // Internal: the pools (used by the file layer).
  ThreadPool* io_pool() const { return io_.get(); }
  ThreadPool* flush_pool() const { return flush_.get(); }

 private:
  explicit Executor(const Options& options);
  Options options_;
  std::unique_ptr<ThreadPool> io_;
  std::unique_ptr<ThreadPool> flush_;
};

}  // namespace hyperfile
