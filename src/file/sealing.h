// SPDX-License-Identifier: Apache-2.0
// Encrypted files in the file layer: the format::Sealer over the file's data
// key (crypto/aead.h), and unlocking a file at open (its key records,
// crypto/key_record.h). docs/design/0011-encryption-keys.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "crypto/key_record.h"
#include "format/format.h"
#include "format/seal.h"
#include "hyperfile/encryption.h"
#include "hyperfile/object_store.h"

namespace hyperfile {
struct KeySource::Impl {
  crypto::KekSource kek;
};
}  // namespace hyperfile

namespace hyperfile::file {

class Lineage;

// Seals and opens frames and nodes with a file's data key. The associated
// data is crypto::FrameAssociatedData of the place, followed by the
// caller's header bytes; the file id is the own file's for checkpoints above
// every clone origin, else that origin's (origin_ids: (max_id, file id),
// ascending max_id, as in the header's origins).
class FileSealer : public format::Sealer {
 public:
  FileSealer(crypto::SecretKey data_key, uint64_t own_file_id,
             std::vector<std::pair<uint64_t, uint64_t>> origin_ids)
      : key_(std::move(data_key)), own_(own_file_id), origins_(std::move(origin_ids)) {}
  uint8_t cipher() const override { return format::kCipherXChaCha20Poly1305; }
  void Seal(const format::SealPlace& place, std::string_view header, std::string_view plain,
            std::string* out) const override;
  Status Open(const format::SealPlace& place, std::string_view header, std::string_view sealed,
              std::string* out, std::string_view where) const override;
  uint64_t FileIdFor(uint64_t checkpoint) const;
  // For a clone's key record (it shares this data key).
  const crypto::SecretKey& data_key() const { return key_; }

 private:
  std::string Ad(const format::SealPlace& place, std::string_view header) const;
  crypto::SecretKey key_;
  uint64_t own_;
  std::vector<std::pair<uint64_t, uint64_t>> origins_;
};

// Unlocks the file whose (head or any) segment header is `head`, with the
// key in `key` (OpenOptions::key): nullptr if the file is not encrypted
// (head.cipher == 0; `key` is then ignored). Reads the key records (one
// LIST, bounded GETs) and, for a clone, the header of each origin's last
// borrowed segment (its file id), nothing else: no index node or data.
// Auth without a key or with a wrong one (OpenFileKey's errors, naming the
// file); Corrupt if the file's key records are missing.
Result<std::shared_ptr<const FileSealer>> UnlockFile(Lineage* lineage,
                                                     const format::SegmentHeader& head,
                                                     const KeySource* key);

}  // namespace hyperfile::file
