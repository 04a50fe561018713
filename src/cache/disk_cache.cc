// SPDX-License-Identifier: Apache-2.0
#include "cache/disk_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "util/coding.h"
#include "util/crc32c.h"

namespace hyperfile {

namespace {

constexpr uint32_t kRecordMagic = 0x32444648;  // "HFD2" little-endian
constexpr size_t kRecordHeader = 4 + 4 + 8 + 8 + 8 + 8 + 4;
constexpr uint32_t kMaxPayload = 16u << 20;

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Encodes the record header for key and payload (crc covers bytes 8.. and payload).
std::string EncodeRecordHeader(const DiskCacheKey& key, std::string_view payload) {
  std::string h(kRecordHeader, '\0');
  EncodeFixed32(h.data(), kRecordMagic);
  EncodeFixed64(h.data() + 8, key.file_id);
  EncodeFixed64(h.data() + 16, key.segment);
  EncodeFixed64(h.data() + 24, key.epoch);
  EncodeFixed64(h.data() + 32, key.offset);
  EncodeFixed32(h.data() + 40, static_cast<uint32_t>(payload.size()));
  uint32_t crc = crc32c::Extend(0, h.data() + 8, kRecordHeader - 8);
  crc = crc32c::Extend(crc, payload.data(), payload.size());
  EncodeFixed32(h.data() + 4, crc);
  return h;
}

bool PreadAll(int fd, char* buf, size_t n, uint64_t offset) {
  while (n > 0) {
    ssize_t r = ::pread(fd, buf, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<DiskCache>> DiskCache::Open(const std::string& dir, uint64_t budget_bytes) {
  if (dir.empty()) return Status::InvalidArgument("disk cache: empty directory name");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IOError("disk cache " + dir + ": " + ec.message());
  std::string lock_path = dir + "/LOCK";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError(Errno("disk cache " + lock_path));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return Status::Conflict("disk cache " + dir + " is in use by another process");
  }
  std::unique_ptr<DiskCache> cache(new DiskCache(dir, budget_bytes, fd));
  HF_RETURN_IF_ERROR(cache->Scan());
  return cache;
}

DiskCache::DiskCache(std::string dir, uint64_t budget, int lock_fd)
    : dir_(std::move(dir)),
      budget_(budget),
      // Eight slabs per budget: eviction drops at most 1/8 of the cache.
      slab_bytes_(std::max<uint64_t>(budget / 8, 1u << 20)),
      lock_fd_(lock_fd) {}

DiskCache::~DiskCache() {
  for (auto& [seq, slab] : slabs_) ::close(slab.fd);
  ::close(lock_fd_);  // releases the flock
}

std::string DiskCache::SlabPath(uint64_t seq) const {
  char name[32];
  std::snprintf(name, sizeof name, "slab-%016llx", static_cast<unsigned long long>(seq));
  return dir_ + "/" + name;
}

Status DiskCache::Scan() {
  std::lock_guard<std::mutex> lock(mu_);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    if (name.size() != 21 || name.rfind("slab-", 0) != 0) continue;
    char* end = nullptr;
    uint64_t seq = std::strtoull(name.c_str() + 5, &end, 16);
    if (*end != '\0') continue;
    Slab slab;
    slab.fd = ::open(entry.path().c_str(), O_RDWR | O_CLOEXEC);
    if (slab.fd < 0) continue;
    slabs_.emplace(seq, std::move(slab));
  }
  if (ec) return Status::IOError("disk cache " + dir_ + ": " + ec.message());
  for (auto& [seq, slab] : slabs_) ScanSlab(seq, &slab);
  EvictLocked();  // the budget may have shrunk since the last run
  return Status::OK();
}

void DiskCache::ScanSlab(uint64_t seq, Slab* slab) {
  uint64_t pos = 0;
  std::string header(kRecordHeader, '\0'), payload;
  while (PreadAll(slab->fd, header.data(), kRecordHeader, pos)) {
    if (DecodeFixed32(header.data()) != kRecordMagic) break;
    uint32_t length = DecodeFixed32(header.data() + 40);
    if (length > kMaxPayload) break;
    payload.resize(length);
    if (!PreadAll(slab->fd, payload.data(), length, pos + kRecordHeader)) break;
    uint32_t crc = crc32c::Extend(0, header.data() + 8, kRecordHeader - 8);
    crc = crc32c::Extend(crc, payload.data(), length);
    if (crc != DecodeFixed32(header.data() + 4)) break;  // a torn tail
    DiskCacheKey key{DecodeFixed64(header.data() + 8), DecodeFixed64(header.data() + 16),
                     DecodeFixed64(header.data() + 24), DecodeFixed64(header.data() + 32)};
    auto [it, inserted] = index_.try_emplace(key, Location{seq, pos, length});
    if (!inserted) it->second = Location{seq, pos, length};
    slab->keys.push_back(key);
    pos += kRecordHeader + length;
  }
  // Whatever follows the last intact record is garbage: cut it off so new
  // records are appended right after good ones.
  if (::ftruncate(slab->fd, static_cast<off_t>(pos)) != 0) {
    // Keep going: the slab is still readable up to pos; appends go elsewhere.
  }
  slab->size = pos;
  used_ += pos;
}

bool DiskCache::Get(const DiskCacheKey& key, std::string* out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  const Location loc = it->second;
  auto slab = slabs_.find(loc.slab);
  std::string record(kRecordHeader + loc.length, '\0');
  bool ok =
      slab != slabs_.end() && PreadAll(slab->second.fd, record.data(), record.size(), loc.offset);
  std::string_view payload(record.data() + kRecordHeader, loc.length);
  if (!ok || record.compare(0, kRecordHeader, EncodeRecordHeader(key, payload)) != 0) {
    index_.erase(it);  // damaged or vanished: a miss, and never again
    return false;
  }
  out->assign(payload);
  return true;
}

Status DiskCache::StartSlabLocked() {
  uint64_t seq = slabs_.empty() ? 1 : slabs_.rbegin()->first + 1;
  Slab slab;
  slab.fd = ::open(SlabPath(seq).c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (slab.fd < 0) return Status::IOError(Errno("disk cache " + SlabPath(seq)));
  slabs_.emplace(seq, std::move(slab));
  return Status::OK();
}

void DiskCache::Put(const DiskCacheKey& key, std::string_view payload) {
  if (payload.size() > kMaxPayload || kRecordHeader + payload.size() > budget_) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (index_.count(key)) return;
  if (slabs_.empty() || slabs_.rbegin()->second.size >= slab_bytes_) {
    if (!StartSlabLocked().ok()) return;
  }
  auto& [seq, slab] = *slabs_.rbegin();
  std::string record = EncodeRecordHeader(key, payload);
  record.append(payload);
  ssize_t n = ::pwrite(slab.fd, record.data(), record.size(), static_cast<off_t>(slab.size));
  if (n != static_cast<ssize_t>(record.size())) {
    // A short write (disk full): cut it off so the slab stays a clean sequence.
    if (::ftruncate(slab.fd, static_cast<off_t>(slab.size)) != 0) slab.size = slab_bytes_;
    return;
  }
  index_[key] = Location{seq, slab.size, static_cast<uint32_t>(payload.size())};
  slab.keys.push_back(key);
  slab.size += record.size();
  used_ += record.size();
  EvictLocked();
}

void DiskCache::EvictLocked() {
  while (used_ > budget_ && !slabs_.empty()) {
    auto oldest = slabs_.begin();
    for (const DiskCacheKey& k : oldest->second.keys) {
      auto it = index_.find(k);
      if (it != index_.end() && it->second.slab == oldest->first) index_.erase(it);
    }
    used_ -= oldest->second.size;
    ::close(oldest->second.fd);
    ::unlink(SlabPath(oldest->first).c_str());
    slabs_.erase(oldest);
  }
}

uint64_t DiskCache::used_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

size_t DiskCache::entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_.size();
}

}  // namespace hyperfile
