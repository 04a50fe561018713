// SPDX-License-Identifier: Apache-2.0
#include "file/sealing.h"

#include <cstdlib>
#include <cstring>

#include "crypto/aead.h"
#include "crypto/key_source.h"
#include "file/segment_io.h"

namespace hyperfile {

KeySource::KeySource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KeySource::~KeySource() = default;

namespace {
std::shared_ptr<const KeySource> Wrap(crypto::KekSource kek) {
  auto impl = std::make_unique<KeySource::Impl>(KeySource::Impl{std::move(kek)});
  return std::make_shared<const KeySource>(std::move(impl));
}
}  // namespace

Result<std::shared_ptr<const KeySource>> KeySource::FromKeyFile(const std::string& path) {
  HF_ASSIGN_OR_RETURN(crypto::SecretKey key, crypto::ReadKeyFile(path));
  return Wrap(crypto::KekSource::FromKey(std::move(key)));
}

Result<std::shared_ptr<const KeySource>> KeySource::FromKeyText(std::string_view text) {
  HF_ASSIGN_OR_RETURN(crypto::SecretKey key, crypto::SecretKey::FromText(text, "key text"));
  return Wrap(crypto::KekSource::FromKey(std::move(key)));
}

Result<std::shared_ptr<const KeySource>> KeySource::FromPassphrase(std::string_view passphrase,
                                                                   uint64_t ops,
                                                                   uint64_t mem_bytes) {
  HF_ASSIGN_OR_RETURN(
      crypto::KekSource kek,
      crypto::KekSource::FromPassphrase(passphrase, ops == 0 ? crypto::kDefaultKdfOps : ops,
                                        mem_bytes == 0 ? crypto::kDefaultKdfMemBytes : mem_bytes));
  return Wrap(std::move(kek));
}

std::string KeySource::Describe() const { return impl_->kek.Describe(); }

std::string CipherName(uint8_t cipher) {
  switch (cipher) {
    case format::kCipherNone:
      return "none";
    case format::kCipherXChaCha20Poly1305:
      return "xchacha20-poly1305";
  }
  return "unknown(" + std::to_string(cipher) + ")";
}

Result<uint64_t> ChangeKey(std::shared_ptr<ObjectStore> store, const KeySource& old_key,
                           const KeySource& new_key) {
  if (!store) return Status::InvalidArgument("key change: no store");
  HF_ASSIGN_OR_RETURN(uint64_t head, file::LatestCheckpointId(store.get()));
  HF_ASSIGN_OR_RETURN(file::HeaderRead read, file::ReadHeader(store.get(), head));
  if (read.header.cipher == format::kCipherNone) {
    return Status::NotFound("key change: " + store->Name() + " is not encrypted");
  }
  return crypto::ChangeFileKey(store.get(), read.header.file_id, old_key.impl().kek,
                               new_key.impl().kek);
}

}  // namespace hyperfile

namespace hyperfile::file {

uint64_t FileSealer::FileIdFor(uint64_t checkpoint) const {
  for (const auto& [max_id, file_id] : origins_) {
    if (checkpoint <= max_id) return file_id;
  }
  return own_;
}

std::string FileSealer::Ad(const format::SealPlace& place, std::string_view header) const {
  crypto::FramePlace p;
  p.kind = place.kind == format::SealKind::kIndexNode ? crypto::FrameKind::kIndexNode
                                                      : crypto::FrameKind::kDataFrame;
  p.file_id = FileIdFor(place.checkpoint);
  p.checkpoint = place.checkpoint;
  p.writer_epoch = place.writer_epoch;
  p.in_data_object = place.in_data_object;
  p.offset = place.offset;
  std::string ad = crypto::FrameAssociatedData(p);
  ad.append(header);
  return ad;
}

void FileSealer::Seal(const format::SealPlace& place, std::string_view header,
                      std::string_view plain, std::string* out) const {
  // Fails only for an empty key or a plaintext over 1 GiB: neither can
  // happen here (the key is checked at unlock, frames are <= 4 MiB).
  Status st = crypto::SealTo(key_, Ad(place, header), plain, out);
  if (!st.ok()) std::abort();
}

Status FileSealer::Open(const format::SealPlace& place, std::string_view header,
                        std::string_view sealed, std::string* out, std::string_view where) const {
  return crypto::OpenTo(key_, Ad(place, header), sealed, out, where);
}

Result<std::shared_ptr<const FileSealer>> UnlockFile(Lineage* lineage,
                                                     const format::SegmentHeader& head,
                                                     const KeySource* key) {
  if (head.cipher == format::kCipherNone) return std::shared_ptr<const FileSealer>();
  ObjectStore* store = lineage->own();
  if (key == nullptr) {
    return Status::Auth(store->Name() +
                        " is encrypted; no key was given (a key file, HYPERFILE_KEY_FILE or a "
                        "passphrase)");
  }
  auto fk = crypto::OpenFileKey(store, head.file_id, &key->impl().kek);
  if (!fk.ok()) {
    if (fk.status().IsNotFound()) {
      return Status::Corrupt(store->Name() +
                             ": the file is encrypted but has no key record (key/ was deleted)");
    }
    return fk.status();
  }
  // A clone's borrowed frames were sealed by its origins, under their file
  // ids: the header of each origin's last borrowed segment names it.
  std::vector<std::pair<uint64_t, uint64_t>> origin_ids;
  for (const format::Origin& o : head.origins) {
    HF_ASSIGN_OR_RETURN(ObjectStore * os, lineage->StoreFor(o.max_id));
    HF_ASSIGN_OR_RETURN(HeaderRead r, ReadHeader(os, o.max_id));
    if (r.header.cipher != head.cipher) {
      return Status::Corrupt(lineage->Where(o.max_id) +
                             ": clone origin's cipher differs from the clone's");
    }
    origin_ids.emplace_back(o.max_id, r.header.file_id);
  }
  return std::make_shared<const FileSealer>(std::move(fk.value().data_key), head.file_id,
                                            std::move(origin_ids));
}

}  // namespace hyperfile::file
