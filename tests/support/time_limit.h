// SPDX-License-Identifier: Apache-2.0
// Running a call that old code may never return from (an endless loop, a
// blocking open of a FIFO) so that a test fails quickly instead of hanging.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <functional>

namespace hyperfile::testing {

// Runs fn in a forked child killed by SIGALRM after `seconds`: fn's exit
// code, or -1 if the child did not finish in time.
inline int InChildWithin(unsigned seconds, const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) {
    alarm(seconds);
    _exit(fn());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// True if fn returned true within `seconds` (in a child, see InChildWithin).
inline bool RunsWithin(unsigned seconds, const std::function<bool()>& fn) {
  return InChildWithin(seconds, [&] { return fn() ? 0 : 1; }) == 0;
}

}  // namespace hyperfile::testing
