// SPDX-License-Identifier: Apache-2.0
// The two ends of `hyperfile cp`: where bytes come from and where they go,
// each either an ordinary local file or a hyperfile.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hyperfile/checkpoints.h"
#include "hyperfile/encryption.h"
#include "hyperfile/file.h"
#include "hyperfile/status.h"

namespace hyperfile::cli {

// Something to copy from. Read() may be called from many threads at once.
class CopySource {
 public:
  virtual ~CopySource() = default;
  virtual uint64_t Size() const = 0;
  // The hyperfile's block size; 0 for a local file.
  virtual uint32_t BlockSize() const = 0;
  // Sorted, disjoint ranges that may hold data; everything else reads as zeros
  // and is never read.
  virtual Result<std::vector<ByteRange>> DataRanges() = 0;
  // Reads exactly len bytes at offset (the range lies within Size()).
  virtual Status Read(uint64_t offset, char* buf, size_t len) = 0;
};

// Something to copy into. Write() may be called from many threads at once, on
// disjoint ranges. Unwritten ranges read as zeros.
class CopySink {
 public:
  virtual ~CopySink() = default;
  // Writes are most efficient in whole, aligned blocks of this size, and an
  // all-zero block need not be written at all.
  virtual uint32_t BlockSize() const = 0;
  virtual Status Write(uint64_t offset, const char* buf, size_t len) = 0;
  // Sets the copy's size (for a source whose size is known only at its end).
  virtual Status Resize(uint64_t size) = 0;
  // Makes the copy durable and visible at the destination. Returns a short
  // note for the summary ("checkpoint 3"), possibly empty.
  virtual Result<std::string> Commit() = 0;
  // After a failure: undoes everything this sink did, so nothing half-done
  // is left at the destination (best effort; the status says what is left).
  virtual Status Discard() = 0;
  // A local file to unlink if the process must die at once (second Ctrl-C),
  // or empty. Stable for the sink's lifetime.
  virtual const std::string& EmergencyUnlinkPath() const = 0;
};

Result<std::unique_ptr<CopySource>> OpenLocalSource(const std::string& path);
Result<std::unique_ptr<CopySource>> OpenHyperfileSource(const std::string& uri, const At& at);

// Writes into a temporary file next to `path`, renamed over it by Commit().
Result<std::unique_ptr<CopySink>> CreateLocalSink(const std::string& path, uint64_t size);

struct HyperfileSinkOptions {
  uint64_t size = 0;                       // the copy's size
  uint32_t block_size = 0;                 // for a new file
  bool block_size_explicit = false;        // an existing file must then match it
  bool force = false;                      // overwrite an existing file
  std::optional<Compression> compression;  // codec of the blocks written (unset: default)
  // A new file is encrypted under this key (null: not encrypted); with
  // force, an existing file must already be encrypted (and open with it).
  std::shared_ptr<const KeySource> encryption_key;
  bool streaming = false;  // written in order from a pipe: small memory budget
};
// Creates the hyperfile at `uri` (or with force, reopens an existing one and
// empties it; its old checkpoints stay in its history).
Result<std::unique_ptr<CopySink>> CreateHyperfileSink(const std::string& uri,
                                                      const HyperfileSinkOptions& options);

}  // namespace hyperfile::cli
