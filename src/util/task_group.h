// SPDX-License-Identifier: Apache-2.0
// The tasks one owner (a file handle) runs on a thread pool that may be
// shared with other owners: Wait() (and the destructor) return once every
// task the group submitted has finished, so the owner can destroy what its
// tasks use. A ThreadPool's own destructor gives that only for a pool with a
// single owner.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <future>
#include <memory>
#include <mutex>
#include <utility>

#include "util/thread_pool.h"

namespace hyperfile {

class TaskGroup {
 public:
  TaskGroup() = default;
  explicit TaskGroup(ThreadPool* pool) : pool_(pool) {}
  ~TaskGroup() { Wait(); }
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  // Must be called before the first Submit (and not again).
  void Reset(ThreadPool* pool) { pool_ = pool; }
  ThreadPool* pool() const { return pool_; }

  template <typename Fn>
  auto Submit(Fn fn) -> std::future<decltype(fn())> {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      state_->running++;
    }
    // The state outlives the group if a task finishes after Wait() saw
    // zero — it cannot (Wait waits for the decrement), but shared ownership
    // keeps the decrement safe whatever the order of wake-ups.
    return pool_->Submit([state = state_, fn = std::move(fn)]() mutable {
      struct Done {
        State* s;
        ~Done() {
          std::lock_guard<std::mutex> lock(s->mu);
          if (--s->running == 0) s->cv.notify_all();
        }
      } done{state.get()};
      return fn();
    });
  }

  // Returns once every submitted task has finished (tasks queued behind
  // other owners' work included).
  void Wait() {
    std::unique_lock<std::mutex> lock(state_->mu);
    state_->cv.wait(lock, [this] { return state_->running == 0; });
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    size_t running = 0;
  };
  ThreadPool* pool_ = nullptr;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace hyperfile
