// SPDX-License-Identifier: Apache-2.0
// Where a front end (the CLI, the nbdkit plugin) gets the user's
// key-encryption key from: a key file, the environment, or a passphrase
// typed on the terminal. The library itself never reads the environment or
// a terminal; front ends call this and pass the KekSource on.
//
// Precedence (the first that is given wins; giving none is not an error
// here, the caller decides whether a key is needed):
//   1. an explicit key file (--key-file F)
//   2. HYPERFILE_KEY_FILE   a path to a key file
//   3. HYPERFILE_KEY        key text (64 hex digits or base64 of 32 bytes)
//   4. a passphrase, only when asked for (--passphrase, or the caller found
//      the file locked with one and a terminal is there): PromptPassphrase
// Key files and key text are defined in secret.h (SecretKey::
// FromKeyFileContents, FromText). Errors name the file or the variable,
// never their contents.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "crypto/key_record.h"
#include "crypto/secret.h"
#include "hyperfile/status.h"

namespace hyperfile::crypto {

// Reads a key file: at most 4096 bytes (a larger file is InvalidArgument
// without reading it all), then SecretKey::FromKeyFileContents. NotFound /
// IOError naming the path if it cannot be read. The bytes read pass only
// through secure memory.
Result<SecretKey> ReadKeyFile(const std::string& path);

struct KeySourceOptions {
  std::string key_file;  // --key-file; empty = not given
  // Reads an environment variable (nullopt = unset). Default: getenv.
  std::function<std::optional<std::string>(const char* name)> getenv;
};

// The KekSource from options 1-3 above, or nullopt if none is given. An
// empty variable counts as unset.
Result<std::optional<KekSource>> KekSourceFromOptions(const KeySourceOptions& options);

// Reads one line (a passphrase, without its line end) from `in_fd`, at most
// 4096 bytes, into secure memory. If `in_fd` is a terminal, `prompt` is
// written to `prompt_fd` and echo is turned off while reading (and restored
// afterwards, also on error). InvalidArgument for an empty or too long line;
// IOError if reading fails or ends before any line.
Result<SecureBuffer> ReadPassphrase(int in_fd, int prompt_fd, std::string_view prompt);

// Asks for a passphrase on the controlling terminal (/dev/tty) with echo off.
// NotSupported "no terminal to ask for a passphrase on" without one (a
// script must use a key file).
Result<SecureBuffer> PromptPassphrase(std::string_view prompt);

// A new passphrase (one that will lock a file): read twice from `in_fd`
// (ReadPassphrase, with `prompt`, then `again`), InvalidArgument "the
// passphrases do not match" if the two differ (nothing of either is in the
// message), else the passphrase. Either read's error is returned as is.
Result<SecureBuffer> ReadNewPassphrase(int in_fd, int prompt_fd, std::string_view prompt,
                                       std::string_view again);

// The same on the controlling terminal (/dev/tty), as PromptPassphrase.
Result<SecureBuffer> PromptNewPassphrase(std::string_view prompt, std::string_view again);

}  // namespace hyperfile::crypto
