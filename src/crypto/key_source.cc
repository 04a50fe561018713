// SPDX-License-Identifier: Apache-2.0
#include "crypto/key_source.h"

#include <fcntl.h>
#include <sodium.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace hyperfile::crypto {

namespace {

constexpr size_t kMaxKeyFileBytes = 4096;
constexpr size_t kMaxLine = kMaxPassphraseBytes;

std::string Errno(int e) { return std::strerror(e); }

std::optional<std::string> RealGetenv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

// Restores a terminal's attributes when it goes out of scope.
class EchoOff {
 public:
  explicit EchoOff(int fd) : fd_(fd) {
    if (tcgetattr(fd_, &saved_) != 0) return;
    termios quiet = saved_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ICANON;
    active_ = tcsetattr(fd_, TCSAFLUSH, &quiet) == 0;
  }
  ~EchoOff() {
    if (active_) (void)tcsetattr(fd_, TCSAFLUSH, &saved_);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

}  // namespace

Result<SecretKey> ReadKeyFile(const std::string& path) {
  const std::string what = "key file " + path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return Status::NotFound(what + ": no such file");
    return Status::IOError(what + ": " + Errno(e));
  }
  auto buf = SecureBuffer::Allocate(kMaxKeyFileBytes + 1);
  if (!buf.ok()) {
    ::close(fd);
    return buf.status();
  }
  size_t got = 0;
  while (got < buf->size()) {
    ssize_t n = ::read(fd, buf->data() + got, buf->size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return Status::IOError(what + ": " + Errno(e));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got > kMaxKeyFileBytes) {
    return Status::InvalidArgument(what + ": a key file is at most 4096 bytes");
  }
  buf->Shrink(got);
  return SecretKey::FromKeyFileContents(buf->view(), what);
}

Result<std::optional<KekSource>> KekSourceFromOptions(const KeySourceOptions& options) {
  auto env = options.getenv ? options.getenv : RealGetenv;
  std::string path = options.key_file;
  if (path.empty()) {
    auto v = env("HYPERFILE_KEY_FILE");
    if (v && !v->empty()) path = *v;
  }
  if (!path.empty()) {
    auto key = ReadKeyFile(path);
    if (!key.ok()) return key.status();
    return std::optional<KekSource>(KekSource::FromKey(std::move(*key)));
  }
  auto text = env("HYPERFILE_KEY");
  if (text && !text->empty()) {
    auto key = SecretKey::FromText(*text, "HYPERFILE_KEY");
    sodium_memzero(text->data(), text->size());  // our copy of the variable
    if (!key.ok()) return key.status();
    return std::optional<KekSource>(KekSource::FromKey(std::move(*key)));
  }
  return std::optional<KekSource>();
}

Result<SecureBuffer> ReadPassphrase(int in_fd, int prompt_fd, std::string_view prompt) {
  const bool tty = isatty(in_fd) == 1;
  std::optional<EchoOff> quiet;
  if (tty) {
    // Echo off first: whatever is typed once the prompt shows stays hidden.
    quiet.emplace(in_fd);
    if (!prompt.empty()) (void)!::write(prompt_fd, prompt.data(), prompt.size());
  }
  auto buf = SecureBuffer::Allocate(kMaxLine + 1);
  if (!buf.ok()) return buf.status();
  size_t got = 0;
  bool line_end = false;
  // One byte at a time, so nothing after the line is consumed.
  while (got < buf->size()) {
    unsigned char c;
    ssize_t n = ::read(in_fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IOError("reading the passphrase: " + Errno(errno));
    if (n == 0) break;
    if (c == '\n') {
      line_end = true;
      break;
    }
    buf->data()[got++] = c;
  }
  if (tty) {
    quiet.reset();
    (void)!::write(prompt_fd, "\n", 1);  // the newline the terminal did not echo
  }
  if (got > kMaxLine) return Status::InvalidArgument("a passphrase is at most 4096 bytes");
  if (got > 0 && buf->data()[got - 1] == '\r') got--;
  if (got == 0) {
    if (!line_end) return Status::IOError("reading the passphrase: end of input");
    return Status::InvalidArgument("the passphrase is empty");
  }
  buf->Shrink(got);
  return buf;
}

Result<SecureBuffer> PromptPassphrase(std::string_view prompt) {
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return Status::NotSupported("no terminal to ask for a passphrase on");
  auto r = ReadPassphrase(fd, fd, prompt);
  ::close(fd);
  return r;
}

Result<SecureBuffer> ReadNewPassphrase(int in_fd, int prompt_fd, std::string_view prompt,
                                       std::string_view again) {
  auto first = ReadPassphrase(in_fd, prompt_fd, prompt);
  if (!first.ok()) return first.status();
  auto second = ReadPassphrase(in_fd, prompt_fd, again);
  if (!second.ok()) return second.status();
  if (first->size() != second->size() ||
      sodium_memcmp(first->data(), second->data(), first->size()) != 0) {
    return Status::InvalidArgument("the passphrases do not match");
  }
  return first;
}

Result<SecureBuffer> PromptNewPassphrase(std::string_view prompt, std::string_view again) {
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return Status::NotSupported("no terminal to ask for a passphrase on");
  auto r = ReadNewPassphrase(fd, fd, prompt, again);
  ::close(fd);
  return r;
}

}  // namespace hyperfile::crypto
