// SPDX-License-Identifier: Apache-2.0
// `hyperfile cp SRC DST`: copies between ordinary local files and hyperfiles.
//
// An argument with a scheme (s3://, file://, memory://) is a hyperfile; a
// hyperfile source may name a state with URI@ID, URI@TIME or URI@SNAPSHOT. A
// bare path is an ordinary local file. At least one side must be a hyperfile.
//
// The copy is sparse on both sides (holes are never read, all-zero blocks
// never written), runs `jobs` workers in parallel, and never leaves anything
// half-done: a local destination is written to a temporary file renamed over
// DST at the end; a newly created hyperfile is removed again if the copy fails.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "hyperfile/encryption.h"
#include "hyperfile/options.h"

namespace hyperfile::cli {

struct CpRequest {
  std::string source;       // local path or URI[@selector]
  std::string destination;  // local path or URI
  uint64_t block_size = 0;  // for a new hyperfile; 0 = the source's, else 64 KiB
  // Codec of the blocks written to a hyperfile DST (unset: the library's
  // default for a new file, the file's own for --force).
  std::optional<Compression> compression;
  // --encrypt: a new hyperfile DST is encrypted under this key (null: not
  // encrypted). Only for a hyperfile DST; an existing one (--force) must
  // already be encrypted.
  std::shared_ptr<const KeySource> encryption_key;
  bool force = false;  // overwrite an existing hyperfile (as a new checkpoint)
  bool quiet = false;  // no progress bar, no summary
  int jobs = 8;        // parallel workers
};

// Runs the copy. Prints progress and a summary (stderr, if it is a terminal)
// and on failure one "hyperfile: error: ..." line. Returns the exit code: 0 on
// success, 1 on error, 130 when interrupted (SIGINT, SIGTERM, SIGHUP).
int RunCp(const CpRequest& request);

}  // namespace hyperfile::cli
