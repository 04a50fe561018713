// SPDX-License-Identifier: Apache-2.0
// Key sources for front ends: key files, HYPERFILE_KEY_FILE / HYPERFILE_KEY
// and their precedence, passphrases from a pipe and from a terminal (a pty)
// with echo off.
#include "crypto/key_source.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

namespace hyperfile::crypto {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "hf-keysrc-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& body) const {
    std::string p = (fs::path(path_) / name).string();
    std::ofstream(p, std::ios::binary) << body;
    return p;
  }

 private:
  std::string path_;
};

std::string Raw(const SecretKey& k) { return {reinterpret_cast<const char*>(k.data()), 32}; }

const std::string kHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

std::string KeyBytes(char first) {
  std::string s;
  for (int i = 0; i < 32; i++) s.push_back(static_cast<char>(first + i));
  return s;
}

TEST(KeyFile, RawTextMissingAndTooLarge) {
  TempDir dir;
  auto raw = ReadKeyFile(dir.Write("raw", KeyBytes(0)));
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  EXPECT_EQ(Raw(*raw), KeyBytes(0));
  auto text = ReadKeyFile(dir.Write("hex", kHex + "\n"));
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  EXPECT_EQ(Raw(*text), KeyBytes(0));

  auto missing = ReadKeyFile(dir.Write("x", "") + ".nope");
  ASSERT_TRUE(missing.status().IsNotFound());
  EXPECT_NE(missing.status().message().find(".nope: no such file"), std::string::npos);

  auto big = ReadKeyFile(dir.Write("big", std::string(100000, 'a')));
  ASSERT_TRUE(big.status().IsInvalidArgument());
  EXPECT_NE(big.status().message().find("at most 4096 bytes"), std::string::npos);

  const std::string secret = "my secret passphrase, not a key";
  auto bad = ReadKeyFile(dir.Write("bad", secret));
  ASSERT_TRUE(bad.status().IsInvalidArgument());
  EXPECT_NE(bad.status().message().find("key file "), std::string::npos);
  EXPECT_EQ(bad.status().message().find(secret), std::string::npos);

  auto dir_as_file = ReadKeyFile(fs::temp_directory_path().string());
  EXPECT_FALSE(dir_as_file.ok());
}

TEST(KeySourceOptions, PrecedenceFlagThenFileVariableThenKeyVariable) {
  TempDir dir;
  const std::string flag_file = dir.Write("flag", KeyBytes(1));
  const std::string env_file = dir.Write("env", KeyBytes(2));
  std::map<std::string, std::string> env = {{"HYPERFILE_KEY_FILE", env_file},
                                            {"HYPERFILE_KEY", kHex}};
  KeySourceOptions o;
  o.getenv = [&env](const char* name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  auto describe = [&](const KeySourceOptions& opts) {
    auto s = KekSourceFromOptions(opts);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() && s->has_value() ? (*s)->Describe() : std::string("none");
  };
  auto expect = [](const std::string& bytes) {
    return KekSource::FromKey(SecretKey::FromBytes(bytes, "k").value()).Describe();
  };
  o.key_file = flag_file;
  EXPECT_EQ(describe(o), expect(KeyBytes(1)));
  o.key_file.clear();
  EXPECT_EQ(describe(o), expect(KeyBytes(2)));
  env.erase("HYPERFILE_KEY_FILE");
  EXPECT_EQ(describe(o), expect(KeyBytes(0)));
  env["HYPERFILE_KEY_FILE"] = "";  // empty = unset
  EXPECT_EQ(describe(o), expect(KeyBytes(0)));
  env.clear();
  EXPECT_EQ(describe(o), "none");
  env["HYPERFILE_KEY"] = "";
  EXPECT_EQ(describe(o), "none");

  env["HYPERFILE_KEY"] = "hunter2-not-a-key";
  auto bad = KekSourceFromOptions(o);
  ASSERT_TRUE(bad.status().IsInvalidArgument());
  EXPECT_NE(bad.status().message().find("HYPERFILE_KEY: not a key"), std::string::npos);
  EXPECT_EQ(bad.status().message().find("hunter2"), std::string::npos);

  env["HYPERFILE_KEY_FILE"] = dir.Write("gone", "") + ".missing";
  auto missing = KekSourceFromOptions(o);
  ASSERT_TRUE(missing.status().IsNotFound()) << missing.status().ToString();
}

// Writes `input` into a pipe and reads passphrases from it.
struct Pipe {
  int fds[2] = {-1, -1};
  explicit Pipe(const std::string& input) {
    EXPECT_EQ(pipe(fds), 0);
    EXPECT_EQ(write(fds[1], input.data(), input.size()), static_cast<ssize_t>(input.size()));
    close(fds[1]);
  }
  ~Pipe() { close(fds[0]); }
};

TEST(Passphrase, FromAPipeOneLineAtATime) {
  Pipe p("first one\nsecond\r\n\nlast-without-newline");
  auto a = ReadPassphrase(p.fds[0], -1, "unused: ");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->view(), "first one");
  auto b = ReadPassphrase(p.fds[0], -1, "");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->view(), "second");
  EXPECT_TRUE(ReadPassphrase(p.fds[0], -1, "").status().IsInvalidArgument());  // empty line
  auto c = ReadPassphrase(p.fds[0], -1, "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->view(), "last-without-newline");
  auto eof = ReadPassphrase(p.fds[0], -1, "");
  EXPECT_TRUE(eof.status().IsIOError()) << eof.status().ToString();

  Pipe big(std::string(5000, 'x') + "\n");
  EXPECT_TRUE(ReadPassphrase(big.fds[0], -1, "").status().IsInvalidArgument());
  Pipe max(std::string(4096, 'x') + "\n");
  auto m = ReadPassphrase(max.fds[0], -1, "");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->size(), 4096u);
}

// Everything the terminal side shows within a short bounded wait.
std::string Drain(int master) {
  std::string out;
  for (int i = 0; i < 50; i++) {
    pollfd pfd{master, POLLIN, 0};
    if (poll(&pfd, 1, 20) <= 0) break;
    char buf[256];
    ssize_t n = read(master, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

TEST(Passphrase, OnATerminalThePromptShowsAndTheInputDoesNotEcho) {
  int master = -1, slave = -1;
  ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  termios t{};
  ASSERT_EQ(tcgetattr(slave, &t), 0);
  ASSERT_TRUE(t.c_lflag & ECHO);  // a fresh pty echoes
  // Type the line from another thread once the prompt has appeared (echo
  // is off from before the prompt is written, so no sleep is needed).
  std::string shown;
  std::thread typist([&] {
    for (int i = 0; i < 500 && shown.find("Passphrase: ") == std::string::npos; i++) {
      shown += Drain(master);
    }
    (void)!write(master, "hunter2\n", 8);
    shown += Drain(master);
  });
  auto p = ReadPassphrase(slave, slave, "Passphrase: ");
  typist.join();
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->view(), "hunter2");
  shown += Drain(master);
  EXPECT_NE(shown.find("Passphrase: "), std::string::npos) << shown;
  EXPECT_EQ(shown.find("hunter2"), std::string::npos) << "echoed: " << shown;
  ASSERT_EQ(tcgetattr(slave, &t), 0);
  EXPECT_TRUE(t.c_lflag & ECHO) << "echo was not restored";
  close(master);
  close(slave);
}

TEST(Passphrase, ANewOneIsReadTwiceAndMustMatch) {
  Pipe same("correct horse\ncorrect horse\n");
  auto a = ReadNewPassphrase(same.fds[0], -1, "new: ", "again: ");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->view(), "correct horse");
  for (const char* input : {"correct horse\ncorrect horsf\n", "correct horse\ncorrect hors\n",
                            "correct horse\ncorrect horse!\n"}) {
    Pipe differ(input);
    auto b = ReadNewPassphrase(differ.fds[0], -1, "new: ", "again: ");
    ASSERT_TRUE(b.status().IsInvalidArgument()) << input << ": " << b.status().ToString();
    EXPECT_EQ(b.status().message(), "the passphrases do not match");
  }
  Pipe one("correct horse\n");  // the second read ends the input
  EXPECT_TRUE(ReadNewPassphrase(one.fds[0], -1, "new: ", "again: ").status().IsIOError());
}

// On a terminal both prompts show (the second only after the first line),
// nothing typed echoes, and a mismatch is refused.
TEST(Passphrase, ANewOneOnATerminalIsAskedTwice) {
  for (bool match : {true, false}) {
    int master = -1, slave = -1;
    ASSERT_EQ(openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
    std::string shown;
    std::thread typist([&] {
      auto type_after = [&](const char* prompt, const char* line) {
        for (int i = 0; i < 500 && shown.find(prompt) == std::string::npos; i++) {
          shown += Drain(master);
        }
        (void)!write(master, line, strlen(line));
      };
      type_after("New passphrase: ", "s3cret-one\n");
      type_after("Again: ", match ? "s3cret-one\n" : "s3cret-two\n");
      shown += Drain(master);
    });
    auto p = ReadNewPassphrase(slave, slave, "New passphrase: ", "Again: ");
    typist.join();
    shown += Drain(master);
    EXPECT_NE(shown.find("New passphrase: "), std::string::npos) << shown;
    EXPECT_NE(shown.find("Again: "), std::string::npos) << shown;
    EXPECT_EQ(shown.find("s3cret"), std::string::npos) << "echoed: " << shown;
    if (match) {
      ASSERT_TRUE(p.ok()) << p.status().ToString();
      EXPECT_EQ(p->view(), "s3cret-one");
    } else {
      ASSERT_TRUE(p.status().IsInvalidArgument()) << p.status().ToString();
      EXPECT_EQ(p.status().message().find("s3cret"), std::string::npos);
    }
    close(master);
    close(slave);
  }
}

TEST(Passphrase, WithoutATerminalThePromptIsRefused) {
  // The test runner has no controlling terminal under ctest; where it has
  // one (a developer's shell) this test has nothing to check.
  int fd = open("/dev/tty", O_RDWR | O_NOCTTY);
  if (fd >= 0) {
    close(fd);
    GTEST_SKIP() << "a controlling terminal is present";
  }
  auto r = PromptPassphrase("Passphrase: ");
  ASSERT_TRUE(r.status().IsNotSupported()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("no terminal"), std::string::npos);
}

}  // namespace
}  // namespace hyperfile::crypto
