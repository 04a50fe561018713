// SPDX-License-Identifier: Apache-2.0
// What the benchmark programs share: running a child process (its exit
// code, or its output), the CPU time this process has used, and deleting
// every object a run left under its root. Header-only; each bench/*.cc is
// its own program (CMakeLists.txt).
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "hyperfile/object_store.h"

namespace bench_util {

namespace internal {

// argv for execvp, made before fork (the child of a process with threads
// may not allocate).
inline std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  return argv;
}

// The exit code of child `pid` once it ended, -1 if it did not exit normally.
inline int Wait(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace internal

// Runs `args` (argv[0] looked up in PATH unless it holds a '/'), stdout and
// stderr appended to `log_path` (empty: /dev/null); returns its exit code,
// -1 if it did not exit normally or could not be started (127: no such
// program).
inline int RunCommand(const std::vector<std::string>& args, const std::string& log_path) {
  if (args.empty()) return -1;
  std::vector<char*> argv = internal::Argv(args);
  const char* log = log_path.empty() ? "/dev/null" : log_path.c_str();
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execvp(argv[0], argv.data());
    _exit(127);
  }
  return internal::Wait(pid);
}

// What CaptureCommand saw.
struct Captured {
  int exit_code = -1;  // as RunCommand's
  std::string out;     // everything the child wrote to stdout (and stderr if asked)
};

// Runs `args` as RunCommand does, stdin and (unless `with_stderr`) stderr
// inherited, and collects its stdout (with stderr in it if `with_stderr`)
// until it closes it; then waits for it to end.
inline Captured CaptureCommand(const std::vector<std::string>& args, bool with_stderr = false) {
  Captured c;
  if (args.empty()) return c;
  std::vector<char*> argv = internal::Argv(args);
  int fds[2];
  if (pipe(fds) != 0) return c;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return c;
  }
  if (pid == 0) {
    dup2(fds[1], 1);
    if (with_stderr) dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  char chunk[4096];
  for (ssize_t k; (k = read(fds[0], chunk, sizeof chunk)) != 0;) {
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) break;
    c.out.append(chunk, static_cast<size_t>(k));
  }
  close(fds[0]);
  c.exit_code = internal::Wait(pid);
  return c;
}

// CPU seconds (user + system) this process has used so far: on a machine
// whose cores are shared (with the S3 gateway, with other builds) the
// client's CPU competes with the gateway's, so the benches report it next
// to throughput.
inline double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

// Deletes every object under the store at `uri` (a listing, then batched
// deletes), also after a failed phase. A store that does not open is
// nothing to clean (OK); a failed listing or delete is returned for the
// caller to report.
inline hyperfile::Status RemoveAll(const std::string& uri) {
  auto store = hyperfile::OpenStore(uri);
  if (!store.ok()) return hyperfile::Status::OK();
  std::vector<hyperfile::ObjectInfo> objects;
  hyperfile::Status st = (*store)->List("", "", 0, &objects);
  std::vector<std::string> keys;
  for (auto& o : objects) keys.push_back(o.key);
  if (st.ok() && !keys.empty()) st = (*store)->DeleteMany(keys);
  return st;
}

}  // namespace bench_util
